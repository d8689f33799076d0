package directory

import (
	"context"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// expiringPage is the page size of Expiring's search (AD caps pages at 1000).
const expiringPage = 500

// expiringTimeout bounds Expiring, which reads every account in scope: the
// configured timeout is for one account's operations.
const expiringTimeout = 5 * time.Minute

// Expiring lists the accounts whose password expires after now and no later
// than until, for the expiry reminders: enabled accounts that are not
// protected and need no change at next sign-in, with User.PasswordExpires
// set. groupDN, when not empty, limits the list to the group's members
// (nested and primary group included on AD, direct members on OpenLDAP, as
// MemberOf decides). Accounts without an e-mail address are listed too: the
// caller says why none is mailed.
//
// On AD the expiry is the DC's own msDS-UserPasswordExpiryTimeComputed
// (domain policy or fine-grained policy alike); on OpenLDAP it is
// pwdChangedTime plus the pwdMaxAge of the account's pwdPolicySubentry or
// the default policy. Every base DN is read with a paged search.
func (c *Client) Expiring(ctx context.Context, groupDN string, until time.Time) ([]User, error) {
	groupDN = strings.TrimSpace(groupDN)
	timeout := max(expiringTimeout, c.cfg.Timeout)
	var out []User
	_, err := c.runFor(ctx, "expiring", timeout, func(s *session) error {
		out = out[:0]
		var members map[string]bool
		filter := "(&" + c.cfg.UserFilter
		if c.cfg.Type == TypeAD {
			// Enabled, a password that can expire, and no change pending:
			// the rest is decided on the computed expiry time.
			filter += "(!(userAccountControl:1.2.840.113556.1.4.803:=2))(!(userAccountControl:1.2.840.113556.1.4.803:=65536))(pwdLastSet>=1)"
			if groupDN != "" {
				filter += "(memberOf:1.2.840.113556.1.4.1941:=" + ldap.EscapeFilter(groupDN) + ")"
			}
		} else {
			filter += "(pwdChangedTime=*)"
			if groupDN != "" {
				var err error
				if members, err = s.groupMembers(groupDN); err != nil {
					return err
				}
			}
		}
		filter += ")"
		now := time.Now()
		seen := map[string]bool{}
		for _, base := range c.cfg.BaseDNs {
			paging := ldap.NewControlPaging(expiringPage)
			req := ldap.NewSearchRequest(base, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false,
				filter, s.userAttributes(), []ldap.Control{paging})
			for {
				res, oe := s.search(req)
				if oe != nil {
					if oe.LDAPResult == ldap.LDAPResultNoSuchObject {
						s.c.log.Warn("directory: base DN does not exist", "server", s.srv.u.raw, "base_dn", base)
						break
					}
					return generic(oe, s.ctx)
				}
				for _, e := range res.Entries {
					k := strings.ToLower(e.DN)
					if seen[k] || (members != nil && !members[normalDN(e.DN)]) {
						continue
					}
					seen[k] = true
					u, err := s.user(e)
					if err != nil {
						return err
					}
					if u.Disabled || u.Protected || u.MustChange || u.PasswordExpires.IsZero() ||
						!u.PasswordExpires.After(now) || u.PasswordExpires.After(until) {
						continue
					}
					out = append(out, u)
				}
				ctrl, ok := ldap.FindControl(res.Controls, ldap.ControlTypePaging).(*ldap.ControlPaging)
				if !ok || len(ctrl.Cookie) == 0 {
					break
				}
				paging.SetCookie(ctrl.Cookie)
			}
		}
		return nil
	})
	return out, err
}

// groupMembers reads the direct members of an OpenLDAP group (member and
// uniqueMember), as normalDN keys; a group that does not exist has none.
func (s *session) groupMembers(groupDN string) (map[string]bool, error) {
	out := map[string]bool{}
	res, oe := s.search(ldap.NewSearchRequest(groupDN, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 1, 0, false,
		"(objectClass=*)", []string{"member", "uniqueMember"}, nil))
	if oe != nil {
		if oe.LDAPResult == ldap.LDAPResultNoSuchObject {
			return out, nil
		}
		return nil, generic(oe, s.ctx)
	}
	for _, e := range res.Entries {
		for _, a := range []string{"member", "uniqueMember"} {
			for _, v := range e.GetEqualFoldAttributeValues(a) {
				out[normalDN(v)] = true
			}
		}
	}
	return out, nil
}

// normalDN is dn in one spelling for comparisons: parsed and lowered, or
// lowered as it is when it does not parse.
func normalDN(dn string) string {
	if d, err := ldap.ParseDN(dn); err == nil {
		return strings.ToLower(d.String())
	}
	return strings.ToLower(dn)
}
