-- API tokens for the REST API (/api/v1): bearer tokens a Global
-- Administrator creates for automation, each with one administrator role.
-- A token is stored as its SHA-256 (hex), never as itself; it is refused
-- once revoked or past expires_ms. last_used_ms is written at most once a
-- minute per token (the API tokens page shows it).
CREATE TABLE api_tokens (
    id           INTEGER PRIMARY KEY,
    token_hash   TEXT    NOT NULL UNIQUE CHECK (length(token_hash) = 64),
    name         TEXT    NOT NULL COLLATE NOCASE CHECK (length(name) BETWEEN 1 AND 64),
    role         TEXT    NOT NULL CHECK (role IN ('global-admin', 'helpdesk-admin', 'reports-reader')),
    created_by   TEXT    NOT NULL DEFAULT '',
    created_ms   INTEGER NOT NULL CHECK (created_ms > 0),
    expires_ms   INTEGER NOT NULL CHECK (expires_ms > created_ms),
    last_used_ms INTEGER,
    last_used_ip TEXT    NOT NULL DEFAULT '' CHECK (length(last_used_ip) <= 100),
    revoked_ms   INTEGER CHECK (revoked_ms IS NULL OR revoked_ms >= created_ms),
    revoked_by   TEXT    NOT NULL DEFAULT ''
) STRICT;
-- A name belongs to one token that is not revoked (case-insensitive), so
-- that the audit log's actor names one token.
CREATE UNIQUE INDEX api_tokens_name ON api_tokens (name COLLATE NOCASE) WHERE revoked_ms IS NULL;

-- What an API token does is recorded with the token as its actor:
-- actor_type 'api-token'. SQLite cannot change a CHECK constraint in place,
-- so audit_events is rebuilt with the wider one, row for row (IDs and hashes
-- unchanged: the chain still verifies), and its indexes made again.
CREATE TABLE audit_events_new (
    id             INTEGER PRIMARY KEY,
    time_ms        INTEGER NOT NULL,
    category       TEXT    NOT NULL,
    activity       TEXT    NOT NULL,
    actor_type     TEXT    NOT NULL CHECK (actor_type IN ('admin', 'user', 'system', 'cli', 'anonymous', 'api-token')),
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
INSERT INTO audit_events_new SELECT * FROM audit_events;
DROP TABLE audit_events;
ALTER TABLE audit_events_new RENAME TO audit_events;
CREATE INDEX audit_activity_time ON audit_events (activity, time_ms DESC, id DESC);
CREATE INDEX audit_category_time ON audit_events (category, time_ms DESC, id DESC);
CREATE INDEX audit_failure_time ON audit_events (time_ms DESC, id DESC) WHERE result = 'failure';
CREATE INDEX audit_time_who ON audit_events (time_ms DESC, id DESC, actor_id, actor_name, target_id, target_name, target_dn);
CREATE INDEX audit_actor_time ON audit_events (actor_id, time_ms DESC, id DESC) WHERE actor_id <> '';
CREATE INDEX audit_target_time ON audit_events (target_id, time_ms DESC, id DESC) WHERE target_id <> '';
CREATE INDEX audit_correlation ON audit_events (correlation_id, time_ms, id) WHERE correlation_id <> '';
CREATE INDEX audit_ids ON audit_events (id);
