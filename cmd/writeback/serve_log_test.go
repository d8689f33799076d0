package main

import (
	"context"
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
	for name, flag := range map[string]string{"WRITEBACK_LOG_LEVEL": "--log-level", "WRITEBACK_REQUEST_LOG": "--request-log"} {
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
