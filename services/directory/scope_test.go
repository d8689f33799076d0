package directory_test

import (
	"errors"
	"testing"

	"github.com/writeback/writeback/services/directory"
	"github.com/writeback/writeback/testbed"
)

// TestInScope: the registration campaign's enumeration, on both
// directories: with a group, exactly its enabled members (a disabled one
// left out: AD's disabled flag, OpenLDAP's lock until an administrator
// acts; one without a mail address kept, with an empty Email); without a
// group, everyone under the base DN, the non-member too.
// Each account comes with its ID and mail address; an error from the
// callback ends the enumeration with that error.
func TestInScope(t *testing.T) {
	env := testbed.Load(t)
	for _, dc := range dirCases(env) {
		t.Run(dc.name, func(t *testing.T) {
			newGroup := env.NewLDAPGroup
			if dc.typ == directory.TypeAD {
				newGroup = env.NewADGroup
			}
			g := newGroup(t, "")
			member := dc.newUser(t, testbed.UserOptions{Groups: []string{g}})
			noMail := dc.newUser(t, testbed.UserOptions{Groups: []string{g}, NoMail: true})
			disabled := dc.newUser(t, testbed.UserOptions{Groups: []string{g}, Disabled: true})
			outside := dc.newUser(t, testbed.UserOptions{})
			c := newClient(t, config(env, dc))

			list := func(group string) map[string]directory.User {
				t.Helper()
				out := map[string]directory.User{}
				err := c.InScope(ctx(t), group, func(u directory.User) error {
					if _, dup := out[u.Login]; dup {
						t.Errorf("%s listed twice", u.Login)
					}
					out[u.Login] = u
					return nil
				})
				if err != nil {
					t.Fatalf("InScope(%q): %v", group, err)
				}
				return out
			}
			got := list(g)
			if len(got) != 2 {
				t.Errorf("group %s: %d accounts %v", g, len(got), keys(got))
			}
			if u, ok := got[member.Login]; !ok || u.Email != member.Mail || u.ID == "" || u.DN == "" {
				t.Errorf("member: %+v (in scope %v)", u, ok)
			}
			if u, ok := got[noMail.Login]; !ok || u.Email != "" {
				t.Errorf("member without mail: %+v (in scope %v)", u, ok)
			}
			if _, ok := got[disabled.Login]; ok {
				t.Errorf("the disabled member is in scope")
			}
			if _, ok := got[outside.Login]; ok {
				t.Errorf("the non-member is in the group's scope")
			}
			all := list("")
			for _, u := range []testbed.TestUser{member, noMail, outside} {
				if _, ok := all[u.Login]; !ok {
					t.Errorf("%s is not in scope for everyone", u.Login)
				}
			}
			if _, ok := all[disabled.Login]; ok {
				t.Errorf("the disabled account is in scope for everyone")
			}
			stop := errors.New("enough")
			n := 0
			if err := c.InScope(ctx(t), g, func(directory.User) error { n++; return stop }); !errors.Is(err, stop) || n != 1 {
				t.Errorf("callback error: %v after %d calls", err, n)
			}
		})
	}
}

func keys(m map[string]directory.User) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
