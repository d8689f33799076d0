package directory_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/writeback/writeback/services/directory"
	"github.com/writeback/writeback/services/errs"
	"github.com/writeback/writeback/testbed"
)

// Resolve finds the account without sending its password, with the lockout
// policy that applies (threshold, duration and observation window) and the
// directory's own count of wrong passwords; an unknown name still gets the
// default policy.
func TestResolve(t *testing.T) {
	env := testbed.Load(t)
	for _, dc := range dirCases(env) {
		t.Run(dc.name, func(t *testing.T) {
			c := newClient(t, config(env, dc))
			tu := dc.newUser(t, testbed.UserOptions{})
			cand, _, err := c.Resolve(ctx(t), tu.Mail)
			if err != nil {
				t.Fatalf("Resolve: %v", err)
			}
			if !strings.EqualFold(cand.User.DN, tu.DN) || cand.User.ID == "" || cand.PolicyErr != nil || cand.Failures != 0 {
				t.Fatalf("candidate %+v", cand)
			}
			p := cand.Policy
			if p.LockoutThreshold != 3 || p.LockoutDuration != 30*time.Minute || p.LockoutWindow != 30*time.Minute {
				t.Fatalf("lockout policy %+v", p)
			}
			for range 2 {
				if err := env.BindAs(t, dc.d, tu.DN, "Wrong-Passw0rd-x"); err == nil {
					t.Fatal("wrong password bound")
				}
			}
			if cand, _, err = c.Resolve(ctx(t), tu.Login); err != nil || cand.Failures != 2 {
				t.Fatalf("after 2 wrong binds: failures %d, %v", cand.Failures, err)
			}
			// A successful bind makes the directory forget them.
			if _, _, err := c.AuthenticateUser(ctx(t), cand.User, tu.Password); err != nil {
				t.Fatalf("AuthenticateUser: %v", err)
			}
			if cand, _, err = c.Resolve(ctx(t), tu.Login); err != nil || cand.Failures != 0 {
				t.Fatalf("after a good bind: failures %d, %v", cand.Failures, err)
			}

			none, _, err := c.Resolve(ctx(t), "nobody-"+testbed.RandomLogin())
			wantCode(t, err, directory.CodeNotFound, errs.NotFound)
			if none.User.DN != "" || none.Policy.LockoutThreshold != 3 || none.Policy.LockoutWindow != 30*time.Minute {
				t.Fatalf("unknown name: %+v", none)
			}
		})
	}
}

// AuthenticateUser and ChangeUser act on the account Resolve found, and
// refuse when the entry at that DN is no longer that account.
func TestAuthenticateAndChangeUser(t *testing.T) {
	env := testbed.Load(t)
	for _, dc := range dirCases(env) {
		t.Run(dc.name, func(t *testing.T) {
			c := newClient(t, config(env, dc))
			tu := dc.newUser(t, testbed.UserOptions{})
			cand, _, err := c.Resolve(ctx(t), tu.Login)
			if err != nil {
				t.Fatal(err)
			}
			_, _, err = c.AuthenticateUser(ctx(t), cand.User, "Wrong-Passw0rd-x")
			wantCode(t, err, directory.CodeBadPassword, errs.Unauthorized)
			_, _, err = c.ChangeUser(ctx(t), cand.User, "Wrong-Passw0rd-x", testbed.RandomPassword())
			wantCode(t, err, directory.CodeBadPassword, errs.Unauthorized)

			other := cand.User
			other.ID = "00000000-0000-0000-0000-000000000000"
			_, _, err = c.AuthenticateUser(ctx(t), other, tu.Password)
			wantCode(t, err, directory.CodeNotFound, errs.NotFound)

			next := testbed.RandomPassword()
			u, _, err := c.ChangeUser(ctx(t), cand.User, tu.Password, next)
			if err != nil {
				t.Fatalf("ChangeUser: %v", err)
			}
			if !strings.EqualFold(u.DN, tu.DN) {
				t.Fatalf("changed %s", u.DN)
			}
			if err := env.BindAs(t, dc.d, tu.DN, next); err != nil {
				t.Fatalf("bind with the new password: %v", err)
			}
		})
	}
}

// TestChangeLoginAdmits: ChangeLogin and AuthenticateLogin call admit once,
// after the lookup and before any password is sent, also for a name that
// finds nothing; a refusal by admit, and a locked account, send nothing
// more than that lookup; a wrong current password counts once toward the
// directory's lockout.
func TestChangeLoginAdmits(t *testing.T) {
	env := testbed.Load(t)
	for _, dc := range dirCases(env) {
		t.Run(dc.name, func(t *testing.T) {
			c := newClient(t, config(env, dc))
			tu := dc.newUser(t, testbed.UserOptions{})
			if _, _, err := c.Resolve(ctx(t), tu.Login); err != nil { // warm: pool, policy, protection
				t.Fatal(err)
			}
			rec := recordSent(c)
			var calls []string
			admit := func(refuse error) directory.Admit {
				return func(cand directory.Candidate, notFound error) error {
					calls = append(calls, fmt.Sprintf("%s %v", cand.User.Login, notFound != nil && errs.KindOf(notFound) == errs.NotFound))
					return refuse
				}
			}
			no := errs.E(errs.TooMany, "wait", nil)
			if _, _, err := c.ChangeLogin(ctx(t), tu.Login, tu.Password, testbed.RandomPassword(), admit(no)); err != no {
				t.Fatalf("refused by admit: %v", err)
			}
			if _, _, err := c.AuthenticateLogin(ctx(t), tu.Login, tu.Password, admit(no)); err != no {
				t.Fatalf("refused by admit: %v", err)
			}
			if got := rec.take(); !slices.Equal(got, []string{"change/search", "authenticate/search"}) {
				t.Errorf("refused attempts sent %v", got)
			}
			nobody := "nobody-" + testbed.RandomLogin()
			_, _, err := c.ChangeLogin(ctx(t), nobody, tu.Password, testbed.RandomPassword(), admit(nil))
			wantCode(t, err, directory.CodeNotFound, errs.NotFound)
			if got := rec.take(); !slices.Equal(got, []string{"change/search"}) {
				t.Errorf("an unknown name sent %v", got)
			}
			if want := []string{tu.Login + " false", tu.Login + " false", " true"}; !slices.Equal(calls, want) {
				t.Errorf("admit calls %q, want %q", calls, want)
			}

			_, _, err = c.ChangeLogin(ctx(t), tu.Login, "Wrong-Passw0rd-x", testbed.RandomPassword(), admit(nil))
			wantCode(t, err, directory.CodeBadPassword, errs.Unauthorized)
			if cand, _, err := c.Resolve(ctx(t), tu.Login); err != nil || cand.Failures != 1 {
				t.Errorf("after one wrong current password the directory counts %d, %v; want 1", cand.Failures, err)
			}

			dc.lock(t, tu)
			rec.take()
			cand, _, err := c.ChangeLogin(ctx(t), tu.Login, tu.Password, testbed.RandomPassword(), admit(nil))
			wantCode(t, err, directory.CodeLocked, errs.Forbidden)
			if got := rec.take(); !cand.User.Locked || !slices.Equal(got, []string{"change/search"}) {
				t.Errorf("a locked account: %+v, sent %v", cand.User, got)
			}
		})
	}
}
