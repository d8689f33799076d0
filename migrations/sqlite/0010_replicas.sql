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

-- The portal processes running on this database, for the agents (one
-- connection per replica) and the operator: each writes seen_ms every few
-- seconds and counts as running while it is recent. Rows of replicas gone
-- for an hour are removed. Times are the database's clock, so that
-- replicas on hosts whose clocks differ agree.
CREATE TABLE replicas (
    id         TEXT    PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 64),
    host       TEXT    NOT NULL DEFAULT '' CHECK (length(host) <= 255),
    started_ms INTEGER NOT NULL CHECK (started_ms > 0),
    seen_ms    INTEGER NOT NULL CHECK (seen_ms >= started_ms)
) STRICT;
CREATE INDEX replicas_seen ON replicas (seen_ms);

-- Leases: the replica named holder does the work called name (the
-- background work that must run once: retention pruning, the chain check,
-- the directory health check) until expires_ms, renewing it while it runs;
-- once it has expired another replica takes it.
CREATE TABLE leases (
    name        TEXT    PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 64),
    holder      TEXT    NOT NULL CHECK (length(holder) BETWEEN 1 AND 64),
    acquired_ms INTEGER NOT NULL CHECK (acquired_ms > 0),
    expires_ms  INTEGER NOT NULL CHECK (expires_ms > acquired_ms)
) STRICT;

-- Request counts behind the per-address rate limits when several replicas
-- share them (handlers.RateCounter): one row per key (the limit's name and
-- the client address) and fixed window, windows aligned to the clock.
-- Windows older than the one before the current are pruned.
CREATE TABLE rate_counts (
    key       TEXT    NOT NULL CHECK (length(key) BETWEEN 1 AND 300),
    window_ms INTEGER NOT NULL CHECK (window_ms >= 0),
    count     INTEGER NOT NULL,
    PRIMARY KEY (key, window_ms)
) STRICT;
CREATE INDEX rate_counts_window ON rate_counts (window_ms);
