-- Text message (SMS) codes: every code sent (or, for a flow that cannot
-- verify, pretended to be sent) by text message, counted for the limits
-- against toll fraud and message bombing, and the mobile numbers people
-- register on /register.

-- One row per code asked for by text message. user_key, number and client
-- are keyed hashes (of the account, the E.164 number, the client address),
-- never the values. sent is 0 for a flow that sent nothing (no account, no
-- number, a number over its limit): it counts toward the account's and the
-- address's limits like a real one, so the answers are the same, but not
-- toward the number's or the portal's daily cap.
CREATE TABLE sms_sends (
    id       INTEGER PRIMARY KEY,
    user_key TEXT    NOT NULL CHECK (length(user_key) BETWEEN 1 AND 128),
    number   TEXT    NOT NULL DEFAULT '',
    client   TEXT    NOT NULL DEFAULT '',
    sent     INTEGER NOT NULL CHECK (sent IN (0, 1)),
    time_ms  INTEGER NOT NULL CHECK (time_ms > 0)
) STRICT;
CREATE INDEX sms_sends_user ON sms_sends (user_key, time_ms);
CREATE INDEX sms_sends_number ON sms_sends (number, time_ms);
CREATE INDEX sms_sends_client ON sms_sends (client, time_ms);
CREATE INDEX sms_sends_time ON sms_sends (time_ms, sent);

-- A mobile number registered (and confirmed with a code sent to it) by a
-- directory user, sealed with the data folder's key.
CREATE TABLE sspr_phones (
    user_id      TEXT    PRIMARY KEY,
    number       TEXT    NOT NULL,
    confirmed_ms INTEGER NOT NULL
) STRICT;
