-- PostgreSQL edition of sqlite/0017_sspr_passkeys.sql: passkeys employees
-- register as a self-service verification method, one row per credential.
CREATE TABLE sspr_passkeys (
    credential_id TEXT    COLLATE "C" NOT NULL PRIMARY KEY CHECK (length(credential_id) BETWEEN 1 AND 1400),
    user_id       TEXT    COLLATE "C" NOT NULL CHECK (length(user_id) > 0),
    name          TEXT    COLLATE "C" NOT NULL CHECK (length(name) BETWEEN 1 AND 64),
    secret        TEXT    COLLATE "C" NOT NULL CHECK (length(secret) BETWEEN 1 AND 8192),
    created_ms    BIGINT  NOT NULL CHECK (created_ms > 0),
    last_used_ms  BIGINT  NOT NULL DEFAULT 0
);
CREATE INDEX sspr_passkeys_user ON sspr_passkeys (user_id);
