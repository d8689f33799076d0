package directory

import (
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
		reached, complete, oe := s.ancestry(p, []string{inner})
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
		if _, complete, _ := s.ancestry(p, []string{inner, missing}); complete {
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
