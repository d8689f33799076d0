-- Password-expiry reminders (issue 13, item 7): one row per reminder sent,
-- so that a restart or another replica taking over never mails the same
-- threshold twice for one password. user_id is the directory ID (objectGUID
-- or entryUUID); password_set_ms the password's pwdLastSet/pwdChangedTime,
-- which tells one password from the next: a row of an older password is
-- removed when the next reminder for the account is claimed.
CREATE TABLE expiry_reminders (
    user_id         TEXT    NOT NULL CHECK (length(user_id) BETWEEN 1 AND 200),
    threshold_days  INTEGER NOT NULL CHECK (threshold_days BETWEEN 1 AND 365),
    password_set_ms INTEGER NOT NULL CHECK (password_set_ms > 0),
    sent_ms         INTEGER NOT NULL CHECK (sent_ms > 0),
    PRIMARY KEY (user_id, threshold_days)
) STRICT;
CREATE INDEX expiry_reminders_sent ON expiry_reminders (sent_ms);
