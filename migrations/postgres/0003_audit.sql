-- PostgreSQL edition of sqlite/0003_audit.sql: audit log viewer indexes,
-- retention and tamper evidence.

-- Failures are a small share of the log and the filter administrators use most.
CREATE INDEX audit_failure_time ON audit_events (time_ms DESC, id DESC) WHERE result = 'failure';

-- The time index of 0001, widened with the actor and target fields (SQLite
-- answers substring searches on them from the index; it serves every query
-- audit_time served, so audit_time goes).
CREATE INDEX audit_time_who ON audit_events (time_ms DESC, id DESC, actor_id, actor_name, target_id, target_name, target_dn);
DROP INDEX audit_time;

-- "Everything about this user / by this administrator", in time order.
CREATE INDEX audit_actor_time ON audit_events (actor_id, time_ms DESC, id DESC) WHERE actor_id <> '';
CREATE INDEX audit_target_time ON audit_events (target_id, time_ms DESC, id DESC) WHERE target_id <> '';

-- A correlation is read oldest first.
DROP INDEX audit_correlation;
CREATE INDEX audit_correlation ON audit_events (correlation_id, time_ms, id) WHERE correlation_id <> '';

-- Retention removes the oldest events. Each prune records where the remaining
-- chain starts: the ID and hash of the last removed event. The newest row is
-- the anchor.
CREATE TABLE audit_anchor (
    id         BIGINT  PRIMARY KEY,  -- ID of the last removed event
    hash       TEXT    COLLATE "C" NOT NULL CHECK (length(hash) = 64),
    pruned_ms  BIGINT  NOT NULL,     -- when the prune ran
    before_ms  BIGINT  NOT NULL,     -- the cut-off it was asked for
    removed    BIGINT  NOT NULL CHECK (removed > 0)
);
