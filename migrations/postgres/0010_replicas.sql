-- PostgreSQL edition of sqlite/0010_replicas.sql: several replicas of the
-- portal on one database.

-- The check value of the key file the database was first used with.
CREATE TABLE key_check (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    value      TEXT    COLLATE "C" NOT NULL CHECK (length(value) = 64),
    created_ms BIGINT  NOT NULL CHECK (created_ms > 0)
);
