package handlers_test

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/writeback/writeback/services/selfservice"
	"github.com/writeback/writeback/testbed"
)

// TestSelfServiceReadsOnce (issue 9 item 3): once the portal is warm, a
// self-service change with the old password sends one search (the account
// with its state and protection, and the directory's count of wrong
// passwords) and then the change itself, and nothing after it — on AD the
// Modify of unicodePwd, on OpenLDAP a bind as the person and Password Modify
// on a connection kept for binds as people, never a new connection. A wrong
// current password is that one search and one try of the change (on OpenLDAP
// one bind: it counts once toward the lockout, as before). Signing in to
// register is one search and one bind; the password step of a reset one
// search before its write.
func TestSelfServiceReadsOnce(t *testing.T) {
	env := testbed.Load(t)
	for _, d := range directories(env) {
		t.Run(d.name, func(t *testing.T) {
			s := newSSPR(t, env, d, selfservice.Methods{Email: true})
			c := s.client()
			change := func(login, current, next string) page {
				t.Helper()
				return c.post("/change", url.Values{"csrf_token": {c.csrf("/")}, "login": {login}, "current": {current}, "password": {next}, "confirm": {next}})
			}
			write := []string{"change/modify"}
			if d.typ == "openldap" {
				write = []string{"change/bind", "change/extended"}
			}
			// Warm: the pools (a bind as a person too), the root DSE, the
			// protected groups, the policy, as in a portal in use.
			warm := d.newUser(t, testbed.UserOptions{})
			warmPw := "Chg-" + testbed.RandomPassword()
			if p := change(warm.Login, warm.Password, warmPw); p.Status != http.StatusSeeOther {
				t.Fatalf("warm-up change: %d\n%s", p.Status, between(p.Body, "<main", "</main>"))
			}
			if p := c.post("/register", url.Values{"csrf_token": {c.csrf("/")}, "login": {warm.Login}, "password": {warmPw}}); p.Status != http.StatusSeeOther {
				t.Fatalf("warm-up sign-in: %d\n%s", p.Status, between(p.Body, "<main", "</main>"))
			}
			rec := recordRequests(t, s.wb)

			user := d.newUser(t, testbed.UserOptions{})
			csrf := c.csrf("/")
			rec.take()
			next := "Chg-" + testbed.RandomPassword()
			p := c.post("/change", url.Values{"csrf_token": {csrf}, "login": {user.Login}, "current": {user.Password}, "password": {next}, "confirm": {next}})
			if p.Status != http.StatusSeeOther {
				t.Fatalf("change: %d\n%s", p.Status, between(p.Body, "<main", "</main>"))
			}
			if got, want := rec.take(), append([]string{"change/search"}, write...); !slices.Equal(got, want) {
				t.Errorf("a change sent %v, want %v", got, want)
			}
			if err := env.BindAs(t, d.dir, user.DN, next); err != nil {
				t.Fatalf("bind with the new password: %v", err)
			}

			csrf = c.csrf("/")
			rec.take()
			c.post("/change", url.Values{"csrf_token": {csrf}, "login": {user.Login}, "current": {"Wrong-Passw0rd-1"}, "password": {next + "x"}, "confirm": {next + "x"}})
			if got, want := rec.take(), []string{"change/search", write[0]}; !slices.Equal(got, want) {
				t.Errorf("a wrong current password sent %v, want %v", got, want)
			}

			csrf = c.csrf("/")
			rec.take()
			p = c.post("/register", url.Values{"csrf_token": {csrf}, "login": {user.Login}, "password": {next}})
			if p.Status != http.StatusSeeOther || !strings.HasPrefix(p.Location, "/register/") {
				t.Fatalf("register sign-in: %d %s\n%s", p.Status, p.Location, between(p.Body, "<main", "</main>"))
			}
			if got, want := rec.take(), []string{"authenticate/search", "authenticate/bind"}; !slices.Equal(got, want) {
				t.Errorf("the sign-in to register sent %v, want %v", got, want)
			}

			// A reset by e-mailed code, up to its password step.
			other := s.client()
			flow := other.begin("reset", user.Login)
			if p := other.step(flow, "method", url.Values{"method": {"email"}}); p.Status != http.StatusSeeOther {
				t.Fatalf("choose email: %d", p.Status)
			}
			code := s.code(t, user.Mail)
			if p := other.step(flow, "verify", url.Values{"method": {"email"}, "code": {code}}); p.Status != http.StatusSeeOther {
				t.Fatalf("verify: %d\n%s", p.Status, between(p.Body, "<main", "</main>"))
			}
			form := url.Values{"csrf_token": {other.csrf("/")}}
			rec.take()
			pw := "Rst-" + testbed.RandomPassword()
			form.Set("password", pw)
			form.Set("confirm", pw)
			if p := other.post(flow+"/password", form); p.Status != http.StatusSeeOther {
				t.Fatalf("set password: %d\n%s", p.Status, between(p.Body, "<main", "</main>"))
			}
			got := rec.take()
			searches := 0
			for _, r := range got {
				if strings.HasSuffix(r, "/search") {
					searches++
				}
			}
			if searches != 1 || len(got) < 2 || !strings.HasSuffix(got[0], "/search") {
				t.Errorf("the password step sent %v, want one search, then the write", got)
			}
			if err := env.BindAs(t, d.dir, user.DN, pw); err != nil {
				t.Fatalf("bind with the reset password: %v", err)
			}
		})
	}
}
