package selfservice

import (
	"context"
	"slices"
	"strings"

	"github.com/writeback/writeback/services/admins"
	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/banned"
	"github.com/writeback/writeback/services/directory"
	"github.com/writeback/writeback/services/errs"
	"github.com/writeback/writeback/services/i18n"
	"github.com/writeback/writeback/services/mail"
	"github.com/writeback/writeback/services/writeback"
	"github.com/writeback/writeback/store"
)

// SetPassword writes the new password of a verified reset flow (and ends
// any lockout), then notifies as the policy says. A failure is audited with
// the directory's diagnostic; the person sees the password rule that failed,
// or MsgOurSide, and may try again.
func (s *Service) SetPassword(ctx context.Context, id, browser, password, confirm string, from audit.Actor) (err error) {
	defer func() { err = EmployeeError(err) }()
	fl, p, err := s.loadStep(ctx, id, browser)
	if err != nil {
		return err
	}
	if fl.Kind != KindReset || fl.DoneMS != 0 || len(fl.verified) < p.Required || !fl.Eligible {
		return ErrFlowGone
	}
	if err := s.notBlocked(ctx, s.db, fl.Flow); err != nil {
		return err
	}
	if password == "" {
		return errs.FieldErrors(map[string]string{"password": "Enter a new password."})
	}
	if password != confirm {
		return errs.FieldErrors(map[string]string{"confirm": "The two passwords are not the same."})
	}
	e := entry(audit.ActivityResetSelfService, from, fl.Flow, nil)
	// The banned rules: refused like a mistyped confirmation, before
	// anything is written or recorded.
	if err := s.refuseBanned(ctx, password, banned.Personal(fl.UserDN, fl.Login, fl.Account)); err != nil {
		return err
	}
	if err := s.ensureWriteback(ctx); err != nil {
		e.Details["step"] = "check that writeback is on"
		s.failed(ctx, e, err)
		return err
	}
	// One read: Reset reads the account on the server it writes, checks it
	// is still the flow's (same ID), refuses a protected or disabled one,
	// and returns it as read.
	u, res, err := s.dir.Reset(ctx, directory.User{DN: fl.UserDN, ID: fl.UserID}, password, directory.ResetOptions{Unlock: true})
	if u.DN == "" || u.ID != fl.UserID {
		writeback.AddAgent(e.Details, res)
		if u.DN != "" {
			err = ErrFlowGone // another account at the flow's DN now
		}
		e.Details["step"] = "re-read the account"
		s.failed(ctx, e, err)
		return err
	}
	e.Target = audit.Target{Type: "User", ID: u.ID, DN: u.DN, Name: displayName(u)}
	e.Details["was_locked"] = u.Locked
	writeback.AddResult(e.Details, res)
	if err != nil {
		s.failed(ctx, e, err)
		if errs.KindOf(err) == errs.Policy {
			return errs.FieldTexts(map[string]errs.Text{"password": errs.TextOf(err)})
		}
		return err
	}
	err = s.updateFlow(ctx, id, browser, func(tx *store.Tx, fl *flow) error {
		fl.DoneMS = s.now().UnixMilli()
		fl.st.Pending = ""
		_, err := audit.Record(ctx, tx, e)
		return err
	})
	if err != nil {
		return err
	}
	s.notify(ctx, fl.Flow, from, u, p, true)
	return nil
}

// ensureWriteback refuses a write while writeback is off. No agent being
// connected (agents mode) is an outage on our side, not a setting: it is
// an Unavailable error carrying the administrators' reason, which the
// audit row keeps and the person sees as directory.MsgNotReached
// (EmployeeError).
func (s *Service) ensureWriteback(ctx context.Context) error {
	st, err := s.dir.State(ctx)
	if err != nil {
		return err
	}
	if st.Outage {
		return errs.E(errs.Unavailable, st.Reason, directory.ErrNotReached)
	}
	if !st.Writeback {
		return errs.E(errs.Forbidden, "Self-service password reset is not available right now: writing passwords to the directory has been turned off. Contact your helpdesk.", nil)
	}
	return nil
}

// Unlock ends the lockout of an unlock flow whose methods are all verified.
// Verify calls it once the last method is verified; after a failure the
// person may call it again ("Try again"). An account that turns out not to
// be locked is left alone, and the flow ends saying so.
func (s *Service) Unlock(ctx context.Context, id, browser string, from audit.Actor) error {
	p, _, err := s.Policy(ctx)
	if err != nil {
		return EmployeeError(err)
	}
	return EmployeeError(s.unlock(ctx, id, browser, p, from))
}

// unlock is Unlock under the policy p the caller read.
func (s *Service) unlock(ctx context.Context, id, browser string, p Policy, from audit.Actor) error {
	fl, err := s.loadFlow(ctx, id, browser)
	if err != nil {
		return err
	}
	if fl.Kind != KindUnlock || !fl.Eligible || len(fl.verified) < p.Required {
		return ErrFlowGone
	}
	if fl.DoneMS != 0 {
		return nil
	}
	if err := s.notBlocked(ctx, s.db, fl.Flow); err != nil {
		return err
	}
	e := entry(audit.ActivityUnlockSelfService, from, fl.Flow, nil)
	st, err := s.dir.State(ctx)
	if err == nil && !st.Unlock {
		err = errs.E(errs.Forbidden, "Unlocking without a reset has been turned off. Reset your password instead.", nil)
	}
	if err != nil {
		e.Details["step"] = "check that unlocking is on"
		s.failed(ctx, e, err)
		return err
	}
	u, err := s.flowUser(ctx, fl.Flow)
	if err != nil {
		e.Details["step"] = "re-read the account"
		s.failed(ctx, e, err)
		return err
	}
	e.Target = audit.Target{Type: "User", ID: u.ID, DN: u.DN, Name: displayName(u)}
	if u.Disabled || u.Protected {
		// Eligible when the flow started, not now: never unlock it, and
		// never tell the person "sign in as usual" either.
		e.Result, e.Reason = audit.Failure, "the account became disabled or protected during the flow"
		s.record(ctx, e)
		return errs.E(errs.Unavailable, MsgOurSide, nil)
	}
	e.Details["was_locked"] = u.Locked
	if u.Locked {
		res, err := s.dir.Unlock(ctx, u)
		writeback.AddResult(e.Details, res)
		if err != nil {
			s.failed(ctx, e, err)
			return err
		}
	} else {
		e.Details["step"] = "the account was not locked: nothing was written"
	}
	recorded := false
	err = s.updateFlow(ctx, id, browser, func(tx *store.Tx, fl *flow) error {
		if fl.DoneMS != 0 {
			return nil // a concurrent retry finished first
		}
		fl.DoneMS = s.now().UnixMilli()
		fl.st.Unlocked, fl.st.NotLocked = u.Locked, !u.Locked
		recorded = true
		_, err := audit.Record(ctx, tx, e)
		return err
	})
	if err != nil {
		return err
	}
	if recorded && u.Locked {
		s.notify(ctx, fl.Flow, from, u, p, false)
	}
	return nil
}

// notify sends "your password was reset" / "your account was unlocked" and,
// when the person is also a portal administrator, the notice to the others.
func (s *Service) notify(ctx context.Context, f store.Flow, from audit.Actor, u directory.User, p Policy, reset bool) {
	when := s.now()
	// The person's notice is in the language of the pages they used; the
	// administrators' in the organisation's default.
	lang := i18n.LangOf(ctx)
	// Sent in the background: f without its ID, so a failure is only audited.
	bg := store.Flow{UserID: f.UserID, UserDN: f.UserDN, Login: f.Login, Account: f.Account, CorrelationID: f.CorrelationID}
	if p.NotifyUsers {
		if dests, err := s.addresses(ctx, u); err == nil && len(dests) > 0 {
			s.sendAsync(bg, from, dests, func(to string) mail.Message {
				if reset {
					return mail.PasswordReset(lang, to, orgName(p), u.DisplayName, when, s.baseURL)
				}
				return mail.AccountUnlocked(lang, to, orgName(p), u.DisplayName, when, s.baseURL)
			})
		}
	}
	if reset && p.NotifyAdmins && u.Email != "" {
		list, err := s.db.ListAdmins(ctx)
		if err != nil {
			return
		}
		isAdmin := slices.ContainsFunc(list, func(a store.Admin) bool { return !a.Disabled && strings.EqualFold(a.Email, u.Email) })
		if !isAdmin {
			return
		}
		var to []string
		for _, a := range list {
			if !a.Disabled && a.Role == string(admins.GlobalAdmin) && !strings.EqualFold(a.Email, u.Email) {
				to = append(to, a.Email)
			}
		}
		s.sendAsync(bg, from, to, func(addr string) mail.Message {
			return mail.AdminPasswordResetNotice(orgLanguage(p), addr, orgName(p), u.DisplayName, when)
		})
	}
}
