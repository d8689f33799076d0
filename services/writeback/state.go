package writeback

import (
	"context"

	"github.com/writeback/writeback/services/errs"
	"github.com/writeback/writeback/services/settings"
)

// State says whether passwords and unlocks may be written, and why not.
type State struct {
	Configured bool
	Writeback  bool // both switches are Yes and a connection exists
	Unlock     bool // unlock without reset is allowed too
	Reason     string
}

// State reads both switches and the connection.
func (s *Service) State(ctx context.Context) (State, error) {
	o, _, err := s.settings.OnPrem(ctx)
	if err != nil {
		return State{}, err
	}
	// Two fields of the connection: read in place, not copied (every
	// employee page asks).
	var configured, connectorOn bool
	if _, err := settings.Peek(ctx, s.db, connectionName, Connection{}, func(c *Connection) {
		configured, connectorOn = c.Configured(), c.PasswordWriteback
	}); err != nil {
		return State{}, err
	}
	st := State{Configured: configured}
	switch {
	case !st.Configured:
		st.Reason = "No directory connection is configured yet."
	case !o.Writeback:
		st.Reason = "Password writeback is off: \"Write back passwords to your on-premises directory\" is No under Password reset › On-premises integration."
	case !connectorOn:
		st.Reason = "Password writeback is off in the directory connection (Optional features › Password writeback)."
	default:
		st.Writeback = true
		st.Unlock = o.Unlock
		if !o.Unlock {
			st.Reason = "\"Allow users to unlock accounts without resetting their password\" is No."
		}
	}
	return st, nil
}

// errOff is returned for writes while writeback is off.
func errOff(st State) error {
	return errs.E(errs.Forbidden, st.Reason, nil)
}
