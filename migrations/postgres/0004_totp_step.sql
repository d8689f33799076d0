-- PostgreSQL edition of sqlite/0004_totp_step.sql: the last authenticator
-- time step a person used, so one TOTP code cannot be used twice.
ALTER TABLE sspr_methods ADD COLUMN last_step BIGINT NOT NULL DEFAULT 0;
