package store

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
)

// TestOnError: a statement that fails counts once, on both engines; what
// is not the database's failure (no such row, a cancelled request) does not.
func TestOnError(t *testing.T) {
	ForEachDB(t, func(t *testing.T, db *DB) {
		var n atomic.Int64
		db.OnError(func(error) { n.Add(1) })
		ctx := context.Background()
		if _, err := db.AdminByEmail(ctx, "nobody@example.com"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("unknown admin: %v", err)
		}
		if _, err := db.AdminByID(ctx, 4242); !errors.Is(err, ErrNotFound) {
			t.Fatalf("unknown admin by ID: %v", err)
		}
		cancelled, cancel := context.WithCancel(ctx)
		cancel()
		if err := db.InTx(cancelled, func(*Tx) error { return nil }); err == nil {
			t.Fatal("a transaction began on a cancelled context")
		}
		if got := n.Load(); got != 0 {
			t.Fatalf("%d errors counted for no database failure", got)
		}
		// A broken database: the table is gone.
		if _, err := db.SQL().ExecContext(ctx, `DROP TABLE admin_factors`); err != nil {
			t.Fatal(err)
		}
		if _, err := db.SQL().ExecContext(ctx, `DROP TABLE admins CASCADE`); err != nil {
			if _, err := db.SQL().ExecContext(ctx, `DROP TABLE admins`); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := db.AdminByEmail(ctx, "nobody@example.com"); err == nil || errors.Is(err, ErrNotFound) {
			t.Fatalf("admin by e-mail without the table: %v", err)
		}
		if _, err := db.AdminByID(ctx, 1); err == nil || errors.Is(err, ErrNotFound) {
			t.Fatalf("admin by ID without the table: %v", err)
		}
		if got := n.Load(); got != 2 {
			t.Errorf("%d errors counted, want 2", got)
		}
	})
}
