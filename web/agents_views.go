package web

import "time"

// AgentRow is one writeback agent in the Writeback agents table.
type AgentRow struct {
	ID                string
	Name              string
	State             string // connected, disconnected or revoked
	Host              string
	Version           string
	ConnectedSince    time.Time
	LastHeartbeat     time.Time
	OpsLastHour       int64
	LastError         string
	LastErrorAt       time.Time
	Directory         string
	PasswordWriteback bool
	Fingerprint       string
	EnrolledAt        time.Time
	RevokedAt         time.Time
}

// AgentsView is "Hybrid management | Writeback agents".
type AgentsView struct {
	Page
	Agents []AgentRow
	// NewName is the add form's kept input.
	NewName string
}

// AgentTokenView shows a new enrolment token, once.
type AgentTokenView struct {
	Page
	Name      string
	Token     string
	ExpiresAt time.Time
	// Command is the writeback-agent enroll line to run on the agent's server.
	Command string
}

// AgentRevokeView asks to confirm a revocation.
type AgentRevokeView struct {
	Page
	Agent AgentRow
}
