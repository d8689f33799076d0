-- PostgreSQL edition of sqlite/0014_agent_links.sql: which replica each
-- writeback agent holds a connection to.
CREATE TABLE agent_links (
    agent_id     TEXT    COLLATE "C" NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    replica      TEXT    COLLATE "C" NOT NULL CHECK (length(replica) BETWEEN 1 AND 64),
    connected_ms BIGINT  NOT NULL CHECK (connected_ms > 0),
    heartbeat_ms BIGINT  NOT NULL CHECK (heartbeat_ms >= connected_ms),
    remote_addr  TEXT    COLLATE "C" NOT NULL DEFAULT '' CHECK (length(remote_addr) <= 100),
    PRIMARY KEY (agent_id, replica)
);
CREATE INDEX agent_links_heartbeat ON agent_links (heartbeat_ms);
