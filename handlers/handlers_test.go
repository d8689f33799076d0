package handlers_test

import (
	"context"
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/writeback/writeback/services/admins"
	"github.com/writeback/writeback/services/audit"
)

const onPremPath = "/admin/password-reset/on-premises-integration"

func TestAccessMatrix(t *testing.T) {
	h := newHarness(t)
	h.connectDirectory(t, true)
	roles := []admins.Role{"", admins.ReportsReader, admins.HelpdeskAdmin, admins.GlobalAdmin}
	type want struct{ get, post int }
	type accessCase struct {
		path string
		form url.Values
		want map[admins.Role]want
	}
	cases := []accessCase{
		{onPremPath, url.Values{"writeback": {"yes"}, "unlock": {"yes"}},
			map[admins.Role]want{
				"":                   {http.StatusSeeOther, http.StatusUnauthorized},
				admins.ReportsReader: {http.StatusOK, http.StatusForbidden},
				admins.HelpdeskAdmin: {http.StatusOK, http.StatusForbidden},
				admins.GlobalAdmin:   {http.StatusOK, http.StatusSeeOther},
			}},
		{"/admin/administrators", url.Values{"email": {"new@example.com"}, "name": {"New"}, "role": {"reports-reader"}, "password": {"a long enough password"}},
			map[admins.Role]want{
				"":                   {http.StatusSeeOther, http.StatusUnauthorized},
				admins.ReportsReader: {http.StatusForbidden, http.StatusForbidden},
				admins.HelpdeskAdmin: {http.StatusForbidden, http.StatusForbidden},
				admins.GlobalAdmin:   {http.StatusOK, http.StatusSeeOther},
			}},
	}
	readOnly := map[admins.Role]want{
		"":                   {http.StatusSeeOther, http.StatusUnauthorized},
		admins.ReportsReader: {http.StatusOK, http.StatusForbidden},
		admins.HelpdeskAdmin: {http.StatusOK, http.StatusForbidden},
		admins.GlobalAdmin:   {http.StatusOK, http.StatusSeeOther},
	}
	cases = append(cases,
		accessCase{"/admin/password-reset/properties", url.Values{"enabled": {"all"}}, readOnly},
		accessCase{"/admin/password-reset/customization", url.Values{"helpdesk": {"help@example.com"}}, readOnly},
		accessCase{"/admin/password-reset/mail-server", url.Values{"host": {"127.0.0.1"}, "port": {"2525"}, "tls": {"none"}, "from": {"p@example.com"}}, readOnly},
	)
	for _, tc := range cases {
		for _, role := range roles {
			name := string(role)
			if name == "" {
				name = "anonymous"
			}
			t.Run(tc.path+"/"+name, func(t *testing.T) {
				c := h.client()
				if role != "" {
					c.signedIn(role)
				}
				w := tc.want[role]
				if got := c.get(tc.path); got.Status != w.get {
					t.Errorf("GET status %d, want %d", got.Status, w.get)
				}
				tok := c.csrf("/")
				form := url.Values{"csrf_token": {tok}, "version": {versionOn(t, c, tc.path)}}
				for k, v := range tc.form {
					form[k] = v
				}
				before := auditCount(t, h)
				got := c.post(tc.path, form)
				if got.Status != w.post {
					t.Errorf("POST status %d, want %d\n%s", got.Status, w.post, got.Body)
				}
				if w.post != http.StatusSeeOther && auditCount(t, h) != before {
					t.Errorf("a refused POST wrote audit rows")
				}
			})
		}
	}
	// Refused POSTs changed nothing: only the Global Administrator's save took.
	o, meta, _ := h.settings.OnPrem(context.Background())
	if !o.Writeback || !o.Unlock || !strings.Contains(meta.UpdatedBy, "global-admin") {
		t.Errorf("settings = %+v by %q", o, meta.UpdatedBy)
	}
}

// versionOn reads the version a page's form would submit (0 when the page
// cannot be read by this client).
func versionOn(t *testing.T, c *client, path string) string {
	m := versionRE.FindStringSubmatch(c.get(path).Body)
	if m == nil {
		return "0"
	}
	return m[1]
}

func currentVersion(t *testing.T, h *harness) string {
	_, meta, err := h.settings.OnPrem(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return itoa(meta.Version)
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func formatInt(n int64) string { return strconv.FormatInt(n, 10) }

func auditCount(t *testing.T, h *harness) int {
	var n int
	if err := h.db.SQL().QueryRow(`SELECT count(*) FROM audit_events WHERE activity NOT IN (?, ?)`,
		audit.ActivityAdminSignIn, audit.ActivityAdminSignOut).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestReadOnlyRolesSeeNote(t *testing.T) {
	h := newHarness(t)
	for _, role := range []admins.Role{admins.ReportsReader, admins.HelpdeskAdmin} {
		c := h.client().signedIn(role)
		p := c.get(onPremPath)
		if !strings.Contains(p.Body, `data-testid="read-only"`) || strings.Contains(p.Body, `data-testid="save"`) {
			t.Errorf("%s: page is not read-only", role)
		}
		if !regexp.MustCompile(`id="writeback-yes"[^>]*disabled`).MatchString(p.Body) || !regexp.MustCompile(`id="writeback-no"[^>]*disabled`).MatchString(p.Body) {
			t.Errorf("%s: the writeback switch is not disabled", role)
		}
	}
	c := h.client().signedIn(admins.GlobalAdmin)
	if p := c.get(onPremPath); strings.Contains(p.Body, `data-testid="read-only"`) || !strings.Contains(p.Body, `data-testid="save"`) {
		t.Error("global admin sees a read-only page")
	}
}

func TestCSRF(t *testing.T) {
	h := newHarness(t)
	h.connectDirectory(t, true)
	c := h.client().signedIn(admins.GlobalAdmin)
	tok := c.csrf(onPremPath)
	form := url.Values{"csrf_token": {tok}, "version": {"0"}, "writeback": {"yes"}, "unlock": {"yes"}}

	t.Run("cross-origin POST with a valid token is refused", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, h.srv.URL+onPremPath, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", "https://evil.example")
		req.Header.Set("Sec-Fetch-Site", "cross-site")
		p := c.do(req)
		if p.Status != http.StatusForbidden || !strings.Contains(p.Body, "did not come from this portal") {
			t.Errorf("status %d", p.Status)
		}
	})
	t.Run("missing token is refused", func(t *testing.T) {
		f := url.Values{"version": {"0"}, "writeback": {"yes"}}
		if p := c.post(onPremPath, f); p.Status != http.StatusForbidden {
			t.Errorf("status %d", p.Status)
		}
	})
	t.Run("token of another session is refused", func(t *testing.T) {
		other := h.client()
		f := url.Values{"csrf_token": {other.csrf("/")}, "version": {"0"}, "writeback": {"yes"}}
		if p := c.post(onPremPath, f); p.Status != http.StatusForbidden {
			t.Errorf("status %d", p.Status)
		}
	})
	t.Run("login form is protected too", func(t *testing.T) {
		anon := h.client()
		anon.csrf("/")
		p := anon.post("/login", url.Values{"email": {"global-admin@example.com"}, "password": {testPassword}})
		if p.Status != http.StatusForbidden {
			t.Errorf("status %d", p.Status)
		}
	})
	o, _, _ := h.settings.OnPrem(context.Background())
	if o.Writeback {
		t.Error("a refused request changed the settings")
	}
	if p := c.post(onPremPath, form); p.Status != http.StatusSeeOther {
		t.Fatalf("same-origin save: status %d", p.Status)
	}
}

func TestOnPremSave(t *testing.T) {
	h := newHarness(t)
	h.connectDirectory(t, true)
	c := h.client().signedIn(admins.GlobalAdmin)

	save := func(v, writeback, unlock string) page {
		f := url.Values{"csrf_token": {c.csrf(onPremPath)}, "version": {v}}
		if writeback != "" {
			f.Set("writeback", writeback)
		}
		if unlock != "" {
			f.Set("unlock", unlock)
		}
		return c.post(onPremPath, f)
	}

	// Writeback No forces unlock No.
	if p := save("0", "no", "yes"); p.Status != http.StatusSeeOther {
		t.Fatalf("status %d", p.Status)
	}
	if o, _, _ := h.settings.OnPrem(context.Background()); o.Unlock || o.Writeback {
		t.Errorf("unlock stored without writeback: %+v", o)
	}
	// Both on: confirmation, who and when, audit rows.
	v := currentVersion(t, h)
	if p := save(v, "yes", "yes"); p.Status != http.StatusSeeOther {
		t.Fatalf("status %d", p.Status)
	}
	p := c.get(onPremPath)
	for _, want := range []string{"Saved. Write back passwords: Yes", "Last changed by global-admin", `id="writeback-yes" name="writeback" value="yes" checked`} {
		if !strings.Contains(p.Body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	rows, err := h.db.RecentAudit(context.Background(), "", 10)
	if err != nil {
		t.Fatal(err)
	}
	var enable, policy bool
	for _, r := range rows {
		switch r.Activity {
		case audit.ActivityEnableWriteback:
			enable = r.Result == "success" && r.ActorName != "" && r.ClientIP == "127.0.0.1" && r.TimeMS > 0
		case audit.ActivityUpdateSSPRPolicy:
			if strings.Contains(r.Details, `"unlock_without_password_reset":{"old":"No","new":"Yes"}`) {
				policy = true
			}
		}
	}
	if !enable || !policy {
		t.Errorf("audit rows missing: enable=%v policy=%v", enable, policy)
	}

	t.Run("bad value keeps everything", func(t *testing.T) {
		p := save(currentVersion(t, h), "maybe", "yes")
		if p.Status != http.StatusUnprocessableEntity || !strings.Contains(p.Body, "Choose Yes or No.") {
			t.Errorf("status %d", p.Status)
		}
	})
	t.Run("stale page is refused", func(t *testing.T) {
		other := h.client()
		h.addAdmin("second@example.com", admins.GlobalAdmin)
		other.login("second@example.com")
		stale := currentVersion(t, h)
		f := url.Values{"csrf_token": {other.csrf(onPremPath)}, "version": {stale}, "writeback": {"no"}}
		if p := other.post(onPremPath, f); p.Status != http.StatusSeeOther {
			t.Fatalf("second admin save: %d", p.Status)
		}
		p := save(stale, "yes", "yes")
		if p.Status != http.StatusConflict || !strings.Contains(p.Body, "changed by second") || !strings.Contains(p.Body, "review and save again") {
			t.Errorf("status %d\n%s", p.Status, p.Body)
		}
		if o, _, _ := h.settings.OnPrem(context.Background()); o.Writeback {
			t.Error("stale save overwrote the newer one")
		}
	})
}

func TestPanelNotConfigured(t *testing.T) {
	h := newHarness(t)
	c := h.client().signedIn(admins.HelpdeskAdmin)
	p := c.get(onPremPath)
	if !strings.Contains(p.Body, "On-premises writeback service") || !strings.Contains(p.Body, `data-testid="service-state">Not configured`) {
		t.Error("service panel does not say Not configured")
	}
}

func TestSecurityHeadersAndErrorPages(t *testing.T) {
	h := newHarness(t)
	c := h.client()
	p := c.get("/no/such/page")
	if p.Status != http.StatusNotFound || !strings.Contains(p.Body, "Page not found") || !strings.Contains(p.Body, "/static/app.css") {
		t.Errorf("404 page: %d", p.Status)
	}
	csp := p.Header.Get("Content-Security-Policy")
	for _, want := range []string{"frame-ancestors 'none'", "script-src 'self'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "script-src 'self' 'unsafe-inline'") {
		t.Error("CSP allows inline script")
	}
	if p.Header.Get("X-Content-Type-Options") != "nosniff" || p.Header.Get("Referrer-Policy") == "" {
		t.Error("missing nosniff or Referrer-Policy")
	}
	if p.Header.Get("Strict-Transport-Security") != "" {
		t.Error("HSTS sent over plain http base URL")
	}
	// A body over the limit is refused.
	big := url.Values{"csrf_token": {c.csrf("/")}, "email": {strings.Repeat("a", 2<<20)}}
	if p := c.post("/login", big); p.Status != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized body: status %d", p.Status)
	}
}

func TestLogin(t *testing.T) {
	h := newHarness(t)
	h.addAdmin("ada@example.com", admins.GlobalAdmin)
	c := h.client()
	wrongPassword := c.post("/login", url.Values{"csrf_token": {c.csrf("/")}, "email": {"ada@example.com"}, "password": {"nope-nope-nope"}})
	unknown := c.post("/login", url.Values{"csrf_token": {c.csrf("/")}, "email": {"nobody@example.com"}, "password": {"nope-nope-nope"}})
	if wrongPassword.Status != http.StatusUnauthorized || unknown.Status != http.StatusUnauthorized {
		t.Fatalf("status %d / %d", wrongPassword.Status, unknown.Status)
	}
	msg := "That e-mail address and password don&#39;t match an active administrator."
	if !strings.Contains(wrongPassword.Body, msg) || !strings.Contains(unknown.Body, msg) {
		t.Error("sign-in failures do not answer the same generic message")
	}
	// Session fixation: the cookie changes at sign-in.
	before := c.csrf("/")
	c.login("ada@example.com")
	if after := c.csrf(onPremPath); after == before {
		t.Error("CSRF secret not rotated at sign-in")
	}
	// Sign-out ends the server-side session.
	cookies := c.http.Jar.Cookies(mustURL(h.srv.URL))
	if p := c.post("/logout", url.Values{"csrf_token": {c.csrf(onPremPath)}}); p.Status != http.StatusSeeOther {
		t.Fatalf("logout %d", p.Status)
	}
	replay := h.client()
	replay.http.Jar.SetCookies(mustURL(h.srv.URL), cookies)
	if p := replay.get(onPremPath); p.Status != http.StatusSeeOther {
		t.Errorf("old cookie still works after sign-out: %d", p.Status)
	}
	// Audit has sign-in success and failure.
	rows, _ := h.db.RecentAudit(context.Background(), audit.ActivityAdminSignIn, 10)
	var ok, failed int
	for _, r := range rows {
		if r.Result == "success" {
			ok++
		} else {
			failed++
		}
		if strings.Contains(r.Details+r.Reason, "nope-nope-nope") {
			t.Error("a password reached the audit log")
		}
	}
	if ok != 1 || failed != 2 {
		t.Errorf("sign-in audit rows: %d ok, %d failed", ok, failed)
	}
	if strings.Contains(h.logs.String(), "nope-nope-nope") || strings.Contains(h.logs.String(), testPassword) {
		t.Error("a password reached the log")
	}
}

func TestThrottle(t *testing.T) {
	h := newHarness(t)
	h.addAdmin("ada@example.com", admins.GlobalAdmin)
	c := h.client()
	var last page
	for i := 0; i < 6; i++ {
		last = c.post("/login", url.Values{"csrf_token": {c.csrf("/")}, "email": {"ada@example.com"}, "password": {"wrong password here"}})
	}
	if last.Status != http.StatusTooManyRequests {
		t.Fatalf("6th failure: status %d", last.Status)
	}
	// Even the right password is refused while throttled.
	p := c.post("/login", url.Values{"csrf_token": {c.csrf("/")}, "email": {"ada@example.com"}, "password": {testPassword}})
	if p.Status != http.StatusTooManyRequests {
		t.Errorf("right password while throttled: %d", p.Status)
	}
}

func TestAdministratorsPage(t *testing.T) {
	h := newHarness(t)
	c := h.client().signedIn(admins.GlobalAdmin)
	self, _ := h.db.AdminByEmail(context.Background(), "global-admin@example.com")

	// Validation keeps input and says what is wrong.
	p := c.post("/admin/administrators", url.Values{"csrf_token": {c.csrf("/admin/administrators")}, "email": {"not-an-email"}, "name": {"Bob"}, "role": {"helpdesk-admin"}, "password": {"short"}})
	if p.Status != http.StatusUnprocessableEntity || !strings.Contains(p.Body, "Use at least 12 characters.") || !strings.Contains(p.Body, `value="not-an-email"`) {
		t.Errorf("validation: %d", p.Status)
	}
	if strings.Contains(p.Body, `value="short"`) {
		t.Error("password echoed back")
	}
	// The last Global Administrator cannot be demoted or disabled.
	p = c.post("/admin/administrators/"+formatInt(self.ID), url.Values{"csrf_token": {c.csrf("/admin/administrators")}, "role": {"reports-reader"}, "state": {"active"}})
	if p.Status != http.StatusConflict || !strings.Contains(p.Body, "last active Global Administrator") {
		t.Errorf("demote last global: %d", p.Status)
	}
	// Changing someone's role ends their session at once.
	h.addAdmin("helper@example.com", admins.HelpdeskAdmin)
	other := h.client()
	other.login("helper@example.com")
	if p := other.get(onPremPath); p.Status != http.StatusOK {
		t.Fatalf("helper: %d", p.Status)
	}
	helper, _ := h.db.AdminByEmail(context.Background(), "helper@example.com")
	p = c.post("/admin/administrators/"+formatInt(helper.ID), url.Values{"csrf_token": {c.csrf("/admin/administrators")}, "role": {"reports-reader"}, "state": {"active"}})
	if p.Status != http.StatusSeeOther {
		t.Fatalf("change role: %d %s", p.Status, p.Body)
	}
	if p := other.get(onPremPath); p.Status != http.StatusSeeOther {
		t.Errorf("session survived a role change: %d", p.Status)
	}
	other.login("helper@example.com")
	p = c.post("/admin/administrators/"+formatInt(helper.ID), url.Values{"csrf_token": {c.csrf("/admin/administrators")}, "role": {"reports-reader"}, "state": {"disabled"}})
	if p.Status != http.StatusSeeOther {
		t.Fatalf("disable: %d", p.Status)
	}
	if p := other.get(onPremPath); p.Status != http.StatusSeeOther {
		t.Errorf("session survived disabling: %d", p.Status)
	}
	lp := other.post("/login", url.Values{"csrf_token": {other.csrf("/")}, "email": {"helper@example.com"}, "password": {testPassword}})
	if lp.Status != http.StatusUnauthorized {
		t.Errorf("disabled admin signed in: %d", lp.Status)
	}
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}

// TestClientAddressFromTrustedProxiesOnly: X-Forwarded-For names the client
// in the audit log only when the peer is a configured proxy.
func TestClientAddressFromTrustedProxiesOnly(t *testing.T) {
	for _, tc := range []struct {
		name    string
		trusted []netip.Prefix
		want    string
	}{
		{"untrusted peer", nil, "127.0.0.1"},
		{"trusted proxy", []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, "203.0.113.7"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarnessWith(t, tc.trusted)
			c := h.client()
			form := url.Values{"csrf_token": {c.csrf("/")}, "email": {"nobody@example.com"}, "password": {"nope-nope-nope"}}
			req, _ := http.NewRequest(http.MethodPost, h.srv.URL+"/login", strings.NewReader(form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Origin", h.srv.URL)
			// A client-forged hop first, then the address the proxy saw.
			req.Header.Set("X-Forwarded-For", "198.51.100.1, 203.0.113.7")
			c.do(req)
			rows, _ := h.db.RecentAudit(context.Background(), audit.ActivityAdminSignIn, 1)
			if len(rows) != 1 || rows[0].ClientIP != tc.want {
				t.Errorf("client address %+v, want %s", rows, tc.want)
			}
		})
	}
}
