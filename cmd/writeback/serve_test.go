package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/pem"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/writeback/writeback/cmd/internal/datadir"
	"github.com/writeback/writeback/testbed"
)

// failedSignIn makes the server record one audit event: a failed administrator sign-in, through a session with a
// CSRF token like a browser's.
func failedSignIn(t *testing.T, addr string) {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 30 * time.Second}
	page, err := c.Get("http://" + addr + "/login")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(page.Body)
	page.Body.Close()
	tok := regexp.MustCompile(`name="csrf_token" value="([0-9a-f]+)"`).FindStringSubmatch(string(body))
	if tok == nil {
		t.Fatal("no CSRF token on /login")
	}
	resp, err := c.PostForm("http://"+addr+"/login", url.Values{"csrf_token": {tok[1]}, "email": {"ada@example.com"}, "password": {"wrong-password-here"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	c.CloseIdleConnections()
}

// waitOutput waits until the server's output contains want.
func waitOutput(t *testing.T, s *server, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(s.out.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in the output:\n%s", want, s.out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// silentTCP accepts connections and never reads or answers: a hung SIEM.
func silentTCP(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	conns := make(chan net.Conn, 100)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				close(conns)
				return
			}
			conns <- c
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		for c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String()
}

// testCA writes a throw-away CA's PEM to a file and returns it with a server certificate for 127.0.0.1.
func testCA(t *testing.T) (caFile string, server tls.Certificate) {
	t.Helper()
	pki := newTestPKI(t)
	certPEM, keyPEM, _ := pki.issue("127.0.0.1")
	server, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	caFile = filepath.Join(t.TempDir(), "siem-ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: pki.ca.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	return caFile, server
}

// TestServeShutdownWithUnreachableSIEM: with --audit-syslog pointing at a SIEM that cannot take the events, the
// server still stops within its grace period once the signal comes (run's context ends, as SIGTERM does in main),
// and says in its log how many events wait for the next start.
func TestServeShutdownWithUnreachableSIEM(t *testing.T) {
	const grace = time.Second
	caFile, _ := testCA(t)
	cases := []struct {
		name   string
		syslog func(t *testing.T) []string
		wait   string // in the log before the signal: the forwarder is trying
	}{
		{"connection refused", func(t *testing.T) []string { return []string{"--audit-syslog", "tcp://" + freeAddr(t)} },
			"audit syslog forwarding failed"},
		{"TLS server that never answers", func(t *testing.T) []string {
			return []string{"--audit-syslog", "tls://" + silentTCP(t), "--audit-syslog-ca", caFile}
		}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			data := t.TempDir()
			cli(t, "a long admin password\n", "admin", "create", "--data", data, "--email", "ada@example.com", "--name", "Ada", "--role", "global-admin")
			s := startServer(t, data, append(tc.syslog(t), "--shutdown-timeout", grace.String())...)
			failedSignIn(t, s.addr)
			if tc.wait != "" {
				waitOutput(t, s, tc.wait)
			} else {
				time.Sleep(300 * time.Millisecond) // the handshake is under way and stalls
			}
			start := time.Now()
			s.cancel()
			s.cancel = nil // the test's cleanup must not stop it again
			select {
			case code := <-s.done:
				if el := time.Since(start); el > grace+2*time.Second {
					t.Errorf("serve took %v to stop with a %v grace period", el, grace)
				}
				if code != 0 {
					t.Errorf("exit %d", code)
				}
			case <-time.After(grace + 20*time.Second):
				t.Fatalf("serve did not stop within %v of the signal:\n%s", grace+20*time.Second, s.out.String())
			}
			out := s.out.String()
			// Nothing is dropped: the events wait in the audit log for the next start.
			if !strings.Contains(out, "not yet forwarded") || !regexp.MustCompile(`pending=[1-9]`).MatchString(out) {
				t.Errorf("no pending-events warning in the log:\n%s", out)
			}
			if strings.Contains(out, "wrong-password-here") {
				t.Error("a password reached the log")
			}
		})
	}
}

// TestServeSyslogTLS: --audit-syslog tls://… with --audit-syslog-ca delivers events to a server that CA verifies
// (octet-counted RFC 5424 frames over TLS, RFC 5425).
func TestServeSyslogTLS(t *testing.T) {
	caFile, cert := testCA(t)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	frames := make(chan string, 10)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		r := bufio.NewReader(c)
		for {
			n, err := r.ReadString(' ')
			if err != nil {
				return
			}
			size, err := strconv.Atoi(strings.TrimSpace(n))
			if err != nil {
				return
			}
			msg := make([]byte, size)
			if _, err := io.ReadFull(r, msg); err != nil {
				return
			}
			frames <- string(msg)
		}
	}()
	data := t.TempDir()
	cli(t, "a long admin password\n", "admin", "create", "--data", data, "--email", "ada@example.com", "--name", "Ada", "--role", "global-admin")
	s := startServer(t, data, "--audit-syslog", "tls://"+ln.Addr().String(), "--audit-syslog-ca", caFile)
	failedSignIn(t, s.addr)
	select {
	case m := <-frames:
		if !strings.Contains(m, `"activity":"Administrator sign-in"`) || !strings.HasPrefix(m, "<") {
			t.Errorf("unexpected message %q", m)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("no event over TLS:\n%s", s.out.String())
	}
}

func TestServeSyslogFlags(t *testing.T) {
	caFile, _ := testCA(t)
	empty := filepath.Join(t.TempDir(), "empty.pem")
	os.WriteFile(empty, []byte("no certificate here\n"), 0o600)
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--audit-syslog", "ftp://siem:514"}, "want tls://host:port"},
		{[]string{"--audit-syslog", "tls://siem"}, "want tls://host:port"},
		{[]string{"--audit-syslog", "tcp://siem:514/x"}, "want tls://host:port"},
		{[]string{"--audit-syslog", "tcp://siem:514", "--audit-syslog-ca", caFile}, "--audit-syslog-ca needs a tls://"},
		{[]string{"--audit-syslog-ca", caFile}, "--audit-syslog-ca needs a tls://"},
		{[]string{"--audit-syslog", "tls://siem:6514", "--audit-syslog-ca", filepath.Join(t.TempDir(), "missing.pem")}, "--audit-syslog-ca"},
		{[]string{"--audit-syslog", "tls://siem:6514", "--audit-syslog-ca", empty}, "no PEM certificate"},
		{[]string{"--shutdown-timeout", "0s"}, "--shutdown-timeout"},
		{[]string{"--shutdown-timeout", "soon"}, "shutdown-timeout"},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			// Should a bad value be accepted, the server would start: stop it, and fail, instead of hanging.
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			var out, errBuf testbed.SyncBuffer
			args := append([]string{"serve", "--listen", "127.0.0.1:0", "--data", t.TempDir()}, tc.args...)
			code := run(ctx, args, noenv, strings.NewReader(""), &out, &errBuf)
			errOut := errBuf.String()
			if code != 2 || !strings.Contains(errOut, tc.want) || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
				t.Errorf("exit %d, stderr %q; want 2 and one line containing %q", code, errOut, tc.want)
			}
		})
	}
}

// TestServeShutdownStopsCleanly: without anything stuck, serve stops at once, says so, and leaves its data folder
// usable.
func TestServeShutdownStopsCleanly(t *testing.T) {
	data := t.TempDir()
	s := startServer(t, data, "--shutdown-timeout", "5s")
	s.stop(t)
	out := s.out.String()
	if !strings.Contains(out, "stopped") || strings.Contains(out, "without waiting") {
		t.Errorf("not a clean stop:\n%s", out)
	}
	if code, _, errOut := cli(t, "", "migrate", "--data", data); code != 0 {
		t.Errorf("data folder unusable after shutdown: %s", errOut)
	}
}

// TestShutdownJoinsBackgroundWork: stop cancels background work and waits for it before the database closes; work
// that does not stop in time is given up on at the deadline, and then the database is left open rather than
// waited for.
func TestShutdownJoinsBackgroundWork(t *testing.T) {
	var logBuf testbed.SyncBuffer
	a, err := openApp(context.Background(), datadir.Location{Dir: t.TempDir()}, &logBuf)
	if err != nil {
		t.Fatal(err)
	}
	sd := &shutdown{app: a}
	bg := sd.background()
	finished := make(chan error, 1)
	sd.work.Go(func() {
		<-bg.Done()
		time.Sleep(200 * time.Millisecond) // finishing its last write
		finished <- a.db.SQL().PingContext(context.Background())
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	sd.stop(ctx)
	select {
	case err := <-finished:
		if err != nil {
			t.Errorf("background work saw the database closed: %v", err)
		}
	default:
		t.Fatal("stop returned before the background work finished")
	}
	if err := a.db.SQL().PingContext(context.Background()); err == nil {
		t.Error("the database is still open after stop")
	}

	a2, err := openApp(context.Background(), datadir.Location{Dir: t.TempDir()}, &logBuf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a2.db.Close() })
	sd2 := &shutdown{app: a2}
	sd2.background()
	release := make(chan struct{})
	defer close(release)
	sd2.work.Go(func() { <-release }) // ignores cancellation
	ctx2, cancel2 := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel2()
	start := time.Now()
	sd2.stop(ctx2)
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("stop waited %v for stuck work with a 300ms deadline", el)
	}
	if !strings.Contains(logBuf.String(), "without waiting") {
		t.Errorf("giving up is not logged:\n%s", logBuf.String())
	}
}
