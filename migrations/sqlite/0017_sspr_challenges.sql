-- Proof-of-work challenges on the self-service steps that send a code or check
-- an answer, asked once an account or a client address has made many attempts.

-- A solved challenge is spent here, by the keyed hash of its salt, so that a
-- solution is accepted once, on whichever replica it arrives; rows go when the
-- challenge has expired anyway (purged with the flows).
CREATE TABLE sspr_challenges_spent (
    id         TEXT    PRIMARY KEY,
    expires_ms INTEGER NOT NULL
) STRICT;
CREATE INDEX sspr_challenges_spent_expires ON sspr_challenges_spent (expires_ms);

-- The protected steps (a code sent, an answer checked) per client address,
-- by the keyed hash of the address: the per-address counter behind the
-- challenge's threshold.
CREATE TABLE sspr_address_attempts (
    address TEXT    NOT NULL,
    time_ms INTEGER NOT NULL
) STRICT;
CREATE INDEX sspr_address_attempts_address ON sspr_address_attempts (address, time_ms);
