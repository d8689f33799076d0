-- Several replicas of the portal on one database (issue 11).

-- The check value of the key file the database was first used with
-- (keyring.Check: an HMAC of a fixed label under a key derived for that
-- purpose alone, never the key). A process started with another key file
-- refuses to start instead of failing to read sessions and secrets later.
-- One row; a database from before this table gets it on its next open.
CREATE TABLE key_check (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    value      TEXT    NOT NULL CHECK (length(value) = 64),
    created_ms INTEGER NOT NULL CHECK (created_ms > 0)
) STRICT;
