package directory_test

import (
	"strings"
	"testing"

	"github.com/writeback/writeback/services/directory"
	"github.com/writeback/writeback/services/errs"
	"github.com/writeback/writeback/testbed"
)

// wantProtected checks that login reads as protected (with a reason holding
// want) and that neither a reset nor an unlock nor a change is attempted.
func wantProtected(t *testing.T, c *directory.Client, login, password, want string) {
	t.Helper()
	u := find(t, c, login)
	if !u.Protected || !strings.Contains(strings.ToLower(u.ProtectedReason), strings.ToLower(want)) {
		t.Fatalf("%s reads as protected=%v (%q); want protected, the reason naming %q", login, u.Protected, u.ProtectedReason, want)
	}
	t.Logf("%s: %s", login, u.ProtectedReason)
	// Harmless if the guard failed (the shared service account is among these
	// accounts): a reset to the same password, and a change with a wrong
	// current password (the service account has no lockout).
	_, err := c.Reset(ctx(t), u, password, directory.ResetOptions{Unlock: true})
	wantCode(t, err, directory.CodeProtected, errs.Forbidden)
	_, err = c.Unlock(ctx(t), u)
	wantCode(t, err, directory.CodeProtected, errs.Forbidden)
	_, _, err = change(ctx(t), c, login, "Wrong-"+password, "Other-"+password)
	wantCode(t, err, directory.CodeProtected, errs.Forbidden)
}

// TestADProtectedGroups: members of AD's protected groups are protected
// without any configured excluded group and without adminCount (Samba never
// sets it): directly, through a nested group, and through the primary group,
// whose membership memberOf does not show.
func TestADProtectedGroups(t *testing.T) {
	env := testbed.Load(t)
	dc := dirCases(env)[0]
	base := env.AD.BaseDN
	builtin := func(cn string) string { return "CN=" + cn + ",CN=Builtin," + base }
	users := func(cn string) string { return "CN=" + cn + ",CN=Users," + base }

	cfg := config(env, dc)
	cfg.ExcludedGroups = nil // AD's protected groups need no setting: they are found by SID
	c := newClient(t, cfg)

	for _, g := range []struct{ name, dn string }{
		{"Schema Admins", users("Schema Admins")},
		{"Backup Operators", builtin("Backup Operators")},
		{"Account Operators", builtin("Account Operators")},
		{"Server Operators", builtin("Server Operators")},
		{"Print Operators", builtin("Print Operators")},
		{"Replicator", builtin("Replicator")},
		{"Domain Admins", users("Domain Admins")},
	} {
		t.Run("direct "+g.name, func(t *testing.T) {
			tu := env.NewADUser(t, testbed.UserOptions{Groups: []string{g.dn}})
			wantProtected(t, c, tu.Login, tu.Password, g.dn)
		})
	}

	t.Run("nested in Backup Operators", func(t *testing.T) {
		inner := env.NewADGroup(t, "")
		env.AddADMember(t, builtin("Backup Operators"), inner)
		tu := env.NewADUser(t, testbed.UserOptions{Groups: []string{inner}})
		wantProtected(t, c, tu.Login, tu.Password, "Backup Operators")
	})

	t.Run("primary group Domain Admins", func(t *testing.T) {
		tu := env.NewADUser(t, testbed.UserOptions{})
		env.SetADPrimaryGroup(t, tu, users("Domain Admins"))
		wantProtected(t, c, tu.Login, tu.Password, "Domain Admins")
	})

	t.Run("primary group nested in Account Operators", func(t *testing.T) {
		// Two levels down, so that a direct-membership check would miss it.
		mid, g := env.NewADGroup(t, ""), env.NewADGroup(t, "")
		env.AddADMember(t, builtin("Account Operators"), mid)
		env.AddADMember(t, mid, g)
		tu := env.NewADUser(t, testbed.UserOptions{})
		env.SetADPrimaryGroup(t, tu, g)
		// Only the primary group leads to Account Operators: memberOf no longer holds g.
		if mo := env.ReadAttr(t, env.AD, tu.DN, "memberOf"); strings.EqualFold(mo, g) {
			t.Logf("note: the DC still lists %s in memberOf", g)
		}
		wantProtected(t, c, tu.Login, tu.Password, "primary group")
	})

	t.Run("ordinary users are not protected", func(t *testing.T) {
		g := env.NewADGroup(t, "")
		tu := env.NewADUser(t, testbed.UserOptions{Groups: []string{g}})
		if u := find(t, c, tu.Login); u.Protected {
			t.Fatalf("an ordinary user reads as protected: %q", u.ProtectedReason)
		}
		pg := env.NewADUser(t, testbed.UserOptions{})
		env.SetADPrimaryGroup(t, pg, g)
		if u := find(t, c, pg.Login); u.Protected {
			t.Fatalf("a user with an ordinary primary group reads as protected: %q", u.ProtectedReason)
		}
	})
}

// TestServiceAccountProtected: the portal never acts on its own service
// account, whatever spelling of its DN the configuration uses.
func TestServiceAccountProtected(t *testing.T) {
	env := testbed.Load(t)
	t.Run("ad", func(t *testing.T) {
		dc := dirCases(env)[0]
		cfg := config(env, dc)
		cfg.BaseDNs = []string{env.AD.BaseDN} // the service account lives in CN=Users
		cfg.ExcludedGroups = nil
		c := newClient(t, cfg)
		login := strings.TrimPrefix(strings.SplitN(env.AD.BindDN, ",", 2)[0], "CN=")
		wantProtected(t, c, login, env.AD.BindPassword, "service account")

		// The same account named in another case and spacing.
		cfg.BindDN = strings.ReplaceAll(strings.ToLower(env.AD.BindDN), ",", ", ")
		c = newClient(t, cfg)
		wantProtected(t, c, login, env.AD.BindPassword, "service account")
	})
	t.Run("openldap", func(t *testing.T) {
		dc := dirCases(env)[1]
		cfg := config(env, dc)
		cfg.BaseDNs = []string{env.LDAP.BaseDN}
		// The test bed's service DN is an organizationalRole, not a person:
		// widen the filter so the portal can find it at all.
		cfg.UserFilter = "(|(objectClass=inetOrgPerson)(objectClass=simpleSecurityObject))"
		cfg.LoginAttributes = []string{"uid", "cn"}
		c := newClient(t, cfg)
		login := strings.TrimPrefix(strings.SplitN(env.LDAP.BindDN, ",", 2)[0], "cn=")
		wantProtected(t, c, login, env.LDAP.BindPassword, "service account")
	})
}
