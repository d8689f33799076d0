package directory_test

import (
	"context"
	"testing"

	"github.com/go-ldap/ldap/v3"

	"github.com/writeback/writeback/services/directory"
	"github.com/writeback/writeback/testbed"
)

// Benchmarks for `make bench`; they need the test bed (testbed.Load skips
// without it). Compare BenchmarkReset (search, state, write through the
// pool) with BenchmarkBareModify (the write alone on one open connection) to
// see what the client adds.

// BenchmarkReset measures Client.Reset end to end: re-read of the user
// (state, protection), the password write, over pooled connections.
func BenchmarkReset(b *testing.B) {
	env := testbed.Load(b)
	for _, dc := range dirCases(env) {
		b.Run(dc.name, func(b *testing.B) {
			c := newClient(b, config(env, dc))
			tu := dc.newUser(b, testbed.UserOptions{})
			u, _, err := c.Find(context.Background(), tu.Login)
			if err != nil {
				b.Fatal(err)
			}
			pws := passwords(b.N)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := c.Reset(context.Background(), u, pws[i], directory.ResetOptions{}); err != nil {
					b.Fatalf("reset %d: %v", i, err)
				}
			}
		})
	}
}

// BenchmarkFindAD measures a lookup on AD, protection check included, for a
// user in no group but the primary one and for a user in ten groups that
// are each in one more: the in-chain matching rule made the second cost as
// much as a password write.
func BenchmarkFindAD(b *testing.B) {
	env := testbed.Load(b)
	dc := dirCases(env)[0]
	c := newClient(b, config(env, dc))
	var groups []string
	for range 10 {
		outer, inner := env.NewADGroup(b, ""), env.NewADGroup(b, "")
		env.AddADMember(b, outer, inner)
		groups = append(groups, inner)
	}
	for _, bc := range []struct {
		name   string
		groups []string
	}{{"no groups", nil}, {"ten groups", groups}} {
		b.Run(bc.name, func(b *testing.B) {
			tu := dc.newUser(b, testbed.UserOptions{Groups: bc.groups})
			if _, _, err := c.Find(context.Background(), tu.Login); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, _, err := c.Find(context.Background(), tu.Login); err != nil {
					b.Fatalf("find %d: %v", i, err)
				}
			}
		})
	}
}

// BenchmarkBareModify measures the bare password write over one open,
// bound connection: a unicodePwd Replace on AD, Password Modify on OpenLDAP.
func BenchmarkBareModify(b *testing.B) {
	env := testbed.Load(b)
	b.Run("ad", func(b *testing.B) {
		tu := env.NewADUser(b, testbed.UserOptions{})
		conn := env.Conn(b, env.AD, env.AD.BindDN, env.AD.BindPassword)
		pws := passwords(b.N)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			req := ldap.NewModifyRequest(tu.DN, nil)
			req.Replace("unicodePwd", []string{testbed.ADPassword(pws[i])})
			if err := conn.Modify(req); err != nil {
				b.Fatalf("modify %d: %v", i, err)
			}
		}
	})
	b.Run("openldap", func(b *testing.B) {
		tu := env.NewLDAPUser(b, testbed.UserOptions{})
		conn := env.Conn(b, env.LDAP, env.LDAP.BindDN, env.LDAP.BindPassword)
		pws := passwords(b.N)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, err := conn.PasswordModify(ldap.NewPasswordModifyRequest(tu.DN, "", pws[i])); err != nil {
				b.Fatalf("password modify %d: %v", i, err)
			}
		}
	})
}

// passwords returns n distinct policy-compliant passwords, made before the
// timer starts.
func passwords(n int) []string {
	pws := make([]string, n)
	for i := range pws {
		pws[i] = testbed.RandomPassword()
	}
	return pws
}
