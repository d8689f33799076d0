package handlers_test

import (
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"testing"
)

// TestRouteRateLimits: the per-client-address limits on public POST routes
// hold (10 a minute on /setup), and another client address has its own.
func TestRouteRateLimits(t *testing.T) {
	h := newHarnessWith(t, []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")})
	c := h.client()
	post := func(from string) int {
		form := url.Values{"csrf_token": {c.csrf("/")}, "token": {"not-a-token"}, "email": {"a@example.com"}, "name": {"A"},
			"password": {"a long enough password"}, "confirm": {"a long enough password"}}
		req, _ := http.NewRequest(http.MethodPost, h.srv.URL+"/setup", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", h.srv.URL)
		req.Header.Set("X-Forwarded-For", from)
		return c.do(req).Status
	}
	for i := 1; i <= 10; i++ {
		if got := post("203.0.113.7"); got == http.StatusTooManyRequests {
			t.Fatalf("request %d limited", i)
		}
	}
	if got := post("203.0.113.7"); got != http.StatusTooManyRequests {
		t.Errorf("11th request in a minute: %d", got)
	}
	if got := post("203.0.113.8"); got == http.StatusTooManyRequests {
		t.Error("another client address shares the budget")
	}
}
