package directory

import (
	"context"
	"errors"
	"strings"

	"github.com/go-ldap/ldap/v3"
)

// Authenticate checks a person's own password by binding as them on a fresh
// connection (never a pooled one) and returns their account. A password that
// is right but must be changed first (AD 532/773, ppolicy changeAfterReset)
// is CodeExpired, so callers can send the person to the change page.
func (c *Client) Authenticate(ctx context.Context, login, password string) (User, Result, error) {
	if err := checkPassword("authenticate", "password", password); err != nil {
		return User{}, Result{}, err
	}
	login, err := identifierArg("authenticate", login, "Enter a user name or e-mail address.")
	if err != nil {
		return User{}, Result{}, err
	}
	var u User
	res, err := c.run(ctx, "authenticate", func(s *session) error {
		e, err := s.findEntry(login)
		if err != nil {
			return err
		}
		cur, err := s.user(e)
		if err != nil {
			return err
		}
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
		if err != nil {
			oe := newOpError(s.op, s.srv.u.raw, err)
			if oe.Code == CodeUnavailable {
				return generic(oe, s.ctx)
			}
			var pp *ldap.ControlBeheraPasswordPolicy
			if bres != nil {
				pp = ppolicyControl(bres.Controls)
			}
			bf := classifyBind(c.cfg.Type, err, pp)
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
		u = cur
		return nil
	})
	return u, res, err
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
	uc, err := connect(s.ctx, s.srv.u, s.srv.startTLS, s.srv.tls)
	if err != nil {
		return nil, nil, classifyConnect(s.ctx, s.op, s.srv.u, err)
	}
	var bres *ldap.SimpleBindResult
	err = uc.guard(s.ctx, func() error {
		var err error
		bres, err = uc.conn.SimpleBind(&ldap.SimpleBindRequest{Username: dn, Password: password,
			Controls: []ldap.Control{ldap.NewControlBeheraPasswordPolicy()}})
		return err
	})
	return uc, bres, err
}
