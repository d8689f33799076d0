package writeback

import (
	"context"

	"github.com/writeback/writeback/services/errs"
	"github.com/writeback/writeback/services/i18n"
	"github.com/writeback/writeback/services/settings"
)

// The reasons State gives in agents mode when no agent can write.
var (
	// ReasonNoAgent: no writeback agent is connected.
	ReasonNoAgent = i18n.Key("Writeback unavailable: no agent connected.")
	// ReasonAgentOff: one agent is connected and its password writeback
	// switch is off.
	ReasonAgentOff = i18n.Key("Writeback unavailable: the agent has password writeback turned off.")
	// ReasonAgentsOff: several agents are connected and every one has its
	// password writeback switch off.
	ReasonAgentsOff = i18n.Key("Writeback unavailable: the agents have password writeback turned off.")
)

// AgentsReason says why writeback agents cannot write, given how many are
// connected and how many of those have password writeback on: ReasonNoAgent,
// ReasonAgentOff or ReasonAgentsOff; empty when one can write.
func AgentsReason(connected, writeback int) string {
	switch {
	case connected == 0:
		return ReasonNoAgent
	case writeback > 0:
		return ""
	case connected == 1:
		return ReasonAgentOff
	}
	return ReasonAgentsOff
}

// State says whether passwords and unlocks may be written, and why not.
type State struct {
	Configured bool
	Writeback  bool // both switches are Yes and a connection exists (agents mode: and an agent can write)
	Unlock     bool // unlock without reset is allowed too
	Reason     string

	// Agents says the directory is reached through writeback agents; then
	// AgentsConnected agents are connected, AgentsWriteback of them with
	// password writeback on.
	Agents          bool
	AgentsConnected int
	AgentsWriteback int
	// Outage says writeback is switched on but cannot run now because no
	// agent is connected: a failure on the portal's side, not a setting.
	Outage bool
}

// State reads the switches and the connection. In direct mode writeback
// needs the portal switch and the connector switch of the stored
// connection; in agents mode the portal switch and at least one connected
// agent with its own switch on (the stored connector switch means nothing
// there: the agent's replaces it).
func (s *Service) State(ctx context.Context) (State, error) {
	o, _, err := s.settings.OnPrem(ctx)
	if err != nil {
		return State{}, err
	}
	// Three fields of the connection: read in place, not copied (every
	// employee page asks).
	var configured, connectorOn, agents bool
	if _, err := settings.Peek(ctx, s.db, connectionName, Connection{}, func(c *Connection) {
		configured, connectorOn, agents = c.Configured(), c.PasswordWriteback, c.Agents()
	}); err != nil {
		return State{}, err
	}
	st := State{Configured: configured, Agents: agents}
	if agents {
		if a := s.usedAgents(); a != nil {
			st.AgentsConnected, st.AgentsWriteback = a.Connected()
		}
		// The agents' switches stand for the connector switch.
		connectorOn = st.AgentsWriteback > 0
	}
	switch {
	case !st.Configured:
		st.Reason = i18n.Key("No directory connection is configured yet.")
	case !o.Writeback:
		st.Reason = i18n.Key("Password writeback is off: \"Write back passwords to your on-premises directory\" is No under Password reset › On-premises integration.")
	case agents && !connectorOn:
		st.Reason, st.Outage = AgentsReason(st.AgentsConnected, st.AgentsWriteback), st.AgentsConnected == 0
	case !connectorOn:
		st.Reason = i18n.Key("Password writeback is off in the directory connection (Optional features › Password writeback).")
	default:
		st.Writeback = true
		st.Unlock = o.Unlock
		if !o.Unlock {
			st.Reason = i18n.Key("\"Allow users to unlock accounts without resetting their password\" is No.")
		}
	}
	return st, nil
}

// errOff is returned for writes while writeback is off. When no agent is
// connected it is an outage, not a setting.
func errOff(st State) error {
	if st.Outage {
		return errs.E(errs.Unavailable, st.Reason, nil)
	}
	return errs.E(errs.Forbidden, st.Reason, nil)
}
