package directory_test

import (
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/writeback/writeback/services/directory"
	"github.com/writeback/writeback/services/errs"
	"github.com/writeback/writeback/testbed"
)

// sent records the requests a client sends.
type sent struct {
	mu   sync.Mutex
	list []directory.Request
}

func recordSent(c *directory.Client) *sent {
	r := &sent{}
	c.OnRequest(func(q directory.Request) {
		r.mu.Lock()
		r.list = append(r.list, q)
		r.mu.Unlock()
	})
	return r
}

// take returns the requests since the last take as op/kind words.
func (r *sent) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, q := range r.list {
		out = append(out, q.Op+"/"+q.Kind)
	}
	r.list = nil
	return out
}

// TestResetLoginReadsOnce: ResetLogin and UnlockLogin send one search (the
// account with its state and protection) and then the write, on a pooled
// connection; a user's own groups nested in others cost nothing more once
// seen; OpenLDAP unlocks on a reset only an account the read saw locked.
func TestResetLoginReadsOnce(t *testing.T) {
	env := testbed.Load(t)
	for _, dc := range dirCases(env) {
		t.Run(dc.name, func(t *testing.T) {
			c := newClient(t, config(env, dc))
			var opts testbed.UserOptions
			if dc.typ == directory.TypeAD {
				inner, outer := env.NewADGroup(t, ""), env.NewADGroup(t, "")
				env.AddADMember(t, outer, inner)
				opts.Groups = []string{inner}
			}
			tu := dc.newUser(t, opts)
			// Warm: pool, root DSE, protected groups, group nesting, policy
			// (the policies are cached for a minute).
			find(t, c, tu.Login)
			if _, err := c.Policy(ctx(t), directory.User{}); err != nil {
				t.Fatal(err)
			}
			rec := recordSent(c)
			write := "reset/modify"
			if dc.typ == directory.TypeOpenLDAP {
				write = "reset/extended"
			}

			pw := testbed.RandomPassword()
			u, res, err := c.ResetLogin(ctx(t), tu.Login, pw, directory.ResetOptions{Unlock: true})
			if err != nil {
				t.Fatalf("ResetLogin: %v", err)
			}
			if !strings.EqualFold(u.DN, tu.DN) || u.ID == "" || res.Server != dc.d.URL {
				t.Fatalf("ResetLogin returned %+v, %+v", u, res)
			}
			if got := rec.take(); !slices.Equal(got, []string{"reset/search", write}) {
				t.Errorf("ResetLogin sent %v", got)
			}
			if err := env.BindAs(t, dc.d, tu.DN, pw); err != nil {
				t.Fatalf("bind with the new password: %v", err)
			}
			if _, _, err := c.UnlockLogin(ctx(t), tu.Login); err != nil {
				t.Fatalf("UnlockLogin: %v", err)
			}
			if got := rec.take(); !slices.Equal(got, []string{"unlock/search", "unlock/modify"}) {
				t.Errorf("UnlockLogin sent %v", got)
			}

			// A locked account: the same reset also unlocks it (on AD in the
			// same Modify, on OpenLDAP with one more after the write).
			dc.lock(t, tu)
			pw = testbed.RandomPassword()
			if u, _, err = c.ResetLogin(ctx(t), tu.Login, pw, directory.ResetOptions{Unlock: true}); err != nil || !u.Locked {
				t.Fatalf("ResetLogin of a locked account: %+v, %v", u, err)
			}
			got := rec.take()
			if i := slices.Index(got, write); i != 1 || len(got) > 2 && (dc.typ == directory.TypeAD || !slices.Equal(got[2:], []string{"reset/modify"})) {
				t.Errorf("ResetLogin of a locked account sent %v", got)
			}
			if u := find(t, c, tu.Login); u.Locked {
				t.Fatalf("still locked after ResetLogin with Unlock: %+v", u)
			}
			rec.take()

			// A password the policy refuses is explained as by Reset (on AD
			// the lean read asks for the fine-grained policy only then).
			_, _, err = c.ResetLogin(ctx(t), tu.Login, "Ab1-x", directory.ResetOptions{})
			wantCode(t, err, directory.CodePolicy, errs.Policy)
			if msg := errs.MessageOf(err); !strings.Contains(msg, "too short: at least 7 characters") {
				t.Errorf("refused password: %q", msg)
			}
			rec.take()

			// Nobody there: one search, no write, a zero User.
			u, _, err = c.ResetLogin(ctx(t), tu.Login+"x", pw, directory.ResetOptions{})
			wantCode(t, err, directory.CodeNotFound, errs.NotFound)
			if u.DN != "" {
				t.Errorf("ResetLogin of nobody returned %+v", u)
			}
			if got := rec.take(); !slices.Equal(got, []string{"reset/search"}) {
				t.Errorf("ResetLogin of nobody sent %v", got)
			}
		})
	}
}

// TestResetLoginRefuses: protected and disabled accounts are refused by
// ResetLogin and UnlockLogin, which return the account as read so the
// caller can say why; nothing is written.
func TestResetLoginRefuses(t *testing.T) {
	env := testbed.Load(t)
	for _, dc := range dirCases(env) {
		t.Run(dc.name, func(t *testing.T) {
			cfg := config(env, dc)
			var protected testbed.TestUser
			if dc.typ == directory.TypeAD {
				g := env.NewADGroup(t, "")
				env.AddADMember(t, "CN=Account Operators,CN=Builtin,"+env.AD.BaseDN, g)
				protected = env.NewADUser(t, testbed.UserOptions{Groups: []string{g}})
			} else {
				g := env.NewLDAPGroup(t, "")
				cfg.ExcludedGroups = []string{env.NewLDAPGroup(t, ""), g}
				protected = env.NewLDAPUser(t, testbed.UserOptions{Groups: []string{g}})
			}
			disabled := dc.newUser(t, testbed.UserOptions{Disabled: true})
			c := newClient(t, cfg)
			rec := recordSent(c)
			for _, tc := range []struct {
				tu   testbed.TestUser
				code directory.Code
			}{{protected, directory.CodeProtected}, {disabled, directory.CodeDisabled}} {
				u, _, err := c.ResetLogin(ctx(t), tc.tu.Login, testbed.RandomPassword(), directory.ResetOptions{Unlock: true})
				wantCode(t, err, tc.code, errs.Forbidden)
				if !strings.EqualFold(u.DN, tc.tu.DN) || u.Protected != (tc.code == directory.CodeProtected) || u.Disabled != (tc.code == directory.CodeDisabled) {
					t.Errorf("refused ResetLogin returned %+v", u)
				}
				u, _, err = c.UnlockLogin(ctx(t), tc.tu.Login)
				wantCode(t, err, tc.code, errs.Forbidden)
				if !strings.EqualFold(u.DN, tc.tu.DN) {
					t.Errorf("refused UnlockLogin returned %+v", u)
				}
			}
			if got := rec.take(); slices.ContainsFunc(got, func(s string) bool {
				return strings.HasSuffix(s, "/modify") || strings.HasSuffix(s, "/extended")
			}) {
				t.Errorf("a refused action wrote: %v", got)
			}
			if err := env.BindAs(t, dc.d, protected.DN, protected.Password); err != nil {
				t.Errorf("the protected account's password changed: %v", err)
			}
		})
	}
}

// TestExcludedGroupsOneSearch: on OpenLDAP the excluded groups are checked
// in one search however many there are, groups that do not exist are
// skipped, and the reason names the first configured group the account is in.
func TestExcludedGroupsOneSearch(t *testing.T) {
	env := testbed.Load(t)
	dc := dirCases(env)[1]
	g1, g2, g3 := env.NewLDAPGroup(t, ""), env.NewLDAPGroup(t, ""), env.NewLDAPGroup(t, "")
	cfg := config(env, dc)
	cfg.ExcludedGroups = []string{g1, "cn=wb-no-such-group," + env.LDAP.PeopleDN, g2, g3}
	c := newClient(t, cfg)
	in23 := env.NewLDAPUser(t, testbed.UserOptions{Groups: []string{g3, g2}})
	plain := env.NewLDAPUser(t, testbed.UserOptions{})
	find(t, c, plain.Login) // warm
	rec := recordSent(c)
	if u := find(t, c, in23.Login); !u.Protected || u.ProtectedReason != "member of "+g2 {
		t.Errorf("a member of two excluded groups reads as %v %q, want the reason naming %s", u.Protected, u.ProtectedReason, g2)
	}
	if u := find(t, c, plain.Login); u.Protected {
		t.Errorf("a user in no excluded group reads as protected: %q", u.ProtectedReason)
	}
	if got := rec.take(); !slices.Equal(got, []string{"find/search", "find/search", "find/search", "find/search"}) {
		t.Errorf("two lookups sent %v, want two searches each", got)
	}

	// uniqueMember counts as well as member.
	admin := env.AdminConn(t, env.LDAP)
	add := ldap.NewAddRequest("cn=wbu"+strings.TrimPrefix(plain.Login, "wbt")+","+env.LDAP.PeopleDN, nil)
	add.Attribute("objectClass", []string{"groupOfUniqueNames"})
	add.Attribute("uniqueMember", []string{plain.DN})
	if err := admin.Add(add); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = admin.Del(ldap.NewDelRequest(add.DN, nil)) })
	cfg.ExcludedGroups = append(cfg.ExcludedGroups, add.DN)
	c = newClient(t, cfg)
	if u := find(t, c, plain.Login); !u.Protected || !strings.Contains(u.ProtectedReason, add.DN) {
		t.Errorf("a uniqueMember of an excluded group reads as %v %q", u.Protected, u.ProtectedReason)
	}
}

// TestAfterReset: what a reset or an unlock is known to leave, without
// reading the account again.
func TestAfterReset(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	locked := directory.User{Login: "alice", Locked: true, LockedUntil: now.Add(time.Hour), PasswordExpired: true,
		PasswordLastSet: now.Add(-time.Hour), Protected: false}
	for _, tc := range []struct {
		name string
		got  directory.User
		want directory.User
	}{
		{"reset and unlock", locked.AfterReset(directory.ResetOptions{Unlock: true}, now),
			directory.User{Login: "alice", PasswordLastSet: now}},
		{"reset, must change", locked.AfterReset(directory.ResetOptions{Unlock: true, MustChange: true}, now),
			directory.User{Login: "alice", MustChange: true}},
		{"reset, lock kept", locked.AfterReset(directory.ResetOptions{}, now),
			directory.User{Login: "alice", Locked: true, LockedUntil: now.Add(time.Hour), PasswordLastSet: now}},
		{"unlock", locked.AfterUnlock(),
			directory.User{Login: "alice", PasswordExpired: true, PasswordLastSet: now.Add(-time.Hour)}},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.name, tc.got, tc.want)
		}
	}
}
