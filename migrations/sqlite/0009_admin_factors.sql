-- A second factor for administrator sign-in (issue 12): authenticator apps
-- (TOTP) and passkeys / security keys (WebAuthn), recovery codes, the
-- half-signed-in state between the password and the second factor, and the
-- one-time links a Global Administrator makes to reset another's sign-in.

-- One second factor of an administrator. secret is sealed with the keyring
-- (services/keyring): the TOTP secret, or the WebAuthn credential record
-- (public key, sign count) as JSON. credential_id is the WebAuthn credential
-- ID (base64url), unique, so one authenticator is registered once; empty for
-- TOTP. last_step is the last TOTP time step used, so one code signs in once.
CREATE TABLE admin_factors (
    id            INTEGER PRIMARY KEY,
    admin_id      INTEGER NOT NULL REFERENCES admins (id) ON DELETE CASCADE,
    kind          TEXT    NOT NULL CHECK (kind IN ('totp', 'passkey')),
    name          TEXT    NOT NULL CHECK (length(name) BETWEEN 1 AND 64),
    secret        TEXT    NOT NULL CHECK (length(secret) BETWEEN 1 AND 8192),
    credential_id TEXT    NOT NULL DEFAULT '' CHECK (length(credential_id) <= 1400),
    created_ms    INTEGER NOT NULL CHECK (created_ms > 0),
    last_used_ms  INTEGER NOT NULL DEFAULT 0,
    last_step     INTEGER NOT NULL DEFAULT 0,
    CHECK ((kind = 'passkey') = (credential_id <> ''))
) STRICT;
CREATE INDEX admin_factors_admin ON admin_factors (admin_id);
CREATE UNIQUE INDEX admin_factors_credential ON admin_factors (credential_id) WHERE credential_id <> '';

-- Single-use recovery codes, stored as keyed hashes (HMAC-SHA256 with a key
-- derived from the key file), never as typed.
CREATE TABLE admin_recovery_codes (
    admin_id   INTEGER NOT NULL REFERENCES admins (id) ON DELETE CASCADE,
    code_hash  TEXT    NOT NULL CHECK (length(code_hash) = 64),
    created_ms INTEGER NOT NULL CHECK (created_ms > 0),
    used_ms    INTEGER,
    PRIMARY KEY (admin_id, code_hash)
) STRICT;

-- The half-signed-in state: the password was right, the second factor (or
-- the enrolment of one) is still to come. The cookie holds a random ID whose
-- SHA-256 is the key here; the row lives a few minutes and reaches nothing
-- but the second step.
CREATE TABLE admin_signins (
    id_hash    TEXT    PRIMARY KEY CHECK (length(id_hash) = 64),
    admin_id   INTEGER NOT NULL REFERENCES admins (id) ON DELETE CASCADE,
    stage      TEXT    NOT NULL CHECK (stage IN ('factor', 'enrol')),
    created_ms INTEGER NOT NULL CHECK (created_ms > 0),
    expires_ms INTEGER NOT NULL CHECK (expires_ms > created_ms)
) STRICT;
CREATE INDEX admin_signins_admin ON admin_signins (admin_id);

-- One-time links that let an administrator whose sign-in a Global
-- Administrator reset choose a new password (hash of the token only).
CREATE TABLE admin_reset_tokens (
    token_hash TEXT    PRIMARY KEY CHECK (length(token_hash) = 64),
    admin_id   INTEGER NOT NULL REFERENCES admins (id) ON DELETE CASCADE,
    created_ms INTEGER NOT NULL CHECK (created_ms > 0),
    expires_ms INTEGER NOT NULL CHECK (expires_ms > created_ms),
    used_ms    INTEGER
) STRICT;

-- Administrators whose sign-in was reset after they had a second factor:
-- they enrol again at their next sign-in whatever their role's policy says.
CREATE TABLE admin_enrol_required (
    admin_id INTEGER PRIMARY KEY REFERENCES admins (id) ON DELETE CASCADE,
    since_ms INTEGER NOT NULL CHECK (since_ms > 0)
) STRICT;

-- Wrong second factors are counted like wrong passwords, in a budget of
-- their own ('admin-factor', by administrator ID) that a right password does
-- not clear. SQLite cannot change a CHECK constraint in place: the table is
-- made again with the new bucket and its rows copied.
CREATE TABLE signin_attempts_new (
    id      INTEGER PRIMARY KEY,
    bucket  TEXT    NOT NULL CHECK (bucket IN ('directory-account', 'directory-name', 'directory-address',
                                               'admin-account', 'admin-name', 'admin-address', 'admin-factor')),
    key     TEXT    NOT NULL CHECK (length(key) BETWEEN 1 AND 128),
    time_ms INTEGER NOT NULL CHECK (time_ms > 0),
    pending INTEGER NOT NULL DEFAULT 1 CHECK (pending IN (0, 1))
) STRICT;
INSERT INTO signin_attempts_new (id, bucket, key, time_ms, pending) SELECT id, bucket, key, time_ms, pending FROM signin_attempts;
DROP TABLE signin_attempts;
ALTER TABLE signin_attempts_new RENAME TO signin_attempts;
CREATE INDEX signin_attempts_key ON signin_attempts (bucket, key, time_ms);
CREATE INDEX signin_attempts_time ON signin_attempts (time_ms);
