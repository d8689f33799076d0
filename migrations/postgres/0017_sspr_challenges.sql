-- PostgreSQL edition of sqlite/0017_sspr_challenges.sql: spent proof-of-work
-- challenges (single use across replicas) and the protected self-service steps
-- per client address (the challenge's per-address counter).
CREATE TABLE sspr_challenges_spent (
    id         TEXT    COLLATE "C" PRIMARY KEY,
    expires_ms BIGINT  NOT NULL
);
CREATE INDEX sspr_challenges_spent_expires ON sspr_challenges_spent (expires_ms);

CREATE TABLE sspr_address_attempts (
    address TEXT    COLLATE "C" NOT NULL,
    time_ms BIGINT  NOT NULL
);
CREATE INDEX sspr_address_attempts_address ON sspr_address_attempts (address, time_ms);
