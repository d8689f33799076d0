package writeback_test

import (
	"context"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/go-ldap/ldap/v3"

	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/directory"
	"github.com/writeback/writeback/services/errs"
	"github.com/writeback/writeback/services/keyring"
	"github.com/writeback/writeback/services/settings"
	"github.com/writeback/writeback/services/writeback"
	"github.com/writeback/writeback/store"
	"github.com/writeback/writeback/testbed"
)

// testDir is one of the test bed's directories as the writeback service is
// pointed at it.
type testDir struct {
	name    string
	typ     directory.Type
	d       testbed.Directory
	newUser func(testing.TB, testbed.UserOptions) testbed.TestUser
}

func testDirs(env testbed.Env) []testDir {
	return []testDir{
		{"ad", directory.TypeAD, env.AD, env.NewADUser},
		{"openldap", directory.TypeOpenLDAP, env.LDAP, env.NewLDAPUser},
	}
}

// helpdesk makes a writeback service with a connection to d (with in's
// extra settings) and writeback on.
func helpdesk(t testing.TB, env testbed.Env, d testDir, in writeback.Input) fixture {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, filepath.Join(t.TempDir(), store.FileName))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	set := settings.New(db)
	f := fixture{db: db, set: set, wb: writeback.New(db, set, keyring.New(make([]byte, 32)), slog.New(slog.DiscardHandler))}
	t.Cleanup(func() { f.wb.Close() })
	in.Type, in.URLs, in.CAPEM = d.typ, []string{d.d.URL}, env.CAPEM()
	in.BindDN, in.BindPassword, in.PasswordWriteback = d.d.BindDN, d.d.BindPassword, true
	if len(in.BaseDNs) == 0 {
		in.BaseDNs = []string{d.d.PeopleDN}
	}
	if _, err := f.wb.SaveConnection(ctx, audit.CommandLine, 0, in); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.set.SaveOnPrem(ctx, audit.CommandLine, 0, settings.OnPrem{Writeback: true, Unlock: true}); err != nil {
		t.Fatal(err)
	}
	return f
}

// requests records what a directory client sends.
type requests struct {
	mu   sync.Mutex
	list []directory.Request
}

func record(t *testing.T, wb *writeback.Service) *requests {
	t.Helper()
	d, _, err := wb.Client(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	cl := d.(*directory.Client) // a direct connection: its requests can be watched
	r := &requests{}
	cl.OnRequest(func(q directory.Request) {
		r.mu.Lock()
		r.list = append(r.list, q)
		r.mu.Unlock()
	})
	t.Cleanup(func() { cl.OnRequest(nil) })
	return r
}

// take returns what was sent since the last take.
func (r *requests) take() []directory.Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	l := r.list
	r.list = nil
	return l
}

// beforeWrite splits requests at the first write.
func beforeWrite(l []directory.Request) (before []directory.Request, wrote bool) {
	i := slices.IndexFunc(l, directory.Request.IsWrite)
	if i < 0 {
		return l, false
	}
	return l[:i], true
}

func kinds(l []directory.Request) string {
	var s []string
	for _, q := range l {
		s = append(s, q.Op+"/"+q.Kind)
	}
	return "[" + strings.Join(s, " ") + "]"
}

// TestHelpdeskActionReadsOnce: a helpdesk reset and unlock read the account
// once, right before the write, on the pooled connection: no lookup followed
// by a re-read, no read after the write, no search per excluded group. The
// counts are of the steady state (the root DSE, the domain's protected
// groups and the password policy are read once in a while, not per action).
func TestHelpdeskActionReadsOnce(t *testing.T) {
	env := testbed.Load(t)
	ctx := context.Background()
	dirs := testDirs(env)
	for _, tc := range []struct {
		name     string
		d        testDir
		excluded int
	}{{"ad", dirs[0], 0}, {"openldap", dirs[1], 0}, {"openldap with three excluded groups", dirs[1], 3}} {
		d := tc.d
		t.Run(tc.name, func(t *testing.T) {
			in := writeback.Input{}
			var groups []string
			for range tc.excluded {
				// One search checks them all, however many.
				groups = append(groups, env.NewLDAPGroup(t, ""))
			}
			in.ExcludedGroups = groups
			f := helpdesk(t, env, d, in)
			rec := record(t, f.wb)

			var opts testbed.UserOptions
			if d.typ == directory.TypeAD {
				// In a group nested in another: the protection check
				// follows both without searching for them on every action.
				inner, outer := env.NewADGroup(t, ""), env.NewADGroup(t, "")
				env.AddADMember(t, outer, inner)
				opts.Groups = []string{inner}
			}
			tu := d.newUser(t, opts)
			plain := d.newUser(t, testbed.UserOptions{})
			// Warm up: pool, root DSE, protected groups, policy.
			if _, err := f.wb.AdminReset(ctx, audit.CommandLine, tu.Login, testbed.RandomPassword(), false); err != nil {
				t.Fatalf("warm-up reset: %v", err)
			}
			rec.take()

			maxReads := 1
			if len(groups) > 0 {
				maxReads = 2 // the account, then one search over every excluded group
			}
			for _, login := range []string{tu.Login, plain.Login} {
				for _, action := range []struct {
					name string
					do   func() (directory.User, error)
				}{
					{"reset", func() (directory.User, error) {
						return f.wb.AdminReset(ctx, audit.CommandLine, login, testbed.RandomPassword(), false)
					}},
					{"unlock", func() (directory.User, error) { return f.wb.AdminUnlock(ctx, audit.CommandLine, login) }},
				} {
					u, err := action.do()
					if err != nil {
						t.Fatalf("%s %s: %v", action.name, login, err)
					}
					if u.Login != login {
						t.Fatalf("%s %s returned %+v", action.name, login, u)
					}
					sent := rec.take()
					t.Logf("%s %s: %s", action.name, login, kinds(sent))
					before, wrote := beforeWrite(sent)
					if !wrote {
						t.Fatalf("%s %s: no write among %s", action.name, login, kinds(sent))
					}
					if len(before) > maxReads || slices.ContainsFunc(before, func(q directory.Request) bool { return q.Kind != directory.KindSearch }) {
						t.Errorf("%s %s: %d requests before the write %s, want at most %d search(es)",
							action.name, login, len(before), kinds(sent), maxReads)
					}
					if after := sent[len(before)+1:]; len(after) > 0 {
						t.Errorf("%s %s: requests after the write %s", action.name, login, kinds(sent))
					}
				}
			}
		})
	}
}

// TestHelpdeskRefusesWhatChangedSincePageLoad: an account that becomes
// protected or disabled between the helpdesk page's lookup and the press of
// the button is refused, and its password stays: the one read is made right
// before the write.
func TestHelpdeskRefusesWhatChangedSincePageLoad(t *testing.T) {
	env := testbed.Load(t)
	ctx := context.Background()
	for _, d := range testDirs(env) {
		t.Run(d.name, func(t *testing.T) {
			in := writeback.Input{}
			var excluded string
			if d.typ == directory.TypeOpenLDAP {
				excluded = env.NewLDAPGroup(t, "")
				in.ExcludedGroups = []string{env.NewLDAPGroup(t, ""), excluded}
			}
			f := helpdesk(t, env, d, in)
			admin := env.AdminConn(t, d.d)

			protect := func(t *testing.T, tu testbed.TestUser) {
				if d.typ == directory.TypeAD {
					env.AddADMember(t, "CN=Backup Operators,CN=Builtin,"+env.AD.BaseDN, tu.DN)
					return
				}
				mod := ldap.NewModifyRequest(excluded, nil)
				mod.Add("member", []string{tu.DN})
				if err := admin.Modify(mod); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() {
					mod := ldap.NewModifyRequest(excluded, nil)
					mod.Delete("member", []string{tu.DN})
					_ = admin.Modify(mod)
				})
			}
			protectNested := func(t *testing.T, tu testbed.TestUser) {
				// A group already nested in a protected one, and already
				// seen by the portal (a member of it was looked up).
				g := env.NewADGroup(t, "")
				env.AddADMember(t, "CN=Backup Operators,CN=Builtin,"+env.AD.BaseDN, g)
				other := env.NewADUser(t, testbed.UserOptions{Groups: []string{g}})
				if u, err := f.wb.Lookup(ctx, other.Login); err != nil || !u.Protected {
					t.Fatalf("a member of a group in Backup Operators: %+v, %v", u, err)
				}
				env.AddADMember(t, g, tu.DN)
			}
			disable := func(t *testing.T, tu testbed.TestUser) {
				mod := ldap.NewModifyRequest(tu.DN, nil)
				if d.typ == directory.TypeAD {
					mod.Replace("userAccountControl", []string{"514"})
				} else {
					mod.Replace("pwdAccountLockedTime", []string{"000001010000Z"})
				}
				if err := admin.Modify(mod); err != nil {
					t.Fatal(err)
				}
			}
			cases := []struct {
				name   string
				change func(*testing.T, testbed.TestUser)
			}{{"made protected", protect}, {"disabled", disable}}
			if d.typ == directory.TypeAD {
				cases = append(cases, struct {
					name   string
					change func(*testing.T, testbed.TestUser)
				}{"put in a protected group's member group", protectNested})
			}
			for _, tc := range cases {
				for _, action := range []string{"reset", "unlock"} {
					t.Run(tc.name+" "+action, func(t *testing.T) {
						tu := d.newUser(t, testbed.UserOptions{})
						// The page load, then a reset that works, so every
						// cache the client keeps is warm with "ordinary".
						if u, err := f.wb.Lookup(ctx, tu.Login); err != nil || u.Protected || u.Disabled {
							t.Fatalf("page load: %+v, %v", u, err)
						}
						pw := testbed.RandomPassword()
						if _, err := f.wb.AdminReset(ctx, audit.CommandLine, tu.Login, pw, false); err != nil {
							t.Fatalf("first reset: %v", err)
						}
						stampAttr := "pwdChangedTime"
						if d.typ == directory.TypeAD {
							stampAttr = "pwdLastSet"
						}
						stamp := env.ReadAttr(t, d.d, tu.DN, stampAttr)
						tc.change(t, tu)
						var err error
						if action == "reset" {
							_, err = f.wb.AdminReset(ctx, audit.CommandLine, tu.Login, testbed.RandomPassword(), false)
						} else {
							_, err = f.wb.AdminUnlock(ctx, audit.CommandLine, tu.Login)
						}
						if errs.KindOf(err) != errs.Forbidden {
							t.Fatalf("%s after the account was %s: %v, want refused", action, tc.name, err)
						}
						if now := env.ReadAttr(t, d.d, tu.DN, stampAttr); now != stamp {
							t.Fatalf("the password was written: %s %s, then %s", stampAttr, stamp, now)
						}
						if tc.name != "disabled" {
							if err := env.BindAs(t, d.d, tu.DN, pw); err != nil {
								t.Fatalf("the password changed: %v", err)
							}
						}
					})
				}
			}
		})
	}
}
