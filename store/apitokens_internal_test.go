package store

import (
	"context"
	"slices"
	"testing"
)

// auditIndexes names the indexes of audit_events.
func auditIndexes(t *testing.T, db *DB) []string {
	t.Helper()
	q := `SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'audit_events' AND sql IS NOT NULL`
	if db.engine == enginePostgres {
		q = `SELECT indexname FROM pg_indexes WHERE tablename = 'audit_events' AND indexname NOT LIKE '%_pkey'`
	}
	rows, err := db.sql.QueryContext(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// TestMigrationAPITokensKeepsTheAuditLog: migration 0012 on a database with
// an audit log keeps every event, its chain and its indexes, and from then
// on an event may have an API token as its actor (which 0011 refused).
func TestMigrationAPITokensKeepsTheAuditLog(t *testing.T) {
	ForEachBackend(t, func(t *testing.T, b Backend) {
		ctx := context.Background()
		db := b.Open(t)
		create := `CREATE TABLE schema_migrations (name TEXT PRIMARY KEY, applied_ms INTEGER NOT NULL) STRICT`
		if db.engine == enginePostgres {
			create = `CREATE TABLE schema_migrations (name TEXT COLLATE "C" PRIMARY KEY, applied_ms BIGINT NOT NULL)`
		}
		if _, err := db.sql.ExecContext(ctx, create); err != nil {
			t.Fatal(err)
		}
		list, err := db.migrations()
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range list {
			if m.name >= "0012" {
				break
			}
			if err := db.InTx(ctx, func(tx *Tx) error { _, err := db.apply(ctx, tx.tx, m); return err }); err != nil {
				t.Fatalf("%s: %v", m.name, err)
			}
		}
		const n = 500
		if err := GenerateAudit(ctx, db, n, 1_000_000, 2_000_000, 7); err != nil {
			t.Fatal(err)
		}
		token := AuditEvent{Category: "Authentication", Activity: "API request", ActorType: "api-token", ActorID: "api-token:1",
			ActorName: "deploy", Result: "success", Details: "{}"}
		before := token
		if err := db.InTx(ctx, func(tx *Tx) error { return tx.AppendAudit(ctx, &before) }); err == nil {
			t.Fatal("before 0012 an API token was an actor already")
		}
		indexes := auditIndexes(t, db)

		applied, err := db.Migrate(ctx)
		if err != nil || len(applied) == 0 || applied[0] != "0012_api_tokens.sql" {
			t.Fatalf("migrate: %v %v", applied, err)
		}
		res, err := db.VerifyAudit(ctx)
		if err != nil || !res.OK || res.Checked != n {
			t.Fatalf("verify after 0012: %+v %v", res, err)
		}
		// Every index is still there (later migrations may add some).
		got := auditIndexes(t, db)
		for _, ix := range indexes {
			if !slices.Contains(got, ix) {
				t.Errorf("indexes of audit_events: %v, before %v", got, indexes)
				break
			}
		}
		if err := db.InTx(ctx, func(tx *Tx) error { return tx.AppendAudit(ctx, &token) }); err != nil {
			t.Fatalf("an API token as actor: %v", err)
		}
		if res, err := db.VerifyAudit(ctx); err != nil || !res.OK || res.Checked != n+1 {
			t.Errorf("verify with the new event: %+v %v", res, err)
		}
	})
}
