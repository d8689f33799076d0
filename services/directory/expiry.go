package directory

import (
	"context"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// scopePage is the page size of the searches that read every account in
// scope (AD caps pages at 1000).
const scopePage = 500

// scopeTimeout bounds InScope and Expiring, which read every account in
// scope: the configured timeout is for one account's operations.
const scopeTimeout = 5 * time.Minute

// InScope calls f with every account self-service can serve among those
// groupDN names: enabled, not protected, matching the user filter under
// every base DN. groupDN, when not empty, limits them to the group's members
// (nested and primary group included on AD, direct members on OpenLDAP, as
// MemberOf decides). The accounts are read with paged searches and handed
// to f one at a time, so a few thousand of them never sit in memory at
// once; each account reaches f once, even when the search is retried on
// another server. An error from f ends the enumeration with that error.
func (c *Client) InScope(ctx context.Context, groupDN string, f func(User) error) error {
	return c.eachInScope(ctx, "in-scope", groupDN, "", "", f)
}

// Expiring lists the accounts whose password expires after now and no later
// than until, for the expiry reminders: the accounts InScope lists that need
// no change at next sign-in, with User.PasswordExpires set. Accounts without
// an e-mail address are listed too: the caller says why none is mailed.
//
// On AD the expiry is the DC's own msDS-UserPasswordExpiryTimeComputed
// (domain policy or fine-grained policy alike); on OpenLDAP it is
// pwdChangedTime plus the pwdMaxAge of the account's pwdPolicySubentry or
// the default policy.
func (c *Client) Expiring(ctx context.Context, groupDN string, until time.Time) ([]User, error) {
	now := time.Now()
	var out []User
	// A password that can expire and no change pending on AD; one that
	// was set on OpenLDAP: the rest is decided on the computed expiry.
	err := c.eachInScope(ctx, "expiring", groupDN,
		"(!(userAccountControl:1.2.840.113556.1.4.803:=65536))(pwdLastSet>=1)", "(pwdChangedTime=*)",
		func(u User) error {
			if !u.MustChange && !u.PasswordExpires.IsZero() && u.PasswordExpires.After(now) && !u.PasswordExpires.After(until) {
				out = append(out, u)
			}
			return nil
		})
	return out, err
}

// errStop is what f returned: it ends the enumeration without a retry.
type errStop struct{ err error }

func (e errStop) Error() string { return e.err.Error() }

// eachInScope is InScope under op's name, with adFilter or ldapFilter (by
// the directory's type) added to the search.
func (c *Client) eachInScope(ctx context.Context, op, groupDN, adFilter, ldapFilter string, f func(User) error) error {
	groupDN = strings.TrimSpace(groupDN)
	timeout := max(scopeTimeout, c.cfg.Timeout)
	// Kept across a retry on another server: what f saw is not handed
	// to it again.
	seen := map[string]bool{}
	var stopped error
	_, err := c.runFor(ctx, op, timeout, func(s *session) error {
		var members map[string]bool
		filter := "(&" + c.cfg.UserFilter
		if c.cfg.Type == TypeAD {
			filter += "(!(userAccountControl:1.2.840.113556.1.4.803:=2))" + adFilter
			if groupDN != "" {
				filter += "(memberOf:1.2.840.113556.1.4.1941:=" + ldap.EscapeFilter(groupDN) + ")"
			}
		} else {
			filter += ldapFilter
			if groupDN != "" {
				var err error
				if members, err = s.groupMembers(groupDN); err != nil {
					return err
				}
			}
		}
		filter += ")"
		for _, base := range c.cfg.BaseDNs {
			paging := ldap.NewControlPaging(scopePage)
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
					u, err := s.user(e)
					if err != nil {
						return err
					}
					seen[k] = true
					if u.Disabled || u.Protected {
						continue
					}
					if err := f(u); err != nil {
						stopped = err
						return errStop{err}
					}
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
	if stopped != nil {
		return stopped
	}
	return err
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
