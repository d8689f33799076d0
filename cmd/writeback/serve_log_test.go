package main

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/writeback/writeback/testbed"
)

// TestServeLogFlags: --log-level and --request-log (and their environment
// variables) decide what serve writes to its log; a bad value stops it with
// one line naming the flag.
func TestServeLogFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--log-level", "loud"}, "--log-level"},
		{[]string{"--log-level", "info+2"}, "--log-level"},
		{[]string{"--request-log", "maybe"}, "--request-log"},
		{[]string{"--log-format", "xml"}, "--log-format"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second) // a bad value accepted would start the server
		var out, errBuf testbed.SyncBuffer
		code := run(ctx, append([]string{"serve", "--listen", "127.0.0.1:0", "--data", t.TempDir()}, tc.args...), noenv, strings.NewReader(""), &out, &errBuf)
		cancel()
		if errOut := errBuf.String(); code != 2 || !strings.Contains(errOut, tc.want) || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
			t.Errorf("%v: exit %d, stderr %q; want 2 and one line naming %s", tc.args, code, errOut, tc.want)
		}
	}
	// The environment variables are checked the same way.
	for name, flag := range map[string]string{"WRITEBACK_LOG_LEVEL": "--log-level", "WRITEBACK_REQUEST_LOG": "--request-log", "WRITEBACK_LOG_FORMAT": "--log-format"} {
		getenv := func(k string) string {
			if k == name {
				return "bogus"
			}
			return ""
		}
		// Should the value be accepted, the server would start: stop it, and fail, instead of hanging.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		var out, errBuf testbed.SyncBuffer
		code := run(ctx, []string{"serve", "--listen", "127.0.0.1:0", "--data", t.TempDir()}, getenv, strings.NewReader(""), &out, &errBuf)
		cancel()
		if code != 2 || !strings.Contains(errBuf.String(), flag) {
			t.Errorf("%s=bogus: exit %d, stderr %q", name, code, errBuf.String())
		}
	}

	for _, tc := range []struct {
		name     string
		args     []string
		requests bool // a line per request
		info     bool // info lines at all ("listening")
	}{
		{"default", nil, true, true},
		{"request log off", []string{"--request-log", "off"}, false, true},
		{"level warn", []string{"--log-level", "warn"}, false, false},
		{"level debug, request log off", []string{"--log-level", "DEBUG", "--request-log=off"}, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := startServer(t, t.TempDir(), tc.args...)
			for range 3 {
				resp, err := http.Get("http://" + s.addr + "/reset")
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
			}
			if tc.requests {
				waitOutput(t, s, "route=/reset")
			} else {
				time.Sleep(200 * time.Millisecond) // what would have been logged has been by now
			}
			out := s.out.String()
			if got := strings.Contains(out, "msg=request"); got != tc.requests {
				t.Errorf("request lines %v, want %v:\n%s", got, tc.requests, out)
			}
			if got := strings.Contains(out, "msg=listening"); got != tc.info {
				t.Errorf("info lines %v, want %v:\n%s", got, tc.info, out)
			}
		})
	}
}

// TestServeLogFormatJSON: with --log-format json every log line is one JSON
// object (slog's fields: time, level, msg), the request lines included, and
// none is a key=value line.
func TestServeLogFormatJSON(t *testing.T) {
	s := startServer(t, t.TempDir(), "--log-format", "json")
	resp, err := http.Get("http://" + s.addr + "/reset?token=secret-in-query")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	waitOutput(t, s, `"route":"/reset"`)
	var request, listening bool
	for line := range strings.Lines(s.out.String()) {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "time=") {
			t.Errorf("a text line in the JSON log: %s", line)
		}
		if !strings.HasPrefix(line, "{") {
			continue // the setup link goes to standard output as text
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Errorf("not one JSON object: %s (%v)", line, err)
			continue
		}
		if rec["time"] == nil || rec["level"] == nil {
			t.Errorf("no time or level: %s", line)
		}
		switch rec["msg"] {
		case "request":
			request = rec["route"] == "/reset" && rec["status"] != nil
		case "listening":
			listening = true
		}
	}
	if !request || !listening {
		t.Fatalf("request line %v, listening line %v:\n%s", request, listening, s.out.String())
	}
	if strings.Contains(s.out.String(), "secret-in-query") {
		t.Error("the query string was logged")
	}
}
