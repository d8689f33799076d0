-- PostgreSQL edition of sqlite/0007_audit_checkpoint.sql: where the last
-- successful verification of the audit chain ended, so the next check reads
-- only what was appended since (see there for how it is checked).
CREATE TABLE audit_checkpoint (
    one         INTEGER PRIMARY KEY CHECK (one = 1),
    event_id    BIGINT  NOT NULL CHECK (event_id > 0),
    hash        TEXT    COLLATE "C" NOT NULL CHECK (length(hash) = 64),
    anchor_id   BIGINT  NOT NULL CHECK (anchor_id >= 0 AND anchor_id < event_id),
    anchor_hash TEXT    COLLATE "C" NOT NULL CHECK (length(anchor_hash) = 64),
    verified_ms BIGINT  NOT NULL CHECK (verified_ms > 0), -- when that check ended
    full_ms     BIGINT  NOT NULL DEFAULT 0 CHECK (full_ms >= 0) -- when the last full check ended; 0: never
);

-- The index of IDs alone that SQLite counts a table with; PostgreSQL counts
-- through the primary key, but the index keeps the two schemas alike.
CREATE INDEX audit_ids ON audit_events (id);
