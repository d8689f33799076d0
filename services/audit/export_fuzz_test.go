package audit

import (
	"bytes"
	"context"
	"encoding/csv"
	"strings"
	"testing"

	"github.com/writeback/writeback/store"
)

// sliceExporter serves fixed events, so the fuzzer exercises the CSV writing without a database.
type sliceExporter []store.AuditEvent

func (s sliceExporter) ExportAudit(ctx context.Context, _ store.AuditFilter, fn func(store.AuditEvent) error) error {
	for _, e := range s {
		if err := fn(e); err != nil {
			return err
		}
	}
	return nil
}

// formulaStart reports whether a spreadsheet would run a cell with this text as a formula (the rule SafeCell
// enforces: =, +, -, @, tab or carriage return first).
func formulaStart(s string) bool { return s != "" && strings.ContainsAny(s[:1], "=+-@\t\r") }

// FuzzWriteCSV: whatever text an event carries (names, DNs, user agents and reasons come from people and
// directories), the export is valid CSV with exactly one record per event and the header's columns; every text cell
// reads back as written, with only a leading quote added where the cell would otherwise start like a formula; and
// no cell read back starts like a formula.
func FuzzWriteCSV(f *testing.F) {
	for _, h := range hostile {
		f.Add(h, h, h, `{"note":"x"}`)
	}
	f.Add("'=already quoted", " =leading space", "a\r\r\nb", `{"a":"=1"}`)
	f.Add("\ufeff=bom", "\"\n=", "x,y\"\r", "-")
	f.Add("\x00nul", "\xff\xfe", "\u2028sep", "@")
	f.Fuzz(func(t *testing.T, actorName, targetDN, reason, details string) {
		e := store.AuditEvent{
			ID: 42, TimeMS: 1_767_225_600_123, Category: CategoryUserManagement, Activity: ActivityResetByAdmin,
			ActorType: "admin", ActorID: "1", ActorName: actorName,
			TargetType: "User", TargetID: reason, TargetDN: targetDN, TargetName: actorName + targetDN,
			Result: Failure, Reason: reason, ClientIP: "192.0.2.1", UserAgent: details,
			CorrelationID: targetDN, Details: details, PrevHash: store.GenesisHash, Hash: strings.Repeat("f", 64),
		}
		var buf bytes.Buffer
		n, err := WriteCSV(context.Background(), &buf, sliceExporter{e, e}, store.AuditFilter{})
		if err != nil || n != 2 {
			t.Fatalf("WriteCSV = %d, %v", n, err)
		}
		body, ok := strings.CutPrefix(buf.String(), utf8BOM)
		if !ok {
			t.Fatal("no UTF-8 byte-order mark")
		}
		r := csv.NewReader(strings.NewReader(body))
		r.FieldsPerRecord = len(CSVHeader)
		recs, err := r.ReadAll()
		if err != nil {
			t.Fatalf("the export is not valid CSV: %v\n%q", err, body)
		}
		if len(recs) != 3 {
			t.Fatalf("%d records for 2 events:\n%q", len(recs), body)
		}
		col := map[string]int{}
		for i, h := range recs[0] {
			col[h] = i
		}
		text := map[string]string{
			"actor_name": actorName, "target_dn": targetDN, "target_name": actorName + targetDN, "reason": reason,
			"target_id": reason, "user_agent": details, "correlation_id": targetDN, "details": details,
		}
		for _, rec := range recs[1:] {
			for c, v := range text {
				want := v
				if formulaStart(v) {
					want = "'" + v
				}
				// encoding/csv reads a \r\n inside a quoted field back as \n.
				want = strings.ReplaceAll(want, "\r\n", "\n")
				if got := rec[col[c]]; got != want {
					t.Errorf("%s: wrote %q, read back %q, want %q", c, v, got, want)
				}
			}
			for i, cell := range rec {
				if formulaStart(cell) {
					t.Errorf("%s = %q would run as a formula", CSVHeader[i], cell)
				}
			}
		}
	})
}
