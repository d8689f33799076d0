package main

import (
	"os"
	"path/filepath"
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

// TestSsprBannedBreached: `sspr banned breached PATH` turns the offline
// breached-password list on (a list that cannot be used is one line, exit
// non-zero, nothing changed), list shows it, `breached off` turns it off.
func TestSsprBannedBreached(t *testing.T) {
	data := t.TempDir()
	list := filepath.Join(t.TempDir(), "pwnedpasswords.txt")
	// SHA-1 of "password" and of "123456", sorted, as the downloader writes.
	if err := os.WriteFile(list, []byte("5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD8:9545824\r\n7C4A8D09CA3762AF61E59520943DC26494F8941B:37359195\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(t.TempDir(), "words.txt")
	if err := os.WriteFile(bad, []byte("password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, _ := cli(t, "", "sspr", "banned", "list", "--data", data); code != 0 { // makes the data folder
		t.Fatal(code)
	}
	code, out, errOut := cli(t, "", "sspr", "banned", "breached", bad, "--data", data)
	if code == 0 || out != "" || !strings.Contains(errOut, "not 40 hex digits") || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
		t.Fatalf("a list of words: %d %q %q", code, out, errOut)
	}
	code, out, errOut = cli(t, "", "sspr", "banned", "breached", list, "--data", data)
	if code != 0 || !strings.Contains(out, "breached list     "+list+" (sorted file of SHA-1 hashes, 101 bytes)") {
		t.Fatalf("breached PATH: %d %q %q", code, out, errOut)
	}
	if code, out, _ := cli(t, "", "sspr", "banned", "breached", "off", "--data", data); code != 0 || !strings.Contains(out, "breached list     off") {
		t.Fatalf("breached off: %d %q", code, out)
	}
}
