-- Self-service: verification methods people register, the server-side state
-- of each attempt (flow), one-time codes, and portal blocks.

-- A registered method of one directory user (keyed by the directory's stable
-- ID). secret is sealed with the data folder's key: the alternate e-mail
-- address, the TOTP secret, or the JSON of question → argon2id answer hash.
CREATE TABLE sspr_methods (
    user_id      TEXT    NOT NULL,
    method       TEXT    NOT NULL CHECK (method IN ('email', 'app', 'questions')),
    secret       TEXT    NOT NULL,
    confirmed_ms INTEGER NOT NULL,
    PRIMARY KEY (user_id, method)
) STRICT;

-- One attempt to reset, unlock, change or register, bound to the browser
-- session that started it (browser_hash) and to the directory user it is
-- about. Nothing about identity comes from form fields: it is all here.
CREATE TABLE sspr_flows (
    id             TEXT    PRIMARY KEY,
    kind           TEXT    NOT NULL CHECK (kind IN ('reset', 'unlock', 'register')),
    browser_hash   TEXT    NOT NULL,
    login          TEXT    NOT NULL,
    user_id        TEXT    NOT NULL DEFAULT '',
    user_dn        TEXT    NOT NULL DEFAULT '',
    eligible       INTEGER NOT NULL DEFAULT 0 CHECK (eligible IN (0, 1)),
    verified       TEXT    NOT NULL DEFAULT '[]' CHECK (json_valid(verified)),
    state          TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(state)),
    correlation_id TEXT    NOT NULL,
    created_ms     INTEGER NOT NULL,
    expires_ms     INTEGER NOT NULL,
    done_ms        INTEGER
) STRICT;
CREATE INDEX sspr_flows_expiry ON sspr_flows (expires_ms);

-- One-time codes: 8 digits, stored as a keyed hash, single use, 10 minutes,
-- at most 5 tries. A new code for the same flow and purpose voids older ones.
CREATE TABLE sspr_codes (
    id          INTEGER PRIMARY KEY,
    flow_id     TEXT    NOT NULL REFERENCES sspr_flows (id) ON DELETE CASCADE,
    purpose     TEXT    NOT NULL,
    user_id     TEXT    NOT NULL DEFAULT '',
    destination TEXT    NOT NULL DEFAULT '', -- keyed hash of the address
    code_hash   TEXT    NOT NULL,
    created_ms  INTEGER NOT NULL,
    expires_ms  INTEGER NOT NULL,
    tries       INTEGER NOT NULL DEFAULT 0,
    used_ms     INTEGER,
    voided      INTEGER NOT NULL DEFAULT 0 CHECK (voided IN (0, 1))
) STRICT;
CREATE INDEX sspr_codes_flow ON sspr_codes (flow_id, purpose, id DESC);
CREATE INDEX sspr_codes_user ON sspr_codes (user_id, created_ms);
CREATE INDEX sspr_codes_destination ON sspr_codes (destination, created_ms);

-- Failed verifications per user (for the 24-hour block) and the blocks.
CREATE TABLE sspr_failures (
    user_id TEXT    NOT NULL,
    time_ms INTEGER NOT NULL
) STRICT;
CREATE INDEX sspr_failures_user ON sspr_failures (user_id, time_ms);

CREATE TABLE sspr_blocks (
    user_id  TEXT    PRIMARY KEY,
    until_ms INTEGER NOT NULL
) STRICT;
