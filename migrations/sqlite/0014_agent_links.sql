-- Which replica of the portal each writeback agent holds a connection to
-- (issue 11): an agent keeps one connection to every replica, and a replica
-- no agent is connected to cannot write back. One row per open connection,
-- written by the replica that holds it (replica is replicas.id, or "local"
-- for the single SQLite process) and removed when it closes; a row whose
-- heartbeat is older than the agents' dead-after time (a replica that died
-- without closing) is not counted and is removed by the next connection or
-- housekeeping.
CREATE TABLE agent_links (
    agent_id     TEXT    NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    replica      TEXT    NOT NULL CHECK (length(replica) BETWEEN 1 AND 64),
    connected_ms INTEGER NOT NULL CHECK (connected_ms > 0),
    heartbeat_ms INTEGER NOT NULL CHECK (heartbeat_ms >= connected_ms),
    remote_addr  TEXT    NOT NULL DEFAULT '' CHECK (length(remote_addr) <= 100),
    PRIMARY KEY (agent_id, replica)
) STRICT;
CREATE INDEX agent_links_heartbeat ON agent_links (heartbeat_ms);
