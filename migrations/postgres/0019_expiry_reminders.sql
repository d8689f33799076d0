-- PostgreSQL edition of sqlite/0017_expiry_reminders.sql: one row per
-- password-expiry reminder sent.
CREATE TABLE expiry_reminders (
    user_id         TEXT    COLLATE "C" NOT NULL CHECK (length(user_id) BETWEEN 1 AND 200),
    threshold_days  INTEGER NOT NULL CHECK (threshold_days BETWEEN 1 AND 365),
    password_set_ms BIGINT  NOT NULL CHECK (password_set_ms > 0),
    sent_ms         BIGINT  NOT NULL CHECK (sent_ms > 0),
    PRIMARY KEY (user_id, threshold_days)
);
CREATE INDEX expiry_reminders_sent ON expiry_reminders (sent_ms);
