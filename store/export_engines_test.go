package store_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/store"
	"github.com/writeback/writeback/testbed"
)

// The same events export to the same bytes from either engine, CSV and
// JSONL: PostgreSQL's export reads raw rows on the pgx connection, SQLite's
// through database/sql. The events hold what a CSV writer and its formula
// guard must get right (quotes, commas, line breaks, leading spaces and
// formula characters, non-ASCII text) besides a generated log.
func TestExportSameBytesOnBothEngines(t *testing.T) {
	ctx := context.Background()
	lite := migrated(t, t.TempDir()+"/"+store.FileName)
	pg := migrated(t, testbed.NewPostgresDB(t))
	const base = int64(1_700_000_000_000)
	odd := []store.AuditEvent{
		{TimeMS: base + 1, Category: "=cmd|' /C calc'!A0", Activity: "+SUM(1,2)", ActorType: "admin", ActorID: "-2+3",
			ActorName: "@Müller, \"Jo\"", TargetType: "User", TargetID: " leading space", TargetDN: "CN=a\\,b,OU=Staff",
			TargetName: "line\nbreak\r\nand cr\r", Result: "failure", Reason: "\ttab first", ClientIP: "2001:db8::1",
			UserAgent: "Mozilla/5.0 \"quoted\"", CorrelationID: "c-1", Details: `{"note":"R&D <team>","emoji":"🔑","n":1}`},
		{TimeMS: base + 2, Category: "Policy", Activity: "Update", ActorType: "cli", Result: "success",
			Reason: "\u00a0non-breaking space first", Details: `{}`},
		{TimeMS: base + 3, Category: "", Activity: `\.`, ActorType: "system", Result: "success", Details: `{"a":[1,2,{"b":null}]}`},
	}
	var csvs, jsonls [2][]byte
	for i, db := range []*store.DB{lite, pg} {
		if err := store.GenerateAudit(ctx, db, 700, base-10*24*3600*1000, base, 5); err != nil {
			t.Fatal(err)
		}
		for _, e := range odd {
			if err := db.InTx(ctx, func(tx *store.Tx) error { return tx.AppendAudit(ctx, &e) }); err != nil {
				t.Fatal(err)
			}
		}
		var c, j bytes.Buffer
		if n, err := audit.WriteCSV(ctx, &c, db, store.AuditFilter{}); err != nil || n != 703 {
			t.Fatalf("%s: csv export of %d events: %v", db.Engine(), n, err)
		}
		if _, err := audit.WriteJSONL(ctx, &j, db, store.AuditFilter{}); err != nil {
			t.Fatal(err)
		}
		csvs[i], jsonls[i] = c.Bytes(), j.Bytes()
	}
	if !bytes.Equal(csvs[0], csvs[1]) {
		t.Errorf("CSV export differs between SQLite (%d bytes) and PostgreSQL (%d bytes) at byte %d", len(csvs[0]), len(csvs[1]), firstDiff(csvs[0], csvs[1]))
	}
	if !bytes.Equal(jsonls[0], jsonls[1]) {
		t.Errorf("JSONL export differs between SQLite (%d bytes) and PostgreSQL (%d bytes) at byte %d", len(jsonls[0]), len(jsonls[1]), firstDiff(jsonls[0], jsonls[1]))
	}
	// A filtered export too (a time range: an ID range on either engine).
	var a, b bytes.Buffer
	f := store.AuditFilter{SinceMS: base - 3*24*3600*1000, Text: "a"}
	if _, err := audit.WriteCSV(ctx, &a, lite, f); err != nil {
		t.Fatal(err)
	}
	if _, err := audit.WriteCSV(ctx, &b, pg, f); err != nil {
		t.Fatal(err)
	}
	if a.Len() < 1000 || !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Errorf("filtered CSV export: SQLite %d bytes, PostgreSQL %d bytes, differ at %d", a.Len(), b.Len(), firstDiff(a.Bytes(), b.Bytes()))
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}
