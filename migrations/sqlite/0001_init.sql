-- Administrators of the portal.
CREATE TABLE admins (
    id            INTEGER PRIMARY KEY,
    email         TEXT    NOT NULL UNIQUE COLLATE NOCASE CHECK (length(email) BETWEEN 3 AND 254),
    name          TEXT    NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    role          TEXT    NOT NULL CHECK (role IN ('global-admin', 'helpdesk-admin', 'reports-reader')),
    password_hash TEXT    NOT NULL,
    disabled      INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
    created_ms    INTEGER NOT NULL,
    updated_ms    INTEGER NOT NULL
) STRICT;

-- Server-side half of every administrator session: the cookie holds a random
-- ID whose SHA-256 is the key here, so deleting a row ends the session at once.
CREATE TABLE admin_sessions (
    id_hash      TEXT    PRIMARY KEY,
    admin_id     INTEGER NOT NULL REFERENCES admins (id) ON DELETE CASCADE,
    created_ms   INTEGER NOT NULL,
    last_seen_ms INTEGER NOT NULL,
    client_ip    TEXT    NOT NULL DEFAULT '',
    user_agent   TEXT    NOT NULL DEFAULT ''
) STRICT;
CREATE INDEX admin_sessions_admin ON admin_sessions (admin_id);

-- One-time links that create the first Global Administrator.
CREATE TABLE setup_tokens (
    token_hash TEXT    PRIMARY KEY,
    created_ms INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL,
    used_ms    INTEGER
) STRICT;

-- Named settings documents (JSON) with optimistic concurrency: every save
-- names the version it was based on and bumps it.
CREATE TABLE config (
    name         TEXT    PRIMARY KEY,
    value        TEXT    NOT NULL CHECK (json_valid(value)),
    version      INTEGER NOT NULL DEFAULT 1,
    updated_ms   INTEGER NOT NULL,
    updated_by   TEXT    NOT NULL DEFAULT ''
) STRICT;

-- The audit log: one row per event, hash-chained for tamper evidence.
CREATE TABLE audit_events (
    id             INTEGER PRIMARY KEY,
    time_ms        INTEGER NOT NULL,
    category       TEXT    NOT NULL,
    activity       TEXT    NOT NULL,
    actor_type     TEXT    NOT NULL CHECK (actor_type IN ('admin', 'user', 'system', 'cli', 'anonymous')),
    actor_id       TEXT    NOT NULL DEFAULT '',
    actor_name     TEXT    NOT NULL DEFAULT '',
    target_type    TEXT    NOT NULL DEFAULT '',
    target_id      TEXT    NOT NULL DEFAULT '',
    target_dn      TEXT    NOT NULL DEFAULT '',
    target_name    TEXT    NOT NULL DEFAULT '',
    result         TEXT    NOT NULL CHECK (result IN ('success', 'failure')),
    reason         TEXT    NOT NULL DEFAULT '',
    client_ip      TEXT    NOT NULL DEFAULT '',
    user_agent     TEXT    NOT NULL DEFAULT '',
    correlation_id TEXT    NOT NULL DEFAULT '',
    details        TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(details)),
    prev_hash      TEXT    NOT NULL,
    hash           TEXT    NOT NULL
) STRICT;
CREATE INDEX audit_time ON audit_events (time_ms DESC, id DESC);
CREATE INDEX audit_activity_time ON audit_events (activity, time_ms DESC, id DESC);
CREATE INDEX audit_category_time ON audit_events (category, time_ms DESC, id DESC);
CREATE INDEX audit_correlation ON audit_events (correlation_id) WHERE correlation_id <> '';
