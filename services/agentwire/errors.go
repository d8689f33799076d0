package agentwire

import (
	"errors"

	"github.com/writeback/writeback/services/directory"
	"github.com/writeback/writeback/services/errs"
)

// Error is an error on the wire: the errs.Error the agent's directory
// client returned (kind, safe message, fields), its directory.OpError
// (for the portal's audit rows and error mapping), and, when the agent's
// own guard refused the job, the reason.
type Error struct {
	Kind    errs.Kind         `json:"kind"`
	Message string            `json:"message"`
	Fields  map[string]string `json:"fields,omitempty"`

	Op         string         `json:"op,omitempty"`
	Code       directory.Code `json:"code,omitempty"`
	Rule       string         `json:"rule,omitempty"`
	LDAPResult uint16         `json:"ldap_result,omitempty"`
	Diagnostic string         `json:"diagnostic,omitempty"`
	Server     string         `json:"server,omitempty"`
	// Cause is the text of the hidden cause, for the audit log only. The
	// directory's and Go's words; never a password.
	Cause string `json:"cause,omitempty"`
	// Refused is set when the agent's own guard refused the job: one of
	// the Refused* reasons.
	Refused string `json:"refused,omitempty"`
}

// Reasons an agent's own guard refuses a job (Error.Refused).
const (
	RefusedWritebackOff  = "password_writeback_off" // `writeback-agent set --password-writeback off`
	RefusedLate          = "deadline_passed"        // the job arrived after its deadline; nothing was done
	RefusedRateLimit     = "rate_limited"           // the agent's own limit on writes
	RefusedNotSealed     = "password_not_sealed"    // a password came without HPKE sealing
	RefusedOutsideBase   = "outside_search_base"    // the DN is outside the agent's search bases
	RefusedProtected     = "protected"              // the agent's protected groups cover the account
	RefusedNotConfigured = "not_configured"         // the agent has no directory connection
	RefusedNotSigned     = "not_signed_by_portal"   // the job does not carry the enrolled portal\'s signature
	RefusedReplayed      = "replayed"               // the agent has seen this job ID before
)

// RefusedError is the cause of an error the agent's guard returned, so
// that the portal can tell (errors.As) and audit the agent's reason.
type RefusedError struct {
	Reason string
	Detail string
}

func (e *RefusedError) Error() string {
	if e.Detail != "" {
		return "agent refused: " + e.Reason + ": " + e.Detail
	}
	return "agent refused: " + e.Reason
}

// EncodeError turns err into its wire form; nil for nil.
func EncodeError(err error) *Error {
	if err == nil {
		return nil
	}
	w := &Error{Kind: errs.KindOf(err), Message: errs.MessageOf(err), Fields: errs.FieldsOf(err), Cause: err.Error()}
	var oe *directory.OpError
	if errors.As(err, &oe) {
		w.Op, w.Code, w.Rule, w.LDAPResult, w.Diagnostic, w.Server = oe.Op, oe.Code, oe.Rule, oe.LDAPResult, oe.Diagnostic, oe.Server
		if oe.Err != nil {
			w.Cause = oe.Err.Error()
		}
	}
	var re *RefusedError
	if errors.As(err, &re) {
		w.Refused, w.Cause = re.Reason, re.Detail
	}
	return w
}

// Err rebuilds the error on the portal's side: an *errs.Error with the same
// kind, message and fields, whose cause is a *directory.OpError when the
// agent's was one (so errors.As and the audit mapping work as for a direct
// connection), or a *RefusedError for the agent's own refusals.
func (w *Error) Err() error {
	if w == nil {
		return nil
	}
	var cause error = errors.New(w.Cause)
	if w.Refused != "" {
		cause = &RefusedError{Reason: w.Refused, Detail: w.Cause}
	}
	if w.Op != "" || w.Code != "" {
		cause = &directory.OpError{Op: w.Op, Code: w.Code, Rule: w.Rule, LDAPResult: w.LDAPResult,
			Diagnostic: w.Diagnostic, Server: w.Server, Err: cause}
	}
	return &errs.Error{Kind: w.Kind, Message: w.Message, Fields: w.Fields, Cause: cause}
}
