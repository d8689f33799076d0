package writeback

import (
	"errors"

	"github.com/writeback/writeback/services/agentwire"
	"github.com/writeback/writeback/services/directory"
)

// AddDiagnostics copies what administrators need from a directory error
// (server, LDAP result code, raw diagnostic) into audit details.
func AddDiagnostics(details map[string]any, err error) {
	var oe *directory.OpError
	if errors.As(err, &oe) {
		if oe.Server != "" {
			details["server"] = oe.Server
		}
		details["ldap_result"] = oe.LDAPResult
		if oe.Diagnostic != "" {
			details["diagnostic"] = oe.Diagnostic
		}
		details["error_code"] = string(oe.Code)
		if oe.Rule != "" {
			details["rule"] = oe.Rule
		}
	}
	// A writeback agent's own guard refused: its reason, for filtering
	// (the detail is in the error chain).
	var re *agentwire.RefusedError
	if errors.As(err, &re) {
		details["agent_refused"] = re.Reason
	}
}

// AddResult records in audit details where an operation ran: the server
// (always, as rows have since before agents) and, when a writeback agent
// performed it, the agent's name (the "OnPremisesAgent" detail). It
// returns details, made when nil.
func AddResult(details map[string]any, res directory.Result) map[string]any {
	if details == nil {
		details = map[string]any{}
	}
	details["server"] = res.Server
	return AddAgent(details, res)
}

// AddAgent records the agent of res in audit details when one performed
// the operation, and nothing else; it returns details, made when needed
// (nil stays nil when there is no agent to record).
func AddAgent(details map[string]any, res directory.Result) map[string]any {
	if res.Agent == "" {
		return details
	}
	if details == nil {
		details = map[string]any{}
	}
	details["agent"] = res.Agent
	return details
}
