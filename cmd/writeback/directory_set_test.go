package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/writeback/writeback/testbed"
)

// showRow returns the value of one row of "directory show".
func showRow(t *testing.T, data, key string) string {
	t.Helper()
	_, out, _ := cli(t, "", "directory", "show", "--data", data)
	for _, line := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(line, " "); ok && k == key {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("no %s row in:\n%s", key, out)
	return ""
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestDirectorySetTypeSwitchKeepsProtectedGroups: "directory set --type ad"
// on an OpenLDAP connection gives it AD's protected groups and login
// attributes, as the page does (one rule: writeback.WithTypeDefaults).
func TestDirectorySetTypeSwitchKeepsProtectedGroups(t *testing.T) {
	data := t.TempDir()
	pw := writeFile(t, "pw", "Service-Secret-1\n")
	if code, out, errOut := cli(t, "", "directory", "set", "--data", data, "--type", "openldap", "--url", "ldaps://ldap.example.com",
		"--bind-dn", "cn=svc,dc=example,dc=com", "--bind-password-file", pw, "--base-dn", "ou=people,dc=example,dc=com"); code != 0 {
		t.Fatalf("set openldap: %d %s %s", code, out, errOut)
	}
	if g := showRow(t, data, "excluded-groups"); g != "" {
		t.Fatalf("OpenLDAP got excluded groups %q", g)
	}
	if code, out, errOut := cli(t, "", "directory", "set", "--data", data, "--type", "ad", "--url", "ldaps://dc1.example.com",
		"--bind-dn", "CN=svc,OU=Service,DC=example,DC=com", "--bind-password-file", pw, "--base-dn", "OU=People,DC=example,DC=com"); code != 0 {
		t.Fatalf("switch to ad: %d %s %s", code, out, errOut)
	}
	groups := showRow(t, data, "excluded-groups")
	for _, g := range []string{"CN=Schema Admins,CN=Users,DC=example,DC=com", "CN=Backup Operators,CN=Builtin,DC=example,DC=com",
		"CN=Account Operators,CN=Builtin,DC=example,DC=com", "CN=Domain Admins,CN=Users,DC=example,DC=com"} {
		if !strings.Contains(groups, g) {
			t.Errorf("after --type ad the excluded groups lack %s: %q", g, groups)
		}
	}
	if a := showRow(t, data, "login-attributes"); a != "sAMAccountName,userPrincipalName,mail" {
		t.Errorf("login attributes after --type ad: %q", a)
	}
	// And back: AD's defaults go, OpenLDAP's come.
	if code, _, errOut := cli(t, "", "directory", "set", "--data", data, "--type", "openldap", "--url", "ldaps://ldap.example.com",
		"--bind-dn", "cn=svc,dc=example,dc=com", "--bind-password-file", pw, "--base-dn", "ou=people,dc=example,dc=com"); code != 0 {
		t.Fatalf("back to openldap: %s", errOut)
	}
	if g, a := showRow(t, data, "excluded-groups"), showRow(t, data, "login-attributes"); g != "" || a != "uid,mail" {
		t.Errorf("back on OpenLDAP: groups %q, login attributes %q", g, a)
	}
}

// TestDirectorySetServerChangeNeedsPassword: the command line keeps a stored
// password with its server too; a new URL, CA or TLS setting needs
// --bind-password-file again, said in one line.
func TestDirectorySetServerChangeNeedsPassword(t *testing.T) {
	data := t.TempDir()
	pw := writeFile(t, "pw", "Service-Secret-1\n")
	if code, _, errOut := cli(t, "", "directory", "set", "--data", data, "--type", "ad", "--url", "ldaps://dc1.example.com",
		"--bind-dn", "CN=svc,OU=Service,DC=example,DC=com", "--bind-password-file", pw, "--base-dn", "OU=People,DC=example,DC=com"); code != 0 {
		t.Fatalf("set: %s", errOut)
	}
	ca := writeFile(t, "ca.pem", testbed.SelfSignedCAPEM(t))
	for _, args := range [][]string{
		{"--url", "ldaps://evil.example.net"},
		{"--ca-file", ca},
		{"--url", "ldap://dc1.example.com", "--start-tls=false"},
	} {
		code, out, errOut := cli(t, "", append([]string{"directory", "set", "--data", data}, args...)...)
		if code == 0 || !strings.Contains(errOut, "Enter the service account password again: the server changed") ||
			strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
			t.Errorf("set %v without the password: %d %q %q", args, code, out, errOut)
		}
		if u := showRow(t, data, "urls"); u != "ldaps://dc1.example.com" {
			t.Fatalf("a refused set changed the URLs to %q", u)
		}
	}
	if code, _, errOut := cli(t, "", "directory", "set", "--data", data, "--url", "ldaps://dc2.example.com", "--bind-password-file", pw); code != 0 {
		t.Fatalf("set a new URL with the password: %s", errOut)
	}
}

// TestUserCommandsRefuseControlCharacters: a login with a NUL never reaches
// the directory from the command line either.
func TestUserCommandsRefuseControlCharacters(t *testing.T) {
	data := t.TempDir()
	for _, sub := range []string{"show", "unlock"} {
		code, _, errOut := cli(t, "", "user", sub, "alice\x00junk", "--data", data)
		if code == 0 || !strings.Contains(errOut, "invisible or control characters") {
			t.Errorf("user %s alice\\x00junk: %d %q", sub, code, errOut)
		}
	}
}
