package directory

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/writeback/writeback/services/errs"
	"github.com/writeback/writeback/services/i18n"
)

// Candidate is what the portal learns about an account before it sends the
// person's own password to the directory, so that it can keep its attempts
// under the directory's lockout threshold.
type Candidate struct {
	// User is the one account the login resolved to; zero when none did.
	User User
	// Policy is the password and lockout policy that applies to User (the
	// domain's or the default one when the login resolved to nothing).
	Policy Policy
	// PolicyErr says why Policy could not be read (an AD fine-grained policy
	// the service account may not read); Policy is then zero.
	PolicyErr error
	// Failures is how many wrong passwords the server that answered counts
	// against User right now (AD badPwdCount within the observation window;
	// OpenLDAP pwdFailureTime values); -1 when it cannot be read.
	Failures int
}

// Resolve looks login up as the service account, like Find, and reads the
// lockout policy that applies and the directory's own count of wrong
// passwords. On AD the User's PasswordExpired is not read (a bind or a
// change says so). It sends no password of the person. A login that matches
// nothing (CodeNotFound) or several entries (CodeAmbiguous) still returns
// the domain's or default policy in the Candidate beside the error, so a
// caller can treat unknown names exactly like accounts.
func (c *Client) Resolve(ctx context.Context, login string) (Candidate, Result, error) {
	login, err := identifierArg("resolve", login, "Enter a user name or e-mail address.")
	if err != nil {
		return Candidate{}, Result{}, err
	}
	var cand Candidate
	res, err := c.run(ctx, "resolve", func(s *session) error {
		var err error
		cand, _, err = s.resolve(login)
		return err
	})
	return cand, res, err
}

// resolve is Resolve within a session, with the entry it read (nil when
// none was found). One search reads the account with its state and the
// directory's count of wrong passwords; the protection check and the
// policy come from it (and from what they cache).
func (s *session) resolve(login string) (Candidate, *ldap.Entry, error) {
	cand := Candidate{Failures: -1}
	s.extraAttrs = failureAttributes(s.c.cfg.Type)
	if s.c.cfg.Type == TypeAD {
		// Of AD's constructed attributes, each of which adds about half
		// the cost of the search on Samba, only the fine-grained policy is
		// needed: it sets the budget of wrong passwords. The lock is
		// computed from lockoutTime and that policy's duration, as AD
		// computes UF_LOCKOUT (see adLocked); whether the password expired
		// the bind or the change tells.
		s.lean = true
		s.extraAttrs = append(s.extraAttrs, "msDS-ResultantPSO")
	}
	defer func() { s.extraAttrs, s.lean = nil, false }()
	e, ferr := s.findEntry(login)
	if ferr != nil {
		if k := errs.KindOf(ferr); k != errs.NotFound && k != errs.Conflict {
			return cand, nil, ferr
		}
		e = nil // the domain's policy, as for an account without its own
	}
	var perr error
	cand.Policy, perr = s.entryPolicy(e)
	if perr != nil {
		if codeOf(perr) != CodeNotPermitted {
			return cand, nil, perr
		}
		cand.PolicyErr = perr
	}
	if ferr != nil {
		return cand, nil, ferr
	}
	u, err := s.user(e)
	if err != nil {
		return cand, nil, err
	}
	if s.c.cfg.Type == TypeAD {
		u.policyKnown = true // msDS-ResultantPSO was read
		if cand.PolicyErr == nil {
			u.Locked, u.LockedUntil = adLocked(parseFiletime(e.GetEqualFoldAttributeValue("lockoutTime")), cand.Policy.LockoutDuration, time.Now())
		}
	}
	cand.User = u
	cand.Failures = failureCount(s.c.cfg.Type, e, cand.Policy, cand.PolicyErr == nil, time.Now())
	return cand, e, nil
}

// entryPolicy returns the policy of the entry e (nil: the domain's or
// default policy), for Policy and Resolve.
func (s *session) entryPolicy(e *ldap.Entry) (Policy, error) {
	var p Policy
	var oe *OpError
	if s.c.cfg.Type == TypeAD {
		p, oe = s.adPolicy(e)
	} else {
		p, oe = s.openLDAPPolicy(e)
	}
	if oe != nil {
		if errors.Is(oe, errPSOUnreadable) {
			return Policy{}, fail(CodeNotPermitted, "A fine-grained password policy applies to this account, but the portal's service account may not read it. "+
				"Grant it read access to the policy in the Password Settings Container.", oe)
		}
		return Policy{}, generic(oe, s.ctx)
	}
	return p, nil
}

// adLocked tells whether an AD account locked at lt (zero: never, or
// unlocked) is still locked at now under a lockout duration of dur (zero:
// until an administrator unlocks it), as AD computes UF_LOCKOUT in
// msDS-User-Account-Control-Computed, and until when.
func adLocked(lt time.Time, dur time.Duration, now time.Time) (bool, time.Time) {
	switch {
	case lt.IsZero():
		return false, time.Time{}
	case dur == 0:
		return true, time.Time{}
	case now.Before(lt.Add(dur)):
		return true, lt.Add(dur)
	}
	return false, time.Time{}
}

// failureAttributes are what failureCount reads from a user entry.
func failureAttributes(t Type) []string {
	if t == TypeAD {
		return []string{"badPwdCount", "badPasswordTime"}
	}
	return []string{"pwdFailureTime"}
}

// failureCount reads the directory's own count of wrong passwords from e:
// AD badPwdCount, which counts only while badPasswordTime is within the
// observation window (policyKnown says whether p tells that window);
// OpenLDAP the pwdFailureTime values within pwdFailureCountInterval (all of
// them without one: slapd then keeps them until a successful bind). -1 when
// AD does not show badPwdCount. OpenLDAP shows no pwdFailureTime both when
// there is none and when the ACL hides it, so it reads 0 then.
func failureCount(t Type, e *ldap.Entry, p Policy, policyKnown bool, now time.Time) int {
	if t == TypeAD {
		v := e.GetEqualFoldAttributeValue("badPwdCount")
		if strings.TrimSpace(v) == "" {
			return -1
		}
		n := int(parseInt(v))
		last := parseFiletime(e.GetEqualFoldAttributeValue("badPasswordTime"))
		if policyKnown && p.LockoutWindow > 0 && !last.IsZero() && now.Sub(last) >= p.LockoutWindow {
			return 0 // AD starts counting anew after the window
		}
		return n
	}
	n := 0
	for _, v := range e.GetEqualFoldAttributeValues("pwdFailureTime") {
		at, ok := parseGeneralizedTime(v)
		if ok && p.LockoutWindow > 0 && now.Sub(at) >= p.LockoutWindow {
			continue
		}
		n++
	}
	return n
}

// Admit is what ChangeLogin and AuthenticateLogin call once the login is
// resolved and before the person's password goes anywhere: with the
// Candidate, and the reason the login resolved to no account
// (CodeNotFound, CodeAmbiguous; nil when it did). The caller counts the
// attempt there; an error stops the operation, which returns it as it is.
// It is called at most once per operation, on the session's connection
// (which it must not use), also for names that resolved to nothing, so
// that those cost what an account costs up to that point.
type Admit func(cand Candidate, notFound error) error

// ChangeLogin resolves login as Resolve does, lets admit count the attempt,
// and changes the password of the account found, in one session on one
// server: the search that resolved the account is the only read before the
// write (its state and protection decide the refusals of ChangeUser), and
// nothing is read after it. It returns the Candidate (the account as read
// before the change). A login that resolves to nothing returns its error
// after admit accepted the attempt, and sends nothing more.
func (c *Client) ChangeLogin(ctx context.Context, login, oldPassword, newPassword string, admit Admit) (Candidate, Result, error) {
	login, err := identifierArg("change", login, "Enter a user name or e-mail address.")
	if err != nil {
		return Candidate{}, Result{}, err
	}
	var cand Candidate
	res, err := c.run(ctx, "change", c.admitted(login, admit, &cand, func(s *session, e *ldap.Entry) error {
		if err := changeArgs(oldPassword, newPassword); err != nil {
			return err
		}
		if err := refuse(s, cand.User, true); err != nil {
			return err
		}
		if c.cfg.Type == TypeAD {
			return s.changeAD(cand.User, e, oldPassword, newPassword)
		}
		return s.changeOpenLDAP(cand.User, e, oldPassword, newPassword)
	}))
	return cand, res, err
}

// AuthenticateLogin resolves login as Resolve does, lets admit count the
// attempt, and checks password by a bind as the account found (see
// AuthenticateUser), in one session on one server: the search that resolved
// the account is the only read. It returns the Candidate.
func (c *Client) AuthenticateLogin(ctx context.Context, login, password string, admit Admit) (Candidate, Result, error) {
	login, err := identifierArg("authenticate", login, "Enter a user name or e-mail address.")
	if err != nil {
		return Candidate{}, Result{}, err
	}
	var cand Candidate
	res, err := c.run(ctx, "authenticate", c.admitted(login, admit, &cand, func(s *session, _ *ldap.Entry) error {
		if err := checkPassword("authenticate", "password", password); err != nil {
			return err
		}
		return s.authenticate(cand.User, password)
	}))
	return cand, res, err
}

// admitted is the body of ChangeLogin and AuthenticateLogin for run:
// resolve login into *cand, call admit once (a retry of the body on another
// connection does not count the attempt again), then act on the entry.
func (c *Client) admitted(login string, admit Admit, cand *Candidate, act func(*session, *ldap.Entry) error) func(*session) error {
	done := false
	return func(s *session) error {
		var e *ldap.Entry
		var err error
		*cand, e, err = s.resolve(login)
		if err != nil {
			if k := errs.KindOf(err); k != errs.NotFound && k != errs.Conflict {
				return err
			}
		}
		if !done {
			done = true
			if aerr := admit(*cand, err); aerr != nil {
				return aerr
			}
		}
		if err != nil {
			return err
		}
		return act(s, e)
	}
}

// changeArgs checks the passwords of a change before anything is sent.
func changeArgs(oldPassword, newPassword string) error {
	if err := checkPassword("change", "current password", oldPassword); err != nil {
		return err
	}
	if err := checkPassword("change", "new password", newPassword); err != nil {
		return err
	}
	if oldPassword == newPassword {
		return fail(CodePolicy, i18n.Key("The new password must be different from the current one."),
			&OpError{Op: "change", Rule: "history", Err: errors.New("new password equals the current one")})
	}
	return nil
}

// AuthenticateUser checks the password of u (as found by Resolve) by binding
// as u on a connection kept for binds as people (never the service
// account's; see userConn) and returns the account. A password that is
// right but must be changed first (AD 532/773, ppolicy changeAfterReset) is
// CodeExpired, so callers can send the person to the change page. It
// re-reads u by DN first and fails with CodeNotFound when the entry now has
// another ID. AuthenticateLogin does the same without the second read.
func (c *Client) AuthenticateUser(ctx context.Context, u User, password string) (User, Result, error) {
	if err := checkPassword("authenticate", "password", password); err != nil {
		return User{}, Result{}, err
	}
	if u.DN == "" {
		return User{}, Result{}, invalid("authenticate", "No account was given.")
	}
	var out User
	res, err := c.run(ctx, "authenticate", func(s *session) error {
		cur, _, err := s.current(u)
		if err != nil {
			return err
		}
		if err := s.authenticate(cur, password); err != nil {
			return err
		}
		out = cur
		return nil
	})
	return out, res, err
}

// ChangeUser sets a new password for u (as found by Resolve), who proves it
// with the current one. Protected, disabled and locked accounts are refused
// before the current password is sent. AD: one Modify deleting the old
// unicodePwd and adding the new, sent by the service account (so it works
// while the password is expired or must be changed). OpenLDAP: a bind as the
// user on a connection kept for binds as people (see userConn), then
// Password Modify with the old password. It re-reads u by DN first (failing
// with CodeNotFound when the entry now has another ID) and returns the
// account as read then; ChangeLogin does the same without the second read.
func (c *Client) ChangeUser(ctx context.Context, u User, oldPassword, newPassword string) (User, Result, error) {
	if err := changeArgs(oldPassword, newPassword); err != nil {
		return User{}, Result{}, err
	}
	if u.DN == "" {
		return User{}, Result{}, invalid("change", "No account was given.")
	}
	var out User
	res, err := c.run(ctx, "change", func(s *session) error {
		cur, e, err := s.current(u)
		if err != nil {
			return err
		}
		if err := refuse(s, cur, true); err != nil {
			return err
		}
		if c.cfg.Type == TypeAD {
			err = s.changeAD(cur, e, oldPassword, newPassword)
		} else {
			err = s.changeOpenLDAP(cur, e, oldPassword, newPassword)
		}
		out = cur
		return err
	})
	return out, res, err
}

// authenticate binds as cur with password and classifies the answer.
func (s *session) authenticate(cur User, password string) error {
	uc, bres, err := s.userBind(cur.DN, password)
	if uc == nil {
		return err // could not connect
	}
	s.doneUser(uc, err)
	if err == nil && bres != nil {
		if pp := ppolicyControl(bres.Controls); pp != nil && pp.Error == 2 { // changeAfterReset
			return fail(CodeExpired, i18n.Key("You must change your password before you can use it here. Change it first."),
				&OpError{Op: s.op, Server: s.srv.u.raw, Rule: "must change", Err: errors.New("password must be changed after a reset")})
		}
	}
	if err == nil {
		return nil
	}
	oe := newOpError(s.op, s.srv.u.raw, err)
	if oe.Code == CodeUnavailable {
		return generic(oe, s.ctx)
	}
	var pp *ldap.ControlBeheraPasswordPolicy
	if bres != nil {
		pp = ppolicyControl(bres.Controls)
	}
	bf := classifyBind(s.c.cfg.Type, err, pp)
	oe.Rule = bf.rule
	switch {
	case bf.passwordOK:
		return fail(CodeExpired, i18n.Key("Your password has expired or must be changed. Change it first, then come back."), oe)
	case bf.code == CodeLocked:
		return fail(CodeLocked, i18n.Key("This account is locked after too many wrong passwords. Unlock it or wait until the lock ends."), oe)
	case bf.code == CodeDisabled:
		return fail(CodeDisabled, i18n.Key("This account is disabled. Contact your helpdesk."), oe)
	}
	return fail(CodeBadPassword, i18n.Key("That user name and password don't match."), oe)
}

// MemberOf reports whether u is a member of the group groupDN (nested
// membership on AD through LDAP_MATCHING_RULE_IN_CHAIN; direct member or
// uniqueMember on OpenLDAP).
func (c *Client) MemberOf(ctx context.Context, u User, groupDN string) (bool, error) {
	if u.DN == "" || strings.TrimSpace(groupDN) == "" {
		return false, nil
	}
	member := false
	_, err := c.run(ctx, "member-of", func(s *session) error {
		var req *ldap.SearchRequest
		if c.cfg.Type == TypeAD {
			req = ldap.NewSearchRequest(u.DN, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 1, 0, false,
				"(memberOf:1.2.840.113556.1.4.1941:="+ldap.EscapeFilter(groupDN)+")", []string{"1.1"}, nil)
		} else {
			v := ldap.EscapeFilter(u.DN)
			req = ldap.NewSearchRequest(groupDN, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 1, 0, false,
				"(|(member="+v+")(uniqueMember="+v+"))", []string{"1.1"}, nil)
		}
		res, oe := s.search(req)
		if oe != nil {
			if oe.LDAPResult == ldap.LDAPResultNoSuchObject {
				return nil
			}
			return generic(oe, s.ctx)
		}
		member = len(res.Entries) > 0
		return nil
	})
	return member, err
}

// userBind binds as dn with the person's own password, asking for the
// ppolicy response control, on a connection from userConn (never one of the
// service account's: it must not stay bound as them). A nil connection
// means it could not connect, and err is already classified; otherwise err
// is the bind's own result and the caller hands the connection back with
// doneUser after its last request.
func (s *session) userBind(dn, password string) (*pconn, *ldap.SimpleBindResult, error) {
	uc, err := s.userConn()
	if err != nil {
		return nil, nil, err
	}
	s.c.note(Request{Op: s.op, Kind: KindBind, Server: s.srv.u.raw})
	var bres *ldap.SimpleBindResult
	err = uc.guard(s.ctx, func() error {
		var err error
		bres, err = uc.conn.SimpleBind(&ldap.SimpleBindRequest{Username: dn, Password: password,
			Controls: []ldap.Control{ldap.NewControlBeheraPasswordPolicy()}})
		return err
	})
	return uc, bres, err
}
