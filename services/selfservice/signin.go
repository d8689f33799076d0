package selfservice

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/directory"
	"github.com/writeback/writeback/services/errs"
	"github.com/writeback/writeback/services/ratelimit"
	"github.com/writeback/writeback/services/writeback"
	"github.com/writeback/writeback/store"
)

// Directory-password guessing through the portal (/change and /register)
// stays below the directory's lockout threshold: a wrong password typed here
// counts toward the directory's lockout, and the portal must never be the
// thing that locks an account. The budget per account comes from the
// directory's policy (ratelimit.BudgetFor); the limit per client address is
// the portal's own, below. Both are counted in the database.
const (
	signInAddressMax    = 20
	signInAddressWindow = 15 * time.Minute
)

// Answers of a directory-password sign-in. They are the same whether the
// account exists or not.
var (
	// errSignInOurSide is every failure that is the portal's or the
	// directory's, not the person's; the audit row holds the detail.
	errSignInOurSide = errs.E(errs.Unavailable, MsgOurSide, nil)
	// errSingleStrike: the directory locks at the first wrong password, so
	// no password is ever sent.
	errSingleStrike = errs.E(errs.Forbidden, "Your organization's directory locks an account after a single wrong password, "+
		"so this page does not check passwords. Reset your password instead: that needs no password.", nil)
)

// signInThrottled is the answer while a budget is used up.
func signInThrottled(ref *ratelimit.Refusal, now time.Time) error {
	wait := ref.Limit.Window
	if !ref.Retry.IsZero() && ref.Retry.After(now) {
		wait = ref.Retry.Sub(now)
	}
	n := int(math.Ceil(wait.Minutes()))
	network := ref.Limit.Bucket == store.BucketDirectoryAddress
	switch {
	case network && n <= 1:
		return errs.E(errs.TooMany, "Too many attempts from your network. Wait a minute and try again.", nil)
	case network:
		return errs.Ef(errs.TooMany, nil, "Too many attempts from your network. Wait %d minutes and try again.", n)
	case n <= 1:
		return errs.E(errs.TooMany, "Too many wrong passwords. To keep your account from being locked, wait a minute and try again, or reset your password instead.", nil)
	}
	return errs.Ef(errs.TooMany, nil, "Too many wrong passwords. To keep your account from being locked, wait %d minutes and try again, or reset your password instead.", n)
}

// signIn is one attempt to sign in with a directory password, reserved in
// the budgets of its account (or typed name) and client address before the
// password goes to the directory.
type signIn struct {
	activity string
	corr     string
	from     audit.Actor
	typed    string
	cl       directory.Directory
	res      directory.Result // where the sign-in operation ran, once it answered
	cand     directory.Candidate
	found    bool
	findErr  error              // why the login resolved to no account
	att      *ratelimit.Attempt // the reserved attempt; nil until admit reserved it
	refused  error              // why admit refused the attempt (what the person sees)
	account  ratelimit.Limit
}

// newSignIn starts the record of one sign-in attempt.
func newSignIn(activity, typed string, from audit.Actor) *signIn {
	return &signIn{activity: activity, corr: randomID()[:32], from: from, typed: typed}
}

// beginSignIn starts a sign-in attempt with the normalised login: the
// directory it runs on (the LDAP client, or the writeback agents). Its
// ChangeLogin or
// AuthenticateLogin then resolves the login and calls admit (which counts
// the attempt) before the password is sent, in one directory session; see
// admitted for what to do with its answer.
func (s *Service) beginSignIn(ctx context.Context, activity, typed string, from audit.Actor) (*signIn, error) {
	si := newSignIn(activity, typed, from)
	cl, _, err := s.wb.Client(ctx)
	if err != nil {
		return nil, s.signInFailed(ctx, si, "directory connection not usable", err)
	}
	si.cl = cl
	return si, nil
}

// admit is the directory.Admit of the attempt si: it takes the resolved
// login (or the reason it resolved to nothing), reads the lockout policy
// that applies, and reserves the attempt. A name that resolves to nothing
// gets a budget of its own, the size of an account's, so the answers and
// their number are the same as for a real account. Every refusal is
// audited here and kept in si.refused; it is what the person sees.
func (s *Service) admit(ctx context.Context, si *signIn) directory.Admit {
	return func(cand directory.Candidate, notFound error) error {
		if notFound == nil {
			si.cand, si.found = cand, true
		} else {
			si.cand, si.findErr = cand, notFound
		}
		si.refused = s.reserve(ctx, si)
		return si.refused
	}
}

// admitted sorts out the answer err of the sign-in operation of si: done
// is false when the attempt never got to the password (admit refused it,
// or the directory lookup failed), and err is then what the person sees.
// Otherwise err is the directory's answer (nil, a wrong password, a
// refusal, or the reason the login resolved to nothing) for finish.
func (s *Service) admitted(ctx context.Context, si *signIn, err error) (done bool, _ error) {
	switch {
	case si.att != nil:
		return true, err
	case si.refused != nil:
		return false, si.refused
	}
	return false, s.signInFailed(ctx, si, "directory lookup failed", err)
}

// reserve counts the attempt si in the budgets of its account (or typed
// name) and client address.
func (s *Service) reserve(ctx context.Context, si *signIn) error {
	p := si.cand.Policy
	b := ratelimit.BudgetFor(p.LockoutThreshold, p.LockoutWindow, p.LockoutDuration, si.cand.PolicyErr == nil)
	if b.Refuse {
		s.recordSignIn(ctx, si, audit.Failure, "refused: the directory locks an account after one wrong password", nil, false)
		return errSingleStrike
	}
	si.account = ratelimit.Limit{Bucket: store.BucketDirectoryName, Key: s.mac("signin-name", strings.ToLower(si.typed)),
		Max: b.Max, Window: b.Window, Outside: -1}
	if si.found {
		id := si.cand.User.ID
		if id == "" {
			id = si.cand.User.DN
		}
		si.account.Bucket, si.account.Key = store.BucketDirectoryAccount, s.mac("signin-account", strings.ToLower(id))
		// The directory's own count of wrong passwords (typed at a
		// workstation, say) uses up the same budget. A locked account is
		// left out: the directory refuses it whatever is sent, and it must
		// answer like every other account that cannot sign in.
		if p.LockoutThreshold > 0 && !si.cand.User.Locked {
			si.account.Outside = si.cand.Failures
		}
	}
	addr := ratelimit.Limit{Bucket: store.BucketDirectoryAddress, Key: s.mac("signin-address", si.from.ClientIP),
		Max: signInAddressMax, Window: signInAddressWindow, Outside: -1}
	now := s.now()
	att, ref, err := ratelimit.Reserve(ctx, s.db, now, addr, si.account)
	if err != nil {
		return s.signInFailed(ctx, si, "sign-in attempt could not be counted", err)
	}
	if ref != nil {
		why := "throttled: too many wrong passwords for this account"
		switch {
		case ref.Limit.Bucket == store.BucketDirectoryAddress:
			why = "throttled: too many attempts from this address"
		case ref.Retry.IsZero() && si.account.Outside >= 0:
			why = fmt.Sprintf("throttled: the directory already counts %d wrong passwords", si.account.Outside)
		}
		s.recordSignIn(ctx, si, audit.Failure, why, map[string]any{"budget": si.account.Max, "window": si.account.Window.String()}, false)
		return signInThrottled(ref, now)
	}
	si.att = att
	return nil
}

// finish settles the attempt after the directory answered err (nil: the
// password was right) and returns what the person sees. cleared says that a
// success made the directory forget its count of wrong passwords (a bind
// does; an AD password change does not), so the portal forgets its own.
func (s *Service) finish(ctx context.Context, si *signIn, err error, cleared bool) error {
	var oe *directory.OpError
	passwordRight := err == nil || errs.KindOf(err) == errs.Policy || (errors.As(err, &oe) && oe.Code == directory.CodeExpired)
	if passwordRight {
		if rerr := si.att.Release(ctx); rerr != nil {
			s.log.Error("release sign-in attempt", "err", rerr)
		}
		if err == nil && cleared {
			if cerr := s.db.ClearAttempts(ctx, si.account.Bucket, si.account.Key); cerr != nil {
				s.log.Error("clear sign-in attempts", "err", cerr)
			}
		}
	} else if ferr := si.att.Fail(ctx); ferr != nil {
		s.log.Error("count failed sign-in", "err", ferr)
	}
	return err
}

// signInFailed audits a failure on the portal's side with its raw
// diagnostic and returns the one answer for it.
func (s *Service) signInFailed(ctx context.Context, si *signIn, what string, err error) error {
	details := map[string]any{"error": err.Error()}
	writeback.AddDiagnostics(details, err)
	s.recordSignIn(ctx, si, audit.Failure, what+": "+errs.MessageOf(err), details, false)
	return errSignInOurSide
}

// recordSignIn writes the audit row of a sign-in step: the resolved account
// when there is one, the typed text only when nothing matched, and the
// writeback agent that ran the operation when one did. checked
// ("password_checked" in the details) says whether the attempt got past the
// budget and its password was handed to the directory client, which still
// refuses a locked, disabled or protected account before sending it on a
// change.
func (s *Service) recordSignIn(ctx context.Context, si *signIn, result, reason string, details map[string]any, checked bool) {
	if details == nil {
		details = map[string]any{}
	}
	details["password_checked"] = checked
	writeback.AddAgent(details, si.res)
	actor := si.from
	actor.Type, actor.Name = "user", si.typed
	target := audit.Target{Type: "User", Name: si.typed}
	if u := si.cand.User; si.found {
		actor.ID, actor.Name = u.ID, u.Login
		target = audit.Target{Type: "User", ID: u.ID, DN: u.DN, Name: u.DisplayName + " (" + u.Login + ")"}
	} else if si.findErr != nil {
		details["lookup"] = errs.MessageOf(si.findErr)
	}
	if si.cand.PolicyErr != nil {
		details["policy"] = "lockout policy not readable, one attempt per window: " + si.cand.PolicyErr.Error()
	}
	s.record(ctx, audit.Entry{Category: audit.CategoryUserManagement, Activity: si.activity, Actor: actor, Target: target,
		Result: result, Reason: reason, CorrelationID: si.corr, Details: details})
}
