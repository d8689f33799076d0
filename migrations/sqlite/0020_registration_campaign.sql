-- Registration campaign (issue 14, item 1): mail the people in scope who
-- have not registered enough methods, or whose re-confirmation is due, with
-- a link to /register.
--
-- One row per run. At most one run is sending at a time, whichever replica
-- started it (the partial unique index). in_scope, not_registered and
-- reconfirm_due are the enumeration's counts when the run began.
CREATE TABLE campaign_runs (
    id             INTEGER PRIMARY KEY,
    state          TEXT    NOT NULL CHECK (state IN ('sending', 'finished', 'stopped')),
    started_ms     INTEGER NOT NULL CHECK (started_ms > 0),
    started_by     TEXT    NOT NULL,
    ended_ms       INTEGER NOT NULL DEFAULT 0,
    in_scope       INTEGER NOT NULL DEFAULT 0 CHECK (in_scope >= 0),
    not_registered INTEGER NOT NULL DEFAULT 0 CHECK (not_registered >= 0),
    reconfirm_due  INTEGER NOT NULL DEFAULT 0 CHECK (reconfirm_due >= 0)
) STRICT;
CREATE UNIQUE INDEX campaign_runs_sending ON campaign_runs (state) WHERE state = 'sending';

-- One row per person a run is to mail, in the order they are mailed (seq).
-- A row is claimed ('sending') in a transaction before its mail goes out,
-- so a restart or a second replica never mails one person twice in a run;
-- whether the person still needs the mail is decided at that moment
-- ('skipped' when they registered since). email is cleared once the row is
-- done; user_id is the directory ID (objectGUID or entryUUID), the key of
-- sspr_methods.
CREATE TABLE campaign_queue (
    run_id     INTEGER NOT NULL REFERENCES campaign_runs (id) ON DELETE CASCADE,
    seq        INTEGER NOT NULL CHECK (seq >= 0),
    user_id    TEXT    NOT NULL CHECK (length(user_id) BETWEEN 1 AND 200),
    login      TEXT    NOT NULL,
    name       TEXT    NOT NULL DEFAULT '',
    email      TEXT    NOT NULL DEFAULT '',
    why        TEXT    NOT NULL CHECK (why IN ('register', 'reconfirm')),
    state      TEXT    NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'sending', 'sent', 'skipped', 'failed')),
    reason     TEXT    NOT NULL DEFAULT '',
    updated_ms INTEGER NOT NULL CHECK (updated_ms > 0),
    PRIMARY KEY (run_id, user_id)
) STRICT;
CREATE INDEX campaign_queue_next ON campaign_queue (run_id, state, seq);

-- The last enumeration of the people in scope (a dry run or a run), for
-- Usage & insights: the reports never read the directory themselves.
CREATE TABLE registration_scope (
    id             INTEGER PRIMARY KEY CHECK (id = 1),
    as_of_ms       INTEGER NOT NULL CHECK (as_of_ms > 0),
    in_scope       INTEGER NOT NULL CHECK (in_scope >= 0),
    not_registered INTEGER NOT NULL CHECK (not_registered >= 0),
    reconfirm_due  INTEGER NOT NULL CHECK (reconfirm_due >= 0)
) STRICT;
