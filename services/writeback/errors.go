package writeback

import (
	"errors"

	"github.com/writeback/writeback/services/directory"
	"github.com/writeback/writeback/services/errs"
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

// isOutage tells whether err means the directory could not be used at all
// (no server reachable, certificate refused, service account refused), as
// opposed to a refusal about one account.
func isOutage(err error) bool {
	if err == nil || errs.KindOf(err) != errs.Unavailable {
		return false
	}
	var oe *directory.OpError
	if !errors.As(err, &oe) {
		return false
	}
	switch oe.Code {
	case directory.CodeUnavailable, directory.CodeCertificate, directory.CodeServiceAccount:
		return true
	}
	return false
}
