package handlers_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/writeback/writeback/handlers"
	"github.com/writeback/writeback/testbed"
)

// TestRequestLog: by default every page view leaves one line naming its
// route, never its path or query; with NoRequestLog there is none, while a
// failure is still logged; a logger above Info drops the lines too.
func TestRequestLog(t *testing.T) {
	for _, tc := range []struct {
		name  string
		off   bool
		level slog.Level
		want  bool
	}{
		{"default", false, slog.LevelInfo, true},
		{"request log off", true, slog.LevelInfo, false},
		{"level warn", false, slog.LevelWarn, false},
		{"level debug", false, slog.LevelDebug, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPortal(t)
			var logs testbed.SyncBuffer
			log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: tc.level}))
			base, _ := url.Parse(testBaseURL)
			h := handlers.New(handlers.Config{BaseURL: base, CookieHashKey: p.keys.Derive("h"), CookieBlockKey: p.keys.Derive("b"), NoRequestLog: tc.off,
				Health: func(ctx context.Context) error { return errBoom }}, log,
				handlers.Deps{Admins: p.admins, Settings: p.settings, Writeback: p.wb, SelfService: p.ss, Audit: p.audit}).Routes()
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/reset?token=secret-in-query", nil))
			if rec.Code != http.StatusOK {
				t.Fatalf("status %d", rec.Code)
			}
			out := logs.String()
			if got := strings.Contains(out, "msg=request") && strings.Contains(out, "route=/reset"); got != tc.want {
				t.Errorf("request line logged %v, want %v:\n%s", got, tc.want, out)
			}
			if strings.Contains(out, "secret-in-query") {
				t.Errorf("the query string was logged:\n%s", out)
			}
			// A failure is an operator's business whatever the request log.
			rec = httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
			if rec.Code != http.StatusServiceUnavailable || !strings.Contains(logs.String(), "readiness check failed") {
				t.Errorf("failed readiness check: status %d, logs:\n%s", rec.Code, logs.String())
			}
		})
	}
}

var errBoom = errors.New("boom")

// TestRequestLogLine: one JSON line per request with the route pattern
// (not the path), the status, the request ID and the duration in
// milliseconds (a number a person reads, not nanoseconds).
func TestRequestLogLine(t *testing.T) {
	p := newPortal(t)
	var logs testbed.SyncBuffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	base, _ := url.Parse(testBaseURL)
	h := handlers.New(handlers.Config{BaseURL: base, CookieHashKey: p.keys.Derive("h"), CookieBlockKey: p.keys.Derive("b")}, log,
		handlers.Deps{Admins: p.admins, Settings: p.settings, Writeback: p.wb, SelfService: p.ss, Audit: p.audit}).Routes()
	start := time.Now()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/reset/0123456789abcdef", nil))
	took := time.Since(start)
	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("not JSON: %q", l)
		}
		if m["msg"] == "request" {
			lines = append(lines, m)
		}
	}
	if len(lines) != 1 {
		t.Fatalf("%d request lines, want 1:\n%s", len(lines), logs.String())
	}
	l := lines[0]
	ms, ok := l["duration_ms"].(float64)
	if !ok || ms < 0 || ms > float64(took.Microseconds())/1000 {
		t.Errorf("duration_ms %v (%T), want milliseconds within the %s the request took", l["duration_ms"], l["duration_ms"], took)
	}
	if _, ok := l["duration"]; ok {
		t.Errorf("a duration in nanoseconds is still there: %v", l)
	}
	if l["route"] != "/reset/{flow}" || l["status"] != float64(rec.Code) || l["request_id"] == "" || l["request_id"] == nil {
		t.Errorf("request line: %v", l)
	}
	if strings.Contains(logs.String(), "0123456789abcdef") {
		t.Errorf("the path was logged:\n%s", logs.String())
	}
}
