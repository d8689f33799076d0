package handlers_test

import (
	"html"
	"net/http"
	"net/url"
	"regexp"
	"testing"

	"github.com/writeback/writeback/services/admins"
)

var nextFieldRE = regexp.MustCompile(`name="next" value="([^"]*)"`)

// signInVia follows a sign-in page at loginPath through its form, as a
// browser would, and returns where the portal sends the administrator.
func signInVia(t *testing.T, c *client, loginPath string) string {
	t.Helper()
	p := c.get(loginPath)
	m := nextFieldRE.FindStringSubmatch(p.Body)
	if p.Status != http.StatusOK || m == nil {
		t.Fatalf("GET %s: %d, no next field", loginPath, p.Status)
	}
	tok := csrfRE.FindStringSubmatch(p.Body)[1]
	got := c.post("/login", url.Values{"csrf_token": {tok}, "email": {"global-admin@example.com"}, "password": {testPassword},
		"next": {html.UnescapeString(m[1])}})
	if got.Status != http.StatusSeeOther {
		t.Fatalf("sign-in: %d", got.Status)
	}
	return got.Location
}

// TestNextRoundTrip: a page asked for before signing in is the page shown
// after, query string and escaped characters included.
func TestNextRoundTrip(t *testing.T) {
	h := newHarness(t)
	h.addAdmin("global-admin@example.com", admins.GlobalAdmin)
	for _, target := range []string{"/admin/audit?range=24h&q=a%20b", "/admin/users/alice%20smith", "/admin/password-reset/properties"} {
		c := h.client()
		p := c.get(target)
		if p.Status != http.StatusSeeOther {
			t.Fatalf("GET %s: %d", target, p.Status)
		}
		if got := signInVia(t, c, p.Location); got != target {
			t.Errorf("asked for %s, sent to %s after sign-in (via %s)", target, got, p.Location)
		}
	}
}

// TestNextOpenRedirect: a sign-in link never sends the administrator to
// another site, however its next value is encoded.
func TestNextOpenRedirect(t *testing.T) {
	h := newHarness(t)
	h.addAdmin("global-admin@example.com", admins.GlobalAdmin)
	for _, next := range []string{"//evil.example", "/%2F/evil.example", "/%252F/evil.example", "/%5Cevil.example",
		"/%09/evil.example", "/\\evil.example", "https://evil.example/", "javascript:alert(1)", "/admin/%252F%252Fevil.example"} {
		c := h.client()
		if got := signInVia(t, c, "/login?next="+url.QueryEscape(next)); got != "/admin" {
			t.Errorf("next=%q: sent to %q", next, got)
		}
	}
}
