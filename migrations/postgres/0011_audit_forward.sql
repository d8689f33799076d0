-- PostgreSQL edition of sqlite/0011_audit_forward.sql: where each audit
-- forwarder has got to (the newest event ID it sent). One replica at a time
-- forwards to a destination (a session advisory lock, store/auditforward.go).
CREATE TABLE audit_forward_cursors (
    name       TEXT    COLLATE "C" PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 64),
    last_id    BIGINT  NOT NULL CHECK (last_id >= 0),
    updated_ms BIGINT  NOT NULL CHECK (updated_ms > 0)
);
