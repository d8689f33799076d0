package main

import (
	"context"
	"database/sql"
	"encoding/csv"
	"path/filepath"
	"strings"
	"testing"

	"github.com/writeback/writeback/store"
)

// TestAuditVerifyCatchesAnEditedRow edits a row with SQL, as someone with
// the database file could, and expects verify to name it.
func TestAuditVerifyCatchesAnEditedRow(t *testing.T) {
	data := t.TempDir()
	for _, email := range []string{"a@example.com", "b@example.com", "c@example.com"} {
		if code, _, errOut := cli(t, "a long admin password\n", "admin", "create", "--data", data, "--email", email, "--name", email, "--role", "reports-reader"); code != 0 {
			t.Fatal(errOut)
		}
	}
	code, out, errOut := cli(t, "", "audit", "verify", "--data", data)
	if code != 0 || !strings.Contains(out, "audit log verified: 3 events") {
		t.Fatalf("verify: %d %q %q", code, out, errOut)
	}
	db, err := store.Open(context.Background(), filepath.Join(data, store.FileName))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.SQL().Exec(`UPDATE audit_events SET actor_name = 'someone else' WHERE id = 2`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	code, _, errOut = cli(t, "", "audit", "verify", "--data", data)
	if code == 0 || !strings.Contains(errOut, "event 2 was altered") {
		t.Errorf("edit not caught: %d %q", code, errOut)
	}
	// A deleted row is named too.
	raw, err := sql.Open("sqlite", filepath.Join(data, store.FileName))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Exec(`DELETE FROM audit_events WHERE id = 2`); err != nil {
		t.Fatal(err)
	}
	raw.Close()
	code, _, errOut = cli(t, "", "audit", "verify", "--data", data)
	if code == 0 || !strings.Contains(errOut, "event 2 was deleted") {
		t.Errorf("deletion not caught: %d %q", code, errOut)
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
