package handlers_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/writeback/writeback/handlers"
	"github.com/writeback/writeback/services/admins"
	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/selfservice"
	"github.com/writeback/writeback/store"
)

// TestRouteRateLimits: the per-client-address limits on public POST routes
// hold (10 a minute on /setup), another client address has its own, and
// the refusal is the portal's "Too many attempts" page with Retry-After.
func TestRouteRateLimits(t *testing.T) {
	h := newHarnessWith(t, []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")})
	c := h.client()
	send := func(from string) page {
		form := url.Values{"csrf_token": {c.csrf("/")}, "token": {"not-a-token"}, "email": {"a@example.com"}, "name": {"A"},
			"password": {"a long enough password"}, "confirm": {"a long enough password"}}
		req, _ := http.NewRequest(http.MethodPost, h.srv.URL+"/setup", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", h.srv.URL)
		req.Header.Set("X-Forwarded-For", from)
		return c.do(req)
	}
	post := func(from string) int { return send(from).Status }
	for i := 1; i <= 10; i++ {
		if got := post("203.0.113.7"); got == http.StatusTooManyRequests {
			t.Fatalf("request %d limited", i)
		}
	}
	wantRefused(t, "11th request in a minute", send("203.0.113.7"))
	if got := post("203.0.113.8"); got == http.StatusTooManyRequests {
		t.Error("another client address shares the budget")
	}
}

const propertiesPath = "/admin/password-reset/properties"

// newLimitHarness is a harness whose server has cfg's rate limit defaults
// (the flags of writeback serve) and trusts X-Forwarded-For from loopback,
// so that a test can send from any client address.
func newLimitHarness(t *testing.T, cfg handlers.Config) *harness {
	t.Helper()
	p := newPortal(t)
	cfg.BaseURL, _ = url.Parse(testBaseURL)
	cfg.CookieHashKey, cfg.CookieBlockKey, cfg.TrustedProxies = p.keys.Derive("h"), p.keys.Derive("b"), loopback
	s := handlers.New(cfg, p.log, handlers.Deps{Admins: p.admins, Settings: p.settings, Writeback: p.wb, SelfService: p.ss,
		Audit: p.audit, Limits: p.ss})
	srv := httptest.NewServer(s.Routes())
	t.Cleanup(srv.Close)
	return &harness{portal: p, t: t, srv: srv}
}

// limitedRoute is one limit an administrator can change: its field on the
// Properties page, and a request that it counts.
type limitedRoute struct {
	name, field, path string
	form              func(c *client) url.Values
}

var limitedRoutes = []limitedRoute{
	{"employee pages", "public_per_minute", "/reset", func(c *client) url.Values {
		return url.Values{"csrf_token": {c.csrf("/reset")}, "login": {"nobody"}}
	}},
	{"administrator sign-in", "signin_per_minute", "/login", func(c *client) url.Values {
		return url.Values{"csrf_token": {c.csrf("/login")}, "email": {"nobody@example.com"}, "password": {"wrong password here"}}
	}},
}

// other is the limited route that is not r.
func (r limitedRoute) other() limitedRoute {
	if r.field == limitedRoutes[0].field {
		return limitedRoutes[1]
	}
	return limitedRoutes[0]
}

// saveProperties saves the Properties page with the given limit fields
// (and self-service left off).
func saveProperties(c *client, limits map[string]string) page {
	c.t.Helper()
	form := url.Values{"csrf_token": {c.csrf(propertiesPath)}, "version": {versionOn(c.t, c, propertiesPath)}, "enabled": {"none"}, "group": {""}}
	for k, v := range limits {
		form.Set(k, v)
	}
	return c.post(propertiesPath, form)
}

// wantRefused checks that p is the rate limit's refusal: 429, Retry-After,
// the portal's "Too many attempts" page.
func wantRefused(t *testing.T, what string, p page) {
	t.Helper()
	if p.Status != http.StatusTooManyRequests || p.Header.Get("Retry-After") != "60" {
		t.Fatalf("%s: status %d, Retry-After %q; want 429 and 60", what, p.Status, p.Header.Get("Retry-After"))
	}
	if !strings.Contains(p.Body, "Too many attempts") || !strings.Contains(p.Body, "Wait a minute and try again") ||
		!strings.Contains(p.Header.Get("Content-Type"), "text/html") {
		t.Errorf("%s: not the portal's page:\n%s", what, p.Body)
	}
}

// wantServed checks that the rate limit let p through (its refusal is the
// one 429 with Retry-After: a sign-in throttled per account is not).
func wantServed(t *testing.T, what string, p page) {
	t.Helper()
	if p.Status == http.StatusTooManyRequests && p.Header.Get("Retry-After") != "" {
		t.Fatalf("%s: refused by the rate limit:\n%s", what, p.Body)
	}
}

// TestRateLimitSavedOnPropertiesApplies: a limit saved on the Properties
// page applies to the next requests, without a restart: with a limit of 3
// the 4th request in a minute from one address is refused with the
// portal's 429 page and Retry-After, another address and the other limit
// are not affected, and clearing the field brings back the default.
func TestRateLimitSavedOnPropertiesApplies(t *testing.T) {
	for _, rt := range limitedRoutes {
		t.Run(rt.name, func(t *testing.T) {
			h := newLimitHarness(t, handlers.Config{})
			admin := h.client().signedIn(admins.GlobalAdmin)
			if p := saveProperties(admin, map[string]string{rt.field: "3"}); p.Status != http.StatusSeeOther {
				t.Fatalf("save: %d\n%s", p.Status, p.Body)
			}
			c := h.client()
			for i := 1; i <= 3; i++ {
				wantServed(t, "request "+itoa(int64(i)), c.postFrom("203.0.113.7", rt.path, rt.form(c)))
			}
			wantRefused(t, "4th request in a minute", c.postFrom("203.0.113.7", rt.path, rt.form(c)))
			wantServed(t, "another address", c.postFrom("203.0.113.8", rt.path, rt.form(c)))
			o := rt.other()
			wantServed(t, "the other limit ("+o.path+")", c.postFrom("203.0.113.7", o.path, o.form(c)))

			// Cleared: the server's default (30) again, at once.
			if p := saveProperties(admin, map[string]string{rt.field: ""}); p.Status != http.StatusSeeOther {
				t.Fatalf("clear: %d\n%s", p.Status, p.Body)
			}
			wantServed(t, "after clearing the limit", c.postFrom("203.0.113.7", rt.path, rt.form(c)))
		})
	}
}

// TestRateLimitFlagIsTheDefault: the server's configured limits (the
// serve flags) apply while the page leaves them empty, the page shows
// them as the default, and a limit saved on the page replaces them.
func TestRateLimitFlagIsTheDefault(t *testing.T) {
	h := newLimitHarness(t, handlers.Config{PublicPerMinute: 2, SignInPerMinute: 4})
	admin := h.client().signedIn(admins.GlobalAdmin)
	body := admin.get(propertiesPath).Body
	for _, want := range []string{`id="public_per_minute"`, "the server&#39;s default, 2.", `id="signin_per_minute"`, "the server&#39;s default, 4."} {
		if !strings.Contains(body, want) {
			t.Errorf("Properties page lacks %s", want)
		}
	}
	c := h.client()
	for _, tc := range []struct {
		rt   limitedRoute
		flag int
	}{{limitedRoutes[0], 2}, {limitedRoutes[1], 4}} {
		for i := 1; i <= tc.flag; i++ {
			wantServed(t, tc.rt.path+" request "+itoa(int64(i)), c.postFrom("203.0.113.7", tc.rt.path, tc.rt.form(c)))
		}
		wantRefused(t, tc.rt.path+" over the flag's limit", c.postFrom("203.0.113.7", tc.rt.path, tc.rt.form(c)))
	}
	// The page's value wins over the flag.
	if p := saveProperties(admin, map[string]string{"public_per_minute": "5"}); p.Status != http.StatusSeeOther {
		t.Fatalf("save: %d\n%s", p.Status, p.Body)
	}
	wantServed(t, "the 3rd request under the page's 5", c.postFrom("203.0.113.7", "/reset", limitedRoutes[0].form(c)))
}

// TestRateLimitBadValuesChangeNothing: a limit the page cannot take is
// refused next to its field with a clear message and the typed value
// kept, and nothing is saved (not the other fields of the form either) or
// audited.
func TestRateLimitBadValuesChangeNothing(t *testing.T) {
	h := newLimitHarness(t, handlers.Config{})
	admin := h.client().signedIn(admins.GlobalAdmin)
	ctx := context.Background()
	for _, field := range []string{"public_per_minute", "signin_per_minute"} {
		for _, bad := range []string{"0", "-1", "10001", "1000000000000000000000", "many", "2.5", "1e3"} {
			t.Run(field+"="+bad, func(t *testing.T) {
				_, before, _ := h.ss.Policy(ctx)
				events := allAuditCount(t, h)
				form := url.Values{"csrf_token": {admin.csrf(propertiesPath)}, "version": {versionOn(t, admin, propertiesPath)},
					"enabled": {"all"}, field: {bad}}
				p := admin.post(propertiesPath, form)
				if p.Status != http.StatusUnprocessableEntity {
					t.Fatalf("status %d", p.Status)
				}
				if !strings.Contains(p.Body, `id="`+field+`-error"`) || !strings.Contains(p.Body, "Enter a whole number from 1 to 10,000") {
					t.Errorf("no message next to the field:\n%s", between(p.Body, `data-testid="rate-limits"`, "</fieldset>"))
				}
				if !strings.Contains(p.Body, `value="`+bad+`"`) {
					t.Error("the typed value was not kept")
				}
				pol, after, _ := h.ss.Policy(ctx)
				if after.Version != before.Version || pol.Enabled != selfservice.EnabledNone || pol.PublicPerMinute != 0 || pol.SignInPerMinute != 0 {
					t.Errorf("saved: %+v (version %d → %d)", pol, before.Version, after.Version)
				}
				if got := allAuditCount(t, h); got != events {
					t.Errorf("%d audit events, was %d", got, events)
				}
			})
		}
	}
}

// TestRateLimitChangeAudited: a limit change is recorded in "Update
// self-service password reset policy" with its old and new value, and the
// Properties page names it as its last change.
func TestRateLimitChangeAudited(t *testing.T) {
	h := newLimitHarness(t, handlers.Config{})
	admin := h.client().signedIn(admins.GlobalAdmin)
	ctx := context.Background()
	// Another page's save first, so that the Properties page's last change
	// can only come from the limit's.
	_, meta, _ := h.ss.Policy(ctx)
	if _, err := h.ss.SavePolicy(ctx, audit.CommandLine, meta.Version, "command line", func(p *selfservice.Policy) { p.OrgName = "Example Ltd" }); err != nil {
		t.Fatal(err)
	}
	if p := saveProperties(admin, map[string]string{"public_per_minute": " 120 ", "signin_per_minute": "45"}); p.Status != http.StatusSeeOther {
		t.Fatalf("save: %d\n%s", p.Status, p.Body)
	}
	if l, _ := h.ss.RateLimits(ctx); l != (selfservice.RateLimits{PublicPerMinute: 120, SignInPerMinute: 45}) {
		t.Errorf("stored limits %+v", l)
	}
	rows, _, err := h.audit.Query(ctx, store.AuditFilter{Activities: []string{audit.ActivityUpdateSSPRPolicy}}, store.Cursor{}, 1)
	if err != nil || len(rows) != 1 {
		t.Fatalf("audit: %v %d", err, len(rows))
	}
	var d map[string]audit.Change
	if err := json.Unmarshal([]byte(rows[0].Details), &d); err != nil {
		t.Fatal(err)
	}
	if got := d["public_per_minute"]; got.Old != "server default" || got.New != float64(120) {
		t.Errorf("public_per_minute change %+v", got)
	}
	if got := d["signin_per_minute"]; got.Old != "server default" || got.New != float64(45) {
		t.Errorf("signin_per_minute change %+v", got)
	}
	if got := lastChangedOn(t, admin, propertiesPath); !strings.Contains(got, "Last changed by global-admin") {
		t.Errorf("Properties page says %q", got)
	}
	body := admin.get(propertiesPath).Body
	if !strings.Contains(body, `value="120"`) || !strings.Contains(body, `value="45"`) {
		t.Error("the page does not show the saved limits")
	}
	// A Properties form without the limit fields keeps them.
	form := url.Values{"csrf_token": {admin.csrf(propertiesPath)}, "version": {versionOn(t, admin, propertiesPath)}, "enabled": {"all"}}
	if p := admin.post(propertiesPath, form); p.Status != http.StatusSeeOther {
		t.Fatalf("save without the fields: %d", p.Status)
	}
	if l, _ := h.ss.RateLimits(ctx); l.PublicPerMinute != 120 || l.SignInPerMinute != 45 {
		t.Errorf("a form without the limit fields changed them: %+v", l)
	}
}

// TestRateLimitConcurrentRequests: many requests at once from one address
// never let more than the limit through.
func TestRateLimitConcurrentRequests(t *testing.T) {
	const limit, n = 5, 40
	h := newLimitHarness(t, handlers.Config{})
	admin := h.client().signedIn(admins.GlobalAdmin)
	if p := saveProperties(admin, map[string]string{"public_per_minute": itoa(limit)}); p.Status != http.StatusSeeOther {
		t.Fatalf("save: %d", p.Status)
	}
	c := h.client()
	form := limitedRoutes[0].form(c)
	var wg sync.WaitGroup
	var mu sync.Mutex
	statuses := map[int]int{}
	for range n {
		wg.Go(func() {
			req, _ := http.NewRequest(http.MethodPost, h.srv.URL+"/reset", strings.NewReader(form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Origin", h.srv.URL)
			req.Header.Set("X-Forwarded-For", "203.0.113.9")
			resp, err := c.http.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			mu.Lock()
			statuses[resp.StatusCode]++
			mu.Unlock()
		})
	}
	wg.Wait()
	if statuses[http.StatusTooManyRequests] != n-limit {
		t.Errorf("statuses %v: want %d refused and %d served", statuses, n-limit, limit)
	}
}

// TestRateLimitReadsSettingsFromMemory: the limit is read per request from
// the settings cache, not from the database (a guard, not a change: the
// old fixed limit read nothing).
func TestRateLimitReadsSettingsFromMemory(t *testing.T) {
	h := newLimitHarness(t, handlers.Config{})
	admin := h.client().signedIn(admins.GlobalAdmin)
	if p := saveProperties(admin, map[string]string{"public_per_minute": "1000", "signin_per_minute": "1000"}); p.Status != http.StatusSeeOther {
		t.Fatalf("save: %d", p.Status)
	}
	c := h.client()
	for _, rt := range limitedRoutes {
		form := rt.form(c)
		wantServed(t, "warm-up", c.postFrom("203.0.113.7", rt.path, form))
		reads := h.db.ConfigReads()
		for range 20 {
			wantServed(t, rt.path, c.postFrom("203.0.113.7", rt.path, form))
		}
		if n := h.db.ConfigReads() - reads; n != 0 {
			t.Errorf("%s: %d settings documents read from the database for 20 requests", rt.path, n)
		}
	}
}
