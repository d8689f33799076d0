-- Passkeys employees register on /register as a self-service verification
-- method (issue 13). One row per credential, keyed by its credential ID
-- (base64url, unique across the portal, so a discoverable assertion finds
-- its owner); user_id is the directory's stable ID (objectGUID/entryUUID)
-- as in sspr_methods. secret is the library's credential record (public
-- key, sign count, flags) sealed with the data folder's key, bound to the
-- user. A person may hold several (phone, laptop, security key).
CREATE TABLE sspr_passkeys (
    credential_id TEXT    NOT NULL PRIMARY KEY CHECK (length(credential_id) BETWEEN 1 AND 1400),
    user_id       TEXT    NOT NULL CHECK (length(user_id) > 0),
    name          TEXT    NOT NULL CHECK (length(name) BETWEEN 1 AND 64),
    secret        TEXT    NOT NULL CHECK (length(secret) BETWEEN 1 AND 8192),
    created_ms    INTEGER NOT NULL CHECK (created_ms > 0),
    last_used_ms  INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE INDEX sspr_passkeys_user ON sspr_passkeys (user_id);
