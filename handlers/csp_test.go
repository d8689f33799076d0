package handlers_test

import (
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/writeback/writeback/services/admins"
)

// inlineStyle finds what a CSP without 'unsafe-inline' for styles would
// block: style attributes and <style> elements.
var inlineStyle = regexp.MustCompile(`(?i)<[^>]+\sstyle\s*=|<style[\s>]`)

// TestNoInlineStyles: the CSP allows no inline styles at all, and no page
// the portal renders needs one.
func TestNoInlineStyles(t *testing.T) {
	h := newHarness(t)
	anon := h.client()
	admin := h.client().signedIn(admins.GlobalAdmin)
	pages := map[*client][]string{
		anon: {"/", "/login", "/reset", "/unlock", "/change", "/register", "/no/such/page", "/setup?token=nope"},
		admin: {onPremPath, "/admin/password-reset/properties", "/admin/password-reset/authentication-methods",
			"/admin/password-reset/registration", "/admin/password-reset/notifications", "/admin/password-reset/customization",
			"/admin/password-reset/mail-server", "/admin/audit", "/admin/audit?range=custom&since=bad", "/admin/directory",
			"/admin/users", "/admin/users?q=alice", "/admin/administrators", "/admin/no-such-page"},
	}
	seen := 0
	for c, paths := range pages {
		for _, path := range paths {
			p := c.get(path)
			if !strings.Contains(p.Body, "</html>") {
				t.Errorf("GET %s: %d, not a page", path, p.Status)
				continue
			}
			seen++
			if m := inlineStyle.FindString(p.Body); m != "" {
				t.Errorf("GET %s has an inline style: %s", path, m)
			}
			csp := p.Header.Get("Content-Security-Policy")
			if !strings.Contains(csp, "style-src 'self'") || strings.Contains(csp, "unsafe-inline") {
				t.Errorf("GET %s: CSP %q", path, csp)
			}
		}
	}
	if seen < 20 {
		t.Errorf("only %d pages checked", seen)
	}
}

// TestStaticNoListing: /static/ serves its files but lists no folder.
func TestStaticNoListing(t *testing.T) {
	h := newHarness(t)
	c := h.client()
	for path, want := range map[string]int{
		"/static/app.css":       http.StatusOK,
		"/static/app.js":        http.StatusOK,
		"/static/logo.svg":      http.StatusOK,
		"/static/":              http.StatusNotFound,
		"/static":               http.StatusNotFound,
		"/static/./":            http.StatusNotFound,
		"/static/some-dir/":     http.StatusNotFound,
		"/static/app.css/":      http.StatusNotFound,
		"/static/missing.css":   http.StatusNotFound,
		"/static/%2e%2e/go.mod": http.StatusNotFound,
		"/static/..%2fembed.go": http.StatusNotFound,
		"/static/embed.go":      http.StatusNotFound,
		"/static/app.css.gz":    http.StatusNotFound, // variants are served by negotiation only
		"/static/app.js.br":     http.StatusNotFound,
		"/static/internal/":     http.StatusNotFound,
	} {
		p := c.get(path)
		if p.Status != want {
			t.Errorf("GET %s: %d, want %d", path, p.Status, want)
		}
		if want == http.StatusNotFound && (strings.Contains(p.Body, "app.css</a>") || !strings.Contains(p.Body, "Page not found")) {
			t.Errorf("GET %s is not the portal's 404 page:\n%s", path, p.Body)
		}
	}
}

// TestPagesCarryLength: a rendered page goes out with its Content-Length,
// in one piece rather than chunked, and the security headers every answer
// shares stay as they are whatever one answer does to its own copy.
func TestPagesCarryLength(t *testing.T) {
	h := newHarness(t)
	anon := h.client()
	admin := h.client().signedIn(admins.GlobalAdmin)
	for c, path := range map[*client]string{anon: "/reset", admin: onPremPath} {
		p := c.get(path)
		if p.Status != http.StatusOK || !strings.Contains(p.Body, "</html>") {
			t.Fatalf("GET %s: %d", path, p.Status)
		}
		if got, want := p.Header.Get("Content-Length"), strconv.Itoa(len(p.Body)); got != want {
			t.Errorf("GET %s: Content-Length %q, want %s", path, got, want)
		}
	}
	// One answer adding to its CSP (as a handler might) leaves the next
	// answer's alone.
	rec := httptest.NewRecorder()
	h.handler(nil).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/reset", nil))
	rec.Header().Add("Content-Security-Policy", "extra")
	rec.Header()["X-Frame-Options"] = append(rec.Header()["X-Frame-Options"], "extra")
	p := anon.get("/reset")
	if csp := p.Header.Values("Content-Security-Policy"); len(csp) != 1 || strings.Contains(csp[0], "extra") {
		t.Errorf("CSP after another answer added to its own: %q", csp)
	}
	if xfo := p.Header.Values("X-Frame-Options"); len(xfo) != 1 || xfo[0] != "DENY" {
		t.Errorf("X-Frame-Options: %q", xfo)
	}
}
