package handlers_test

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/go-ldap/ldap/v3"

	"github.com/writeback/writeback/services/admins"
	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/directory"
	"github.com/writeback/writeback/services/selfservice"
	"github.com/writeback/writeback/services/settings"
	"github.com/writeback/writeback/services/writeback"
	"github.com/writeback/writeback/testbed"
)

// helpdeskOn saves a connection to d under bases, with writeback on, and
// returns a signed-in Helpdesk Administrator.
func helpdeskOn(t *testing.T, h *harness, env testbed.Env, d directoryCase, in writeback.Input) *client {
	t.Helper()
	ctx := context.Background()
	in.Type, in.CAPEM, in.BindDN, in.BindPassword, in.PasswordWriteback = directory.Type(d.typ), env.CAPEM(), d.dir.BindDN, d.dir.BindPassword, true
	if len(in.URLs) == 0 {
		in.URLs = []string{d.dir.URL}
	}
	if len(in.BaseDNs) == 0 {
		in.BaseDNs = []string{d.dir.PeopleDN}
	}
	if _, err := h.wb.SaveConnection(ctx, audit.CommandLine, 0, in); err != nil {
		t.Fatal(err)
	}
	if _, _, err := h.settings.SaveOnPrem(ctx, audit.CommandLine, 0, settings.OnPrem{Writeback: true, Unlock: true}); err != nil {
		t.Fatal(err)
	}
	return h.client().signedIn(admins.HelpdeskAdmin)
}

// userPath is the helpdesk page of login; raw is put in the path as is.
func userPath(login string) string { return "/admin/users/" + url.PathEscape(login) }

// wantRefusedAsProtected checks that the helpdesk sees login as protected and
// can neither reset nor unlock it. password is the account's own: the reset
// tries to set it again, so that a failing guard changes nothing.
func wantRefusedAsProtected(t *testing.T, hd *client, login, password, reason string) {
	t.Helper()
	p := hd.get(userPath(login))
	state := between(p.Body, `data-testid="state"`, "</dd>")
	if p.Status != http.StatusOK || !strings.Contains(state, "Protected") || !strings.Contains(strings.ToLower(state), strings.ToLower(reason)) {
		t.Errorf("user page of %s: %d, state %q; want Protected naming %q", login, p.Status, state, reason)
	}
	if !strings.Contains(p.Body, `data-testid="why-not"`) || !strings.Contains(p.Body, `data-testid="reset" disabled`) &&
		!strings.Contains(between(p.Body, "<fieldset", ">"), "disabled") {
		t.Errorf("user page of %s offers the actions", login)
	}
	for _, action := range []struct {
		path string
		form url.Values
	}{
		{"/reset", url.Values{"password": {password}, "confirm": {password}}},
		{"/unlock", url.Values{}},
	} {
		action.form.Set("csrf_token", hd.csrf("/"))
		p := hd.post(userPath(login)+action.path, action.form)
		if p.Status != http.StatusForbidden || !strings.Contains(p.Body, "protected") {
			t.Errorf("%s of %s: %d, want 403 naming the protection\n%s", action.path, login, p.Status, between(p.Body, "<main", "</main>"))
		}
	}
}

// TestHelpdeskProtectedAccounts: members of Schema Admins, Backup Operators
// and Account Operators, directly, through a nested group or through the
// primary group, are protected on the real DC: the helpdesk cannot reset or
// unlock them and self-service does not mail them codes.
func TestHelpdeskProtectedAccounts(t *testing.T) {
	env := testbed.Load(t)
	d := directories(env)[0]
	s := newSSPR(t, env, d, selfservice.Methods{Email: true})
	hd := s.client().signedIn(admins.HelpdeskAdmin)
	base := env.AD.BaseDN
	schemaAdmins := "CN=Schema Admins,CN=Users," + base
	backupOps := "CN=Backup Operators,CN=Builtin," + base
	accountOps := "CN=Account Operators,CN=Builtin," + base

	cases := []struct {
		name   string
		reason string
		user   func(t *testing.T) testbed.TestUser
	}{
		{"Schema Admins", "Schema Admins", func(t *testing.T) testbed.TestUser {
			return env.NewADUser(t, testbed.UserOptions{Groups: []string{schemaAdmins}})
		}},
		{"Backup Operators", "Backup Operators", func(t *testing.T) testbed.TestUser {
			return env.NewADUser(t, testbed.UserOptions{Groups: []string{backupOps}})
		}},
		{"Account Operators", "Account Operators", func(t *testing.T) testbed.TestUser {
			return env.NewADUser(t, testbed.UserOptions{Groups: []string{accountOps}})
		}},
		{"nested in Backup Operators", "Backup Operators", func(t *testing.T) testbed.TestUser {
			g := env.NewADGroup(t, "")
			env.AddADMember(t, backupOps, g)
			return env.NewADUser(t, testbed.UserOptions{Groups: []string{g}})
		}},
		{"primary group in Account Operators", "primary group", func(t *testing.T) testbed.TestUser {
			g := env.NewADGroup(t, "")
			env.AddADMember(t, accountOps, g)
			u := env.NewADUser(t, testbed.UserOptions{})
			env.SetADPrimaryGroup(t, u, g)
			return u
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			u := tc.user(t)
			wantRefusedAsProtected(t, hd, u.Login, u.Password, tc.reason)
			if err := env.BindAs(t, env.AD, u.DN, u.Password); err != nil {
				t.Errorf("the password of %s no longer works: %v", u.Login, err)
			}

			// Self-service: not eligible, so no code is mailed.
			c := s.client()
			flow := c.begin("reset", u.Login)
			c.step(flow, "method", url.Values{"method": {"email"}})
			s.ss.Wait()
			for _, m := range s.sink.Messages() {
				for _, to := range m.To {
					if strings.EqualFold(to, u.Mail) {
						t.Errorf("self-service mailed %s (%q)", u.Mail, m.Subject)
					}
				}
			}
			rows, err := s.db.RecentAudit(context.Background(), audit.ActivitySelfServiceProgress, 50)
			if err != nil {
				t.Fatal(err)
			}
			var eligible, started bool
			for _, r := range rows {
				if r.TargetDN == u.DN && strings.Contains(r.Details, `"eligible":true`) {
					eligible = true
				}
				if r.TargetDN == u.DN && strings.Contains(r.Details, `"eligible":false`) {
					started = true
				}
			}
			if eligible || !started {
				t.Errorf("self-service found %s eligible (%v), or logged no ineligible start (%v)", u.Login, eligible, !started)
			}
		})
	}
}

// TestHelpdeskServiceAccountProtected: the portal's own service account shows
// as protected and is never reset or unlocked, in both directories.
func TestHelpdeskServiceAccountProtected(t *testing.T) {
	env := testbed.Load(t)
	for _, d := range directories(env) {
		t.Run(d.name, func(t *testing.T) {
			h := newHarness(t)
			in := writeback.Input{BaseDNs: []string{d.dir.BaseDN}} // the service account lives outside the people OU
			if d.typ == "openldap" {
				// The test bed's service DN is an organizationalRole, not a person.
				in.UserFilter = "(|(objectClass=inetOrgPerson)(objectClass=simpleSecurityObject))"
				in.LoginAttributes = []string{"uid", "cn"}
			}
			hd := helpdeskOn(t, h, env, d, in)
			rdn := strings.SplitN(d.dir.BindDN, ",", 2)[0]
			login := rdn[strings.Index(rdn, "=")+1:]
			wantRefusedAsProtected(t, hd, login, d.dir.BindPassword, "service account")
			if err := env.BindAs(t, d.dir, d.dir.BindDN, d.dir.BindPassword); err != nil {
				t.Fatalf("the service account's password no longer works: %v", err)
			}
		})
	}
}

// TestUserPageRefusesControlCharacters: a typed name with a NUL or another
// control character is refused with a clear 4xx page, never the page of the
// account it would have found on Samba; audit rows name the resolved account,
// and the typed text (quoted) only when nothing matched.
func TestUserPageRefusesControlCharacters(t *testing.T) {
	env := testbed.Load(t)
	for _, d := range directories(env) {
		t.Run(d.name, func(t *testing.T) {
			h := newHarness(t)
			hd := helpdeskOn(t, h, env, d, writeback.Input{})
			u := d.newUser(t, testbed.UserOptions{})
			for _, suffix := range []string{"%00junk", "%00", "%0a", "%09x", "%e2%80%8b", "%e2%80%ae"} {
				p := hd.get("/admin/users/" + u.Login + suffix)
				if p.Status < 400 || p.Status >= 500 || strings.Contains(p.Body, u.DN) ||
					!strings.Contains(p.Body, "invisible or control characters") {
					t.Errorf("GET %s%s: %d, want a 4xx page saying why\n%s", u.Login, suffix, p.Status, between(p.Body, "<main", "</main>"))
				}
			}
			// The search says why too, and finds nobody.
			if p := hd.get("/admin/users?q=" + u.Login + "%00junk"); p.Status != http.StatusUnprocessableEntity ||
				strings.Contains(p.Body, u.DN) || !strings.Contains(p.Body, "invisible or control characters") {
				t.Errorf("search for %s%%00junk: %d", u.Login, p.Status)
			}
			newPw := "Nul-" + testbed.RandomPassword()
			p := hd.post("/admin/users/"+u.Login+"%00junk/reset", url.Values{"csrf_token": {hd.csrf("/")}, "password": {newPw}, "confirm": {newPw}})
			if p.Status < 400 || p.Status >= 500 || strings.Contains(p.Body, u.DN) {
				t.Errorf("reset of %s%%00junk: %d", u.Login, p.Status)
			}
			if err := env.BindAs(t, d.dir, u.DN, newPw); err == nil {
				t.Fatal("a reset through alice%00junk changed alice's password")
			}
			p = hd.post("/admin/users/"+u.Login+"%00junk/unlock", url.Values{"csrf_token": {hd.csrf("/")}})
			if p.Status < 400 || p.Status >= 500 {
				t.Errorf("unlock of %s%%00junk: %d", u.Login, p.Status)
			}

			// The helpdesk resets by e-mail address: the row names the account.
			p = hd.post(userPath(u.Mail)+"/reset", url.Values{"csrf_token": {hd.csrf("/")}, "password": {newPw}, "confirm": {newPw}})
			if p.Status != http.StatusSeeOther {
				t.Fatalf("reset by e-mail address: %d\n%s", p.Status, between(p.Body, `data-testid="errors"`, "</div>"))
			}
			rows, _ := h.db.RecentAudit(context.Background(), audit.ActivityResetByAdmin, 10)
			var refused, resolved bool
			for _, r := range rows {
				switch {
				case r.Result == "failure" && r.TargetDN == "" && r.TargetName == `"`+u.Login+`\x00junk"`:
					refused = true
				case r.Result == "failure" && r.TargetDN == u.DN:
					t.Errorf("the refused reset is recorded against %s", u.DN)
				case r.Result == "success" && r.TargetDN == u.DN && strings.Contains(r.TargetName, u.Login):
					resolved = true
				}
			}
			if !refused || !resolved {
				t.Errorf("audit rows: refused with the quoted typed text %v, success naming the account %v", refused, resolved)
			}
		})
	}
}

// TestUserPageErrors: what the helpdesk sees when the account cannot be read:
// never an empty 200.
func TestUserPageErrors(t *testing.T) {
	env := testbed.Load(t)
	d := directories(env)[0]

	t.Run("account not there", func(t *testing.T) {
		h := newHarness(t)
		hd := helpdeskOn(t, h, env, d, writeback.Input{})
		gone := d.newUser(t, testbed.UserOptions{})
		admin := env.AdminConn(t, env.AD)
		if err := admin.Del(ldap.NewDelRequest(gone.DN, nil)); err != nil {
			t.Fatal(err)
		}
		if p := hd.get(userPath(gone.Login)); p.Status != http.StatusNotFound || !strings.Contains(p.Body, "No account matches") {
			t.Errorf("GET of a vanished user: %d %q", p.Status, between(p.Body, "<main", "</main>"))
		}
		// A form error (no password) re-reads the user, who is gone.
		p := hd.post(userPath(gone.Login)+"/reset", url.Values{"csrf_token": {hd.csrf("/")}})
		if p.Status != http.StatusNotFound || !strings.Contains(p.Body, `data-testid="error-message"`) || !strings.Contains(p.Body, "No account matches") {
			t.Errorf("reset form error for a vanished user: %d, want the 404 page\n%q", p.Status, p.Body)
		}
		p = hd.post(userPath(gone.Login)+"/reset", url.Values{"csrf_token": {hd.csrf("/")}, "password": {"Abc-12345"}, "confirm": {"Abc-1234"}})
		if p.Status != http.StatusNotFound || !strings.Contains(p.Body, "No account matches") {
			t.Errorf("reset with mismatched passwords for a vanished user: %d", p.Status)
		}
	})

	t.Run("directory down", func(t *testing.T) {
		h := newHarness(t)
		hd := helpdeskOn(t, h, env, d, writeback.Input{URLs: []string{env.DeadURL}})
		const reason = "The directory is not reachable right now"
		for _, p := range []page{
			hd.get(userPath("alice")),
			hd.post(userPath("alice")+"/reset", url.Values{"csrf_token": {hd.csrf("/")}}),
			hd.post(userPath("alice")+"/reset", url.Values{"csrf_token": {hd.csrf("/")}, "password": {"Abc-12345"}, "confirm": {"Abc-12345"}}),
			hd.post(userPath("alice")+"/unlock", url.Values{"csrf_token": {hd.csrf("/")}}),
		} {
			if p.Status != http.StatusServiceUnavailable || !strings.Contains(between(p.Body, `data-testid="error-message"`, "</p>"), reason) ||
				!strings.Contains(p.Body, "</html>") {
				t.Errorf("with the DC down: %d, want the 503 page saying %q\n%q", p.Status, reason, p.Body)
			}
		}
		// The failed lookups also told the status panel.
		g := h.client().signedIn(admins.GlobalAdmin)
		if p := g.get(onPremPath); !strings.Contains(p.Body, `data-testid="service-state">Error`) {
			t.Errorf("the status panel did not notice the outage: %s", between(p.Body, `data-testid="service-panel"`, "</section>"))
		}
	})
}

// sentRequests records what the portal's directory client sends.
type sentRequests struct {
	mu   sync.Mutex
	list []directory.Request
}

func recordRequests(t *testing.T, wb *writeback.Service) *sentRequests {
	t.Helper()
	d, _, err := wb.Client(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	cl := d.(*directory.Client) // a direct connection: its requests can be watched
	r := &sentRequests{}
	cl.OnRequest(func(q directory.Request) {
		r.mu.Lock()
		r.list = append(r.list, q)
		r.mu.Unlock()
	})
	t.Cleanup(func() { cl.OnRequest(nil) })
	return r
}

// take returns what was sent since the last take, as op/kind words.
func (r *sentRequests) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, q := range r.list {
		out = append(out, q.Op+"/"+q.Kind)
	}
	r.list = nil
	return out
}

// TestUserPagesReadOnce: the helpdesk's user page reads the account once
// (its policy comes with it), a reset or unlock reads it once right before
// the write and not again after. Counted in the steady state, after a first
// page load.
func TestUserPagesReadOnce(t *testing.T) {
	env := testbed.Load(t)
	for _, d := range directories(env) {
		t.Run(d.name, func(t *testing.T) {
			h := newHarness(t)
			hd := helpdeskOn(t, h, env, d, writeback.Input{})
			u := d.newUser(t, testbed.UserOptions{})
			if p := hd.get(userPath(u.Login)); p.Status != http.StatusOK {
				t.Fatalf("first page load: %d", p.Status)
			}
			rec := recordRequests(t, h.wb)

			want := func(what string, got []string, exp ...string) {
				t.Helper()
				if !slices.Equal(got, exp) {
					t.Errorf("%s sent %v, want %v", what, got, exp)
				}
			}
			write := "reset/modify"
			if d.typ == "openldap" {
				write = "reset/extended"
			}
			if p := hd.get(userPath(u.Login)); p.Status != http.StatusOK || !strings.Contains(p.Body, "minimum length") {
				t.Fatalf("user page: %d, no policy shown", p.Status)
			}
			want("the user page", rec.take(), "find/search")

			csrf := hd.csrf("/")
			rec.take()
			pw := testbed.RandomPassword()
			if p := hd.post(userPath(u.Login)+"/reset", url.Values{"csrf_token": {csrf}, "password": {pw}, "confirm": {pw}}); p.Status != http.StatusSeeOther {
				t.Fatalf("reset: %d", p.Status)
			}
			want("a reset", rec.take(), "reset/search", write)
			if p := hd.post(userPath(u.Login)+"/unlock", url.Values{"csrf_token": {csrf}}); p.Status != http.StatusSeeOther {
				t.Fatalf("unlock: %d", p.Status)
			}
			want("an unlock", rec.take(), "unlock/search", "unlock/modify")

			if d.typ == "ad" {
				env.AddADMember(t, "CN=Backup Operators,CN=Builtin,"+env.AD.BaseDN, u.DN)
			} else {
				admin := env.AdminConn(t, d.dir)
				mod := ldap.NewModifyRequest(u.DN, nil)
				mod.Replace("pwdAccountLockedTime", []string{"000001010000Z"})
				if err := admin.Modify(mod); err != nil {
					t.Fatal(err)
				}
			}
			p := hd.post(userPath(u.Login)+"/reset", url.Values{"csrf_token": {csrf}, "password": {pw + "x"}, "confirm": {pw + "x"}})
			if p.Status != http.StatusForbidden {
				t.Fatalf("reset of an account made protected or disabled: %d", p.Status)
			}
			// The refusal reads the account once before it would write;
			// the page that says why reads it afresh, policy included.
			want("a refused reset and its page", rec.take(), "reset/search", "find/search")
		})
	}
}
