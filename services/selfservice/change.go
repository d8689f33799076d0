package selfservice

import (
	"context"
	"strings"
	"time"

	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/errs"
	"github.com/writeback/writeback/services/writeback"
)

// Change changes a password with the current one. It works for people whose
// password expired or must be changed. Attempts are limited per account and
// address, below any directory lockout threshold, and audited.
func (s *Service) Change(ctx context.Context, login, current, next, confirm string, from audit.Actor) error {
	start := time.Now()
	defer s.floor(ctx, start)
	login = strings.TrimSpace(login)
	fields := map[string]string{}
	if login == "" || len(login) > 256 {
		fields["login"] = "Enter your user name or e-mail address."
	}
	if current == "" {
		fields["current"] = "Enter your current password."
	}
	if next == "" {
		fields["password"] = "Enter a new password."
	} else if next != confirm {
		fields["confirm"] = "The two new passwords are not the same."
	}
	if len(fields) > 0 {
		return errs.FieldErrors(fields)
	}
	if err := s.ensureWriteback(ctx); err != nil {
		return err
	}
	lk := strings.ToLower(login)
	now := s.now()
	if s.limits.byLogin.Blocked("change:"+lk, now) || s.limits.byAddress.Blocked(from.ClientIP, now) {
		return errSignInThrottled
	}
	cl, _, err := s.wb.Client(ctx)
	if err != nil {
		return err
	}
	u, res, err := cl.Change(ctx, login, current, next)
	actor := from
	actor.Type, actor.Name = "user", login
	target := audit.Target{Type: "User", Name: login}
	if err == nil || u.ID != "" {
		actor.ID = u.ID
		target = audit.Target{Type: "User", ID: u.ID, DN: u.DN, Name: u.DisplayName + " (" + u.Login + ")"}
	}
	details := map[string]any{"server": res.Server}
	e := audit.Entry{Category: audit.CategoryUserManagement, Activity: audit.ActivityChangeSelfService, Actor: actor, Target: target,
		CorrelationID: randomID()[:32], Details: details}
	if err != nil {
		e.Result, e.Reason = audit.Failure, errs.MessageOf(err)
		writeback.AddDiagnostics(details, err)
		s.record(ctx, e)
		switch errs.KindOf(err) {
		case errs.Unauthorized, errs.NotFound, errs.Conflict, errs.Forbidden:
			s.limits.byLogin.Fail("change:"+lk, now)
			s.limits.byAddress.Fail(from.ClientIP, now)
			// One answer whether the account is unknown, locked, disabled or
			// protected or the password was wrong: nothing here may tell
			// a stranger about an account. The audit row keeps the reason.
			return errs.FieldErrors(map[string]string{"current": "That user name and current password don't match, or this account can't change its password here. If you are locked out, unlock your account or reset your password instead."})
		case errs.Policy:
			return errs.FieldErrors(map[string]string{"password": errs.MessageOf(err)})
		}
		return err
	}
	s.limits.byLogin.Reset("change:" + lk)
	s.record(ctx, e)
	return nil
}
