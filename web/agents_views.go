package web

import (
	"context"
	"strings"
	"time"
)

// enrollCommand is the agent's enrolment command as the pages name it
// (a command: not translated).
const enrollCommand = "writeback-agent enroll"

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
	// Replicas is "2 of 3": the running replicas that hold a connection of
	// the agent (empty on a single box).
	Replicas string
}

// AgentsView is "Hybrid management | Writeback agents".
type AgentsView struct {
	Page
	Agents []AgentRow
	// Replicas is how many replicas of the portal run (0 on a single box);
	// Unreached names those no agent is connected to.
	Replicas  int
	Unreached []string
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

// joinNames is "a, b and c" in the reader's language.
func joinNames(ctx context.Context, xs []string) string {
	switch len(xs) {
	case 0:
		return ""
	case 1:
		return xs[0]
	}
	return t(ctx, "%s and %s", strings.Join(xs[:len(xs)-1], ", "), xs[len(xs)-1])
}
