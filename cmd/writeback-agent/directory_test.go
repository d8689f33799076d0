package main

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/writeback/writeback/testbed"
)

// TestDirectoryCommandsAgainstRealDirectories: the agent's "directory
// set|show|test" are the portal's, on the agent's own data folder, against
// both directories of the test bed; the bind password is printed nowhere
// and stored only sealed with the agent's key file.
func TestDirectoryCommandsAgainstRealDirectories(t *testing.T) {
	env := testbed.Load(t)
	for _, tc := range []struct {
		name, typ string
		dir       testbed.Directory
		newUser   func(testing.TB, testbed.UserOptions) testbed.TestUser
	}{
		{"ActiveDirectory", "ad", env.AD, env.NewADUser},
		{"OpenLDAP", "openldap", env.LDAP, env.NewLDAPUser},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := filepath.Join(t.TempDir(), "agent-data")
			pwFile := writeTemp(t, "pw", tc.dir.BindPassword+"\n")
			var printed strings.Builder
			agent := func(args ...string) (int, string, string) {
				t.Helper()
				code, out, errOut := cli(t, "", args...)
				printed.WriteString(out + errOut)
				return code, out, errOut
			}

			// Bad values: one line naming the flag, nothing stored.
			if code, _, errOut := agent("directory", "set", "--data", data, "--type", "novell", "--url", tc.dir.URL); code != 2 || !strings.Contains(errOut, `--type "novell"`) || !oneLine(errOut) {
				t.Errorf("bad type: %d %q", code, errOut)
			}
			if code, _, errOut := agent("directory", "set", "--data", data, "--type", tc.typ, "--url", tc.dir.URL); code != 2 || !strings.Contains(errOut, "--bind-dn is required") {
				t.Errorf("missing bind DN: %d %q", code, errOut)
			}
			if code, _, errOut := agent("directory", "set", "--data", data, "--type", tc.typ, "--url", "http://x", "--bind-dn", tc.dir.BindDN,
				"--bind-password-file", pwFile, "--base-dn", tc.dir.PeopleDN); code == 0 || !strings.Contains(errOut, "urls") || !oneLine(errOut) {
				t.Errorf("bad URL: %d %q", code, errOut)
			}
			if code, _, errOut := agent("directory", "set", "--data", data, "--mode", "agents"); code != 2 || !strings.Contains(errOut, "flag provided but not defined: -mode") {
				t.Errorf("--mode on the agent: %d %q", code, errOut)
			}
			if _, out, _ := agent("directory", "show", "--data", data); !strings.Contains(out, "no directory connection") {
				t.Errorf("something was stored: %s", out)
			}

			code, out, errOut := agent("directory", "set", "--data", data, "--type", tc.typ, "--url", tc.dir.URL, "--ca-file", env.CAFile,
				"--bind-dn", tc.dir.BindDN, "--bind-password-file", pwFile, "--base-dn", tc.dir.PeopleDN)
			if code != 0 || !strings.Contains(out, `run "writeback-agent directory test"`) {
				t.Fatalf("set: %d %q %q", code, out, errOut)
			}
			_, out, _ = agent("directory", "show", "--data", data)
			if !strings.Contains(out, "stored (encrypted)") || !strings.Contains(out, tc.dir.URL) || strings.Contains(out, "mode") ||
				!strings.Contains(out, "password-writeback        off") {
				t.Errorf("show:\n%s", out)
			}
			user := tc.newUser(t, testbed.UserOptions{})
			if code, out, _ := agent("directory", "test", "--data", data, "--user", user.Login); code != 0 || !strings.Contains(out, "every check passed") {
				t.Errorf("test (exit %d):\n%s", code, out)
			}
			if got := statusRow(t, data, "directory"); !strings.Contains(got, tc.dir.URL) || !strings.Contains(got, tc.dir.PeopleDN) {
				t.Errorf("status directory row %q", got)
			}

			// The connector switch: through set, and through directory set.
			if code, out, errOut := agent("set", "--data", data, "--password-writeback", "on"); code != 0 || out != "password writeback on\n" {
				t.Errorf("set on: %d %q %q", code, out, errOut)
			}
			if got := statusRow(t, data, "password writeback"); got != "on" {
				t.Errorf("status password writeback %q after set on", got)
			}
			if code, _, errOut := agent("directory", "set", "--data", data, "--password-writeback", "off"); code != 0 {
				t.Errorf("directory set --password-writeback off: %q", errOut)
			}
			if got := statusRow(t, data, "password writeback"); got != "off" {
				t.Errorf("status password writeback %q after off", got)
			}

			if strings.Contains(printed.String(), tc.dir.BindPassword) {
				t.Error("the bind password was printed")
			}
			for _, f := range files(t, data) {
				b, err := os.ReadFile(filepath.Join(data, f))
				if err != nil {
					t.Fatal(err)
				}
				if bytes.Contains(b, []byte(tc.dir.BindPassword)) {
					t.Errorf("%s holds the bind password in clear", f)
				}
			}
		})
	}
}

// TestConnectorConfig: what run hands the connector is the agent's own
// directory (a real search through it finds a test user, within the
// agent's search bases) and a status that reads the password writeback
// switch afresh, so "set" applies while run runs.
func TestConnectorConfig(t *testing.T) {
	env := testbed.Load(t)
	data := filepath.Join(t.TempDir(), "agent-data")
	pwFile := writeTemp(t, "pw", env.LDAP.BindPassword+"\n")
	if code, _, errOut := cli(t, "", "directory", "set", "--data", data, "--type", "openldap", "--url", env.LDAP.URL, "--ca-file", env.CAFile,
		"--bind-dn", env.LDAP.BindDN, "--bind-password-file", pwFile, "--base-dn", env.LDAP.PeopleDN); code != 0 {
		t.Fatalf("set: %s", errOut)
	}
	ctx := context.Background()
	a, err := openApp(ctx, data, os.Stderr, slog.LevelWarn)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	cfg := connectorConfig(a, agentConfig{AgentID: "agent-0001", WritesPerMinute: 7}, nil, nil)
	if cfg.AgentID != "agent-0001" || cfg.WritesPerMinute != 7 {
		t.Errorf("config %+v", cfg)
	}
	dir, bases, err := cfg.Directory(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(bases, []string{env.LDAP.PeopleDN}) {
		t.Errorf("search bases %q", bases)
	}
	user := env.NewLDAPUser(t, testbed.UserOptions{})
	if u, _, err := dir.Find(ctx, user.Login); err != nil || !strings.EqualFold(u.DN, user.DN) {
		t.Errorf("find %s through the agent's directory: %+v %v", user.Login, u, err)
	}

	st := cfg.Status(ctx)
	if !st.Configured || st.PasswordWriteback || st.Version != version || st.Host == "" || !strings.Contains(st.Directory, env.LDAP.URL) {
		t.Errorf("status %+v", st)
	}
	// Another process (a command) turns the switch on: the running
	// agent's status shows it.
	if code, _, errOut := cli(t, "", "set", "--data", data, "--password-writeback", "on"); code != 0 {
		t.Fatal(errOut)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !cfg.Status(ctx).PasswordWriteback {
		if time.Now().After(deadline) {
			t.Fatal("the running agent does not see the switch turned on")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
