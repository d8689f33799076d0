-- PostgreSQL edition of sqlite/0005_sspr_guesses.sql: guessing limits that
-- hold under concurrency (a failure is reserved, pending = 1, before the
-- guess is evaluated), and the account a flow resolved to.
ALTER TABLE sspr_failures ADD COLUMN pending INTEGER NOT NULL DEFAULT 0 CHECK (pending IN (0, 1));
ALTER TABLE sspr_flows ADD COLUMN account TEXT COLLATE "C" NOT NULL DEFAULT '';
