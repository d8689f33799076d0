package directory

import (
	"slices"
	"strings"
	"testing"

	"github.com/go-ldap/ldap/v3"

	"github.com/writeback/writeback/testbed"
)

// TestADProtectionWalk: the protection check walks up from an account's
// groups itself, and where the walk cannot see a group it asks the DC with
// the in-chain matching rule after all, so an account it cannot follow is
// still found in a protected group.
func TestADProtectionWalk(t *testing.T) {
	env := testbed.Load(t)
	cfg := Defaults(TypeAD, env.AD.BaseDN)
	cfg.URLs, cfg.CAPEM = []string{env.AD.URL}, env.CAPEM()
	cfg.BindDN, cfg.BindPassword = env.AD.BindDN, env.AD.BindPassword
	cfg.BaseDNs, cfg.ExcludedGroups = []string{env.AD.PeopleDN}, nil
	c, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	backup := "CN=Backup Operators,CN=Builtin," + env.AD.BaseDN
	outer, inner := env.NewADGroup(t, ""), env.NewADGroup(t, "")
	env.AddADMember(t, backup, outer)
	env.AddADMember(t, outer, inner)
	tu := env.NewADUser(t, testbed.UserOptions{Groups: []string{inner}})
	missing := "CN=wb-no-such-group,OU=People," + env.AD.BaseDN

	_, err = c.run(t.Context(), "find", func(s *session) error {
		p, oe := s.adProtectionInfo()
		if oe != nil {
			return oe
		}
		reached, complete, oe := s.ancestry(p, []string{inner}, nil)
		if oe != nil {
			return oe
		}
		for _, dn := range []string{inner, outer, backup} {
			if !reached[dnKey(dn)] {
				t.Errorf("the walk from %s misses %s (complete %t)", inner, dn, complete)
			}
		}
		if !complete {
			t.Errorf("the walk from %s reads as incomplete", inner)
		}
		if _, complete, _ := s.ancestry(p, []string{inner, missing}, nil); complete {
			t.Errorf("a walk over a group that cannot be read reads as complete")
		}
		// The account's groups as a walk could not follow them: the DC answers.
		g, oe := s.firstProtected(p, tu.DN, []string{missing}, p.all)
		if oe != nil {
			return oe
		}
		if g == nil || !sameDN(g.dn, backup) {
			t.Errorf("firstProtected with an unreadable group = %+v, want %s (asked of the DC)", g, backup)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestRangedMemberOf(t *testing.T) {
	whole := ldap.NewEntry("CN=a,DC=x", map[string][]string{"memberOf": {"CN=g,DC=x"}})
	ranged := ldap.NewEntry("CN=a,DC=x", map[string][]string{"memberOf;range=0-1499": {"CN=g,DC=x"}})
	if rangedMemberOf(whole) || !rangedMemberOf(ranged) {
		t.Fatalf("rangedMemberOf: whole %t, ranged %t", rangedMemberOf(whole), rangedMemberOf(ranged))
	}
}

func TestDNKey(t *testing.T) {
	for _, pair := range [][2]string{
		{"CN=Domain Admins,CN=Users,DC=example,DC=com", "cn=domain admins, cn=users, dc=EXAMPLE, dc=com"},
		{"CN=a\\,b,DC=x", "cn=A\\2Cb,dc=x"},
	} {
		if dnKey(pair[0]) != dnKey(pair[1]) {
			t.Errorf("dnKey(%q) = %q, dnKey(%q) = %q", pair[0], dnKey(pair[0]), pair[1], dnKey(pair[1]))
		}
	}
	if dnKey("CN=a,DC=x") == dnKey("CN=b,DC=x") {
		t.Error("different DNs share a key")
	}
}

// TestGroupNestingCache: the nesting of groups is reused for at most
// groupNestingTTL, while an account's own memberships are read every time:
// an account put into a protected group (directly, or into a group already
// nested in one) is protected at once; a group the portal has seen, nested
// into a protected group later, counts once its cached memberships expire.
func TestGroupNestingCache(t *testing.T) {
	env := testbed.Load(t)
	cfg := Defaults(TypeAD, env.AD.BaseDN)
	cfg.URLs, cfg.CAPEM = []string{env.AD.URL}, env.CAPEM()
	cfg.BindDN, cfg.BindPassword = env.AD.BindDN, env.AD.BindPassword
	cfg.BaseDNs, cfg.ExcludedGroups = []string{env.AD.PeopleDN}, nil
	c, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	find := func(login string) User {
		t.Helper()
		u, _, err := c.Find(t.Context(), login)
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	backup := "CN=Backup Operators,CN=Builtin," + env.AD.BaseDN
	g := env.NewADGroup(t, "")
	tu := env.NewADUser(t, testbed.UserOptions{Groups: []string{g}})
	if u := find(tu.Login); u.Protected {
		t.Fatalf("a member of an ordinary group reads as protected: %q", u.ProtectedReason)
	}

	env.AddADMember(t, backup, g)
	if u := find(tu.Login); u.Protected {
		t.Logf("note: the nesting was read again at once")
	}
	// Age the cached memberships of g past the TTL.
	srv := c.servers[0]
	srv.mu.Lock()
	k := dnKey(g)
	gp, ok := srv.prot.parents[k]
	if ok {
		gp.at = gp.at.Add(-groupNestingTTL)
		srv.prot.parents[k] = gp
	}
	srv.mu.Unlock()
	if !ok {
		t.Fatalf("the memberships of %s were not cached", g)
	}
	if u := find(tu.Login); !u.Protected || !strings.Contains(u.ProtectedReason, "Backup Operators") {
		t.Fatalf("once the cache expired, a member of a group nested in Backup Operators reads as %v %q", u.Protected, u.ProtectedReason)
	}

	// Another account put into g now is protected at once (g's nesting is
	// cached as in Backup Operators), as is one put into a protected group
	// directly.
	other := env.NewADUser(t, testbed.UserOptions{})
	direct := env.NewADUser(t, testbed.UserOptions{})
	if u := find(other.Login); u.Protected {
		t.Fatalf("an ordinary account reads as protected: %q", u.ProtectedReason)
	}
	find(direct.Login)
	env.AddADMember(t, g, other.DN)
	env.AddADMember(t, backup, direct.DN)
	for _, login := range []string{other.Login, direct.Login} {
		if u := find(login); !u.Protected {
			t.Errorf("%s, just put into a protected group, reads as not protected", login)
		}
	}
}

func TestGroupsByAncestor(t *testing.T) {
	for _, tc := range []struct {
		name   string
		groups []string
		want   map[string][]string
	}{
		{"one group is its own base", []string{"cn=a,ou=g,dc=x"}, map[string][]string{"cn=a,ou=g,dc=x": {"cn=a,ou=g,dc=x"}}},
		{"siblings share their parent", []string{"cn=a,ou=g,dc=x", "cn=b,ou=g,dc=x"},
			map[string][]string{"ou=g,dc=x": {"cn=a,ou=g,dc=x", "cn=b,ou=g,dc=x"}}},
		{"cousins share the suffix, case apart", []string{"cn=a,ou=g,dc=x", "CN=b,OU=h,DC=X"},
			map[string][]string{"dc=x": {"cn=a,ou=g,dc=x", "CN=b,OU=h,DC=X"}}},
		{"a group under another group", []string{"cn=a,ou=g,dc=x", "ou=g,dc=x"},
			map[string][]string{"ou=g,dc=x": {"cn=a,ou=g,dc=x", "ou=g,dc=x"}}},
		{"two naming contexts", []string{"cn=a,dc=x", "cn=b,dc=y", "cn=c,dc=x"},
			map[string][]string{"dc=x": {"cn=a,dc=x", "cn=c,dc=x"}, "cn=b,dc=y": {"cn=b,dc=y"}}},
		{"not a DN", []string{"not a dn", "cn=a,dc=x"}, map[string][]string{"not a dn": {"not a dn"}, "cn=a,dc=x": {"cn=a,dc=x"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := groupsByAncestor(tc.groups)
			if len(got) != len(tc.want) {
				t.Fatalf("groupsByAncestor(%q) = %q, want %q", tc.groups, got, tc.want)
			}
			for base, gs := range tc.want {
				var match []string
				for b, g := range got {
					if sameDN(b, base) {
						match = g
					}
				}
				if !slices.Equal(match, gs) {
					t.Errorf("groupsByAncestor(%q) = %q, want %q", tc.groups, got, tc.want)
				}
			}
		})
	}
}
