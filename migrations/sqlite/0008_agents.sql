-- Writeback agents: the programs inside the company network that dial out to
-- the portal and perform its directory operations (issue 10).

-- One enrolled agent: its name, the public halves of its identity keys (the
-- private ones never leave the agent), what it last reported of itself, and
-- whether it is connected. Times are Unix milliseconds, as elsewhere.
--
-- connected_ms is set while a connection is open (and cleared when it
-- closes); an agent counts as connected only while its last sign of life
-- (heartbeat_ms, or connected_ms before the first heartbeat) is recent, so a
-- portal that stopped without clearing it does not show it connected for ever.
CREATE TABLE agents (
    id                 TEXT    PRIMARY KEY CHECK (length(id) BETWEEN 16 AND 64),
    name               TEXT    NOT NULL COLLATE NOCASE CHECK (length(name) BETWEEN 1 AND 64),
    sign_key           BLOB    NOT NULL CHECK (length(sign_key) = 32),
    seal_key           BLOB    NOT NULL CHECK (length(seal_key) = 32),
    host               TEXT    NOT NULL DEFAULT '' CHECK (length(host) <= 255),
    version            TEXT    NOT NULL DEFAULT '' CHECK (length(version) <= 64),
    enrolled_ms        INTEGER NOT NULL CHECK (enrolled_ms > 0),
    enrolled_by        TEXT    NOT NULL DEFAULT '', -- who created the token it enrolled with
    revoked_ms         INTEGER CHECK (revoked_ms IS NULL OR revoked_ms >= enrolled_ms),
    revoked_by         TEXT    NOT NULL DEFAULT '',
    connected_ms       INTEGER CHECK (connected_ms IS NULL OR connected_ms > 0),
    heartbeat_ms       INTEGER CHECK (heartbeat_ms IS NULL OR heartbeat_ms > 0),
    remote_addr        TEXT    NOT NULL DEFAULT '' CHECK (length(remote_addr) <= 100),
    last_error         TEXT    NOT NULL DEFAULT '' CHECK (length(last_error) <= 1000),
    last_error_ms      INTEGER,
    directory          TEXT    NOT NULL DEFAULT '' CHECK (length(directory) <= 500),
    configured         INTEGER NOT NULL DEFAULT 0 CHECK (configured IN (0, 1)),
    password_writeback INTEGER NOT NULL DEFAULT 0 CHECK (password_writeback IN (0, 1))
) STRICT;
-- A name belongs to one agent that is not revoked (case-insensitive): a
-- revoked agent's name may be given to its replacement.
CREATE UNIQUE INDEX agents_name ON agents (name COLLATE NOCASE) WHERE revoked_ms IS NULL;

-- One-time enrolment tokens: stored as agentwire.TokenHash (SHA-256, hex),
-- never as themselves; valid until expires_ms and used once (used_ms and
-- agent_id set in the transaction that creates the agent).
CREATE TABLE agent_tokens (
    token_hash TEXT    PRIMARY KEY CHECK (length(token_hash) = 64),
    name       TEXT    NOT NULL CHECK (length(name) BETWEEN 1 AND 64),
    created_by TEXT    NOT NULL DEFAULT '',
    created_ms INTEGER NOT NULL CHECK (created_ms > 0),
    expires_ms INTEGER NOT NULL CHECK (expires_ms > created_ms),
    used_ms    INTEGER,
    agent_id   TEXT    REFERENCES agents (id),
    CHECK ((used_ms IS NULL) = (agent_id IS NULL))
) STRICT;
CREATE INDEX agent_tokens_expiry ON agent_tokens (expires_ms);

-- Directory operations each agent performed, counted per minute, for
-- "operations in the last hour". Buckets older than an hour are pruned.
CREATE TABLE agent_ops (
    agent_id  TEXT    NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    minute_ms INTEGER NOT NULL CHECK (minute_ms >= 0 AND minute_ms % 60000 = 0),
    ops       INTEGER NOT NULL CHECK (ops >= 0),
    PRIMARY KEY (agent_id, minute_ms)
) STRICT;
CREATE INDEX agent_ops_minute ON agent_ops (minute_ms);
