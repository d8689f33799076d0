package store

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
	"time"
)

// TestMigrateUpToDateTakesNoWriteLock: on a database that has every
// migration, Migrate only reads, so a command starting while the server is
// in the middle of a write neither waits for it nor fails.
func TestMigrateUpToDateTakesNoWriteLock(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), FileName)
	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	// Another process holds the write lock.
	other, err := sql.Open("sqlite", "file:"+filepath.ToSlash(path)+"?_pragma=busy_timeout(10000)&_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	tx, err := other.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.Exec(`INSERT INTO schema_migrations (name, applied_ms) VALUES ('held', 1)`); err != nil {
		t.Fatal(err)
	}

	again, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	short, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	t0 := time.Now()
	applied, err := again.Migrate(short)
	if err != nil || len(applied) != 0 {
		t.Fatalf("Migrate while another connection writes: %v, %v (after %v)", applied, err, time.Since(t0))
	}
}
