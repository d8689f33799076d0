package main

import (
	"bytes"
	"context"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/writeback/writeback/services/mail/mailtest"
	"github.com/writeback/writeback/testbed"
)

func noenv(string) string { return "" }

// cli runs one command and returns its exit code and output.
func cli(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(context.Background(), args, noenv, strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestBadFlags(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"serve", "--listen", "nonsense"}, `--listen "nonsense"`},
		{[]string{"serve", "--base-url", "ftp://x"}, `--base-url "ftp://x"`},
		{[]string{"serve", "--trusted-proxy", "not-an-ip"}, `--trusted-proxy "not-an-ip"`},
		{[]string{"serve", "--bogus"}, "flag provided but not defined: -bogus"},
		{[]string{"admin", "create", "--email", "a@example.com", "--name", "A", "--role", "king"}, `--role "king"`},
		{[]string{"admin", "create", "--name", "A", "--role", "global-admin"}, "--email is required"},
		{[]string{"admin", "frobnicate"}, `unknown subcommand "frobnicate"`},
		{[]string{"nope"}, `unknown command "nope"`},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			code, _, errOut := cli(t, "", tc.args...)
			if code == 0 {
				t.Fatal("exit 0")
			}
			if !strings.Contains(errOut, tc.want) || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
				t.Errorf("stderr %q, want one line containing %q", errOut, tc.want)
			}
		})
	}
}

func TestHelpAndVersion(t *testing.T) {
	code, out, _ := cli(t, "", "help")
	if code != 0 {
		t.Fatal(code)
	}
	for _, want := range []string{"serve", "admin", "migrate", "healthcheck", "version", "WRITEBACK_DATA"} {
		if !strings.Contains(out, want) {
			t.Errorf("help lacks %q", want)
		}
	}
	if code, out, _ := cli(t, "", "version"); code != 0 || !strings.HasPrefix(out, "writeback ") {
		t.Errorf("version: %d %q", code, out)
	}
}

func TestAdminCommands(t *testing.T) {
	data := t.TempDir()
	if code, _, errOut := cli(t, "", "migrate", "--data", data); code != 0 {
		t.Fatalf("migrate: %s", errOut)
	}
	code, out, errOut := cli(t, "a long admin password\n", "admin", "create", "--data", data, "--email", "ada@example.com", "--name", "Ada", "--role", "global-admin")
	if code != 0 || !strings.Contains(out, "Global Administrator") {
		t.Fatalf("create: %d %s %s", code, out, errOut)
	}
	if code, _, errOut := cli(t, "short\n", "admin", "create", "--data", data, "--email", "bob@example.com", "--name", "Bob", "--role", "helpdesk-admin"); code == 0 || !strings.Contains(errOut, "at least 12") {
		t.Errorf("short password accepted: %q", errOut)
	}
	if code, _, errOut := cli(t, "another long password\n", "admin", "create", "--data", data, "--email", "ADA@example.com", "--name", "Ada 2", "--role", "global-admin"); code == 0 || !strings.Contains(errOut, "already exists") {
		t.Errorf("duplicate e-mail accepted: %q", errOut)
	}
	if code, _, errOut := cli(t, "", "admin", "disable", "--data", data, "--email", "ada@example.com"); code == 0 || !strings.Contains(errOut, "last active Global Administrator") {
		t.Errorf("last global admin disabled: %q", errOut)
	}
	cli(t, "yet another long password\n", "admin", "create", "--data", data, "--email", "grace@example.com", "--name", "Grace", "--role", "global-admin")
	if code, out, errOut := cli(t, "", "admin", "disable", "--data", data, "--email", "ada@example.com"); code != 0 || !strings.Contains(out, "disabled Ada") {
		t.Errorf("disable: %d %q %q", code, out, errOut)
	}
	_, out, _ = cli(t, "", "admin", "list", "--data", data)
	if !regexp.MustCompile(`ada@example.com\s+Ada\s+global-admin\s+disabled`).MatchString(out) ||
		!regexp.MustCompile(`grace@example.com\s+Grace\s+global-admin\s+active`).MatchString(out) {
		t.Errorf("list:\n%s", out)
	}
}

// freeAddr returns a loopback address with a free port.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// server is a running `writeback serve`.
type server struct {
	addr   string
	out    *testbed.SyncBuffer
	cancel context.CancelFunc
	done   chan int
}

func startServer(t *testing.T, data string, extra ...string) *server {
	t.Helper()
	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	s := &server{addr: addr, out: &testbed.SyncBuffer{}, cancel: cancel, done: make(chan int, 1)}
	args := append([]string{"serve", "--listen", addr, "--data", data}, extra...)
	go func() { s.done <- run(ctx, args, noenv, strings.NewReader(""), s.out, s.out) }()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if code, _, _ := cli(t, "", "healthcheck", "--listen", addr); code == 0 {
			t.Cleanup(func() { s.stop(t) })
			return s
		}
		select {
		case code := <-s.done:
			t.Fatalf("serve exited with %d:\n%s", code, s.out.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("serve did not become healthy:\n%s", s.out.String())
	return nil
}

func (s *server) stop(t *testing.T) {
	if s.cancel == nil {
		return
	}
	s.cancel()
	s.cancel = nil
	select {
	case code := <-s.done:
		if code != 0 {
			t.Errorf("serve exited with %d:\n%s", code, s.out.String())
		}
	case <-time.After(20 * time.Second):
		t.Error("serve did not shut down")
	}
}

var setupRE = regexp.MustCompile(`(http://\S+/setup\?token=[0-9a-f]{64})`)

// setupLink waits for the setup link serve prints: serve answers health
// checks as soon as it listens, and prints the link after that.
func (s *server) setupLink(t *testing.T) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if m := setupRE.FindStringSubmatch(s.out.String()); m != nil {
			return m[1]
		}
		if time.Now().After(deadline) {
			t.Fatalf("no setup link printed:\n%s", s.out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestServeSetupLinkAndShutdown(t *testing.T) {
	data := t.TempDir()
	s := startServer(t, data)
	link := s.setupLink(t)
	if !strings.HasPrefix(link, "http://"+s.addr+"/setup?token=") {
		t.Errorf("link %q", link)
	}
	s.stop(t)
	if !strings.Contains(s.out.String(), "stopped") {
		t.Errorf("no graceful stop:\n%s", s.out.String())
	}
	// With an administrator, no link is printed and the base URL is used for links.
	cli(t, "a long admin password\n", "admin", "create", "--data", data, "--email", "ada@example.com", "--name", "Ada", "--role", "global-admin")
	s2 := startServer(t, data, "--base-url", "https://reset.example.com")
	if strings.Contains(s2.out.String(), "setup?token=") {
		t.Error("setup link printed although an administrator exists")
	}
}

func TestHealthcheckFailsWithoutServer(t *testing.T) {
	if code, _, _ := cli(t, "", "healthcheck", "--listen", freeAddr(t)); code == 0 {
		t.Error("healthcheck passed with nothing listening")
	}
}

func TestSSPRAndMailCommands(t *testing.T) {
	data := t.TempDir()
	if code, _, errOut := cli(t, "", "sspr", "set", "--data", data, "--enabled", "group:not a dn"); code == 0 || !strings.Contains(errOut, "DN of the directory group") {
		t.Errorf("bad group: %d %q", code, errOut)
	}
	if code, _, errOut := cli(t, "", "sspr", "set", "--data", data, "--methods", "email,carrier-pigeon"); code == 0 || !strings.Contains(errOut, "--methods") {
		t.Errorf("bad method: %d %q", code, errOut)
	}
	if code, _, errOut := cli(t, "", "sspr", "set", "--data", data, "--methods", "app", "--required", "2"); code == 0 || !strings.Contains(errOut, "required") {
		t.Errorf("2 required of 1 allowed: %d %q", code, errOut)
	}
	code, out, errOut := cli(t, "", "sspr", "set", "--data", data, "--enabled", "all", "--methods", "email,app,passkey", "--required", "2", "--notify-admins", "yes", "--helpdesk", "https://help.example.com")
	if code != 0 {
		t.Fatalf("sspr set: %s %s", out, errOut)
	}
	if _, out, _ := cli(t, "", "sspr", "show", "--data", data); !strings.Contains(out, "challenge       yes, after 3 attempts in an hour") {
		t.Errorf("sspr show lacks the default challenge:\n%s", out)
	}
	if code, _, errOut := cli(t, "", "sspr", "set", "--data", data, "--challenge-after", "101"); code == 0 || !strings.Contains(errOut, "--challenge-after") {
		t.Errorf("bad challenge threshold: %d %q", code, errOut)
	}
	if code, out, errOut := cli(t, "", "sspr", "set", "--data", data, "--challenge", "no", "--challenge-after", "4"); code != 0 {
		t.Fatalf("sspr set --challenge: %s %s", out, errOut)
	}
	_, out, _ = cli(t, "", "sspr", "show", "--data", data)
	for _, want := range []string{"enabled         all", "methods         email,app,passkey", "required        2", "notify-admins   yes", "challenge       no, after 4 attempts in an hour", "by command line"} {
		if !strings.Contains(out, want) {
			t.Errorf("sspr show lacks %q:\n%s", want, out)
		}
	}
	// Unencrypted mail only to a loopback relay.
	if code, _, errOut := cli(t, "", "mail", "set", "--data", data, "--host", "smtp.example.com", "--port", "25", "--tls", "none", "--from", "p@example.com"); code == 0 || !strings.Contains(errOut, "relay on this machine") {
		t.Errorf("tls none to a remote host: %d %q", code, errOut)
	}
	if code, _, errOut := cli(t, "", "mail", "set", "--data", data, "--host", "127.0.0.1", "--port", "0", "--tls", "none", "--from", "p@example.com"); code == 0 || !strings.Contains(errOut, "--port") {
		t.Errorf("bad port: %d %q", code, errOut)
	}
	sink := mailtest.Start(t, mailtest.Options{})
	host, port := sink.Addr()
	if code, out, errOut := cli(t, "", "mail", "set", "--data", data, "--host", host, "--port", strconv.Itoa(port), "--tls", "none", "--from", "portal@example.com"); code != 0 {
		t.Fatalf("mail set: %s %s", out, errOut)
	}
	if code, out, errOut := cli(t, "", "mail", "test", "--data", data, "--to", "ops@example.com"); code != 0 || !strings.Contains(out, "sent a test mail") {
		t.Fatalf("mail test: %s %s", out, errOut)
	}
	if m := sink.WaitFor(t, "ops@example.com", 10*time.Second); m.Text == "" || m.HTML == "" {
		t.Error("test mail lacks a text or HTML part")
	}
	sink.Fail(true)
	if code, _, errOut := cli(t, "", "mail", "test", "--data", data, "--to", "ops@example.com"); code == 0 || !strings.Contains(errOut, "refused") {
		t.Errorf("failed send: %d %q", code, errOut)
	}
}

// TestServeForwardsWhatWasRecordedWhileStopped: an event recorded while the portal is down (here by `writeback
// admin create`) is forwarded by the next start with --audit-stdout, after nothing it sent before; the old
// forwarder only ever saw events its own process committed.
func TestServeForwardsWhatWasRecordedWhileStopped(t *testing.T) {
	data := t.TempDir()
	s := startServer(t, data, "--audit-stdout")
	s.setupLink(t)
	s.stop(t)
	cli(t, "a long admin password\n", "admin", "create", "--data", data, "--email", "ada@example.com", "--name", "Ada", "--role", "global-admin")
	s2 := startServer(t, data, "--audit-stdout")
	waitOutput(t, s2, `"activity":"Add administrator"`)
	failedSignIn(t, s2.addr)
	waitOutput(t, s2, `"activity":"Administrator sign-in"`)
	out := s2.out.String()
	if strings.Count(out, `"activity":"Add administrator"`) != 1 || strings.Index(out, `"activity":"Add administrator"`) > strings.Index(out, `"activity":"Administrator sign-in"`) {
		t.Errorf("want the administrator's creation once, before the sign-in:\n%s", out)
	}
}

// TestServeForwardsAuditToStdout: with --audit-stdout each event the server
// records also appears as one JSON line on standard output.
func TestServeForwardsAuditToStdout(t *testing.T) {
	data := t.TempDir()
	cli(t, "a long admin password\n", "admin", "create", "--data", data, "--email", "ada@example.com", "--name", "Ada", "--role", "global-admin")
	s := startServer(t, data, "--audit-stdout")
	failedSignIn(t, s.addr)
	waitOutput(t, s, `"activity":"Administrator sign-in"`)
	out := s.out.String()
	if !strings.Contains(out, `"activity":"Administrator sign-in"`) || !strings.Contains(out, `"result":"failure"`) {
		t.Errorf("no forwarded event on stdout:\n%s", out)
	}
	if strings.Contains(out, "wrong-password-here") {
		t.Error("a password was forwarded")
	}
}
