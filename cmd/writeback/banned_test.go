package main

import (
	"strings"
	"testing"
)

// TestSsprBanned: `sspr banned add|remove|list` edit the organisation's
// banned terms; a bad term or an unknown one to remove is one line, exit
// non-zero, and changes nothing.
func TestSsprBanned(t *testing.T) {
	data := t.TempDir()
	code, out, errOut := cli(t, "", "sspr", "banned", "add", "Contoso", "Fabrikam", "--data", data)
	if code != 0 || !strings.Contains(out, "banned terms      2\n  Contoso\n  Fabrikam\n") || !strings.Contains(out, "common passwords  on") {
		t.Fatalf("add: %d %q %q", code, out, errOut)
	}
	if code, out, _ := cli(t, "", "sspr", "banned", "add", "contoso", "--data", data); code != 0 || !strings.Contains(out, "nothing changed") {
		t.Errorf("add again (other case): %d %q", code, out)
	}
	for _, args := range [][]string{{"remove", "Lyon"}, {"add", "ab"}, {"add"}, {"list", "x"}, {"drop", "x"}} {
		code, out, errOut := cli(t, "", append(append([]string{"sspr", "banned"}, args...), "--data", data)...)
		if code == 0 || out != "" || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
			t.Errorf("%v: %d %q %q", args, code, out, errOut)
		}
	}
	code, out, _ = cli(t, "", "sspr", "banned", "remove", "fabrikam", "--data", data)
	if code != 0 || !strings.Contains(out, "banned terms      1\n  Contoso\n") {
		t.Errorf("remove: %d %q", code, out)
	}
	if code, out, _ := cli(t, "", "sspr", "banned", "list", "--data", data); code != 0 || !strings.Contains(out, "  Contoso\n") || strings.Contains(out, "Fabrikam") {
		t.Errorf("list: %d %q", code, out)
	}
}
