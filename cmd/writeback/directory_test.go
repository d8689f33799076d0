package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/writeback/writeback/testbed"
)

// TestDirectoryCommandsAgainstRealDirectories drives the command line the
// way automation would, on both directories of the test bed.
func TestDirectoryCommandsAgainstRealDirectories(t *testing.T) {
	env := testbed.Load(t)
	cases := []struct {
		name, typ string
		dir       testbed.Directory
		newUser   func(testing.TB, testbed.UserOptions) testbed.TestUser
		lock      func(testing.TB, testbed.TestUser)
		locked    func(testing.TB, testbed.TestUser) bool
	}{
		{"ActiveDirectory", "ad", env.AD, env.NewADUser, env.LockAD, env.ADLocked},
		{"OpenLDAP", "openldap", env.LDAP, env.NewLDAPUser, env.LockLDAP, env.LDAPLocked},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			data := t.TempDir()
			pwFile := filepath.Join(t.TempDir(), "pw")
			os.WriteFile(pwFile, []byte(tc.dir.BindPassword+"\n"), 0o600)

			// Bad values: one line naming the flag, nothing stored.
			code, _, errOut := cli(t, "", "directory", "set", "--data", data, "--type", "novell", "--url", tc.dir.URL)
			if code == 0 || !strings.Contains(errOut, `--type "novell"`) {
				t.Errorf("bad type: %d %q", code, errOut)
			}
			code, _, errOut = cli(t, "", "directory", "set", "--data", data, "--type", tc.typ, "--url", tc.dir.URL)
			if code == 0 || !strings.Contains(errOut, "--bind-dn is required") {
				t.Errorf("missing bind DN: %d %q", code, errOut)
			}
			code, _, errOut = cli(t, "", "directory", "set", "--data", data, "--type", tc.typ, "--url", "http://x",
				"--bind-dn", tc.dir.BindDN, "--bind-password-file", pwFile, "--base-dn", tc.dir.PeopleDN)
			if code == 0 || !strings.Contains(errOut, "urls") {
				t.Errorf("bad URL: %d %q", code, errOut)
			}
			if _, out, _ := cli(t, "", "directory", "show", "--data", data); !strings.Contains(out, "no directory connection") {
				t.Errorf("something was stored: %s", out)
			}

			// A first, dead URL and the real one, in failover order.
			code, out, errOut := cli(t, "", "directory", "set", "--data", data, "--type", tc.typ,
				"--url", env.DeadURL, "--url", tc.dir.URL, "--ca-file", env.CAFile,
				"--bind-dn", tc.dir.BindDN, "--bind-password-file", pwFile, "--base-dn", tc.dir.PeopleDN, "--password-writeback", "on")
			if code != 0 {
				t.Fatalf("set: %d %s %s", code, out, errOut)
			}
			_, out, _ = cli(t, "", "directory", "show", "--data", data)
			if strings.Contains(out, tc.dir.BindPassword) || !strings.Contains(out, "stored (encrypted)") {
				t.Errorf("show reveals the password or hides its state:\n%s", out)
			}
			// The dead server fails its check, so the test exits non-zero.
			user := tc.newUser(t, testbed.UserOptions{})
			code, out, _ = cli(t, "", "directory", "test", "--data", data, "--user", user.Login)
			if code == 0 || !strings.Contains(out, "[FAIL] Reachable: "+env.DeadURL) {
				t.Errorf("dead server not reported (exit %d):\n%s", code, out)
			}
			// With only the live server every check passes.
			cli(t, "", "directory", "set", "--data", data, "--url", tc.dir.URL)
			code, out, _ = cli(t, "", "directory", "test", "--data", data, "--user", user.Login)
			if code != 0 || !strings.Contains(out, "every check passed") {
				t.Errorf("test (exit %d):\n%s", code, out)
			}

			// Writeback off: refused with the reason.
			code, _, errOut = cli(t, "", "user", "unlock", user.Login, "--data", data)
			if code == 0 || !strings.Contains(errOut, "Write back passwords to your on-premises directory") {
				t.Errorf("unlock with writeback off: %d %q", code, errOut)
			}
			if code, _, errOut := cli(t, "", "settings", "set", "--data", data, "--unlock", "yes"); code == 0 || !strings.Contains(errOut, "--unlock yes needs --writeback yes") {
				t.Errorf("unlock without writeback: %q", errOut)
			}
			if code, out, _ := cli(t, "", "settings", "set", "--data", data, "--writeback", "yes", "--unlock", "yes"); code != 0 || !strings.Contains(out, "writeback Yes, unlock Yes") {
				t.Fatalf("settings set: %s", out)
			}
			if _, out, _ := cli(t, "", "settings", "show", "--data", data); !strings.Contains(out, "Last changed by command line") {
				t.Errorf("settings show:\n%s", out)
			}

			// Lock, show, unlock, bind with the unchanged password.
			tc.lock(t, user)
			_, out, _ = cli(t, "", "user", "show", user.Login, "--data", data)
			if !strings.Contains(out, "locked                Yes") {
				t.Errorf("show:\n%s", out)
			}
			if code, out, errOut := cli(t, "", "user", "unlock", user.Login, "--data", data); code != 0 {
				t.Fatalf("unlock: %s %s", out, errOut)
			} else if !strings.Contains(out, "locked                No") {
				t.Errorf("unlock prints the state before it:\n%s", out)
			}
			if tc.locked(t, user) {
				t.Error("still locked")
			}
			if err := env.BindAs(t, tc.dir, user.DN, user.Password); err != nil {
				t.Errorf("bind after unlock: %v", err)
			}
			// Reset from standard input; the new password binds.
			code, _, errOut = cli(t, "Ab1!\n", "user", "reset", user.Login, "--password-stdin", "--data", data)
			if code == 0 || !strings.Contains(errOut, "too short: at least 7 characters") {
				t.Errorf("short password: %d %q", code, errOut)
			}
			newPw := "N3w-" + testbed.RandomPassword()
			if code, out, errOut := cli(t, newPw+"\n", "user", "reset", user.Login, "--password-stdin", "--data", data); code != 0 {
				t.Fatalf("reset: %s %s", out, errOut)
			}
			if err := env.BindAs(t, tc.dir, user.DN, newPw); err != nil {
				t.Errorf("bind with the new password: %v", err)
			}
			// Must change at next logon.
			if code, out, errOut := cli(t, "M0re-"+testbed.RandomPassword()+"\n", "user", "reset", user.Login, "--password-stdin", "--must-change", "--data", data); code != 0 {
				t.Fatalf("reset --must-change: %s", errOut)
			} else if !strings.Contains(out, "must change password  Yes") || !strings.Contains(out, "locked                No") {
				t.Errorf("reset --must-change prints:\n%s", out)
			}
			if _, out, _ := cli(t, "", "user", "show", user.Login, "--data", data); !strings.Contains(out, "must change password  Yes") {
				t.Errorf("must change not shown:\n%s", out)
			}
			// Injection matches nobody.
			if code, _, errOut := cli(t, "", "user", "show", "*)(uid=*", "--data", data); code == 0 || !strings.Contains(strings.ToLower(errOut), "no account") {
				t.Errorf("injection: %d %q", code, errOut)
			}
		})
	}
}

// Writeback cannot be switched on from the command line while there is no
// directory connection, as on the On-premises integration page.
func TestSettingsSetWritebackNeedsDirectory(t *testing.T) {
	data := t.TempDir()
	code, _, errOut := cli(t, "", "settings", "set", "--data", data, "--writeback", "yes")
	if code == 0 || !strings.Contains(errOut, "needs a directory connection") {
		t.Fatalf("writeback yes without a connection: exit %d %q", code, errOut)
	}
	if _, out, _ := cli(t, "", "settings", "show", "--data", data); strings.Contains(out, "Last changed by command line") {
		t.Errorf("something was saved:\n%s", out)
	}
	if code, out, errOut := cli(t, "", "settings", "set", "--data", data, "--writeback", "no"); code != 0 {
		t.Errorf("writeback no without a connection: %d %s %s", code, out, errOut)
	}
}
