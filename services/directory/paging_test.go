package directory

import (
	"testing"
	"time"

	"github.com/writeback/writeback/testbed"
)

// TestCountUsersPaged counts over several small pages on both test
// directories, and stops early at the maximum.
func TestCountUsersPaged(t *testing.T) {
	env := testbed.Load(t)
	dirs := []struct {
		typ     Type
		d       testbed.Directory
		newUser func(testing.TB, testbed.UserOptions) testbed.TestUser
	}{
		{TypeAD, env.AD, env.NewADUser},
		{TypeOpenLDAP, env.LDAP, env.NewLDAPUser},
	}
	for _, dir := range dirs {
		t.Run(string(dir.typ), func(t *testing.T) {
			cfg := Defaults(dir.typ, dir.d.BaseDN)
			cfg.URLs, cfg.CAPEM = []string{dir.d.URL}, env.CAPEM()
			cfg.BindDN, cfg.BindPassword = dir.d.BindDN, dir.d.BindPassword
			cfg.BaseDNs = []string{dir.d.PeopleDN}
			c, err := New(cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			for i := 0; i < 5; i++ {
				dir.newUser(t, testbed.UserOptions{})
			}
			var all, capped int
			var allDone, cappedDone bool
			_, err = c.run(t.Context(), "test", func(s *session) error {
				var oe *OpError
				if all, allDone, oe = s.countUsers(dir.d.PeopleDN, 2, 1000, time.Now().Add(time.Minute)); oe != nil {
					return oe
				}
				if capped, cappedDone, oe = s.countUsers(dir.d.PeopleDN, 2, 3, time.Now().Add(time.Minute)); oe != nil {
					return oe
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			// Other tests running in parallel packages may add users too.
			if all < 5 || !allDone {
				t.Fatalf("count = %d (done %t), want at least 5", all, allDone)
			}
			if capped < 3 || capped > 4 || cappedDone {
				t.Fatalf("capped count = %d (done %t), want 3 or 4 and not done", capped, cappedDone)
			}
			// The connection is still good after abandoning the paged search.
			if _, _, err := c.Find(t.Context(), "nobody-here"); codeOf(err) != CodeNotFound {
				t.Fatalf("Find after an abandoned paged search: %v", err)
			}
		})
	}
}
