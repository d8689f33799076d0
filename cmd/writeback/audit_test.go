package main

import (
	"database/sql"
	"encoding/csv"
	"path/filepath"
	"strings"
	"testing"

	"github.com/writeback/writeback/store"
)

func createAdmins(t *testing.T, data string, emails ...string) {
	t.Helper()
	for _, email := range emails {
		if code, _, errOut := cli(t, "a long admin password\n", "admin", "create", "--data", data, "--email", email, "--name", email, "--role", "reports-reader"); code != 0 {
			t.Fatal(errOut)
		}
	}
}

func execSQL(t *testing.T, data, q string) {
	t.Helper()
	raw, err := sql.Open("sqlite", filepath.Join(data, store.FileName))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if _, err := raw.Exec(q); err != nil {
		t.Fatal(err)
	}
}

// TestAuditVerifyCatchesAnEditedRow edits a row with SQL, as someone with
// the database file could, and expects verify --full to name it.
func TestAuditVerifyCatchesAnEditedRow(t *testing.T) {
	data := t.TempDir()
	createAdmins(t, data, "a@example.com", "b@example.com", "c@example.com")
	code, out, errOut := cli(t, "", "audit", "verify", "--data", data, "--full")
	if code != 0 || !strings.Contains(out, "audit log verified: 3 events, chain intact up to event 3 (full check)") {
		t.Fatalf("verify: %d %q %q", code, out, errOut)
	}
	execSQL(t, data, `UPDATE audit_events SET actor_name = 'someone else' WHERE id = 2`)
	code, _, errOut = cli(t, "", "audit", "verify", "--data", data, "--full")
	if code == 0 || !strings.Contains(errOut, "event 2 was altered") {
		t.Errorf("edit not caught: %d %q", code, errOut)
	}
	// A deleted row is named too, by the incremental check as well.
	execSQL(t, data, `DELETE FROM audit_events WHERE id = 2`)
	code, _, errOut = cli(t, "", "audit", "verify", "--data", data)
	if code == 0 || !strings.Contains(errOut, "event 2 was deleted") {
		t.Errorf("deletion not caught: %d %q", code, errOut)
	}
}

// TestAuditVerifyIncremental: without --full, verify reads only the events
// appended since the last verification that found the chain intact, and
// still finds an edit among them.
func TestAuditVerifyIncremental(t *testing.T) {
	data := t.TempDir()
	createAdmins(t, data, "a@example.com", "b@example.com", "c@example.com", "d@example.com")
	// The first check has no checkpoint to start from: it reads everything.
	code, out, errOut := cli(t, "", "audit", "verify", "--data", data)
	if code != 0 || !strings.Contains(out, "audit log verified: 4 events, chain intact up to event 4 (full check)") {
		t.Fatalf("first verify: %d %q %q", code, out, errOut)
	}
	createAdmins(t, data, "e@example.com", "f@example.com")
	code, out, errOut = cli(t, "", "audit", "verify", "--data", data)
	if code != 0 || !strings.Contains(out, "audit log verified: 2 events appended since the last verification at event 4, chain intact up to event 6 (incremental check") {
		t.Fatalf("second verify: %d %q %q", code, out, errOut)
	}
	createAdmins(t, data, "g@example.com")
	if code, out, _ := cli(t, "", "audit", "verify", "--data", data); code != 0 || !strings.Contains(out, "verified: 1 event appended") {
		t.Fatalf("third verify: %q", out)
	}
	execSQL(t, data, `UPDATE audit_events SET actor_name = 'someone else' WHERE id = 7`)
	code, _, errOut = cli(t, "", "audit", "verify", "--data", data)
	if code == 0 || !strings.Contains(errOut, "event 7 was altered") || !strings.Contains(errOut, "--full") {
		t.Errorf("edit after the checkpoint not caught: %d %q", code, errOut)
	}
	code, out, _ = cli(t, "", "audit", "verify", "--data", data, "--help")
	if code != 0 || !strings.Contains(out, "-full") {
		t.Errorf("help does not describe --full: %q", out)
	}
}

func TestAuditExportCommand(t *testing.T) {
	data := t.TempDir()
	cli(t, "a long admin password\n", "admin", "create", "--data", data, "--email", "=cmd@example.com", "--name", "=HYPERLINK(\"x\")", "--role", "reports-reader")
	cli(t, "a long admin password\n", "admin", "create", "--data", data, "--email", "b@example.com", "--name", "B", "--role", "reports-reader")
	if code, _, errOut := cli(t, "", "audit", "export", "--data", data, "--format", "xml"); code == 0 || !strings.Contains(errOut, `--format "xml"`) {
		t.Errorf("bad format: %q", errOut)
	}
	if code, _, errOut := cli(t, "", "audit", "export", "--data", data, "--format", "csv", "--since", "last week"); code == 0 || !strings.Contains(errOut, "--since") {
		t.Errorf("bad since: %q", errOut)
	}
	code, out, errOut := cli(t, "", "audit", "export", "--data", data, "--format", "csv", "--since", "2000-01-01", "--activity", "Add administrator")
	if code != 0 {
		t.Fatal(errOut)
	}
	recs, err := csv.NewReader(strings.NewReader(strings.TrimPrefix(out, "\ufeff"))).ReadAll()
	if err != nil || len(recs) != 3 {
		t.Fatalf("%d records: %v\n%s", len(recs), err, out)
	}
	for _, rec := range recs[1:] {
		for _, cell := range rec {
			if strings.HasPrefix(cell, "=") {
				t.Errorf("formula cell %q", cell)
			}
		}
	}
	_, out, _ = cli(t, "", "audit", "export", "--data", data, "--format", "jsonl", "--activity", "Export audit log")
	if strings.Count(out, "\n") != 1 || !strings.Contains(out, `"format":"csv"`) {
		t.Errorf("the export was not audited:\n%s", out)
	}
}
