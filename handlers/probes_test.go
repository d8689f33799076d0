package handlers_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/writeback/writeback/handlers"
)

// TestProbes: /healthz says the process serves, whatever the database;
// /readyz fails while the database cannot be reached and reports the
// directory's state in one word; both answer GET and HEAD, and so does
// every GET page.
func TestProbes(t *testing.T) {
	p := newPortal(t)
	var dbDown atomic.Bool
	base, _ := url.Parse(testBaseURL)
	h := handlers.New(handlers.Config{BaseURL: base, CookieHashKey: p.keys.Derive("h"), CookieBlockKey: p.keys.Derive("b"), NoRequestLog: true,
		Health: func(ctx context.Context) error {
			if dbDown.Load() {
				return errors.New("dial tcp 127.0.0.1:5432: connection refused")
			}
			return p.db.SQL().PingContext(ctx)
		}}, p.log,
		handlers.Deps{Admins: p.admins, Settings: p.settings, Writeback: p.wb, SelfService: p.ss, Audit: p.audit}).Routes()
	do := func(method, path string) (int, string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
		return rec.Code, rec.Body.String()
	}
	for _, tc := range []struct {
		name         string
		down         bool
		method, path string
		code         int
		body         string // a line the body must hold; "" for none
	}{
		{"live", false, http.MethodGet, "/healthz", 200, "ok"},
		{"live, HEAD", false, http.MethodHead, "/healthz", 200, ""},
		{"ready", false, http.MethodGet, "/readyz", 200, "database: ok\ndirectory: not-configured"},
		{"ready, HEAD", false, http.MethodHead, "/readyz", 200, ""},
		{"database down: still live", true, http.MethodGet, "/healthz", 200, "ok"},
		{"database down: not ready", true, http.MethodGet, "/readyz", 503, "database: unreachable"},
		{"database down: not ready, HEAD", true, http.MethodHead, "/readyz", 503, ""},
		{"HEAD on an employee page", false, http.MethodHead, "/reset", 200, ""},
		{"HEAD on the sign-in page", false, http.MethodHead, "/login", 200, ""},
		{"HEAD on a static file", false, http.MethodHead, "/static/app.css", 200, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dbDown.Store(tc.down)
			code, body := do(tc.method, tc.path)
			if code != tc.code {
				t.Fatalf("%s %s: status %d, want %d (%q)", tc.method, tc.path, code, tc.code, body)
			}
			if tc.body != "" && !strings.Contains(body, tc.body) {
				t.Fatalf("%s %s: body %q, want it to hold %q", tc.method, tc.path, body, tc.body)
			}
			if strings.Contains(body, "connection refused") {
				t.Fatalf("the probe shows the raw error: %q", body)
			}
		})
	}
}
