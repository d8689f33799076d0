package store_test

import (
	"context"
	"errors"
	"testing"

	"github.com/writeback/writeback/store"
)

func open(t *testing.T, path string) *store.DB {
	t.Helper()
	db, err := store.OpenTest(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func TestMigrateFromEmptyAndAgain(t *testing.T) {
	store.ForEachBackend(t, func(t *testing.T, bk store.Backend) {
		ctx := context.Background()
		path := bk.Where
		db := open(t, path)
		applied, err := db.Migrate(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(applied) == 0 || applied[0] != "0001_init.sql" {
			t.Fatalf("applied %v", applied)
		}
		if p, _ := db.Pending(ctx); len(p) != 0 {
			t.Errorf("pending after migrate: %v", p)
		}
		again, err := db.Migrate(ctx)
		if err != nil || len(again) != 0 {
			t.Errorf("second migrate applied %v, %v", again, err)
		}
		if bk.Name != "sqlite" {
			db.Close()
			return
		}
		// Every pooled connection has the pragmas, not only the first.
		conns := make([]interface{ Close() error }, 0, 4)
		for i := 0; i < 4; i++ {
			c, err := db.SQL().Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			conns = append(conns, c)
			var fk, busy int
			var mode string
			if err := c.QueryRowContext(ctx, `PRAGMA foreign_keys`).Scan(&fk); err != nil {
				t.Fatal(err)
			}
			c.QueryRowContext(ctx, `PRAGMA busy_timeout`).Scan(&busy)
			c.QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&mode)
			if fk != 1 || busy < 1000 || mode != "wal" {
				t.Errorf("connection %d: foreign_keys=%d busy_timeout=%d journal_mode=%s", i, fk, busy, mode)
			}
		}
		for _, c := range conns {
			c.Close()
		}
		db.Close()
	})
}

func TestConfigSurvivesReopenAndRefusesStaleVersion(t *testing.T) {
	store.ForEachBackend(t, func(t *testing.T, bk store.Backend) {
		ctx := context.Background()
		path := bk.Where
		db := open(t, path)
		if _, err := db.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		var v int64
		err := db.InTx(ctx, func(tx *store.Tx) error {
			var err error
			v, err = tx.PutConfig(ctx, "onprem", 0, `{"writeback":true,"unlock":true}`, "Ada")
			return err
		})
		if err != nil || v != 1 {
			t.Fatalf("put: %v %d", err, v)
		}
		err = db.InTx(ctx, func(tx *store.Tx) error {
			_, err := tx.PutConfig(ctx, "onprem", 0, `{"writeback":false}`, "Bob")
			return err
		})
		if !errors.Is(err, store.ErrConflict) {
			t.Errorf("stale put: %v", err)
		}
		db.Close()

		db = open(t, path)
		defer db.Close()
		c, err := db.Config(ctx, "onprem")
		if err != nil {
			t.Fatal(err)
		}
		if c.Version != 1 || c.Value != `{"writeback":true,"unlock":true}` || c.UpdatedBy != "Ada" || c.UpdatedMS == 0 {
			t.Errorf("after reopen: %+v", c)
		}
	})
}

func TestAuditRowRolledBackWithItsChange(t *testing.T) {
	store.ForEachBackend(t, func(t *testing.T, bk store.Backend) {
		ctx := context.Background()
		db := open(t, bk.Where)
		defer db.Close()
		if _, err := db.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		boom := errors.New("boom")
		err := db.InTx(ctx, func(tx *store.Tx) error {
			if _, err := tx.PutConfig(ctx, "x", 0, `{}`, "a"); err != nil {
				return err
			}
			if err := tx.AppendAudit(ctx, &store.AuditEvent{Category: "Policy", Activity: "t", Result: "success"}); err != nil {
				return err
			}
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatal(err)
		}
		rows, _ := db.RecentAudit(ctx, "", 10)
		c, _ := db.Config(ctx, "x")
		if len(rows) != 0 || c.Version != 0 {
			t.Errorf("rolled-back transaction left %d audit rows, config version %d", len(rows), c.Version)
		}
	})
}
