package store

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const day = int64(24 * time.Hour / time.Millisecond)

func newAuditDB(t *testing.T, b Backend) *DB {
	t.Helper()
	return b.Fresh(t).Migrated(t) // a database of its own, as a subtest's t.TempDir() was
}

// appendEvents appends each event in its own transaction, through AppendAudit.
func appendEvents(t *testing.T, db *DB, events ...AuditEvent) []AuditEvent {
	t.Helper()
	out := make([]AuditEvent, 0, len(events))
	for _, e := range events {
		err := db.InTx(context.Background(), func(tx *Tx) error { return tx.AppendAudit(context.Background(), &e) })
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

// allEvents reads the table in ID order.
func allEvents(t *testing.T, db *DB) []AuditEvent {
	t.Helper()
	rows, err := db.sql.Query(`SELECT ` + auditCols + ` FROM audit_events ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []AuditEvent
	for rows.Next() {
		e, err := scanAudit(rows)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

// queryAll pages through QueryAudit and fails on a duplicate or an order
// violation.
func queryAll(t *testing.T, db *DB, f AuditFilter, size int) []AuditEvent {
	t.Helper()
	var out []AuditEvent
	seen := map[int64]bool{}
	cur := Cursor{}
	for pages := 0; ; pages++ {
		if pages > 100000 {
			t.Fatal("paging does not end")
		}
		// Through the string form, as the viewer does.
		c, err := ParseCursor(cur.String())
		if err != nil {
			t.Fatal(err)
		}
		page, next, err := db.QueryAudit(context.Background(), f, c, size)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) > size {
			t.Fatalf("page of %d events, limit %d", len(page), size)
		}
		for _, e := range page {
			if seen[e.ID] {
				t.Fatalf("event %d shown twice", e.ID)
			}
			seen[e.ID] = true
			if n := len(out); n > 0 && !before(out[n-1], e) {
				t.Fatalf("event %d (t=%d) follows %d (t=%d): not newest first", e.ID, e.TimeMS, out[n-1].ID, out[n-1].TimeMS)
			}
			out = append(out, e)
		}
		if next.IsZero() {
			return out
		}
		if len(page) != size {
			t.Fatalf("short page of %d with a next cursor", len(page))
		}
		cur = next
	}
}

// before reports whether a comes before b in newest-first order.
func before(a, b AuditEvent) bool {
	return a.TimeMS > b.TimeMS || a.TimeMS == b.TimeMS && a.ID > b.ID
}

func ids(es []AuditEvent) []int64 {
	out := make([]int64, len(es))
	for i, e := range es {
		out[i] = e.ID
	}
	return out
}

// TestAuditPagingExactWhileAppending pages through a log while other
// goroutines append events — some dated in the past, many sharing a
// millisecond — and expects exactly the events that existed when paging
// began: none twice, none missing, newest first.
func TestAuditPagingExactWhileAppending(t *testing.T) {
	ForEachBackend(t, func(t *testing.T, bk Backend) {
		ctx := context.Background()
		db := newAuditDB(t, bk)
		const base = int64(1_700_000_000_000)
		// 300 events over few distinct milliseconds, so ties on time_ms cross
		// page boundaries everywhere.
		if err := GenerateAudit(ctx, db, 300, base, base+40, 7); err != nil {
			t.Fatal(err)
		}
		snapshot := allEvents(t, db)

		stop := make(chan struct{})
		var wg sync.WaitGroup
		var appended atomic.Int64
		for w := range 3 {
			wg.Go(func() {
				r := rand.New(rand.NewPCG(uint64(w), 1))
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					// Past, present and future times, including ones equal to
					// events already shown.
					e := AuditEvent{TimeMS: base + int64(r.IntN(60)) - 10, Category: "UserManagement", Activity: "Reset password (self-service)",
						ActorType: "user", Result: []string{"success", "failure"}[i%2]}
					if err := db.InTx(ctx, func(tx *Tx) error { return tx.AppendAudit(ctx, &e) }); err != nil {
						t.Error(err)
						return
					}
					appended.Add(1)
					time.Sleep(time.Millisecond)
				}
			})
		}
		defer func() {
			close(stop)
			wg.Wait()
			t.Logf("%d events appended while paging", appended.Load())
		}()

		for _, size := range []int{1, 7, 64} {
			for _, f := range []AuditFilter{{}, {Result: "failure"}, {SinceMS: base + 5, UntilMS: base + 30}} {
				t.Run(fmt.Sprintf("size %d %+v", size, f), func(t *testing.T) {
					got := queryAll(t, db, f, size)
					var want []AuditEvent
					for _, e := range snapshot {
						if matches(e, f) {
							want = append(want, e)
						}
					}
					slices.SortFunc(want, func(a, b AuditEvent) int {
						if before(a, b) {
							return -1
						}
						return 1
					})
					// Paging started after the snapshot, so it may include appends
					// made in between, but only at its start (higher IDs); the
					// snapshot's events must all be there, in order.
					var fromSnap []int64
					for _, e := range got {
						if e.ID <= snapshot[len(snapshot)-1].ID {
							fromSnap = append(fromSnap, e.ID)
						}
					}
					if !slices.Equal(fromSnap, ids(want)) {
						t.Fatalf("got %d snapshot events, want %d\ngot  %v\nwant %v", len(fromSnap), len(want), fromSnap, ids(want))
					}
				})
			}
		}
	})
}

// matches is the reference the store's SQL is tested against.
func matches(e AuditEvent, f AuditFilter) bool {
	has := func(s, sub string) bool { return strings.Contains(strings.ToLower(s), strings.ToLower(sub)) }
	switch {
	case f.SinceMS > 0 && e.TimeMS < f.SinceMS,
		f.UntilMS > 0 && e.TimeMS >= f.UntilMS,
		len(f.Categories) > 0 && !slices.Contains(f.Categories, e.Category),
		len(f.Activities) > 0 && !slices.Contains(f.Activities, e.Activity),
		f.Result != "" && e.Result != f.Result,
		f.ActorID != "" && e.ActorID != f.ActorID,
		f.TargetID != "" && e.TargetID != f.TargetID,
		f.CorrelationID != "" && e.CorrelationID != f.CorrelationID:
		return false
	}
	if f.Actor != "" && !has(e.ActorID, f.Actor) && !has(e.ActorName, f.Actor) {
		return false
	}
	if f.Target != "" && !has(e.TargetID, f.Target) && !has(e.TargetDN, f.Target) && !has(e.TargetName, f.Target) {
		return false
	}
	if f.Text != "" && !slices.ContainsFunc([]string{e.Activity, e.ActorID, e.ActorName, e.TargetID, e.TargetDN, e.TargetName,
		e.Reason, e.ClientIP, e.CorrelationID, e.Details}, func(s string) bool { return has(s, f.Text) }) {
		return false
	}
	return true
}

// TestAuditFilters checks every filter, alone and combined, against the
// reference: pages, count and export all agree with it.
func TestAuditFilters(t *testing.T) {
	ForEachBackend(t, func(t *testing.T, bk Backend) {
		ctx := context.Background()
		db := newAuditDB(t, bk)
		const base = int64(1_700_000_000_000)
		if err := GenerateAudit(ctx, db, 1500, base, base+10*day, 3); err != nil {
			t.Fatal(err)
		}
		// Values that a naive LIKE or a missing escape would get wrong.
		special := appendEvents(t, db,
			AuditEvent{TimeMS: base + 5*day, Category: "Policy", Activity: "Update self-service password reset policy", ActorType: "admin",
				ActorID: "42", ActorName: "Zoë 100% Admin", TargetType: "Policy", TargetID: "sspr", TargetName: "a_b", Result: "success",
				Reason: `back\slash`, ClientIP: "192.0.2.7", CorrelationID: "corr-special", Details: `{"note":"R&D <team>"}`},
			AuditEvent{TimeMS: base + 5*day + 1, Category: "Policy", Activity: "Update self-service password reset policy", ActorType: "admin",
				ActorID: "43", ActorName: "Plain Admin", TargetType: "Policy", TargetID: "sspr", TargetName: "axb", Result: "failure",
				Reason: "nothing special", CorrelationID: "corr-special"},
		)
		all := allEvents(t, db)
		someCorr := all[len(all)/2].CorrelationID
		someUser := all[slices.IndexFunc(all, func(e AuditEvent) bool { return strings.HasPrefix(e.TargetID, "u") })].TargetID
		cases := []AuditFilter{
			{},
			{SinceMS: base + 2*day},
			{UntilMS: base + 3*day},
			{SinceMS: base + 2*day, UntilMS: base + 3*day},
			{Categories: []string{"Policy"}},
			{Categories: []string{"Policy", "Authentication"}},
			{Activities: []string{"Reset password (by admin)"}},
			{Activities: []string{"Reset password (by admin)", "Unlock user account (self-service)"}, SinceMS: base + day},
			{Result: "failure"},
			{Result: "success", Categories: []string{"UserManagement"}},
			{Actor: "admin rossi"}, // display name, other case
			{Actor: "U01"},         // ID substring, other case
			{Actor: "100%"},        // % taken literally
			{Target: "a_b"},        // _ taken literally: not "axb"
			{Target: "ou=staff"},   // DN, other case
			{Target: "SSPR"},       // ID
			{ActorID: "7"},         // exact, not "17"
			{TargetID: someUser},   // exact
			{Text: "constraint"},   // details
			{Text: "too many"},     // reason
			{Text: "192.0.2."},     // client address
			{Text: `back\slash`},   // backslash taken literally
			{Text: "R&D <team>"},   // stored unescaped
			{Text: "corr-special"}, // correlation ID
			{Text: "verify-email", Result: "failure", SinceMS: base + day, UntilMS: base + 9*day},
			{CorrelationID: someCorr},
			{CorrelationID: "corr-special", Result: "failure"},
			{Categories: []string{"none such"}},
		}
		// On PostgreSQL a search first reads the newest events of the
		// range (searchProbe); a small probe also tests pages that the
		// probe holds and ranges where it ends before the range does.
		probes := []int{searchProbe}
		if db.Engine() == "postgres" {
			probes = append(probes, 50)
		}
		for _, probe := range probes {
			for _, f := range cases {
				t.Run(fmt.Sprintf("probe %d %+v", probe, f), func(t *testing.T) {
					defer func(p int) { searchProbe = p }(searchProbe)
					searchProbe = probe
					var want []AuditEvent
					for _, e := range all {
						if matches(e, f) {
							want = append(want, e)
						}
					}
					if len(want) == 0 && len(f.Categories) == 0 {
						t.Fatal("the case selects nothing, so it tests nothing")
					}
					got := queryAll(t, db, f, 40)
					gotIDs := ids(got)
					slices.Sort(gotIDs)
					if !slices.Equal(gotIDs, ids(want)) {
						t.Fatalf("query: got %d events, want %d", len(gotIDs), len(want))
					}
					n, capped, err := db.CountAudit(ctx, f)
					if err != nil || capped || n != len(want) {
						t.Fatalf("count = %d, %v, %v; want %d", n, capped, err, len(want))
					}
					var exported []int64
					if err := db.ExportAudit(ctx, f, func(e AuditEvent) error { exported = append(exported, e.ID); return nil }); err != nil {
						t.Fatal(err)
					}
					if !slices.Equal(exported, ids(want)) { // export is in ID order
						t.Fatalf("export: got %d events, want %d", len(exported), len(want))
					}
				})
			}
		}
		if len(special) != 2 {
			t.Fatal("setup")
		}
		if _, _, err := db.QueryAudit(ctx, AuditFilter{Result: "maybe"}, Cursor{}, 10); !errors.Is(err, ErrBadFilter) {
			t.Fatalf("unknown result: err = %v, want ErrBadFilter", err)
		}
	})
}

func TestAuditCursorString(t *testing.T) {
	c := Cursor{timeMS: 1_700_000_000_123, id: 42, maxID: 99}
	got, err := ParseCursor(c.String())
	if err != nil || got != c {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	if z, err := ParseCursor(""); err != nil || !z.IsZero() || z.String() != "" {
		t.Fatalf("empty: %+v, %v", z, err)
	}
	for _, bad := range []string{"x", "!!!", Cursor{timeMS: 1, id: 5, maxID: 4}.String(), "MS4yLjM"[:5], "LTEuMi4z" /* -1.2.3 */} {
		if _, err := ParseCursor(bad); !errors.Is(err, ErrBadCursor) {
			t.Errorf("ParseCursor(%q) err = %v, want ErrBadCursor", bad, err)
		}
	}
}

func TestAuditByIDAndCorrelation(t *testing.T) {
	ForEachBackend(t, func(t *testing.T, bk Backend) {
		ctx := context.Background()
		db := newAuditDB(t, bk)
		evs := appendEvents(t, db,
			AuditEvent{TimeMS: 3000, Category: "UserManagement", Activity: "Reset password (self-service)", Result: "success", CorrelationID: "c1"},
			AuditEvent{TimeMS: 1000, Category: "UserManagement", Activity: "Self-service password reset flow activity progress", Result: "success", CorrelationID: "c1"},
			AuditEvent{TimeMS: 2000, Category: "UserManagement", Activity: "Self-service password reset flow activity progress", Result: "failure", CorrelationID: "c2"},
			AuditEvent{TimeMS: 1000, Category: "UserManagement", Activity: "Self-service password reset flow activity progress", Result: "success", CorrelationID: "c1"},
			AuditEvent{TimeMS: 1500, Category: "Authentication", Activity: "Administrator sign-in", Result: "success"},
		)
		got, err := db.AuditByCorrelation(ctx, "c1")
		if err != nil {
			t.Fatal(err)
		}
		if want := []int64{evs[1].ID, evs[3].ID, evs[0].ID}; !slices.Equal(ids(got), want) {
			t.Fatalf("correlation c1 = %v, want %v (oldest first)", ids(got), want)
		}
		if got, err := db.AuditByCorrelation(ctx, ""); err != nil || len(got) != 0 {
			t.Fatalf("empty correlation: %v, %v", got, err)
		}
		e, err := db.AuditByID(ctx, evs[2].ID)
		if err != nil || e != evs[2] {
			t.Fatalf("AuditByID = %+v, %v; want %+v", e, err, evs[2])
		}
		if _, err := db.AuditByID(ctx, 999); !errors.Is(err, ErrNotFound) {
			t.Fatalf("missing: err = %v", err)
		}
	})
}

func TestAuditDaily(t *testing.T) {
	ForEachBackend(t, func(t *testing.T, bk Backend) {
		ctx := context.Background()
		db := newAuditDB(t, bk)
		berlin, err := time.LoadLocation("Europe/Berlin")
		if err != nil {
			t.Skip("no zone database:", err)
		}
		at := func(y int, m time.Month, d, h, min int) int64 {
			return time.Date(y, m, d, h, min, 0, 0, berlin).UnixMilli()
		}
		ev := func(ms int64, activity, result string) AuditEvent {
			return AuditEvent{TimeMS: ms, Category: "UserManagement", Activity: activity, Result: result}
		}
		// Around the change to summer time on 30 March 2025 (a 23-hour day).
		appendEvents(t, db,
			ev(at(2025, 3, 29, 0, 5), "Reset password (self-service)", "success"),
			ev(at(2025, 3, 29, 23, 55), "Reset password (by admin)", "failure"),
			ev(at(2025, 3, 30, 0, 10), "Unlock user account (self-service)", "success"), // 23:10 UTC on the 29th
			ev(at(2025, 3, 30, 23, 59), "Unlock user account (by admin)", "success"),
			ev(at(2025, 3, 30, 12, 0), "Administrator sign-in", "failure"),
			ev(at(2025, 4, 1, 9, 0), "Change password (self-service)", "success"), // counts nowhere
			ev(at(2025, 4, 2, 9, 0), "Reset password (self-service)", "success"),  // outside the range
		)
		f := AuditFilter{SinceMS: at(2025, 3, 29, 0, 0), UntilMS: at(2025, 4, 2, 0, 0)}
		got, err := db.AuditDaily(ctx, f, berlin)
		if err != nil {
			t.Fatal(err)
		}
		day := func(d int, r, u, fl int) DayCount {
			m := time.March
			if d < 10 {
				m = time.April
			}
			return DayCount{Day: time.Date(2025, m, d, 0, 0, 0, 0, berlin), Resets: r, Unlocks: u, Failures: fl}
		}
		want := []DayCount{day(29, 2, 0, 1), day(30, 0, 2, 1), day(31, 0, 0, 0), day(1, 0, 0, 0)}
		if len(got) != len(want) {
			t.Fatalf("got %d days: %+v", len(got), got)
		}
		for i := range want {
			if !got[i].Day.Equal(want[i].Day) || got[i].Resets != want[i].Resets || got[i].Unlocks != want[i].Unlocks || got[i].Failures != want[i].Failures {
				t.Errorf("day %d = %+v, want %+v", i, got[i], want[i])
			}
		}
		// Filters apply; without a range the days span the events found.
		got, err = db.AuditDaily(ctx, AuditFilter{Result: "failure"}, time.UTC)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || got[0].Failures != 1 || got[0].Resets != 1 || got[1].Failures != 1 {
			t.Fatalf("failures only, UTC: %+v", got)
		}
	})
}

// TestAuditQueryPlans checks with EXPLAIN QUERY PLAN that the common viewer
// filters are answered by the index meant for them, in time order, without
// reading the whole table or sorting it.
func TestAuditQueryPlans(t *testing.T) {
	ctx := context.Background()
	db := newAuditDB(t, Backend{Name: "sqlite", Where: filepath.Join(t.TempDir(), FileName)}) // SQLite's plans
	if err := GenerateAudit(ctx, db, 500, 1_700_000_000_000, 1_700_000_000_000+30*day, 1); err != nil {
		t.Fatal(err)
	}
	r := AuditFilter{SinceMS: 1_700_000_000_000 + day, UntilMS: 1_700_000_000_000 + 8*day}
	with := func(mod func(*AuditFilter)) AuditFilter { f := r; mod(&f); return f }
	cases := []struct {
		name  string
		f     AuditFilter
		index string
	}{
		{"everything", AuditFilter{}, "audit_time_who"},
		{"time range", r, "audit_time_who"},
		{"category", with(func(f *AuditFilter) { f.Categories = []string{"Policy"} }), "audit_category_time"},
		{"activity", with(func(f *AuditFilter) { f.Activities = []string{"Reset password (by admin)"} }), "audit_activity_time"},
		{"failures", with(func(f *AuditFilter) { f.Result = "failure" }), "audit_failure_time"},
		{"actor substring", with(func(f *AuditFilter) { f.Actor = "rossi" }), "audit_time_who"},
		{"target substring", with(func(f *AuditFilter) { f.Target = "u01" }), "audit_time_who"},
		{"actor ID", with(func(f *AuditFilter) { f.ActorID = "3" }), "audit_actor_time"},
		{"target ID", with(func(f *AuditFilter) { f.TargetID = "u00001" }), "audit_target_time"},
		{"text", with(func(f *AuditFilter) { f.Text = "constraint" }), "audit_time_who"},
		{"correlation", AuditFilter{CorrelationID: "x"}, "audit_correlation"},
	}
	for _, c := range cases {
		for _, deep := range []bool{false, true} {
			w, err := c.f.where(db.engine)
			if err != nil {
				t.Fatal(err)
			}
			if deep {
				w.add(`(time_ms, id) < (?, ?)`, 1_700_000_000_000+5*day, 100)
			}
			w.add(`id <= ?`, 1000)
			plan := explain(t, db, `SELECT `+auditCols+` FROM audit_events`+w.sql()+` ORDER BY time_ms DESC, id DESC LIMIT 51`, w.args...)
			if !strings.Contains(plan, "USING INDEX "+c.index) || strings.Contains(plan, "TEMP B-TREE") || plan == "SCAN audit_events" {
				t.Errorf("%s (deep %v): plan %q, want a search of %s in order", c.name, deep, plan, c.index)
			}
		}
	}
	// The chart counts from the activity and failure indexes alone.
	plan := explain(t, db, `SELECT count(*) FROM audit_events WHERE activity = 'Reset password (by admin)' AND time_ms >= ? AND time_ms < ?`, r.SinceMS, r.UntilMS)
	if !strings.Contains(plan, "COVERING INDEX audit_activity_time") {
		t.Errorf("chart plan %q", plan)
	}
}

func explain(t *testing.T, db *DB, q string, args ...any) string {
	t.Helper()
	rows, err := db.sql.Query(`EXPLAIN QUERY PLAN `+q, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var parts []string
	for rows.Next() {
		var id, parent, notused int
		var detail string
		if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
			t.Fatal(err)
		}
		parts = append(parts, detail)
	}
	return strings.Join(parts, "; ")
}

func TestAuditCountCap(t *testing.T) {
	ForEachBackend(t, func(t *testing.T, bk Backend) {
		ctx := context.Background()
		db := newAuditDB(t, bk)
		if err := GenerateAudit(ctx, db, 120, 1_700_000_000_000, 1_700_000_000_000+day, 1); err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			limit, n int
			capped   bool
		}{{100, 100, true}, {119, 119, true}, {120, 120, false}, {500, 120, false}} {
			n, capped, err := db.countAudit(ctx, AuditFilter{}, c.limit)
			if err != nil || n != c.n || capped != c.capped {
				t.Errorf("cap %d: count = %d, %v, %v; want %d, %v", c.limit, n, capped, err, c.n, c.capped)
			}
		}
	})
}

// TestAuditPagingSnapshot: an event appended while paging, even one dated
// in the part of the range not yet shown, stays out of the later pages, so
// the pages add up to the log as it was when the first one was read.
func TestAuditPagingSnapshot(t *testing.T) {
	ForEachBackend(t, func(t *testing.T, bk Backend) {
		ctx := context.Background()
		db := newAuditDB(t, bk)
		var evs []AuditEvent
		for i := range 10 {
			evs = append(evs, AuditEvent{TimeMS: int64(1000 + i*10), Category: "Policy", Activity: "x", Result: "success"})
		}
		appendEvents(t, db, evs...)
		page, next, err := db.QueryAudit(ctx, AuditFilter{}, Cursor{}, 4)
		if err != nil || len(page) != 4 || next.IsZero() {
			t.Fatalf("first page: %d, %v, %v", len(page), next, err)
		}
		late := appendEvents(t, db, AuditEvent{TimeMS: 1005, Category: "Policy", Activity: "late", Result: "success"})[0]
		var rest []AuditEvent
		for !next.IsZero() {
			page, next, err = db.QueryAudit(ctx, AuditFilter{}, next, 4)
			if err != nil {
				t.Fatal(err)
			}
			rest = append(rest, page...)
		}
		if len(rest) != 6 || slices.ContainsFunc(rest, func(e AuditEvent) bool { return e.ID == late.ID }) {
			t.Fatalf("later pages = %v; want the 6 older events without %d", ids(rest), late.ID)
		}
		// A new first page shows it.
		page, _, _ = db.QueryAudit(ctx, AuditFilter{UntilMS: 1010}, Cursor{}, 4)
		if len(page) != 2 || page[0].ID != late.ID {
			t.Fatalf("fresh page = %v", ids(page))
		}
	})
}
