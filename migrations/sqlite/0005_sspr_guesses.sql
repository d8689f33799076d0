-- Self-service guessing limits that hold under concurrency, and the account a
-- flow resolved to.

-- A verification reserves its failure before the guess is evaluated
-- (pending = 1) and in the same transaction that checks the block and counts
-- the failures; a wrong guess settles it (pending = 0), a right one deletes
-- it. So no more guesses are evaluated in the window than the limit allows,
-- however many flows or requests run at once. Failures are kept when a block
-- starts (they age out of the window by themselves).
ALTER TABLE sspr_failures ADD COLUMN pending INTEGER NOT NULL DEFAULT 0 CHECK (pending IN (0, 1));

-- The directory account a reset or unlock flow resolved to, as audit rows name
-- it ("Alice Smith (alice)"); empty when nothing matched what was typed, and
-- only then do audit rows carry the typed text (login).
ALTER TABLE sspr_flows ADD COLUMN account TEXT NOT NULL DEFAULT '';
