package directory

import (
	"context"
	"strings"

	"github.com/go-ldap/ldap/v3"
)

// Search lists up to limit users whose login attributes, display name or
// common name contain q, for the helpdesk's user search. The input is
// escaped; only users under the base DNs matching the user filter appear.
func (c *Client) Search(ctx context.Context, q string, limit int) ([]User, error) {
	q, err := identifierArg("search", q, "Type part of a user name, e-mail address or name.")
	if err != nil {
		return nil, err
	}
	if limit <= 0 || limit > 500 {
		limit = 50
	}
	filter := substringFilter(c.cfg.UserFilter, c.searchAttributes(), q)
	var out []User
	_, err = c.run(ctx, "search", func(s *session) error {
		out = out[:0]
		seen := map[string]bool{}
		for _, base := range c.cfg.BaseDNs {
			if len(out) >= limit {
				break
			}
			req := ldap.NewSearchRequest(base, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, limit-len(out), 0, false,
				filter, c.userAttributes(), nil)
			res, oe := s.search(req)
			if oe != nil {
				switch oe.LDAPResult {
				case ldap.LDAPResultNoSuchObject:
					continue
				case ldap.LDAPResultSizeLimitExceeded:
					// Partial results are what we asked for.
				default:
					return generic(oe, s.ctx)
				}
			}
			if res == nil {
				continue
			}
			for _, e := range res.Entries {
				k := strings.ToLower(e.DN)
				if seen[k] || len(out) >= limit {
					continue
				}
				seen[k] = true
				u, err := s.user(e)
				if err != nil {
					return err
				}
				out = append(out, u)
			}
		}
		return nil
	})
	return out, err
}

// searchAttributes are the attributes the helpdesk search looks in.
func (c *Client) searchAttributes() []string {
	return append(append([]string{}, c.cfg.LoginAttributes...), "displayName", "cn")
}

// DomainDN returns the domain part (the trailing DC= components) of dn, or
// dn itself when it has none: the place AD's built-in groups live under.
func DomainDN(dn string) string {
	parsed, err := ldap.ParseDN(dn)
	if err != nil {
		return dn
	}
	for i, rdn := range parsed.RDNs {
		if len(rdn.Attributes) == 1 && strings.EqualFold(rdn.Attributes[0].Type, "DC") {
			parts := strings.Split(dn, ",")
			if len(parts) == len(parsed.RDNs) { // no escaped commas: keep the original spelling
				return strings.Join(parts[i:], ",")
			}
			var b []string
			for _, r := range parsed.RDNs[i:] {
				b = append(b, r.String())
			}
			return strings.Join(b, ",")
		}
	}
	return dn
}
