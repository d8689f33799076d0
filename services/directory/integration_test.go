package directory_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/writeback/writeback/services/directory"
	"github.com/writeback/writeback/services/errs"
	"github.com/writeback/writeback/testbed"
)

// These tests run against the real Samba AD DC and OpenLDAP slapd that
// testbed/up.sh starts (skipped without it, failed in CI without it).

// dirCase is one of the two test directories.
type dirCase struct {
	name    string
	typ     directory.Type
	d       testbed.Directory
	newUser func(t testing.TB, o testbed.UserOptions) testbed.TestUser
	lock    func(t testing.TB, u testbed.TestUser)
}

func dirCases(env testbed.Env) []dirCase {
	return []dirCase{
		{"ad", directory.TypeAD, env.AD, env.NewADUser, env.LockAD},
		{"openldap", directory.TypeOpenLDAP, env.LDAP, env.NewLDAPUser, env.LockLDAP},
	}
}

// config is the portal's configuration for dc with the real service account.
func config(env testbed.Env, dc dirCase) directory.Config {
	c := directory.Defaults(dc.typ, dc.d.BaseDN)
	c.URLs = []string{dc.d.URL}
	c.CAPEM = env.CAPEM()
	c.BindDN, c.BindPassword = dc.d.BindDN, dc.d.BindPassword
	c.BaseDNs = []string{dc.d.PeopleDN}
	return c
}

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func newClient(t testing.TB, cfg directory.Config) *directory.Client {
	t.Helper()
	c, err := directory.New(cfg, testLogger(t))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

// wantCode fails unless err is an *errs.Error of kind whose cause is an
// *OpError with code, and returns that OpError.
func wantCode(t *testing.T, err error, code directory.Code, kind errs.Kind) *directory.OpError {
	t.Helper()
	if err == nil {
		t.Fatalf("want %s error, got success", code)
	}
	var e *errs.Error
	if !errors.As(err, &e) {
		t.Fatalf("want *errs.Error, got %T: %v", err, err)
	}
	var oe *directory.OpError
	if !errors.As(err, &oe) {
		t.Fatalf("want *directory.OpError cause, got %v", err)
	}
	if oe.Code != code || e.Kind != kind {
		t.Fatalf("want code %s kind %s, got code %s kind %s: %v", code, kind, oe.Code, e.Kind, err)
	}
	return oe
}

func find(t *testing.T, c *directory.Client, login string) directory.User {
	t.Helper()
	u, _, err := c.Find(ctx(t), login)
	if err != nil {
		t.Fatalf("Find(%q): %v", login, err)
	}
	return u
}

// change changes login's password as the portal does, less its attempt
// budget: the lookup, then ChangeUser.
func change(ctx context.Context, c *directory.Client, login, oldPassword, newPassword string) (directory.User, directory.Result, error) {
	u, res, err := c.Find(ctx, login)
	if err != nil {
		return directory.User{}, res, err
	}
	return c.ChangeUser(ctx, u, oldPassword, newPassword)
}

func TestResetThenBind(t *testing.T) {
	env := testbed.Load(t)
	for _, dc := range dirCases(env) {
		t.Run(dc.name, func(t *testing.T) {
			c := newClient(t, config(env, dc))
			tu := dc.newUser(t, testbed.UserOptions{})
			u := find(t, c, tu.Login)
			if u.DN == "" || u.ID == "" || u.Login != tu.Login || u.Email != tu.Mail || !strings.Contains(u.DisplayName, tu.Login) {
				t.Fatalf("Find: unexpected %+v", u)
			}
			if u.Locked || u.Disabled || u.MustChange || u.Protected {
				t.Fatalf("fresh user has state %+v", u)
			}
			if !strings.EqualFold(u.DN, tu.DN) {
				t.Fatalf("DN %q, want %q", u.DN, tu.DN)
			}
			// Every login attribute finds the same user.
			for _, login := range []string{tu.Mail, tu.UPN} {
				if login == "" {
					continue
				}
				if v := find(t, c, login); v.ID != u.ID {
					t.Fatalf("Find(%q) = %s, want %s", login, v.ID, u.ID)
				}
			}

			newPw := testbed.RandomPassword()
			res, err := c.Reset(ctx(t), u, newPw, directory.ResetOptions{})
			if err != nil {
				t.Fatalf("Reset: %v", err)
			}
			if res.Server != dc.d.URL {
				t.Fatalf("Result.Server = %q, want %q", res.Server, dc.d.URL)
			}
			if err := env.BindAs(t, dc.d, u.DN, newPw); err != nil {
				t.Fatalf("bind with the new password: %v", err)
			}
			if err := env.BindAs(t, dc.d, u.DN, tu.Password); err == nil {
				t.Fatalf("the old password still works after a reset")
			}
			after, _, err := c.Get(ctx(t), u.DN)
			if err != nil {
				t.Fatalf("Get: %v", err)
			}
			if after.MustChange || after.ID != u.ID {
				t.Fatalf("after a reset without MustChange: %+v", after)
			}
		})
	}
}

func TestResetMustChangeThenChange(t *testing.T) {
	env := testbed.Load(t)
	for _, dc := range dirCases(env) {
		t.Run(dc.name, func(t *testing.T) {
			c := newClient(t, config(env, dc))
			tu := dc.newUser(t, testbed.UserOptions{})
			u := find(t, c, tu.Login)
			temp := testbed.RandomPassword()
			if _, err := c.Reset(ctx(t), u, temp, directory.ResetOptions{MustChange: true}); err != nil {
				t.Fatalf("Reset: %v", err)
			}
			if u = find(t, c, tu.Login); !u.MustChange {
				t.Fatalf("MustChange not set after a reset with MustChange: %+v", u)
			}
			// A user who must change can still change with the temporary password.
			final := testbed.RandomPassword()
			_, res, err := change(ctx(t), c, tu.Login, temp, final)
			if err != nil {
				t.Fatalf("Change: %v", err)
			}
			// The change reads nothing after its write: read the account.
			if after := find(t, c, tu.Login); res.Server != dc.d.URL || after.MustChange || after.PasswordLastSet.IsZero() {
				t.Fatalf("after Change: %+v (server %s)", after, res.Server)
			}
			if err := env.BindAs(t, dc.d, u.DN, final); err != nil {
				t.Fatalf("bind with the changed password: %v", err)
			}
		})
	}
}

func TestChange(t *testing.T) {
	env := testbed.Load(t)
	for _, dc := range dirCases(env) {
		t.Run(dc.name, func(t *testing.T) {
			c := newClient(t, config(env, dc))
			tu := dc.newUser(t, testbed.UserOptions{})

			t.Run("wrong current password", func(t *testing.T) {
				_, _, err := change(ctx(t), c, tu.Login, "Not-The-Password-1", testbed.RandomPassword())
				wantCode(t, err, directory.CodeBadPassword, errs.Unauthorized)
				if !strings.Contains(errs.MessageOf(err), "current password is not correct") {
					t.Fatalf("message %q", errs.MessageOf(err))
				}
			})
			t.Run("too short", func(t *testing.T) {
				_, _, err := change(ctx(t), c, tu.Login, tu.Password, "Ab1-x")
				oe := wantCode(t, err, directory.CodePolicy, errs.Policy)
				if msg := errs.MessageOf(err); !strings.Contains(msg, "too short: at least 7 characters") {
					t.Fatalf("message %q", msg)
				}
				if oe.Rule != "length" || oe.LDAPResult == 0 || oe.Server != dc.d.URL {
					t.Fatalf("OpError %+v", oe)
				}
			})
			t.Run("with the old password", func(t *testing.T) {
				newPw := testbed.RandomPassword()
				u, _, err := change(ctx(t), c, tu.Login, tu.Password, newPw)
				if err != nil {
					t.Fatalf("Change: %v", err)
				}
				if !strings.EqualFold(u.DN, tu.DN) {
					t.Fatalf("Change returned %+v", u)
				}
				if err := env.BindAs(t, dc.d, tu.DN, newPw); err != nil {
					t.Fatalf("bind with the new password: %v", err)
				}
				if err := env.BindAs(t, dc.d, tu.DN, tu.Password); err == nil {
					t.Fatalf("the old password still works after a change")
				}
				tu.Password = newPw
			})
			t.Run("reused", func(t *testing.T) {
				// Change away and back again: the history refuses it.
				next := testbed.RandomPassword()
				if _, _, err := change(ctx(t), c, tu.Login, tu.Password, next); err != nil {
					t.Fatalf("Change: %v", err)
				}
				_, _, err := change(ctx(t), c, tu.Login, next, tu.Password)
				wantCode(t, err, directory.CodePolicy, errs.Policy)
				t.Logf("reuse refused: %s", errs.MessageOf(err))
				if dc.typ == directory.TypeOpenLDAP && !strings.Contains(errs.MessageOf(err), "not used recently") {
					t.Fatalf("message %q", errs.MessageOf(err))
				}
			})
		})
	}
}

func TestResetTooShort(t *testing.T) {
	env := testbed.Load(t)
	for _, dc := range dirCases(env) {
		t.Run(dc.name, func(t *testing.T) {
			c := newClient(t, config(env, dc))
			tu := dc.newUser(t, testbed.UserOptions{})
			u := find(t, c, tu.Login)
			_, err := c.Reset(ctx(t), u, "Ab1-x", directory.ResetOptions{})
			oe := wantCode(t, err, directory.CodePolicy, errs.Policy)
			if msg := errs.MessageOf(err); !strings.Contains(msg, "too short: at least 7 characters") {
				t.Fatalf("message %q", msg)
			}
			t.Logf("diagnostic for administrators: %d %q", oe.LDAPResult, oe.Diagnostic)
			if dc.typ == directory.TypeAD {
				_, err := c.Reset(ctx(t), u, "alllowercase", directory.ResetOptions{})
				wantCode(t, err, directory.CodePolicy, errs.Policy)
				if msg := errs.MessageOf(err); !strings.Contains(msg, "not complex enough") {
					t.Fatalf("message %q", msg)
				}
			}
			if err := env.BindAs(t, dc.d, tu.DN, tu.Password); err != nil {
				t.Fatalf("a refused reset changed the password: %v", err)
			}
		})
	}
}

func TestNonASCIIPassword(t *testing.T) {
	env := testbed.Load(t)
	const pw = "Pässwörd-Ω1x"
	for _, dc := range dirCases(env) {
		t.Run(dc.name, func(t *testing.T) {
			c := newClient(t, config(env, dc))
			tu := dc.newUser(t, testbed.UserOptions{})
			u := find(t, c, tu.Login)
			if _, err := c.Reset(ctx(t), u, pw, directory.ResetOptions{}); err != nil {
				t.Fatalf("Reset: %v", err)
			}
			if err := env.BindAs(t, dc.d, tu.DN, pw); err != nil {
				t.Fatalf("bind with %q: %v", pw, err)
			}
			next := "Ünïcode-Päss-2ß"
			if _, _, err := change(ctx(t), c, tu.Login, pw, next); err != nil {
				t.Fatalf("Change from a non-ASCII password: %v", err)
			}
			if err := env.BindAs(t, dc.d, tu.DN, next); err != nil {
				t.Fatalf("bind with %q: %v", next, err)
			}
		})
	}
}

func TestLockUnlock(t *testing.T) {
	env := testbed.Load(t)
	for _, dc := range dirCases(env) {
		t.Run(dc.name, func(t *testing.T) {
			c := newClient(t, config(env, dc))
			tu := dc.newUser(t, testbed.UserOptions{})
			dc.lock(t, tu)
			u := find(t, c, tu.Login)
			if !u.Locked || u.Disabled {
				t.Fatalf("after lockout: %+v", u)
			}
			if until := time.Until(u.LockedUntil); until < 25*time.Minute || until > 31*time.Minute {
				t.Fatalf("LockedUntil %v is not about 30 minutes away", u.LockedUntil)
			}
			// A locked user cannot change the password.
			_, _, err := change(ctx(t), c, tu.Login, tu.Password, testbed.RandomPassword())
			wantCode(t, err, directory.CodeLocked, errs.Forbidden)

			res, err := c.Unlock(ctx(t), u)
			if err != nil {
				t.Fatalf("Unlock: %v", err)
			}
			if res.Server != dc.d.URL {
				t.Fatalf("Result %+v", res)
			}
			if u = find(t, c, tu.Login); u.Locked || !u.LockedUntil.IsZero() {
				t.Fatalf("after Unlock: %+v", u)
			}
			if err := env.BindAs(t, dc.d, tu.DN, tu.Password); err != nil {
				t.Fatalf("bind with the unchanged password after Unlock: %v", err)
			}
			// Unlocking an account that is not locked is fine.
			if _, err := c.Unlock(ctx(t), u); err != nil {
				t.Fatalf("second Unlock: %v", err)
			}
		})
	}
}

func TestResetUnlocks(t *testing.T) {
	env := testbed.Load(t)
	for _, dc := range dirCases(env) {
		t.Run(dc.name, func(t *testing.T) {
			c := newClient(t, config(env, dc))
			tu := dc.newUser(t, testbed.UserOptions{})
			dc.lock(t, tu)
			u := find(t, c, tu.Login)
			newPw := testbed.RandomPassword()
			if _, err := c.Reset(ctx(t), u, newPw, directory.ResetOptions{Unlock: true}); err != nil {
				t.Fatalf("Reset with Unlock: %v", err)
			}
			if u = find(t, c, tu.Login); u.Locked {
				t.Fatalf("still locked after Reset with Unlock: %+v", u)
			}
			if err := env.BindAs(t, dc.d, tu.DN, newPw); err != nil {
				t.Fatalf("bind: %v", err)
			}
		})
	}
}

func TestDisabledRefused(t *testing.T) {
	env := testbed.Load(t)
	for _, dc := range dirCases(env) {
		t.Run(dc.name, func(t *testing.T) {
			c := newClient(t, config(env, dc))
			tu := dc.newUser(t, testbed.UserOptions{Disabled: true})
			u := find(t, c, tu.Login)
			if !u.Disabled || u.Locked {
				t.Fatalf("disabled user reads as %+v", u)
			}
			_, err := c.Unlock(ctx(t), u)
			wantCode(t, err, directory.CodeDisabled, errs.Forbidden)
			_, err = c.Reset(ctx(t), u, testbed.RandomPassword(), directory.ResetOptions{Unlock: true})
			wantCode(t, err, directory.CodeDisabled, errs.Forbidden)
			_, _, err = change(ctx(t), c, tu.Login, tu.Password, testbed.RandomPassword())
			wantCode(t, err, directory.CodeDisabled, errs.Forbidden)
			if u = find(t, c, tu.Login); !u.Disabled {
				t.Fatalf("no longer disabled: %+v", u)
			}
		})
	}
}

func TestProtectedRefused(t *testing.T) {
	env := testbed.Load(t)
	t.Run("ad adminCount", func(t *testing.T) {
		dc := dirCases(env)[0]
		c := newClient(t, config(env, dc))
		tu := env.NewADUser(t, testbed.UserOptions{AdminCount: true})
		u := find(t, c, tu.Login)
		if !u.Protected || !strings.Contains(u.ProtectedReason, "adminCount") {
			t.Fatalf("adminCount=1 user reads as %+v", u)
		}
		_, err := c.Reset(ctx(t), u, testbed.RandomPassword(), directory.ResetOptions{})
		wantCode(t, err, directory.CodeProtected, errs.Forbidden)
		_, err = c.Unlock(ctx(t), u)
		wantCode(t, err, directory.CodeProtected, errs.Forbidden)
	})
	t.Run("ad nested excluded group", func(t *testing.T) {
		dc := dirCases(env)[0]
		outer := env.NewADGroup(t, "")
		inner := env.NewADGroup(t, "")
		// inner is a member of outer; the user of inner only.
		admin := env.AdminConn(t, env.AD)
		mod := ldap.NewModifyRequest(outer, nil)
		mod.Add("member", []string{inner})
		if err := admin.Modify(mod); err != nil {
			t.Fatalf("nest groups: %v", err)
		}
		tu := env.NewADUser(t, testbed.UserOptions{Groups: []string{inner}})
		plain := env.NewADUser(t, testbed.UserOptions{})
		cfg := config(env, dc)
		cfg.ExcludedGroups = append(cfg.ExcludedGroups, outer)
		c := newClient(t, cfg)
		u := find(t, c, tu.Login)
		if !u.Protected || !strings.Contains(strings.ToLower(u.ProtectedReason), strings.ToLower(outer)) {
			t.Fatalf("nested member of an excluded group reads as %+v", u)
		}
		_, err := c.Reset(ctx(t), u, testbed.RandomPassword(), directory.ResetOptions{})
		wantCode(t, err, directory.CodeProtected, errs.Forbidden)
		if p := find(t, c, plain.Login); p.Protected {
			t.Fatalf("a user in no excluded group reads as protected: %+v", p)
		}
	})
	t.Run("openldap excluded group", func(t *testing.T) {
		dc := dirCases(env)[1]
		g := env.NewLDAPGroup(t, "")
		tu := env.NewLDAPUser(t, testbed.UserOptions{Groups: []string{g}})
		cfg := config(env, dc)
		cfg.ExcludedGroups = []string{g}
		c := newClient(t, cfg)
		u := find(t, c, tu.Login)
		if !u.Protected {
			t.Fatalf("member of an excluded group reads as %+v", u)
		}
		_, err := c.Reset(ctx(t), u, testbed.RandomPassword(), directory.ResetOptions{})
		wantCode(t, err, directory.CodeProtected, errs.Forbidden)
		_, _, err = change(ctx(t), c, tu.Login, tu.Password, testbed.RandomPassword())
		wantCode(t, err, directory.CodeProtected, errs.Forbidden)
	})
}

func TestFilterInjection(t *testing.T) {
	env := testbed.Load(t)
	for _, dc := range dirCases(env) {
		t.Run(dc.name, func(t *testing.T) {
			c := newClient(t, config(env, dc))
			dc.newUser(t, testbed.UserOptions{})
			dc.newUser(t, testbed.UserOptions{})
			for _, login := range []string{"*", "*)(uid=*", "*)(sAMAccountName=*", "*)(|(objectClass=*)", `\2a`, "wbt*", "(", ")"} {
				_, _, err := c.Find(ctx(t), login)
				wantCode(t, err, directory.CodeNotFound, errs.NotFound)
			}
		})
	}
}

// TestControlCharactersRefused: Samba ends a value at a NUL, so
// "alice\x00junk" would find alice; a typed name with any control or format
// character never reaches a filter.
func TestControlCharactersRefused(t *testing.T) {
	env := testbed.Load(t)
	for _, dc := range dirCases(env) {
		t.Run(dc.name, func(t *testing.T) {
			c := newClient(t, config(env, dc))
			tu := dc.newUser(t, testbed.UserOptions{})
			for _, login := range []string{tu.Login + "\x00junk", tu.Login + "\x00", tu.Login + "\n", tu.Login + "\u200b", "\x00" + tu.Login} {
				u, _, err := c.Find(ctx(t), login)
				wantCode(t, err, directory.CodeInvalid, errs.Invalid)
				if !directory.IsIdentifierError(err) || u.DN != "" {
					t.Errorf("Find(%q) = %q, %v; want an identifier error and no account", login, u.DN, err)
				}
				_, err = c.Search(ctx(t), login, 10)
				wantCode(t, err, directory.CodeInvalid, errs.Invalid)
				// The sign-in pages' lookup, before any password is sent.
				cand, _, err := c.Resolve(ctx(t), login)
				wantCode(t, err, directory.CodeInvalid, errs.Invalid)
				if !directory.IsIdentifierError(err) || cand.User.DN != "" {
					t.Errorf("Resolve(%q) = %q, %v; want an identifier error and no account", login, cand.User.DN, err)
				}
			}
			if u := find(t, c, "  "+tu.Login+" "); u.DN != tu.DN {
				t.Errorf("the plain login with spaces finds %q", u.DN)
			}
		})
	}
}

func TestFailover(t *testing.T) {
	env := testbed.Load(t)
	for _, dc := range dirCases(env) {
		t.Run(dc.name, func(t *testing.T) {
			cfg := config(env, dc)
			cfg.URLs = []string{env.DeadURL, dc.d.URL}
			c := newClient(t, cfg)
			tu := dc.newUser(t, testbed.UserOptions{})
			u, res, err := c.Find(ctx(t), tu.Login)
			if err != nil {
				t.Fatalf("Find: %v", err)
			}
			if res.Server != dc.d.URL {
				t.Fatalf("Result.Server = %q, want the second URL %q", res.Server, dc.d.URL)
			}
			newPw := testbed.RandomPassword()
			res, err = c.Reset(ctx(t), u, newPw, directory.ResetOptions{})
			if err != nil || res.Server != dc.d.URL {
				t.Fatalf("Reset: %v (server %q)", err, res.Server)
			}
			if err := env.BindAs(t, dc.d, tu.DN, newPw); err != nil {
				t.Fatalf("bind: %v", err)
			}
		})
	}
}

// hangingListener accepts TCP connections and never answers: a server that is
// up but stuck, which only a timeout gets past.
func hangingListener(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return "ldaps://" + ln.Addr().String()
}

func TestAllServersDead(t *testing.T) {
	env := testbed.Load(t)
	for _, dc := range dirCases(env) {
		t.Run(dc.name, func(t *testing.T) {
			cfg := config(env, dc)
			cfg.URLs = []string{env.DeadURL, hangingListener(t)}
			cfg.Timeout = 2 * time.Second
			c := newClient(t, cfg)
			start := time.Now()
			_, _, err := c.Find(context.Background(), "anyone")
			elapsed := time.Since(start)
			oe := wantCode(t, err, directory.CodeUnavailable, errs.Unavailable)
			if elapsed > cfg.Timeout+time.Second {
				t.Fatalf("took %v with a %v timeout", elapsed, cfg.Timeout)
			}
			t.Logf("gave up after %v: %s / %v", elapsed.Round(time.Millisecond), errs.MessageOf(err), oe)
			// Only the dead one: refused at once.
			cfg.URLs = []string{env.DeadURL}
			c = newClient(t, cfg)
			start = time.Now()
			_, err = c.Reset(context.Background(), directory.User{DN: "uid=x," + dc.d.PeopleDN}, "Whatever-1x", directory.ResetOptions{})
			wantCode(t, err, directory.CodeUnavailable, errs.Unavailable)
			if !strings.Contains(errs.MessageOf(err), "not reachable") {
				t.Fatalf("message %q", errs.MessageOf(err))
			}
			if time.Since(start) > time.Second {
				t.Fatalf("a refused connection took %v", time.Since(start))
			}
		})
	}
}

func TestWrongCA(t *testing.T) {
	env := testbed.Load(t)
	for _, dc := range dirCases(env) {
		t.Run(dc.name, func(t *testing.T) {
			cfg := config(env, dc)
			cfg.CAPEM = env.WrongCAPEM()
			c := newClient(t, cfg)
			_, _, err := c.Find(ctx(t), "anyone")
			wantCode(t, err, directory.CodeCertificate, errs.Unavailable)
			msg := errs.MessageOf(err)
			if !strings.Contains(msg, "certificate signed by unknown authority") || !strings.Contains(msg, "Trusted CA certificates") {
				t.Fatalf("message %q", msg)
			}
			// The checklist says the same.
			cl := c.Test(ctx(t), "")
			if cl.OK {
				t.Fatalf("Test OK with the wrong CA: %+v", cl)
			}
			found := false
			for _, it := range cl.Items {
				if strings.HasPrefix(it.Name, "Encryption") && !it.OK && strings.Contains(it.Detail, "unknown authority") {
					found = true
				}
			}
			if !found {
				t.Fatalf("checklist does not name the certificate problem: %+v", cl.Items)
			}
		})
	}
}

func TestStartTLSAndPlain(t *testing.T) {
	env := testbed.Load(t)
	for _, dc := range dirCases(env) {
		t.Run(dc.name, func(t *testing.T) {
			tu := dc.newUser(t, testbed.UserOptions{})

			cfg := config(env, dc)
			cfg.URLs, cfg.StartTLS = []string{dc.d.StartTLSURL}, true
			c := newClient(t, cfg)
			u := find(t, c, tu.Login)
			newPw := testbed.RandomPassword()
			if _, err := c.Reset(ctx(t), u, newPw, directory.ResetOptions{}); err != nil {
				t.Fatalf("Reset over StartTLS: %v", err)
			}
			if err := env.BindAs(t, dc.d, tu.DN, newPw); err != nil {
				t.Fatalf("bind: %v", err)
			}

			cfg.URLs, cfg.StartTLS = []string{dc.d.PlainURL}, false
			if err := cfg.Validate(); err != nil {
				t.Fatalf("plain ldap:// must be allowed to save: %v", err)
			}
			plain := newClient(t, cfg)
			_, err := plain.Reset(ctx(t), u, testbed.RandomPassword(), directory.ResetOptions{})
			wantCode(t, err, directory.CodeInsecure, errs.Forbidden)
			if msg := errs.MessageOf(err); !strings.Contains(msg, "only written over LDAPS or StartTLS") {
				t.Fatalf("message %q", msg)
			}
			_, _, err = change(ctx(t), plain, tu.Login, newPw, testbed.RandomPassword())
			wantCode(t, err, directory.CodeInsecure, errs.Forbidden)
			if err := env.BindAs(t, dc.d, tu.DN, newPw); err != nil {
				t.Fatalf("the password changed over plain LDAP: %v", err)
			}
		})
	}
}

func TestNoRights(t *testing.T) {
	env := testbed.Load(t)
	for _, dc := range dirCases(env) {
		t.Run(dc.name, func(t *testing.T) {
			tu := dc.newUser(t, testbed.UserOptions{})
			cfg := config(env, dc)
			cfg.BindDN, cfg.BindPassword = dc.d.NoRightsDN, dc.d.NoRightsPassword
			c := newClient(t, cfg)
			u := find(t, c, tu.Login)

			_, err := c.Reset(ctx(t), u, testbed.RandomPassword(), directory.ResetOptions{})
			oe := wantCode(t, err, directory.CodeNotPermitted, errs.Forbidden)
			right := map[directory.Type]string{directory.TypeAD: "Reset Password", directory.TypeOpenLDAP: "write userPassword"}[dc.typ]
			if msg := errs.MessageOf(err); !strings.Contains(msg, "lacks the right to "+right) || oe.LDAPResult != 50 {
				t.Fatalf("message %q, OpError %+v", msg, oe)
			}

			if dc.typ == directory.TypeAD {
				_, err = c.Reset(ctx(t), u, testbed.RandomPassword(), directory.ResetOptions{Unlock: true, MustChange: true})
				wantCode(t, err, directory.CodeNotPermitted, errs.Forbidden)
				if msg := errs.MessageOf(err); !strings.Contains(msg, "write lockoutTime and write pwdLastSet") {
					t.Fatalf("message %q", msg)
				}
			}

			dc.lock(t, tu)
			u = find(t, c, tu.Login)
			_, err = c.Unlock(ctx(t), u)
			wantCode(t, err, directory.CodeNotPermitted, errs.Forbidden)
			right = map[directory.Type]string{directory.TypeAD: "write lockoutTime", directory.TypeOpenLDAP: "write pwdAccountLockedTime"}[dc.typ]
			if msg := errs.MessageOf(err); !strings.Contains(msg, "lacks the right to "+right) {
				t.Fatalf("message %q", msg)
			}

			// A wrong service password is the service account's problem, not the user's.
			cfg.BindPassword = "Wrong-Service-Password-1"
			c = newClient(t, cfg)
			_, _, err = c.Find(ctx(t), tu.Login)
			wantCode(t, err, directory.CodeServiceAccount, errs.Unavailable)
		})
	}
}

func TestChecklist(t *testing.T) {
	env := testbed.Load(t)
	for _, dc := range dirCases(env) {
		t.Run(dc.name, func(t *testing.T) {
			tu := dc.newUser(t, testbed.UserOptions{})
			cfg := config(env, dc)
			cfg.URLs = []string{dc.d.URL, dc.d.StartTLSURL}
			c := newClient(t, cfg)
			cl := c.Test(ctx(t), tu.Login)
			for _, it := range cl.Items {
				t.Logf("%-5t %s: %s", it.OK, it.Name, it.Detail)
			}
			if !cl.OK {
				t.Fatalf("checklist not OK with the real service account")
			}
			prot := ""
			for _, it := range cl.Items {
				if it.Name == "Protected accounts" && it.OK {
					prot = it.Detail
				}
			}
			if !strings.Contains(prot, dc.d.BindDN) || dc.typ == directory.TypeAD && !strings.Contains(prot, "Backup Operators") {
				t.Errorf("protected accounts line: %q", prot)
			}

			// With the dead URL first, its lines fail and the rest still runs.
			cfg.URLs = []string{env.DeadURL, dc.d.URL}
			cl = newClient(t, cfg).Test(ctx(t), "")
			if cl.OK || cl.Items[0].OK || !strings.Contains(cl.Items[0].Detail, "refused") {
				t.Fatalf("dead URL not reported: %+v", cl.Items)
			}
			// The raw error is kept apart, for the audit log.
			if d := cl.Items[0].Diagnostic; d == "" || strings.Contains(cl.Items[0].Detail, d) {
				t.Errorf("dead URL: diagnostic %q beside detail %q", d, cl.Items[0].Detail)
			}
			if last := cl.Items[len(cl.Items)-1]; !last.OK || last.Name != "Password policy" {
				t.Fatalf("checks after the dead URL: %+v", cl.Items)
			}
		})
	}
}

func TestPolicy(t *testing.T) {
	env := testbed.Load(t)
	for _, dc := range dirCases(env) {
		t.Run(dc.name, func(t *testing.T) {
			c := newClient(t, config(env, dc))
			tu := dc.newUser(t, testbed.UserOptions{})
			u := find(t, c, tu.Login)
			p, err := c.Policy(ctx(t), u)
			if err != nil {
				t.Fatalf("Policy: %v", err)
			}
			t.Logf("%s: %+v", dc.name, p)
			if p.MinLength != 7 || p.LockoutThreshold != 3 || p.LockoutDuration != 30*time.Minute || p.MinAge != 0 {
				t.Fatalf("policy %+v", p)
			}
			switch dc.typ {
			case directory.TypeAD:
				// Samba 4.17 does not advertise the policy-hints control.
				if !p.Complexity || p.HistoryLength == 0 || p.HistoryEnforcedOnReset {
					t.Fatalf("AD policy %+v", p)
				}
			case directory.TypeOpenLDAP:
				if p.HistoryLength != 5 || !p.HistoryEnforcedOnReset {
					t.Fatalf("OpenLDAP policy %+v", p)
				}
			}
			// The default policy without a user is the same here.
			if d, err := c.Policy(ctx(t), directory.User{}); err != nil || d != p {
				t.Fatalf("default policy %+v, %v", d, err)
			}
		})
	}
}

// TestFineGrainedPolicy reads the policy of the service account, to which
// the test bed applies a PSO without lockout. Like Windows, Samba lets only
// administrators read a PSO's settings.
func TestFineGrainedPolicy(t *testing.T) {
	env := testbed.Load(t)
	dc := dirCases(env)[0]
	cfg := config(env, dc)
	cfg.BaseDNs = []string{env.AD.BaseDN}
	cfg.ExcludedGroups = nil
	c := newClient(t, cfg)
	u, _, err := c.Get(ctx(t), env.AD.BindDN)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	_, err = c.Policy(ctx(t), u)
	wantCode(t, err, directory.CodeNotPermitted, errs.Forbidden)
	if !strings.Contains(errs.MessageOf(err), "fine-grained") {
		t.Fatalf("message %q", errs.MessageOf(err))
	}

	cfg.BindDN, cfg.BindPassword = env.AD.AdminDN, env.AD.AdminPassword
	admin := newClient(t, cfg)
	p, err := admin.Policy(ctx(t), u)
	if err != nil {
		t.Fatalf("Policy as Administrator: %v", err)
	}
	if p.LockoutThreshold != 0 || p.MinLength != 7 || !p.Complexity {
		t.Fatalf("the PSO (no lockout) was not applied: %+v", p)
	}
}

func TestGetOutsideBase(t *testing.T) {
	env := testbed.Load(t)
	for _, dc := range dirCases(env) {
		t.Run(dc.name, func(t *testing.T) {
			c := newClient(t, config(env, dc))
			_, _, err := c.Get(ctx(t), dc.d.BindDN)
			wantCode(t, err, directory.CodeNotFound, errs.NotFound)
			_, err = c.Reset(ctx(t), directory.User{DN: dc.d.BindDN}, testbed.RandomPassword(), directory.ResetOptions{})
			wantCode(t, err, directory.CodeNotFound, errs.NotFound)
		})
	}
}

func TestDetect(t *testing.T) {
	env := testbed.Load(t)
	for _, dc := range dirCases(env) {
		t.Run(dc.name, func(t *testing.T) {
			got, err := directory.Detect(ctx(t), dc.d.URL, false, env.CAPEM())
			if err != nil || got != dc.typ {
				t.Fatalf("Detect(%s) = %q, %v; want %q", dc.d.URL, got, err, dc.typ)
			}
			got, err = directory.Detect(ctx(t), dc.d.StartTLSURL, true, env.CAPEM())
			if err != nil || got != dc.typ {
				t.Fatalf("Detect(%s, StartTLS) = %q, %v; want %q", dc.d.StartTLSURL, got, err, dc.typ)
			}
			_, err = directory.Detect(ctx(t), dc.d.URL, false, env.WrongCAPEM())
			wantCode(t, err, directory.CodeCertificate, errs.Unavailable)
		})
	}
}

func TestConcurrentUse(t *testing.T) {
	env := testbed.Load(t)
	for _, dc := range dirCases(env) {
		t.Run(dc.name, func(t *testing.T) {
			c := newClient(t, config(env, dc))
			users := make([]testbed.TestUser, 4)
			for i := range users {
				users[i] = dc.newUser(t, testbed.UserOptions{})
			}
			var wg sync.WaitGroup
			errc := make(chan error, 64)
			for i := 0; i < 16; i++ {
				wg.Add(1)
				go func(i int, tu testbed.TestUser) {
					defer wg.Done()
					u, _, err := c.Find(context.Background(), tu.Login)
					if err == nil && u.Login != tu.Login {
						err = errors.New("wrong user: " + u.Login)
					}
					if err == nil && i < len(users) { // one reset per user
						_, err = c.Reset(context.Background(), u, testbed.RandomPassword(), directory.ResetOptions{})
					}
					errc <- err
				}(i, users[i%len(users)])
			}
			wg.Wait()
			close(errc)
			for err := range errc {
				if err != nil {
					t.Error(err)
				}
			}
		})
	}
}

// TestConcurrentResetSameUser: slapd refuses the later of two resets of one
// account in the same second (both write the same pwdHistory value); that is
// reported as a conflict to retry, never as an internal error.
func TestConcurrentResetSameUser(t *testing.T) {
	env := testbed.Load(t)
	for _, dc := range dirCases(env) {
		t.Run(dc.name, func(t *testing.T) {
			c := newClient(t, config(env, dc))
			tu := dc.newUser(t, testbed.UserOptions{})
			u := find(t, c, tu.Login)
			var wg sync.WaitGroup
			errc := make(chan error, 4)
			for i := 0; i < 4; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					_, err := c.Reset(context.Background(), u, testbed.RandomPassword(), directory.ResetOptions{})
					errc <- err
				}()
			}
			wg.Wait()
			close(errc)
			ok := 0
			for err := range errc {
				if err == nil {
					ok++
					continue
				}
				wantCode(t, err, directory.CodeConflict, errs.Conflict)
			}
			if ok == 0 {
				t.Fatalf("no reset succeeded")
			}
		})
	}
}

// TestOpenLDAPUserPolicy gives a user its own ppolicy entry (pwdPolicySubentry)
// with a longer minimum and pwdMustChange.
func TestOpenLDAPUserPolicy(t *testing.T) {
	env := testbed.Load(t)
	dc := dirCases(env)[1]
	admin := env.AdminConn(t, env.LDAP)
	policyDN := "cn=wbp" + strings.ToLower(testbed.RandomLogin()) + ",ou=policies," + env.LDAP.BaseDN
	add := ldap.NewAddRequest(policyDN, nil)
	add.Attribute("objectClass", []string{"device", "pwdPolicy"})
	add.Attribute("pwdAttribute", []string{"userPassword"})
	add.Attribute("pwdMinLength", []string{"9"})
	add.Attribute("pwdCheckQuality", []string{"2"})
	add.Attribute("pwdMustChange", []string{"TRUE"})
	add.Attribute("pwdLockout", []string{"FALSE"})
	add.Attribute("pwdMaxAge", []string{"86400"})
	if err := admin.Add(add); err != nil {
		t.Fatalf("add policy: %v", err)
	}
	t.Cleanup(func() {
		c := env.AdminConn(t, env.LDAP)
		if err := c.Del(ldap.NewDelRequest(policyDN, nil)); err != nil {
			t.Errorf("delete policy: %v", err)
		}
	})
	tu := env.NewLDAPUser(t, testbed.UserOptions{})
	mod := ldap.NewModifyRequest(tu.DN, nil)
	mod.Replace("pwdPolicySubentry", []string{policyDN})
	if err := admin.Modify(mod); err != nil {
		t.Fatalf("set pwdPolicySubentry: %v", err)
	}

	c := newClient(t, config(env, dc))
	u := find(t, c, tu.Login)
	p, err := c.Policy(ctx(t), u)
	if err != nil {
		t.Fatalf("Policy: %v", err)
	}
	if p.MinLength != 9 || p.LockoutThreshold != 0 || p.MaxAge != 24*time.Hour || p.HistoryLength != 0 {
		t.Fatalf("user policy %+v", p)
	}
	_, err = c.Reset(ctx(t), u, "Abcdef-1", directory.ResetOptions{})
	wantCode(t, err, directory.CodePolicy, errs.Policy)
	if msg := errs.MessageOf(err); !strings.Contains(msg, "at least 9 characters") {
		t.Fatalf("message %q", msg)
	}
	// pwdMustChange makes slapd set pwdReset; the portal's option wins.
	if _, err := c.Reset(ctx(t), u, testbed.RandomPassword(), directory.ResetOptions{}); err != nil {
		t.Fatalf("Reset: %v", err)
	}
	if u = find(t, c, tu.Login); u.MustChange {
		t.Fatalf("MustChange after a reset without it: %+v", u)
	}
	if _, err := c.Reset(ctx(t), u, testbed.RandomPassword(), directory.ResetOptions{MustChange: true}); err != nil {
		t.Fatalf("Reset: %v", err)
	}
	if u = find(t, c, tu.Login); !u.MustChange {
		t.Fatalf("no MustChange after a reset with it: %+v", u)
	}
}

// TestDroppedConnection closes the pooled connections under the client's
// feet: the next operation redials instead of failing.
func TestDroppedConnection(t *testing.T) {
	env := testbed.Load(t)
	dc := dirCases(env)[1]
	// A proxy in front of slapd that can cut every connection.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	target := strings.TrimPrefix(dc.d.URL, "ldaps://")
	var mu sync.Mutex
	var open []net.Conn
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				in.Close()
				continue
			}
			mu.Lock()
			open = append(open, in, out)
			mu.Unlock()
			go func() { defer in.Close(); defer out.Close(); copyConn(out, in) }()
			go func() { defer in.Close(); defer out.Close(); copyConn(in, out) }()
		}
	}()
	cfg := config(env, dc)
	cfg.URLs = []string{"ldaps://" + ln.Addr().String()}
	c := newClient(t, cfg)
	tu := dc.newUser(t, testbed.UserOptions{})
	find(t, c, tu.Login)
	mu.Lock()
	for _, cn := range open {
		cn.Close()
	}
	open = nil
	mu.Unlock()
	time.Sleep(50 * time.Millisecond)
	if u := find(t, c, tu.Login); u.Login != tu.Login {
		t.Fatalf("after the drop: %+v", u)
	}

	// Cut while a request is on its way: go-ldap then fails the request with
	// a plain error, which must still count as a lost connection (retried on
	// a fresh one), never as the directory refusing the request.
	for i := 0; i < 20; i++ {
		mu.Lock()
		for _, cn := range open {
			cn.Close()
		}
		open = nil
		mu.Unlock()
		if u, _, err := c.Find(ctx(t), tu.Login); err != nil || u.Login != tu.Login {
			t.Fatalf("find %d right after the drop: %v", i, err)
		}
	}
}

func copyConn(dst, src net.Conn) {
	buf := make([]byte, 32*1024)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// TestNoPasswordInLogsOrErrors runs successful and refused operations with a
// debug logger and checks that no password shows up in a log line or error.
func TestNoPasswordInLogsOrErrors(t *testing.T) {
	env := testbed.Load(t)
	for _, dc := range dirCases(env) {
		t.Run(dc.name, func(t *testing.T) {
			var buf bytes.Buffer
			cfg := config(env, dc)
			c, err := directory.New(cfg, slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			tu := dc.newUser(t, testbed.UserOptions{})
			secrets := []string{cfg.BindPassword, tu.Password, "Ab1-short", "Wr0ng-Current-x", "Pässwörd-Ω1x"}
			var errsSeen []error
			keep := func(err error) {
				if err != nil {
					errsSeen = append(errsSeen, err)
				}
			}
			u := find(t, c, tu.Login)
			_, err = c.Reset(ctx(t), u, "Ab1-short"[:5], directory.ResetOptions{})
			keep(err)
			_, _, err = change(ctx(t), c, tu.Login, "Wr0ng-Current-x", "Pässwörd-Ω1x")
			keep(err)
			_, _, err = change(ctx(t), c, tu.Login, tu.Password, "Pässwörd-Ω1x")
			keep(err)
			bad := cfg
			bad.BindPassword = "Wr0ng-Current-x"
			bc := newClient(t, bad)
			_, _, err = bc.Find(ctx(t), tu.Login)
			keep(err)
			if len(errsSeen) < 2 {
				t.Fatalf("expected refusals, got %v", errsSeen)
			}
			for _, s := range secrets {
				if strings.Contains(buf.String(), s) {
					t.Errorf("a password is in the log: %s", buf.String())
				}
				for _, e := range errsSeen {
					if strings.Contains(e.Error(), s) || strings.Contains(fmt.Sprintf("%+v", e), s) {
						t.Errorf("a password is in an error: %v", e)
					}
				}
			}
		})
	}
}

// TestHistoryOnReset: slapd checks the history on the service account's
// resets; Samba 4.17, which does not advertise the policy-hints control, does
// not — which is what Policy.HistoryEnforcedOnReset says.
func TestHistoryOnReset(t *testing.T) {
	env := testbed.Load(t)
	for _, dc := range dirCases(env) {
		t.Run(dc.name, func(t *testing.T) {
			c := newClient(t, config(env, dc))
			tu := dc.newUser(t, testbed.UserOptions{})
			u := find(t, c, tu.Login)
			p, err := c.Policy(ctx(t), u)
			if err != nil {
				t.Fatal(err)
			}
			p1, p2 := testbed.RandomPassword(), testbed.RandomPassword()
			for _, pw := range []string{p1, p2} {
				if _, err := c.Reset(ctx(t), u, pw, directory.ResetOptions{}); err != nil {
					t.Fatalf("Reset: %v", err)
				}
			}
			_, err = c.Reset(ctx(t), u, p1, directory.ResetOptions{})
			if p.HistoryEnforcedOnReset {
				wantCode(t, err, directory.CodePolicy, errs.Policy)
				if !strings.Contains(errs.MessageOf(err), "not used recently") {
					t.Fatalf("message %q", errs.MessageOf(err))
				}
			} else if err != nil {
				t.Fatalf("history enforced on reset although the policy says it is not: %v", err)
			}
		})
	}
}
