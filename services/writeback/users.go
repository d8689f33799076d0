package writeback

import (
	"context"
	"strconv"

	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/banned"
	"github.com/writeback/writeback/services/directory"
	"github.com/writeback/writeback/services/errs"
	"github.com/writeback/writeback/store"
)

// Lookup finds one directory user by what someone typed. Text with control
// or format characters is refused before it reaches the directory
// (directory.IsIdentifierError).
func (s *Service) Lookup(ctx context.Context, login string) (directory.User, error) {
	login, err := directory.NormalizeIdentifier(login)
	if err != nil {
		return directory.User{}, err
	}
	cl, _, err := s.Client(ctx)
	if err != nil {
		return directory.User{}, err
	}
	u, _, err := cl.Find(ctx, login)
	return u, err
}

// AdminReset sets a user's password on behalf of a helpdesk administrator.
// It honours both switches, refuses protected and disabled accounts, also
// unlocks (AD does not on reset), and records "Reset password (by admin)".
// The account is read once, right before the write, on the connection that
// writes (directory.Client.ResetLogin), so an account that became protected
// or disabled since the page was loaded is refused. It returns the account
// as the reset left it (directory.User.AfterReset, not read again); on a
// failure, the account as read, when one was found.
//
// A password the banned rules refuse (UseBanned) is refused before anything
// is written, unless mustChange: a temporary password the person replaces
// at once.
func (s *Service) AdminReset(ctx context.Context, actor audit.Actor, login, password string, mustChange bool) (directory.User, error) {
	opt := directory.ResetOptions{MustChange: mustChange, Unlock: true}
	if !mustChange && s.banned != nil {
		if err := s.refuseBanned(ctx, login, password); err != nil {
			return directory.User{}, err
		}
	}
	u, err := s.act(ctx, actor, audit.ActivityResetByAdmin, login, func(cl directory.Directory, login string) (directory.User, directory.Result, map[string]any, error) {
		u, res, err := cl.ResetLogin(ctx, login, password, opt)
		return u, res, map[string]any{"must_change_at_next_logon": mustChange, "was_locked": u.Locked}, err
	})
	if err != nil {
		return u, err
	}
	return u.AfterReset(opt, s.now()), nil
}

// refuseBanned checks a password a helpdesk administrator is about to set
// against the banned rules. The personal rule uses the typed login (and the
// organisation's name): the account is read once, by the reset itself.
// A refusal is like a mistyped confirmation: nothing is written or
// recorded.
func (s *Service) refuseBanned(ctx context.Context, login, password string) error {
	r, ok, err := s.banned.Check(ctx, password, banned.Personal("", login))
	if err != nil || ok {
		return err
	}
	return errs.FieldTexts(map[string]errs.Text{"password": banned.HelpdeskText(r)})
}

// AdminUnlock unlocks a user's account without changing the password and
// records "Unlock user account (by admin)". Like AdminReset it reads the
// account once, right before the write, and returns it as the unlock left
// it.
func (s *Service) AdminUnlock(ctx context.Context, actor audit.Actor, login string) (directory.User, error) {
	u, err := s.act(ctx, actor, audit.ActivityUnlockByAdmin, login, func(cl directory.Directory, login string) (directory.User, directory.Result, map[string]any, error) {
		u, res, err := cl.UnlockLogin(ctx, login)
		return u, res, map[string]any{"was_locked": u.Locked}, err
	})
	if err != nil {
		return u, err
	}
	return u.AfterUnlock(), nil
}

// typedName is what an audit row names when no account matched: the typed
// text, quoted when it holds characters a login never has.
func typedName(login string) string {
	if v, err := directory.NormalizeIdentifier(login); err == nil {
		return v
	}
	if len(login) > directory.MaxIdentifierLen {
		login = login[:directory.MaxIdentifierLen]
	}
	return strconv.QuoteToASCII(login)
}

// act runs one helpdesk action with its checks and its audit row. do finds
// the account and writes in one directory session and returns the account
// it found, refused or not. The row names that account (its ID, DN and
// name), and the typed text only when none was found.
func (s *Service) act(ctx context.Context, actor audit.Actor, activity, login string,
	do func(directory.Directory, string) (directory.User, directory.Result, map[string]any, error)) (directory.User, error) {
	target := audit.Target{Type: "User", Name: typedName(login)}
	fail := func(u directory.User, err error, details map[string]any) (directory.User, error) {
		s.recordAction(ctx, actor, activity, target, err, details)
		return u, err
	}
	login, err := directory.NormalizeIdentifier(login)
	if err != nil {
		return fail(directory.User{}, err, nil)
	}
	st, err := s.State(ctx)
	if err != nil {
		return directory.User{}, err
	}
	if !st.Writeback {
		return fail(directory.User{}, errOff(st), nil)
	}
	cl, _, err := s.Client(ctx)
	if err != nil {
		return fail(directory.User{}, err, nil)
	}
	u, res, details, err := do(cl, login)
	if u.DN == "" {
		// Nothing found (or the directory could not be asked): the row
		// names what was typed, with no details of an account, but with
		// the agent that answered, if one did.
		return fail(u, err, AddAgent(nil, res))
	}
	target = audit.Target{Type: "User", ID: u.ID, DN: u.DN, Name: displayName(u)}
	switch {
	case err != nil && u.Protected:
		// The client refused before writing; say so in the helpdesk's words.
		return fail(u, errs.Ef(errs.Forbidden, err, "This account is protected: %s. Writeback never resets or unlocks it. Use your directory's own tools.", u.ProtectedReason),
			AddAgent(map[string]any{"protected": u.ProtectedReason}, res))
	case err != nil && u.Disabled:
		return fail(u, errs.E(errs.Forbidden, "This account is disabled in the directory. Enable it there first; Writeback never unlocks or resets a disabled account.", err), AddAgent(nil, res))
	}
	details = AddResult(details, res)
	if err != nil {
		return fail(u, err, details)
	}
	s.recordAction(ctx, actor, activity, target, nil, details)
	return u, nil
}

func (s *Service) recordAction(ctx context.Context, actor audit.Actor, activity string, target audit.Target, actErr error, details map[string]any) {
	e := audit.Entry{Category: audit.CategoryUserManagement, Activity: activity, Actor: actor, Target: target, Result: audit.Success, Details: details}
	if actErr != nil {
		e.Result, e.Reason = audit.Failure, errs.MessageOf(actErr)
		if e.Details == nil {
			e.Details = map[string]any{}
		}
		AddDiagnostics(e.Details, actErr)
		if _, ok := e.Details["diagnostic"]; !ok {
			// No directory answer to quote (a writeback agent that did not
			// answer in time or refused, say): keep the error chain, which
			// says which agent and why and names no password, as
			// self-service rows do.
			e.Details["error"] = actErr.Error()
		}
	}
	if err := s.db.InTx(ctx, func(tx *store.Tx) error { _, err := audit.Record(ctx, tx, e); return err }); err != nil {
		s.log.Error("record audit event", "activity", activity, "err", err)
	}
}

func displayName(u directory.User) string {
	if u.DisplayName != "" {
		return u.DisplayName + " (" + u.Login + ")"
	}
	return u.Login
}

// Search lists directory users matching what a helpdesk administrator typed.
func (s *Service) Search(ctx context.Context, q string, limit int) ([]directory.User, error) {
	cl, _, err := s.Client(ctx)
	if err != nil {
		return nil, err
	}
	return cl.Search(ctx, q, limit)
}

// Policy reads the password policy that applies to a user.
func (s *Service) Policy(ctx context.Context, u directory.User) (directory.Policy, error) {
	cl, _, err := s.Client(ctx)
	if err != nil {
		return directory.Policy{}, err
	}
	return cl.Policy(ctx, u)
}
