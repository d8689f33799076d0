package main

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/writeback/writeback/testbed"
)

// envOf is a getenv over a map.
func envOf(m map[string]string) env { return func(k string) string { return m[k] } }

// serveWith starts serve with extra arguments and environment, and waits
// until it answers.
func serveWith(t *testing.T, environ map[string]string, extra ...string) string {
	t.Helper()
	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	out := &testbed.SyncBuffer{}
	done := make(chan int, 1)
	args := append([]string{"serve", "--listen", addr, "--data", t.TempDir()}, extra...)
	go func() { done <- run(ctx, args, envOf(environ), strings.NewReader(""), out, out) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			t.Error("serve did not stop")
		}
	})
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); {
		if code, _, _ := cli(t, "", "healthcheck", "--listen", addr); code == 0 {
			return addr
		}
		select {
		case code := <-done:
			done <- code // for the cleanup
			t.Fatalf("serve exited with %d:\n%s", code, out.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("serve did not become healthy:\n%s", out.String())
	return ""
}

// csrfMetaRE finds the CSRF token every page carries in its head.
var csrfMetaRE = regexp.MustCompile(`name="csrf-token" content="([0-9a-f]+)"`)

// postsServed sends n form posts to path as one browser would and returns
// the status of each.
func postsServed(t *testing.T, addr, path string, form url.Values, n int) []int {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}
	base := "http://" + addr
	resp, err := c.Get(base + path)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := csrfMetaRE.FindStringSubmatch(string(body))
	if m == nil {
		t.Fatalf("no CSRF token on %s", path)
	}
	form.Set("csrf_token", m[1])
	var statuses []int
	for range n {
		req, _ := http.NewRequest(http.MethodPost, base+path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", base)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		statuses = append(statuses, resp.StatusCode)
	}
	return statuses
}

// TestServeRateLimitFlags: --rate-limit-public and --rate-limit-signin
// (and their environment variables, which the flags override) set the
// limits per client address of a server whose Properties page leaves them
// empty: with 2, the third post in a minute is refused.
func TestServeRateLimitFlags(t *testing.T) {
	reset := url.Values{"login": {"nobody"}}
	signIn := url.Values{"email": {"nobody@example.com"}, "password": {"wrong password here"}}
	cases := []struct {
		name    string
		environ map[string]string
		args    []string
		path    string
		form    url.Values
	}{
		{"public flag", nil, []string{"--rate-limit-public", "2"}, "/reset", reset},
		{"public env", map[string]string{"WRITEBACK_RATE_LIMIT_PUBLIC": "2"}, nil, "/reset", reset},
		{"public flag over env", map[string]string{"WRITEBACK_RATE_LIMIT_PUBLIC": "500"}, []string{"--rate-limit-public", "2"}, "/reset", reset},
		{"sign-in flag", nil, []string{"--rate-limit-signin", "2"}, "/login", signIn},
		{"sign-in env", map[string]string{"WRITEBACK_RATE_LIMIT_SIGNIN": "2"}, nil, "/login", signIn},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			addr := serveWith(t, tc.environ, tc.args...)
			got := postsServed(t, addr, tc.path, tc.form, 3)
			if got[0] == http.StatusTooManyRequests || got[1] == http.StatusTooManyRequests || got[2] != http.StatusTooManyRequests {
				t.Errorf("statuses %v: want the third refused (429)", got)
			}
		})
	}
}

// TestServeRateLimitFlagsRefused: a limit out of range, or not a number,
// stops serve with one line naming the flag or variable.
func TestServeRateLimitFlagsRefused(t *testing.T) {
	cases := []struct {
		environ map[string]string
		args    []string
		want    string
	}{
		{nil, []string{"--rate-limit-public", "0"}, "--rate-limit-public (env WRITEBACK_RATE_LIMIT_PUBLIC) 0: want requests per minute, 1 to 10000"},
		{nil, []string{"--rate-limit-public", "10001"}, "--rate-limit-public (env WRITEBACK_RATE_LIMIT_PUBLIC) 10001"},
		{nil, []string{"--rate-limit-signin", "-3"}, "--rate-limit-signin (env WRITEBACK_RATE_LIMIT_SIGNIN) -3"},
		{nil, []string{"--rate-limit-signin", "lots"}, "-rate-limit-signin"},
		{map[string]string{"WRITEBACK_RATE_LIMIT_PUBLIC": "lots"}, nil, `WRITEBACK_RATE_LIMIT_PUBLIC "lots": want requests per minute`},
		{map[string]string{"WRITEBACK_RATE_LIMIT_SIGNIN": "99999"}, nil, "--rate-limit-signin (env WRITEBACK_RATE_LIMIT_SIGNIN) 99999"},
		{nil, []string{"--rate-limit-api", "0"}, "--rate-limit-api (env WRITEBACK_RATE_LIMIT_API) 0: want requests per minute, 1 to 10000"},
		{map[string]string{"WRITEBACK_RATE_LIMIT_API": "many"}, nil, `WRITEBACK_RATE_LIMIT_API "many": want requests per minute`},
	}
	for _, tc := range cases {
		t.Run(tc.want, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			var out, errBuf testbed.SyncBuffer
			args := append([]string{"serve", "--listen", "127.0.0.1:0", "--data", t.TempDir()}, tc.args...)
			code := run(ctx, args, envOf(tc.environ), strings.NewReader(""), &out, &errBuf)
			errOut := errBuf.String()
			if code != 2 || !strings.Contains(errOut, tc.want) || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
				t.Errorf("exit %d, stderr %q; want 2 and one line containing %q", code, errOut, tc.want)
			}
		})
	}
}
