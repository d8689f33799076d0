package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/writeback/writeback/services/keyring"
)

// The agent's own data folder records its key too: with its key file
// replaced, the agent stops with one line saying so (and, having no
// --key-file, does not suggest one).
func TestAgentKeyFileReplaced(t *testing.T) {
	data := t.TempDir()
	if code, out, errOut := cli(t, "", "directory", "show", "--data", data); code != 0 {
		t.Fatalf("directory show: %d %s %s", code, out, errOut)
	}
	key := filepath.Join(data, keyring.FileName)
	if err := os.WriteFile(key, []byte(strings.Repeat("ab", 32)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := cli(t, "", "status", "--data", data)
	line := strings.TrimSpace(errOut)
	if code != 1 || strings.Count(line, "\n") != 0 || !strings.Contains(line, "this database was set up with another key file: "+key) ||
		strings.Contains(line, "--key-file") {
		t.Errorf("status with a replaced key file: exit %d, stderr %q, stdout %q", code, errOut, out)
	}
}
