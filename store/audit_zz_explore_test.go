package store

import (
	"fmt"
	"strings"
	"context"
	"os"
	"strconv"
	"testing"
	"time"
)

func TestZZGen(t *testing.T) {
	path := os.Getenv("EXP_DB")
	if path == "" {
		t.Skip()
	}
	n, _ := strconv.Atoi(os.Getenv("EXP_N"))
	ctx := context.Background()
	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	end := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	start := end - 365*24*3600*1000
	t0 := time.Now()
	if err := GenerateAudit(ctx, db, n, start, end, 1); err != nil {
		t.Fatal(err)
	}
	t.Logf("generated %d in %v", n, time.Since(t0))
}

func TestZZExplore(t *testing.T) {
	path := os.Getenv("EXP_DB")
	if path == "" || os.Getenv("EXP_N") != "" {
		t.Skip()
	}
	ctx := context.Background()
	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	end := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	day := int64(24 * 3600 * 1000)
	cases := []struct {
		name string
		f    AuditFilter
	}{
		{"all", AuditFilter{}},
		{"7d", AuditFilter{SinceMS: end - 7*day, UntilMS: end}},
		{"30d cat", AuditFilter{SinceMS: end - 30*day, UntilMS: end, Categories: []string{"Policy"}}},
		{"30d 2cat", AuditFilter{SinceMS: end - 30*day, UntilMS: end, Categories: []string{"Policy", "DirectoryManagement"}}},
		{"30d act", AuditFilter{SinceMS: end - 30*day, UntilMS: end, Activities: []string{"Reset password (by admin)"}}},
		{"30d 2act", AuditFilter{SinceMS: end - 30*day, UntilMS: end, Activities: []string{"Reset password (by admin)", "Reset password (self-service)"}}},
		{"30d fail", AuditFilter{SinceMS: end - 30*day, UntilMS: end, Result: "failure"}},
		{"30d actor", AuditFilter{SinceMS: end - 30*day, UntilMS: end, Actor: "Admin Rossi"}},
		{"30d target rare", AuditFilter{SinceMS: end - 30*day, UntilMS: end, Target: "u01234"}},
		{"7d target rare", AuditFilter{SinceMS: end - 7*day, UntilMS: end, Target: "u01234"}},
		{"30d text", AuditFilter{SinceMS: end - 30*day, UntilMS: end, Text: "constraint"}},
		{"30d text rare", AuditFilter{SinceMS: end - 30*day, UntilMS: end, Text: "zzzz"}},
		{"all fail+act", AuditFilter{Result: "failure", Activities: []string{"Reset password (self-service)"}}},
	}
	for _, c := range cases {
		w, _ := c.f.where()
		w.add(`(time_ms, id) < (?, ?)`, end, 1<<62)
		w.add(`id <= ?`, 1<<62)
		q := `EXPLAIN QUERY PLAN SELECT ` + auditCols + ` FROM audit_events` + w.sql() + ` ORDER BY time_ms DESC, id DESC LIMIT 51`
		rows, err := db.sql.QueryContext(ctx, q, w.args...)
		if err != nil {
			t.Fatal(err)
		}
		var plan []string
		for rows.Next() {
			var a, b, c2 int
			var d string
			rows.Scan(&a, &b, &c2, &d)
			plan = append(plan, d)
		}
		rows.Close()
		t0 := time.Now()
		_, next, err := db.QueryAudit(ctx, c.f, Cursor{}, 50)
		if err != nil {
			t.Fatal(err)
		}
		first := time.Since(t0)
		t0 = time.Now()
		for i := 0; i < 50 && !next.IsZero(); i++ {
			_, next, err = db.QueryAudit(ctx, c.f, next, 50)
		}
		deep := time.Since(t0) / 50
		t0 = time.Now()
		n, capped, _ := db.CountAudit(ctx, c.f)
		cnt := time.Since(t0)
		t.Logf("%-16s first %6.1fms deep %6.1fms count %d %v in %6.1fms  plan %v", c.name, ms(first), ms(deep), n, capped, ms(cnt), plan)
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func TestZZSQL(t *testing.T) {
	path := os.Getenv("EXP_DB")
	qs := os.Getenv("EXP_SQL")
	if path == "" || qs == "" {
		t.Skip()
	}
	ctx := context.Background()
	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range strings.Split(qs, ";;") {
		for i := 0; i < 3; i++ {
			t0 := time.Now()
			rows, err := db.sql.QueryContext(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			var out []string
			cols, _ := rows.Columns()
			for rows.Next() {
				vals := make([]any, len(cols))
				ptrs := make([]any, len(cols))
				for i := range vals {
					ptrs[i] = &vals[i]
				}
				rows.Scan(ptrs...)
				out = append(out, fmt.Sprint(vals...))
			}
			rows.Close()
			if len(out) > 5 {
				out = out[:5]
			}
			t.Logf("%6.1fms %s => %v", ms(time.Since(t0)), q, out)
		}
	}
}

func TestZZExport(t *testing.T) {
	path := os.Getenv("EXP_DB")
	if path == "" || os.Getenv("EXP_EXPORT") == "" {
		t.Skip()
	}
	ctx := context.Background()
	db, _ := Open(ctx, path)
	defer db.Close()
	t0 := time.Now()
	n := 0
	db.ExportAudit(ctx, AuditFilter{}, func(AuditEvent) error { n++; return nil })
	t.Logf("export scan %d rows %v = %.0f/s", n, time.Since(t0), float64(n)/time.Since(t0).Seconds())
	t0 = time.Now()
	rows, _ := db.sql.QueryContext(ctx, `SELECT `+auditCols+` FROM audit_events ORDER BY id DESC`)
	n = 0
	for rows.Next() {
		scanAudit(rows)
		n++
	}
	rows.Close()
	t.Logf("rowid scan %d rows %v = %.0f/s", n, time.Since(t0), float64(n)/time.Since(t0).Seconds())
	t0 = time.Now()
	for range 100000 {
		ContentHash(AuditEvent{ID: 5, Category: "UserManagement", Activity: "Reset password (self-service)", ActorName: "Hello World", Details: `{"a":1}`, TargetDN: "CN=x,OU=y,DC=z", PrevHash: GenesisHash})
	}
	t.Logf("hash %v/op", time.Since(t0)/100000)
}
