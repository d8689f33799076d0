-- PostgreSQL edition of sqlite/0008_agents.sql: writeback agents, their
-- one-time enrolment tokens and the operations each performed per minute.
CREATE TABLE agents (
    id                 TEXT    COLLATE "C" PRIMARY KEY CHECK (length(id) BETWEEN 16 AND 64),
    name               TEXT    COLLATE nocase NOT NULL CHECK (length(name) BETWEEN 1 AND 64),
    sign_key           BYTEA   NOT NULL CHECK (length(sign_key) = 32),
    seal_key           BYTEA   NOT NULL CHECK (length(seal_key) = 32),
    host               TEXT    COLLATE "C" NOT NULL DEFAULT '' CHECK (length(host) <= 255),
    version            TEXT    COLLATE "C" NOT NULL DEFAULT '' CHECK (length(version) <= 64),
    enrolled_ms        BIGINT  NOT NULL CHECK (enrolled_ms > 0),
    enrolled_by        TEXT    COLLATE "C" NOT NULL DEFAULT '', -- who created the token it enrolled with
    revoked_ms         BIGINT  CHECK (revoked_ms IS NULL OR revoked_ms >= enrolled_ms),
    revoked_by         TEXT    COLLATE "C" NOT NULL DEFAULT '',
    connected_ms       BIGINT  CHECK (connected_ms IS NULL OR connected_ms > 0),
    heartbeat_ms       BIGINT  CHECK (heartbeat_ms IS NULL OR heartbeat_ms > 0),
    remote_addr        TEXT    COLLATE "C" NOT NULL DEFAULT '' CHECK (length(remote_addr) <= 100),
    last_error         TEXT    COLLATE "C" NOT NULL DEFAULT '' CHECK (length(last_error) <= 1000),
    last_error_ms      BIGINT,
    directory          TEXT    COLLATE "C" NOT NULL DEFAULT '' CHECK (length(directory) <= 500),
    configured         INTEGER NOT NULL DEFAULT 0 CHECK (configured IN (0, 1)),
    password_writeback INTEGER NOT NULL DEFAULT 0 CHECK (password_writeback IN (0, 1))
);
-- A name belongs to one agent that is not revoked (case-insensitive).
CREATE UNIQUE INDEX agents_name ON agents (name COLLATE nocase) WHERE revoked_ms IS NULL;

-- One-time enrolment tokens, stored as their SHA-256 (hex).
CREATE TABLE agent_tokens (
    token_hash TEXT    COLLATE "C" PRIMARY KEY CHECK (length(token_hash) = 64),
    name       TEXT    COLLATE "C" NOT NULL CHECK (length(name) BETWEEN 1 AND 64),
    created_by TEXT    COLLATE "C" NOT NULL DEFAULT '',
    created_ms BIGINT  NOT NULL CHECK (created_ms > 0),
    expires_ms BIGINT  NOT NULL CHECK (expires_ms > created_ms),
    used_ms    BIGINT,
    agent_id   TEXT    COLLATE "C" REFERENCES agents (id),
    CHECK ((used_ms IS NULL) = (agent_id IS NULL))
);
CREATE INDEX agent_tokens_expiry ON agent_tokens (expires_ms);

-- Directory operations each agent performed, counted per minute.
CREATE TABLE agent_ops (
    agent_id  TEXT    COLLATE "C" NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    minute_ms BIGINT  NOT NULL CHECK (minute_ms >= 0 AND minute_ms % 60000 = 0),
    ops       BIGINT  NOT NULL CHECK (ops >= 0),
    PRIMARY KEY (agent_id, minute_ms)
);
CREATE INDEX agent_ops_minute ON agent_ops (minute_ms);
