-- Where each audit forwarder (serve --audit-stdout, --audit-syslog) has got
-- to: the ID of the newest event it sent. The forwarder reads the events
-- after it from audit_events, sends them in order and moves the cursor after
-- each one, so a restart resumes where the last run stopped, without gaps.
-- One row per kind of destination ("stdout", "syslog"): changing the syslog
-- server's address carries on from the same place.
CREATE TABLE audit_forward_cursors (
    name       TEXT    PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 64),
    last_id    INTEGER NOT NULL CHECK (last_id >= 0),
    updated_ms INTEGER NOT NULL CHECK (updated_ms > 0)
) STRICT;
