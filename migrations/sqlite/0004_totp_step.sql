-- The last authenticator time step a person used, so one TOTP code cannot be
-- used twice (for example in a second flow within its 30-second window).
ALTER TABLE sspr_methods ADD COLUMN last_step INTEGER NOT NULL DEFAULT 0;
