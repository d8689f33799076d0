package handlers_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/writeback/writeback/handlers"
	"github.com/writeback/writeback/services/admins"
	"github.com/writeback/writeback/services/keyring"
)

// crossSite sends a form the way another site's page does: a foreign
// Origin and, from a current browser, Sec-Fetch-Site: cross-site.
func (c *client) crossSite(path string, form url.Values, fetchMetadata bool) page {
	c.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, c.h.srv.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "https://evil.example")
	if fetchMetadata {
		req.Header.Set("Sec-Fetch-Site", "cross-site")
		req.Header.Set("Sec-Fetch-Mode", "navigate")
		req.Header.Set("Sec-Fetch-Dest", "document")
	}
	return c.do(req)
}

// TestRefusalsSetNoCookie: a cross-site or token-less form post is refused
// with 403 and no Set-Cookie, with or without the browser's cookie, so the
// browser keeps the session it has.
func TestRefusalsSetNoCookie(t *testing.T) {
	h := newHarness(t)
	admin := h.client().signedIn(admins.GlobalAdmin)
	anon := h.client()
	anon.get("/reset") // an employee with a session of their own
	nobody := h.client()
	tok := admin.csrf(onPremPath)
	settingsForm := url.Values{"csrf_token": {tok}, "version": {currentVersion(t, h)}, "writeback": {"yes"}}
	paths := []string{"/logout", "/login", onPremPath, "/reset", "/reset/0123456789abcdef/verify", "/admin/administrators"}
	before := auditCount(t, h)
	for _, path := range paths {
		for _, who := range []struct {
			name string
			c    *client
		}{{"administrator", admin}, {"employee", anon}, {"no cookie", nobody}} {
			for _, fm := range []bool{true, false} {
				got := who.c.crossSite(path, settingsForm, fm)
				if got.Status != http.StatusForbidden || got.Header.Values("Set-Cookie") != nil {
					t.Errorf("cross-site POST %s (%s, fetch metadata %v): %d, Set-Cookie %q", path, who.name, fm, got.Status, got.Header.Values("Set-Cookie"))
				}
			}
		}
		// Same-origin, but no session and so no token: refused, no cookie.
		if got := nobody.post(path, url.Values{"csrf_token": {tok}}); got.Status != http.StatusForbidden || got.Header.Values("Set-Cookie") != nil {
			t.Errorf("POST %s without a session: %d, Set-Cookie %q", path, got.Status, got.Header.Values("Set-Cookie"))
		}
		// A tampered cookie is no session either.
		req, _ := http.NewRequest(http.MethodPost, h.srv.URL+path, strings.NewReader("csrf_token="+tok))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Cookie", "wb_session=garbage")
		if got := h.client().do(req); got.Status != http.StatusForbidden || got.Header.Values("Set-Cookie") != nil {
			t.Errorf("POST %s with a tampered cookie: %d, Set-Cookie %q", path, got.Status, got.Header.Values("Set-Cookie"))
		}
	}
	if auditCount(t, h) != before {
		t.Error("a refused request wrote audit rows")
	}
	if o, _, _ := h.settings.OnPrem(t.Context()); o.Writeback {
		t.Error("a refused request changed the settings")
	}
	// Everyone still holds their session.
	if p := admin.get(onPremPath); p.Status != http.StatusOK || !strings.Contains(p.Body, `data-testid="viewer"`) {
		t.Errorf("the administrator was signed out: %d", p.Status)
	}
	if admin.csrf(onPremPath) != tok {
		t.Error("the administrator's session changed")
	}
}

// TestSessionCookieOnlyOnPageViews: a page view without a session gets one;
// another site's image or script request does not.
func TestSessionCookieOnlyOnPageViews(t *testing.T) {
	h := newHarness(t)
	c := h.client()
	p := c.get("/login")
	if len(p.Header.Values("Set-Cookie")) != 1 {
		t.Fatalf("first page view: Set-Cookie %q", p.Header.Values("Set-Cookie"))
	}
	req, _ := http.NewRequest(http.MethodGet, h.srv.URL+"/login", nil)
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	req.Header.Set("Sec-Fetch-Mode", "no-cors")
	req.Header.Set("Sec-Fetch-Dest", "image")
	if got := h.client().do(req); got.Header.Values("Set-Cookie") != nil {
		t.Errorf("cross-site image request: Set-Cookie %q", got.Header.Values("Set-Cookie"))
	}
}

// TestSessionCookieAttributes: HttpOnly, SameSite=Lax, Path=/ and no
// Domain always; Secure and the __Host- prefix with an https base URL.
func TestSessionCookieAttributes(t *testing.T) {
	for _, tc := range []struct {
		base, name string
		secure     bool
	}{
		{"http://portal.test", "wb_session", false},
		{"https://portal.example", "__Host-wb_session", true},
	} {
		t.Run(tc.base, func(t *testing.T) {
			keys := keyring.New(make([]byte, 32))
			base, _ := url.Parse(tc.base)
			s := handlers.New(handlers.Config{BaseURL: base, CookieHashKey: keys.Derive("h"), CookieBlockKey: keys.Derive("b")},
				slog.New(slog.NewTextHandler(io.Discard, nil)), handlers.Deps{})
			rec := httptest.NewRecorder()
			s.Routes().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/login", nil))
			cookies := rec.Result().Cookies()
			if len(cookies) != 1 {
				t.Fatalf("cookies %v", rec.Header().Values("Set-Cookie"))
			}
			c := cookies[0]
			if c.Name != tc.name || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != "/" || c.Domain != "" || c.Secure != tc.secure {
				t.Errorf("cookie %q", rec.Header().Get("Set-Cookie"))
			}
		})
	}
}
