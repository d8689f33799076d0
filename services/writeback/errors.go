package writeback

import (
	"errors"

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
}
