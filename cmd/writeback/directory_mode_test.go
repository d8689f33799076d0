package main

import (
	"strings"
	"testing"
)

// TestDirectorySetModeBadValue: "writeback directory set --mode" takes
// direct or agents; anything else is one line, exit 2, and the stored
// connection is untouched.
func TestDirectorySetModeBadValue(t *testing.T) {
	data := t.TempDir()
	pw := writeFile(t, "pw", "Service-Secret-1\n")
	if code, _, errOut := cli(t, "", "directory", "set", "--data", data, "--type", "ad", "--url", "ldaps://dc1.example.com",
		"--bind-dn", "CN=svc,OU=Service,DC=example,DC=com", "--bind-password-file", pw, "--base-dn", "OU=People,DC=example,DC=com"); code != 0 {
		t.Fatalf("set: %s", errOut)
	}
	_, before, _ := cli(t, "", "directory", "show", "--data", data)
	if !strings.Contains(before, "mode") || !strings.Contains(before, "direct") {
		t.Errorf("show does not say the mode:\n%s", before)
	}
	for _, args := range [][]string{
		{"--mode", "agent"},
		{"--mode", "DIRECT"},
		{"--mode", "agents", "--url", "ldaps://dc2.example.com"},
	} {
		code, out, errOut := cli(t, "", append([]string{"directory", "set", "--data", data}, args...)...)
		if code != 2 || out != "" || !strings.Contains(errOut, "--"+strings.TrimPrefix(args[len(args)-2], "--")) ||
			strings.Count(strings.TrimSpace(errOut), "\n") != 0 || !strings.HasPrefix(errOut, "writeback directory: ") {
			t.Errorf("set %v: exit %d, out %q, err %q; want exit 2 and one line naming the flag", args, code, out, errOut)
		}
	}
	if _, after, _ := cli(t, "", "directory", "show", "--data", data); after != before {
		t.Errorf("a refused set changed the connection:\n%s\nthen\n%s", before, after)
	}
	if _, out, _ := cli(t, "", "directory", "set", "--help"); !strings.Contains(out, "-mode") || !strings.Contains(out, "agents") {
		t.Errorf("directory set --help lacks --mode:\n%s", out)
	}
}
