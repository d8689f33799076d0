package selfservice

import (
	"context"

	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/banned"
	"github.com/writeback/writeback/services/directory"
	"github.com/writeback/writeback/services/errs"
	"github.com/writeback/writeback/services/writeback"
)

// Change changes a password with the current one. It works for people whose
// password expired or must be changed. Every attempt is counted against the
// account's budget, below the directory's lockout threshold, before the
// current password goes to the directory (see beginSignIn), and audited.
//
// Its time tells nothing either (see Pacer): a wrong current password the
// directory checked is recorded; an unknown, protected, disabled or locked
// account, which the directory never sees, and every refusal after the
// form was checked, take the time of one of those. A change that went through, or
// a new password the directory refused after accepting the current one,
// says so in its answer, and takes what it costs.
func (s *Service) Change(ctx context.Context, login, current, next, confirm string, from audit.Actor) error {
	_, err := s.ChangePassword(ctx, login, current, next, confirm, from)
	return err
}

// Changed is what a successful change tells the person besides the change.
type Changed struct {
	// ReconfirmDue: the methods they registered were confirmed longer ago
	// than the policy's re-confirmation period: they are asked to check
	// them now.
	ReconfirmDue bool
}

// ChangePassword is Change, telling also whether the person's methods are
// due for re-confirmation (read only after the change succeeded: the
// answer to a failed one tells nothing more).
func (s *Service) ChangePassword(ctx context.Context, login, current, next, confirm string, from audit.Actor) (Changed, error) {
	var ch Changed
	err := s.change(ctx, login, current, next, confirm, from, &ch)
	return ch, err
}

func (s *Service) change(ctx context.Context, login, current, next, confirm string, from audit.Actor, ch *Changed) error {
	fields := map[string]errs.Text{}
	typed, err := directory.NormalizeIdentifier(login)
	if err != nil {
		fields["login"] = errs.TextOf(err)
	}
	if current == "" {
		fields["current"] = errs.Textf("Enter your current password.")
	}
	if next == "" {
		fields["password"] = errs.Textf("Enter a new password.")
	} else if next != confirm {
		fields["confirm"] = errs.Textf("The two new passwords are not the same.")
	} else if next == current {
		// Checked here, before the lookup: the directory client refuses it
		// only for accounts it found, which would tell them apart.
		fields["password"] = errs.Textf("The new password must be different from the current one.")
	}
	if len(fields) > 0 {
		return errs.FieldTexts(fields)
	}
	// The banned rules, on what was typed alone: the account's names are
	// not read before its current password is checked, and the answer
	// must not depend on whether it exists.
	if err := s.refuseBanned(ctx, next, banned.Personal("", typed)); err != nil {
		return err
	}
	// From here on the account matters: paced (what comes before answers
	// the same whoever is named).
	out := outPadded
	defer s.paced(ctx, s.Pacer.begin("change"), &out)
	if err := s.ensureWriteback(ctx); err != nil {
		if ourSide(err, true) {
			return s.signInFailed(ctx, newSignIn(audit.ActivityChangeSelfService, typed, from), "writeback not usable", err)
		}
		return err
	}
	si, err := s.beginSignIn(ctx, audit.ActivityChangeSelfService, typed, from)
	if err != nil {
		return err
	}
	// One directory session: the search that finds the account (its state
	// and protection with it), the attempt counted, then the change.
	_, res, err := si.cl.ChangeLogin(ctx, typed, current, next, s.admit(ctx, si))
	si.res = res
	var done bool
	if done, err = s.admitted(ctx, si, err); !done {
		return err
	}
	// AD does not reset its bad-password count on a password change, so
	// the portal keeps its own count too.
	err = s.finish(ctx, si, err, false)
	details := writeback.AddResult(nil, res)
	if err == nil {
		s.recordSignIn(ctx, si, audit.Success, "", details, true)
		out = outShown
		due, rerr := s.reconfirmDue(ctx, si.cand.User.ID)
		if rerr != nil {
			s.log.Warn("self-service change: re-confirmation not read", "err", rerr)
		}
		ch.ReconfirmDue = due
		return nil
	}
	writeback.AddDiagnostics(details, err)
	if ourSide(err, true) {
		details["error"] = err.Error()
		s.recordSignIn(ctx, si, audit.Failure, "password change failed on our side: "+errs.MessageOf(err), details, si.found)
		return errSignInOurSide
	}
	s.recordSignIn(ctx, si, audit.Failure, errs.MessageOf(err), details, si.found)
	switch errs.KindOf(err) {
	case errs.Policy:
		if reachedDirectory(err) {
			out = outShown
		}
		return errs.FieldTexts(map[string]errs.Text{"password": errs.TextOf(err)})
	case errs.Unauthorized, errs.NotFound, errs.Conflict, errs.Forbidden:
	default:
		s.log.Warn("self-service change: unexpected failure", "err", err)
	}
	// One answer whether the account is unknown, locked, disabled or
	// protected or the password was wrong: nothing here may tell a stranger
	// about an account. The audit row keeps the reason.
	if si.found && reachedDirectory(err) {
		out = outReal
	}
	return errs.FieldErrors(map[string]string{"current": "That user name and current password don't match, or this account can't change its password here. If you are locked out, unlock your account or reset your password instead."})
}
