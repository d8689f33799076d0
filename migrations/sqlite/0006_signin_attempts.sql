-- Sign-in attempts with a password (a person's directory password on /change
-- and /register, an administrator's on /login), counted per budget so every
-- process of the portal sees the same counts. A row is written *before* the
-- password is checked (pending = 1) and stays as a counted failure
-- (pending = 0) or is deleted when the attempt turned out not to count (the
-- password was right, or it never reached the directory).
--
-- bucket names the budget: the resolved account (its directory ID, or the
-- administrator's ID), the typed name when it resolved to nothing, or the
-- client address. key is a keyed or plain hash of that value, never the value
-- itself, so a password typed into the name field is not kept here.
CREATE TABLE signin_attempts (
    id      INTEGER PRIMARY KEY,
    bucket  TEXT    NOT NULL CHECK (bucket IN ('directory-account', 'directory-name', 'directory-address',
                                               'admin-account', 'admin-name', 'admin-address')),
    key     TEXT    NOT NULL CHECK (length(key) BETWEEN 1 AND 128),
    time_ms INTEGER NOT NULL CHECK (time_ms > 0),
    pending INTEGER NOT NULL DEFAULT 1 CHECK (pending IN (0, 1))
) STRICT;
CREATE INDEX signin_attempts_key ON signin_attempts (bucket, key, time_ms);
CREATE INDEX signin_attempts_time ON signin_attempts (time_ms);
