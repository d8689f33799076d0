package main

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/writeback/writeback/testbed"
)

// get answers GET url with an optional bearer token: status and body.
func get(t *testing.T, url, token string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestServeMetricsListeners: without a metrics flag there is no /metrics;
// --metrics-listen serves it on a listener of its own (and nothing else
// there), never on the public one; --metrics-token-file serves it on the
// public listener to the bearer of the token only.
func TestServeMetricsListeners(t *testing.T) {
	t.Run("none", func(t *testing.T) {
		s := startServer(t, t.TempDir())
		if code, _ := get(t, "http://"+s.addr+"/metrics", ""); code != http.StatusNotFound {
			t.Errorf("/metrics without a flag: %d, want 404", code)
		}
	})
	t.Run("listen", func(t *testing.T) {
		maddr := freeAddr(t)
		s := startServer(t, t.TempDir(), "--metrics-listen", maddr)
		get(t, "http://"+s.addr+"/login", "")
		code, body := get(t, "http://"+maddr+"/metrics", "")
		if code != http.StatusOK || !strings.Contains(body, `writeback_http_requests_total{method="GET",route="/login",status="200"} 1`) {
			t.Errorf("metrics listener: %d\n%s", code, body)
		}
		if code, _ := get(t, "http://"+maddr+"/login", ""); code != http.StatusNotFound {
			t.Errorf("the metrics listener served /login: %d", code)
		}
		if code, _ := get(t, "http://"+s.addr+"/metrics", ""); code != http.StatusNotFound {
			t.Errorf("/metrics on the public listener: %d, want 404", code)
		}
	})
	t.Run("token", func(t *testing.T) {
		tokFile := filepath.Join(t.TempDir(), "metrics-token")
		const tok = "s3cret-metrics-token-0123456789"
		if err := os.WriteFile(tokFile, []byte(tok+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		getenv := func(k string) string {
			if k == "WRITEBACK_METRICS_TOKEN_FILE" {
				return tokFile
			}
			return ""
		}
		addr := freeAddr(t)
		ctx, cancel := context.WithCancel(context.Background())
		out := &testbed.SyncBuffer{}
		done := make(chan int, 1)
		go func() {
			done <- run(ctx, []string{"serve", "--listen", addr, "--data", t.TempDir()}, getenv, strings.NewReader(""), out, out)
		}()
		t.Cleanup(func() { cancel(); <-done })
		deadline := time.Now().Add(15 * time.Second)
		for code, _, _ := cli(t, "", "healthcheck", "--listen", addr); code != 0; code, _, _ = cli(t, "", "healthcheck", "--listen", addr) {
			if time.Now().After(deadline) {
				t.Fatalf("serve did not start:\n%s", out.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
		for _, tc := range []struct {
			token string
			want  int
		}{{"", http.StatusUnauthorized}, {"wrong-token-wrong-token", http.StatusUnauthorized}, {tok + "x", http.StatusUnauthorized}, {tok, http.StatusOK}} {
			code, body := get(t, "http://"+addr+"/metrics", tc.token)
			if code != tc.want {
				t.Errorf("token %q: %d, want %d\n%s", tc.token, code, tc.want, body)
			}
			if code == http.StatusOK && !strings.Contains(body, "writeback_password_operations_total") {
				t.Errorf("metrics:\n%s", body)
			}
		}
		if strings.Contains(out.String(), tok) {
			t.Errorf("the token is in the log:\n%s", out.String())
		}
	})
}

// TestServeMetricsFlags: a bad address or a short or missing token file
// stops serve with one line naming the flag.
func TestServeMetricsFlags(t *testing.T) {
	short := filepath.Join(t.TempDir(), "short")
	if err := os.WriteFile(short, []byte("tiny\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--metrics-listen", "nope"}, "--metrics-listen"},
		{[]string{"--metrics-token-file", short}, "--metrics-token-file"},
		{[]string{"--metrics-token-file", filepath.Join(t.TempDir(), "missing")}, "--metrics-token-file"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		var out, errBuf testbed.SyncBuffer
		code := run(ctx, append([]string{"serve", "--listen", "127.0.0.1:0", "--data", t.TempDir()}, tc.args...), noenv, strings.NewReader(""), &out, &errBuf)
		cancel()
		if errOut := errBuf.String(); code != 2 || !strings.Contains(errOut, tc.want) || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
			t.Errorf("%v: exit %d, stderr %q; want 2 and one line naming %s", tc.args, code, errOut, tc.want)
		}
	}
}
