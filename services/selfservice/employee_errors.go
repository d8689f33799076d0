package selfservice

import (
	"context"
	"errors"

	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/directory"
	"github.com/writeback/writeback/services/errs"
	"github.com/writeback/writeback/services/i18n"
	"github.com/writeback/writeback/services/writeback"
)

// MsgOurSide is all a person using self-service learns of a failure on the
// portal's side — the directory unreachable, the service account refused or
// lacking a right, no mail server: the same words for everyone, since the
// detail is for administrators (it goes to the audit log).
var MsgOurSide = i18n.Key("Something is wrong on our side. Try again later or contact your helpdesk.")

// EmployeeError returns what a person using self-service may be shown of
// err. Errors meant for that person pass unchanged: field errors, password
// policy refusals, an expired flow, limits and wrong answers. Everything that
// is not the person's doing — an Unavailable or Internal error, or any
// directory error other than a policy refusal ("the directory refused the
// portal's service account…", "the service account lacks the right…") —
// becomes an Unavailable error with MsgOurSide, keeping err as its hidden
// cause for the operator log. Record the detail for administrators before
// calling this (Service.failed does).
func EmployeeError(err error) error {
	if !ourSide(err, false) || plainWords[errs.MessageOf(err)] {
		return err
	}
	if errors.Is(err, directory.ErrNotReached) {
		// Plain words that are true: the directory (through its agents)
		// was not reached, and nothing was changed.
		return errs.E(errs.Unavailable, directory.MsgNotReached, err)
	}
	return errs.E(errs.Unavailable, MsgOurSide, err)
}

// plainWords are the messages of failures on our side that people may read
// as they are: each depends only on the portal's state, never on an account.
var plainWords = map[string]bool{MsgOurSide: true, MsgSMSUnavailable: true, MsgSMSNotSent: true}

// ourSide tells whether err is a failure of the portal or the directory
// rather than something the person did: an Unavailable or Internal error,
// or a directory error other than a policy refusal of their password.
//
// signIn says that err answers a sign-in with the person's own directory
// password (/change, /register). There the directory's answers about the
// account — wrong password, unknown or ambiguous name, locked, disabled,
// expired or protected account, a concurrent change — are the person's
// too; only the portal's connection, rights and requests are ours. Every
// other step acts on an account resolved and verified before, so there any
// such answer is a failure on our side (see EmployeeError).
func ourSide(err error, signIn bool) bool {
	if err == nil {
		return false
	}
	switch errs.KindOf(err) {
	case errs.Unavailable, errs.Internal:
		return true
	case errs.Policy:
		return false
	}
	var oe *directory.OpError
	if !errors.As(err, &oe) {
		return false
	}
	if !signIn {
		return true
	}
	switch oe.Code {
	case directory.CodeNotPermitted, directory.CodeInsecure, directory.CodeServiceAccount, directory.CodeCertificate,
		directory.CodeUnavailable, directory.CodeInternal, directory.CodeInvalid:
		return true
	}
	return false
}

// failed records a failed self-service step: an audit row whose details keep
// the raw diagnostic (server, LDAP result, the directory's message, or the
// error text) for administrators. A failure on the portal's side also goes to
// the operator log and, when the directory failed, to the writeback service's
// status panel (writeback.Service.NoteFailure). e names the step; its Result
// and (unless set) Reason are filled in here.
func (s *Service) failed(ctx context.Context, e audit.Entry, err error) {
	e.Result = audit.Failure
	if e.Reason == "" {
		e.Reason = errs.MessageOf(err)
	}
	if e.Details == nil {
		e.Details = map[string]any{}
	}
	writeback.AddDiagnostics(e.Details, err)
	if _, ok := e.Details["diagnostic"]; !ok {
		// No directory answer to quote: keep the error chain, which names no
		// password, code or answer.
		e.Details["error"] = err.Error()
	}
	s.record(ctx, e)
	if !ourSide(err, false) {
		return
	}
	s.log.Warn("self-service step failed", "activity", e.Activity, "step", e.Details["step"], "correlation_id", e.CorrelationID, "err", err)
	s.wb.NoteFailure(err)
}
