-- PostgreSQL edition of sqlite/0010_replicas.sql: several replicas of the
-- portal on one database.

-- The check value of the key file the database was first used with.
CREATE TABLE key_check (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    value      TEXT    COLLATE "C" NOT NULL CHECK (length(value) = 64),
    created_ms BIGINT  NOT NULL CHECK (created_ms > 0)
);

-- The portal processes running on this database (database clock).
CREATE TABLE replicas (
    id         TEXT    COLLATE "C" PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 64),
    host       TEXT    COLLATE "C" NOT NULL DEFAULT '' CHECK (length(host) <= 255),
    started_ms BIGINT  NOT NULL CHECK (started_ms > 0),
    seen_ms    BIGINT  NOT NULL CHECK (seen_ms >= started_ms)
);
CREATE INDEX replicas_seen ON replicas (seen_ms);

-- Leases on the background work that must run once.
CREATE TABLE leases (
    name        TEXT    COLLATE "C" PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 64),
    holder      TEXT    COLLATE "C" NOT NULL CHECK (length(holder) BETWEEN 1 AND 64),
    acquired_ms BIGINT  NOT NULL CHECK (acquired_ms > 0),
    expires_ms  BIGINT  NOT NULL CHECK (expires_ms > acquired_ms)
);

-- Request counts behind the per-address rate limits, shared by replicas.
CREATE TABLE rate_counts (
    key       TEXT    COLLATE "C" NOT NULL CHECK (length(key) BETWEEN 1 AND 300),
    window_ms BIGINT  NOT NULL CHECK (window_ms >= 0),
    count     BIGINT  NOT NULL,
    PRIMARY KEY (key, window_ms)
);
CREATE INDEX rate_counts_window ON rate_counts (window_ms);
