package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// Agent is an enrolled writeback agent (migration 0008). Times are Unix
// milliseconds; zero means "not set".
type Agent struct {
	ID                string
	Name              string
	SignKey           []byte
	SealKey           []byte
	Host              string
	Version           string
	EnrolledMS        int64
	EnrolledBy        string
	RevokedMS         int64
	RevokedBy         string
	ConnectedMS       int64 // while a connection is open
	HeartbeatMS       int64 // the last heartbeat (or hello)
	RemoteAddr        string
	LastError         string
	LastErrorMS       int64
	Directory         string
	Configured        bool
	PasswordWriteback bool
	// OpsLastHour is filled by ListAgents: the operations counted since the
	// time it was given.
	OpsLastHour int64
}

// AgentStatus is what an agent reports of itself on connecting and in every
// heartbeat.
type AgentStatus struct {
	Version           string
	Host              string
	Directory         string
	Configured        bool
	PasswordWriteback bool
}

// AgentToken is a one-time enrolment token, by its hash.
type AgentToken struct {
	Hash      string
	Name      string
	CreatedBy string
	CreatedMS int64
	ExpiresMS int64
}

const agentCols = `id, name, sign_key, seal_key, host, version, enrolled_ms, enrolled_by, coalesce(revoked_ms, 0), revoked_by,
	coalesce(connected_ms, 0), coalesce(heartbeat_ms, 0), remote_addr, last_error, coalesce(last_error_ms, 0), directory,
	configured, password_writeback`

func scanAgent(row interface{ Scan(...any) error }, extra ...any) (Agent, error) {
	var a Agent
	var conf, pw int
	dest := append([]any{&a.ID, &a.Name, &a.SignKey, &a.SealKey, &a.Host, &a.Version, &a.EnrolledMS, &a.EnrolledBy,
		&a.RevokedMS, &a.RevokedBy, &a.ConnectedMS, &a.HeartbeatMS, &a.RemoteAddr, &a.LastError, &a.LastErrorMS,
		&a.Directory, &conf, &pw}, extra...)
	err := row.Scan(dest...)
	a.Configured, a.PasswordWriteback = conf == 1, pw == 1
	if errors.Is(err, sql.ErrNoRows) {
		return a, ErrNotFound
	}
	return a, err
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// AgentByID reads one agent, revoked or not. It runs on every connection
// an agent opens.
func (db *DB) AgentByID(ctx context.Context, id string) (Agent, error) {
	a, err := scanAgent(db.queryRow(ctx, `SELECT `+agentCols+` FROM agents WHERE id = ?`, id))
	if err != nil && !errors.Is(err, ErrNotFound) {
		err = fmt.Errorf("store: agent by id: %w", err)
	}
	return a, err
}

// ListAgents lists every agent, those not revoked first, by name, with the
// operations counted since sinceMS.
func (db *DB) ListAgents(ctx context.Context, sinceMS int64) ([]Agent, error) {
	rows, err := db.sql.QueryContext(ctx, `SELECT `+agentCols+`,
		coalesce((SELECT sum(ops) FROM agent_ops o WHERE o.agent_id = agents.id AND o.minute_ms >= ?), 0)
		FROM agents ORDER BY revoked_ms IS NOT NULL, name COLLATE NOCASE, enrolled_ms DESC`, sinceMS)
	if err != nil {
		return nil, fmt.Errorf("store: list agents: %w", err)
	}
	defer rows.Close()
	var out []Agent
	for rows.Next() {
		var ops int64
		a, err := scanAgent(rows, &ops)
		if err != nil {
			return nil, fmt.Errorf("store: list agents: %w", err)
		}
		a.OpsLastHour = ops
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: list agents: %w", err)
	}
	return out, nil
}

// AgentNameTaken reports whether name (case-insensitive) belongs to an agent
// that is not revoked, or to an enrolment token still usable at nowMS.
func (tx *Tx) AgentNameTaken(ctx context.Context, name string, nowMS int64) (bool, error) {
	var n int
	err := tx.tx.QueryRowContext(ctx, `SELECT
		(SELECT count(*) FROM agents WHERE name = ? COLLATE NOCASE AND revoked_ms IS NULL) +
		(SELECT count(*) FROM agent_tokens WHERE name = ? COLLATE NOCASE AND used_ms IS NULL AND expires_ms > ?)`,
		name, name, nowMS).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("store: agent name taken: %w", err)
	}
	return n > 0, nil
}

// InsertAgentToken stores a new enrolment token (its hash) and removes
// tokens that expired unused more than a day before it was made.
func (tx *Tx) InsertAgentToken(ctx context.Context, t AgentToken) error {
	if _, err := tx.tx.ExecContext(ctx, `DELETE FROM agent_tokens WHERE used_ms IS NULL AND expires_ms < ?`,
		t.CreatedMS-24*60*60*1000); err != nil {
		return fmt.Errorf("store: prune agent tokens: %w", err)
	}
	_, err := tx.tx.ExecContext(ctx, `INSERT INTO agent_tokens (token_hash, name, created_by, created_ms, expires_ms) VALUES (?, ?, ?, ?, ?)`,
		t.Hash, t.Name, t.CreatedBy, t.CreatedMS, t.ExpiresMS)
	if err != nil {
		if tx.db.engine.isUnique(err) {
			return ErrDuplicate
		}
		return fmt.Errorf("store: insert agent token: %w", err)
	}
	return nil
}

// EnrollAgent consumes the enrolment token with this hash and creates the
// agent it names, in the caller's transaction: a token that is unknown,
// used, or expired at nowMS gives ErrNotFound and changes nothing; a name
// another agent (not revoked) took since the token was made gives
// ErrDuplicate. a.Name and a.EnrolledBy come from the token.
func (tx *Tx) EnrollAgent(ctx context.Context, tokenHash string, a Agent, nowMS int64) (Agent, error) {
	var t AgentToken
	err := tx.tx.QueryRowContext(ctx, `SELECT name, created_by FROM agent_tokens
		WHERE token_hash = ? AND used_ms IS NULL AND expires_ms > ?`, tokenHash, nowMS).Scan(&t.Name, &t.CreatedBy)
	if errors.Is(err, sql.ErrNoRows) {
		return Agent{}, ErrNotFound
	}
	if err != nil {
		return Agent{}, fmt.Errorf("store: enroll agent: read token: %w", err)
	}
	a.Name, a.EnrolledBy, a.EnrolledMS = t.Name, t.CreatedBy, nowMS
	_, err = tx.tx.ExecContext(ctx, `INSERT INTO agents (id, name, sign_key, seal_key, host, version, enrolled_ms, enrolled_by)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, a.ID, a.Name, a.SignKey, a.SealKey, a.Host, a.Version, a.EnrolledMS, a.EnrolledBy)
	if err != nil {
		if tx.db.engine.isUnique(err) {
			return Agent{}, ErrDuplicate
		}
		return Agent{}, fmt.Errorf("store: enroll agent: %w", err)
	}
	// Guarded again, so that the token is used once even if a caller ever
	// ran this outside an immediate transaction.
	res, err := tx.tx.ExecContext(ctx, `UPDATE agent_tokens SET used_ms = ?, agent_id = ? WHERE token_hash = ? AND used_ms IS NULL`,
		nowMS, a.ID, tokenHash)
	if err != nil {
		return Agent{}, fmt.Errorf("store: enroll agent: use token: %w", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return Agent{}, ErrNotFound
	}
	return a, nil
}

// ActiveAgentByName reads the agent that is not revoked with this name
// (case-insensitive).
func (tx *Tx) ActiveAgentByName(ctx context.Context, name string) (Agent, error) {
	a, err := scanAgent(tx.tx.QueryRowContext(ctx, `SELECT `+agentCols+` FROM agents WHERE name = ? COLLATE NOCASE AND revoked_ms IS NULL`, name))
	if err != nil && !errors.Is(err, ErrNotFound) {
		err = fmt.Errorf("store: agent by name: %w", err)
	}
	return a, err
}

// AgentByID reads one agent inside a transaction.
func (tx *Tx) AgentByID(ctx context.Context, id string) (Agent, error) {
	a, err := scanAgent(tx.tx.QueryRowContext(ctx, `SELECT `+agentCols+` FROM agents WHERE id = ?`, id))
	if err != nil && !errors.Is(err, ErrNotFound) {
		err = fmt.Errorf("store: agent by id: %w", err)
	}
	return a, err
}

// RevokeAgent marks an agent revoked and no longer connected. An unknown or
// already revoked agent gives ErrNotFound.
func (tx *Tx) RevokeAgent(ctx context.Context, id, by string, nowMS int64) error {
	res, err := tx.tx.ExecContext(ctx, `UPDATE agents SET revoked_ms = ?, revoked_by = ?, connected_ms = NULL
		WHERE id = ? AND revoked_ms IS NULL`, nowMS, by, id)
	if err != nil {
		return fmt.Errorf("store: revoke agent: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	if _, err := tx.tx.ExecContext(ctx, `DELETE FROM agent_links WHERE agent_id = ?`, id); err != nil {
		return fmt.Errorf("store: revoke agent: remove its connections: %w", err)
	}
	return nil
}

// AgentConnected records that an agent opened a connection from remoteAddr
// at nowMS, with its status. A revoked or unknown agent gives ErrNotFound
// (as does AgentHeartbeat).
func (tx *Tx) AgentConnected(ctx context.Context, id string, st AgentStatus, remoteAddr string, nowMS int64) error {
	return tx.updateAgent(ctx, "agent connected", `UPDATE agents SET connected_ms = ?, heartbeat_ms = ?, remote_addr = ?,
		host = ?, version = ?, directory = ?, configured = ?, password_writeback = ? WHERE id = ? AND revoked_ms IS NULL`,
		nowMS, nowMS, remoteAddr, st.Host, st.Version, st.Directory, b2i(st.Configured), b2i(st.PasswordWriteback), id)
}

// AgentHeartbeat records a heartbeat at nowMS with the agent's status.
func (tx *Tx) AgentHeartbeat(ctx context.Context, id string, st AgentStatus, nowMS int64) error {
	return tx.updateAgent(ctx, "agent heartbeat", `UPDATE agents SET heartbeat_ms = ?, connected_ms = coalesce(connected_ms, ?),
		host = ?, version = ?, directory = ?, configured = ?, password_writeback = ? WHERE id = ? AND revoked_ms IS NULL`,
		nowMS, nowMS, st.Host, st.Version, st.Directory, b2i(st.Configured), b2i(st.PasswordWriteback), id)
}

// AgentDisconnected records that an agent has no connection open.
func (tx *Tx) AgentDisconnected(ctx context.Context, id string) error {
	return tx.updateAgent(ctx, "agent disconnected", `UPDATE agents SET connected_ms = NULL WHERE id = ?`, id)
}

// SetAgentError records an agent's last error.
func (tx *Tx) SetAgentError(ctx context.Context, id, text string, nowMS int64) error {
	return tx.updateAgent(ctx, "agent error", `UPDATE agents SET last_error = ?, last_error_ms = ? WHERE id = ?`, text, nowMS, id)
}

func (tx *Tx) updateAgent(ctx context.Context, what, q string, args ...any) error {
	res, err := tx.tx.ExecContext(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("store: %s: %w", what, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

// AddAgentOps adds n operations to an agent's count for the minute that
// starts at minuteMS.
func (tx *Tx) AddAgentOps(ctx context.Context, id string, minuteMS, n int64) error {
	_, err := tx.tx.ExecContext(ctx, `INSERT INTO agent_ops (agent_id, minute_ms, ops) VALUES (?, ?, ?)
		ON CONFLICT (agent_id, minute_ms) DO UPDATE SET ops = agent_ops.ops + excluded.ops`, id, minuteMS, n)
	if err != nil {
		return fmt.Errorf("store: add agent ops: %w", err)
	}
	return nil
}

// PruneAgentOps removes the operation counts of minutes before beforeMS.
func (tx *Tx) PruneAgentOps(ctx context.Context, beforeMS int64) error {
	if _, err := tx.tx.ExecContext(ctx, `DELETE FROM agent_ops WHERE minute_ms < ?`, beforeMS); err != nil {
		return fmt.Errorf("store: prune agent ops: %w", err)
	}
	return nil
}

// AgentLink is one open connection of an agent to one replica of the
// portal (migration 0014), with the host that replica registered (empty
// for the single SQLite process, or a replica no longer registered).
type AgentLink struct {
	AgentID     string
	Replica     string
	Host        string
	RemoteAddr  string
	ConnectedMS int64
	HeartbeatMS int64
}

// AgentLinkUp records that replica holds a connection of agent id from
// remoteAddr since nowMS (replacing what it held before), and removes the
// links of every agent whose heartbeat is older than staleMS: those of a
// replica that died without closing them.
func (tx *Tx) AgentLinkUp(ctx context.Context, id, replica, remoteAddr string, nowMS, staleMS int64) error {
	if _, err := tx.tx.ExecContext(ctx, `DELETE FROM agent_links WHERE heartbeat_ms < ?`, staleMS); err != nil {
		return fmt.Errorf("store: prune agent links: %w", err)
	}
	_, err := tx.tx.ExecContext(ctx, `INSERT INTO agent_links (agent_id, replica, connected_ms, heartbeat_ms, remote_addr)
		VALUES (?, ?, ?, ?, ?) ON CONFLICT (agent_id, replica) DO UPDATE SET connected_ms = excluded.connected_ms,
		heartbeat_ms = excluded.heartbeat_ms, remote_addr = excluded.remote_addr`, id, replica, nowMS, nowMS, remoteAddr)
	if err != nil {
		return fmt.Errorf("store: agent link up: %w", err)
	}
	return nil
}

// AgentLinkBeat records a heartbeat at nowMS on replica's connection of
// agent id; a link removed meanwhile (its replica was thought dead) comes
// back, connected since this heartbeat.
func (tx *Tx) AgentLinkBeat(ctx context.Context, id, replica string, nowMS int64) error {
	_, err := tx.tx.ExecContext(ctx, `INSERT INTO agent_links (agent_id, replica, connected_ms, heartbeat_ms)
		VALUES (?, ?, ?, ?) ON CONFLICT (agent_id, replica) DO UPDATE SET heartbeat_ms = excluded.heartbeat_ms`,
		id, replica, nowMS, nowMS)
	if err != nil {
		return fmt.Errorf("store: agent link heartbeat: %w", err)
	}
	return nil
}

// AgentLinkDown removes replica's connection of agent id and returns how
// many connections of it other replicas still hold with a heartbeat at or
// after staleMS.
func (tx *Tx) AgentLinkDown(ctx context.Context, id, replica string, staleMS int64) (int, error) {
	if _, err := tx.tx.ExecContext(ctx, `DELETE FROM agent_links WHERE agent_id = ? AND replica = ?`, id, replica); err != nil {
		return 0, fmt.Errorf("store: agent link down: %w", err)
	}
	var n int
	if err := tx.tx.QueryRowContext(ctx, `SELECT count(*) FROM agent_links WHERE agent_id = ? AND heartbeat_ms >= ?`,
		id, staleMS).Scan(&n); err != nil {
		return 0, fmt.Errorf("store: agent links left: %w", err)
	}
	return n, nil
}

// AgentLinks lists the connections of agents that are not revoked with a
// heartbeat at or after staleMS, by agent and replica.
func (db *DB) AgentLinks(ctx context.Context, staleMS int64) ([]AgentLink, error) {
	rows, err := db.sql.QueryContext(ctx, `SELECT l.agent_id, l.replica, coalesce(r.host, ''), l.remote_addr, l.connected_ms, l.heartbeat_ms
		FROM agent_links l JOIN agents a ON a.id = l.agent_id LEFT JOIN replicas r ON r.id = l.replica
		WHERE l.heartbeat_ms >= ? AND a.revoked_ms IS NULL ORDER BY l.agent_id, l.replica`, staleMS)
	if err != nil {
		return nil, fmt.Errorf("store: list agent links: %w", err)
	}
	defer rows.Close()
	var out []AgentLink
	for rows.Next() {
		var l AgentLink
		if err := rows.Scan(&l.AgentID, &l.Replica, &l.Host, &l.RemoteAddr, &l.ConnectedMS, &l.HeartbeatMS); err != nil {
			return nil, fmt.Errorf("store: list agent links: %w", err)
		}
		out = append(out, l)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: list agent links: %w", err)
	}
	return out, nil
}
