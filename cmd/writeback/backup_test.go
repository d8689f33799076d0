package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/writeback/writeback/testbed"
)

// TestBackupUnderLoadAndRestore: `backup` copies the database while serve
// runs and another process writes to it; `restore` refuses while the
// database is in use, then, with serve stopped, puts the backup back and
// keeps the database it replaced; the restored data is the backup's and its
// audit chain verifies.
func TestBackupUnderLoadAndRestore(t *testing.T) {
	data := t.TempDir()
	s := startServer(t, data)
	if code, _, errOut := cli(t, "a long admin password\n", "admin", "create", "--data", data, "--email", "ada@example.com",
		"--name", "Ada", "--role", "global-admin"); code != 0 {
		t.Fatalf("admin create: %s", errOut)
	}

	// Load: settings saved (each with its audit event) one after the
	// other from another handle while the backups run.
	var stop atomic.Bool
	var saves atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; !stop.Load(); i++ {
			if code, _, _ := cli(t, "", "sspr", "set", "--org-name", "Org "+strconv.Itoa(i), "--data", data); code == 0 {
				saves.Add(1)
			}
		}
	})
	backups := t.TempDir()
	var files []string
	for i := range 3 {
		f := filepath.Join(backups, "writeback-"+strconv.Itoa(i)+".db")
		code, out, errOut := cli(t, "", "backup", "--out", f, "--data", data)
		if code != 0 || !strings.Contains(out, "chain intact") || !strings.Contains(out, "keep the key file with it") {
			t.Fatalf("backup under load: %d %q %q", code, out, errOut)
		}
		if fi, err := os.Stat(f); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("backup file: %v %v", fi, err)
		}
		files = append(files, f)
	}
	stop.Store(true)
	wg.Wait()
	if saves.Load() == 0 {
		t.Fatal("no write ran while the backups were taken: the load proves nothing")
	}
	t.Logf("%d settings saves ran beside the backups", saves.Load())

	// After the backup: another administrator, which the restore undoes.
	if code, _, errOut := cli(t, "another long password\n", "admin", "create", "--data", data, "--email", "bob@example.com",
		"--name", "Bob", "--role", "helpdesk-admin"); code != 0 {
		t.Fatalf("admin create: %s", errOut)
	}
	if code, out, errOut := cli(t, "", "restore", "--from", files[2], "--data", data); code == 0 ||
		!strings.Contains(errOut, "in use") || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
		t.Fatalf("restore while serve runs: %d %q %q", code, out, errOut)
	}
	if _, out, _ := cli(t, "", "admin", "list", "--data", data); !strings.Contains(out, "bob@example.com") {
		t.Fatalf("a refused restore changed the database:\n%s", out)
	}

	s.stop(t)
	code, out, errOut := cli(t, "", "restore", "--from", files[2], "--data", data)
	if code != 0 || !strings.Contains(out, "restored") || !strings.Contains(out, "kept as") {
		t.Fatalf("restore: %d %q %q", code, out, errOut)
	}
	_, list, _ := cli(t, "", "admin", "list", "--data", data)
	if !strings.Contains(list, "ada@example.com") || strings.Contains(list, "bob@example.com") {
		t.Fatalf("after the restore the administrators are:\n%s", list)
	}
	if code, out, errOut := cli(t, "", "audit", "verify", "--full", "--data", data); code != 0 || !strings.Contains(out, "intact") {
		t.Fatalf("audit verify after the restore: %d %q %q", code, out, errOut)
	}
	kept, _ := filepath.Glob(filepath.Join(data, "writeback.db.before-restore-*"))
	if len(kept) != 1 {
		t.Fatalf("the replaced database is not kept: %v", kept)
	}
	// The restored database serves.
	s2 := startServer(t, data)
	s2.stop(t)
}

// TestBackupRestoreRefusals: bad input stops with one line and changes
// nothing.
func TestBackupRestoreRefusals(t *testing.T) {
	data := t.TempDir()
	if code, _, errOut := cli(t, "", "migrate", "--data", data); code != 0 {
		t.Fatal(errOut)
	}
	existing := filepath.Join(t.TempDir(), "exists.db")
	os.WriteFile(existing, []byte("x"), 0o600)
	garbage := filepath.Join(t.TempDir(), "garbage.db")
	os.WriteFile(garbage, []byte("not a database at all, just some text that is long enough"), 0o600)
	before, _ := os.ReadFile(filepath.Join(data, "writeback.db"))
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no --out", []string{"backup", "--data", data}, 2, "--out"},
		{"--out exists", []string{"backup", "--out", existing, "--data", data}, 2, "exists already"},
		{"no --from", []string{"restore", "--data", data}, 2, "--from"},
		{"--from missing", []string{"restore", "--from", filepath.Join(t.TempDir(), "nope.db"), "--data", data}, 1, "cannot be restored"},
		{"--from not a database", []string{"restore", "--from", garbage, "--data", data}, 1, "cannot be restored"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errOut := cli(t, "", tc.args...)
			if code != tc.code || !strings.Contains(errOut, tc.want) || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
				t.Errorf("exit %d, stderr %q; want %d and one line with %q", code, errOut, tc.code, tc.want)
			}
		})
	}
	if after, _ := os.ReadFile(filepath.Join(data, "writeback.db")); string(after) != string(before) {
		t.Error("a refused command changed the database")
	}
	if b, _ := os.ReadFile(existing); string(b) != "x" {
		t.Error("backup overwrote an existing file")
	}
}

// TestBackupOnPostgresPointsAtPgDump: the SQLite commands say what to use
// for a PostgreSQL database instead.
func TestBackupOnPostgresPointsAtPgDump(t *testing.T) {
	dbURL := testbed.NewPostgresDB(t)
	data := t.TempDir()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"backup", "--out", filepath.Join(t.TempDir(), "b.db"), "--data", data, "--database", dbURL}, "pg_dump"},
		{[]string{"restore", "--from", filepath.Join(t.TempDir(), "b.db"), "--data", data, "--database", dbURL}, "pg_restore"},
	} {
		code, _, errOut := cli(t, "", tc.args...)
		if code == 0 || !strings.Contains(errOut, tc.want) || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
			t.Errorf("%s on PostgreSQL: exit %d, stderr %q", tc.args[0], code, errOut)
		}
	}
}
