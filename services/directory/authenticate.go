package directory

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/writeback/writeback/services/errs"
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
// passwords. It sends no password of the person. A login that matches
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
		cand = Candidate{Failures: -1}
		e, ferr := s.findEntry(login)
		if ferr != nil {
			if k := errs.KindOf(ferr); k != errs.NotFound && k != errs.Conflict {
				return ferr
			}
			e = nil // the domain's policy, as for an account without its own
		}
		var perr error
		cand.Policy, perr = s.entryPolicy(e)
		if perr != nil {
			if codeOf(perr) != CodeNotPermitted {
				return perr
			}
			cand.PolicyErr = perr
		}
		if ferr != nil {
			return ferr
		}
		u, err := s.user(e)
		if err != nil {
			return err
		}
		cand.User = u
		cand.Failures = s.failures(e.DN, cand.Policy, cand.PolicyErr == nil)
		return nil
	})
	return cand, res, err
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

// failures reads the directory's count of wrong passwords for dn (see
// failureCount); -1 when it cannot be read. A failure to read is no reason
// to refuse the sign-in: the portal's own budget still holds.
func (s *session) failures(dn string, p Policy, policyKnown bool) int {
	attrs := []string{"pwdFailureTime"}
	if s.c.cfg.Type == TypeAD {
		attrs = []string{"badPwdCount", "badPasswordTime"}
	}
	res, oe := s.search(ldap.NewSearchRequest(dn, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 1, 0, false,
		"(objectClass=*)", attrs, nil))
	if oe != nil || len(res.Entries) != 1 {
		s.c.log.Warn("directory: cannot read the count of wrong passwords", "server", s.srv.u.raw, "dn", dn, "err", oe)
		return -1
	}
	return failureCount(s.c.cfg.Type, res.Entries[0], p, policyKnown, time.Now())
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

// AuthenticateUser checks the password of u (as found by Resolve) by binding
// as u on a fresh connection (never a pooled one) and returns the account. A
// password that is right but must be changed first (AD 532/773, ppolicy
// changeAfterReset) is CodeExpired, so callers can send the person to the
// change page. It re-reads u by DN first and fails with CodeNotFound when the
// entry now has another ID.
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
// user on a separate connection, then Password Modify with the old password.
// It returns the user as read back after the change.
func (c *Client) ChangeUser(ctx context.Context, u User, oldPassword, newPassword string) (User, Result, error) {
	if err := checkPassword("change", "current password", oldPassword); err != nil {
		return User{}, Result{}, err
	}
	if err := checkPassword("change", "new password", newPassword); err != nil {
		return User{}, Result{}, err
	}
	if u.DN == "" {
		return User{}, Result{}, invalid("change", "No account was given.")
	}
	if oldPassword == newPassword {
		return User{}, Result{}, fail(CodePolicy, "The new password must be different from the current one.",
			&OpError{Op: "change", Rule: "history", Err: errors.New("new password equals the current one")})
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
		if err != nil {
			return err
		}
		// Read back on the same server: the change is there even if
		// replication has not reached the others yet.
		if e, err = s.getEntry(cur.DN); err != nil {
			return err
		}
		out, err = s.user(e)
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
	defer uc.close()
	if err == nil && bres != nil {
		if pp := ppolicyControl(bres.Controls); pp != nil && pp.Error == 2 { // changeAfterReset
			return fail(CodeExpired, "You must change your password before you can use it here. Change it first.",
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
		return fail(CodeExpired, "Your password has expired or must be changed. Change it first, then come back.", oe)
	case bf.code == CodeLocked:
		return fail(CodeLocked, "This account is locked after too many wrong passwords. Unlock it or wait until the lock ends.", oe)
	case bf.code == CodeDisabled:
		return fail(CodeDisabled, "This account is disabled. Contact your helpdesk.", oe)
	}
	return fail(CodeBadPassword, "That user name and password don't match.", oe)
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

// userBind binds as dn with the person's own password on a fresh connection
// to the session's server (never a pooled one: it must not stay bound as
// them), asking for the ppolicy response control. A nil connection means it
// could not connect, and err is already classified; otherwise err is the
// bind's own result and the caller closes the connection.
func (s *session) userBind(dn, password string) (*pconn, *ldap.SimpleBindResult, error) {
	s.c.note(Request{Op: s.op, Kind: KindDial, Server: s.srv.u.raw})
	uc, err := connect(s.ctx, s.srv.u, s.srv.startTLS, s.srv.tls)
	if err != nil {
		return nil, nil, classifyConnect(s.ctx, s.op, s.srv.u, err)
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
