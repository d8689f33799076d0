package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/writeback/writeback/services/mail/mailtest"
	"github.com/writeback/writeback/services/selfservice"
	"github.com/writeback/writeback/testbed"
)

// TestSsprReminders: `sspr reminders` shows and sets the expiry reminders
// (bad thresholds: one line, exit non-zero, nothing changed), and
// --dry-run lists, from the real DC, a person in the self-service group
// whose password expires in 10 days (a fine-grained policy), with the
// address masked, without mailing anyone (no mail server is even set).
func TestSsprReminders(t *testing.T) {
	env := testbed.Load(t)
	outside := env.NewADUser(t, testbed.UserOptions{})
	data, user := reminderDC(t, env, 10*24*time.Hour, []string{outside.DN})
	code, out, errOut := cli(t, "", "sspr", "reminders", "--data", data)
	if code != 0 || !strings.Contains(out, "expiry reminders  off\nthresholds        14, 7, 1 days") {
		t.Fatalf("show: %d %q %q", code, out, errOut)
	}
	code, out, errOut = cli(t, "", "sspr", "reminders", "--thresholds", "14,0", "--data", data)
	if code == 0 || out != "" || !strings.Contains(errOut, `"0" is not a number of days`) || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
		t.Fatalf("bad thresholds: %d %q %q", code, out, errOut)
	}
	code, out, errOut = cli(t, "", "sspr", "reminders", "--enabled", "yes", "--thresholds", "10 5", "--dry-run", "--data", data)
	if code != 0 || !strings.Contains(out, "expiry reminders  on\nthresholds        10, 5 days") ||
		!strings.Contains(out, "dry run: 1 would be mailed now (nothing was sent)") || !strings.Contains(out, user.Login) ||
		!strings.Contains(out, selfservice.Mask(user.Mail)) || strings.Contains(out, user.Mail) || strings.Contains(out, outside.Login) {
		t.Fatalf("dry run: %d %q %q", code, out, errOut)
	}
}

// TestServeSendsReminders: the running portal's background work (the
// leader's, here the only process) mails the reminder soon after the
// start, with the link to /change under the base URL's path, once: a
// restart does not mail it again.
func TestServeSendsReminders(t *testing.T) {
	env := testbed.Load(t)
	sink := mailtest.Start(t, mailtest.Options{})
	host, port := sink.Addr()
	data, user := reminderDC(t, env, 5*24*time.Hour, nil,
		[]string{"mail", "set", "--host", host, "--port", strconv.Itoa(port), "--tls", "none", "--from", "portal@example.com"},
		[]string{"sspr", "reminders", "--enabled", "yes"})
	s := startServer(t, data, "--base-url", "http://127.0.0.1:1/password/")
	m := sink.WaitFor(t, user.Mail, 20*time.Second)
	if !strings.Contains(m.Subject, "Example Corp password expires in 4 days") || !strings.Contains(m.Text, "http://127.0.0.1:1/password/change") {
		t.Fatalf("reminder %q:\n%s", m.Subject, m.Text)
	}
	s.stop(t)
	n := len(sink.Messages())
	s = startServer(t, data, "--base-url", "http://127.0.0.1:1/password/")
	time.Sleep(3 * time.Second) // past the first round after the start
	s.stop(t)
	if got := len(sink.Messages()); got != n {
		for _, m := range sink.Messages() {
			t.Logf("%v %q", m.To, m.Subject)
		}
		t.Fatalf("the restarted portal mailed %d more", got-n)
	}
}

// reminderDC is a data folder connected to the Samba DC with self-service
// enabled for a new group, whose members' passwords expire after maxAge
// (a fine-grained policy, also applied to the accounts in extra), and one
// member; more commands run after the set-up ones.
func reminderDC(t *testing.T, env testbed.Env, maxAge time.Duration, extra []string, more ...[]string) (data string, user testbed.TestUser) {
	t.Helper()
	data = t.TempDir()
	pwFile := filepath.Join(t.TempDir(), "bindpw")
	if err := os.WriteFile(pwFile, []byte(env.AD.BindPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	group := env.NewADGroup(t, "")
	user = env.NewADUser(t, testbed.UserOptions{Groups: []string{group}})
	env.NewADPSO(t, maxAge, append([]string{group}, extra...)...)
	for _, args := range append([][]string{
		{"directory", "set", "--type", "ad", "--url", env.AD.URL, "--ca-file", env.CAFile,
			"--bind-dn", env.AD.BindDN, "--bind-password-file", pwFile, "--base-dn", env.AD.PeopleDN},
		{"sspr", "set", "--enabled", "group:" + group, "--org-name", "Example Corp"},
	}, more...) {
		if code, out, errOut := cli(t, "", append(args, "--data", data)...); code != 0 {
			t.Fatalf("%v: %d %q %q", args, code, out, errOut)
		}
	}
	return data, user
}
