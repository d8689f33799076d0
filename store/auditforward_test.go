package store

import (
	"context"
	"errors"
	"testing"
)

// The forward lease: one holder at a time per destination (on PostgreSQL
// across handles, i.e. replicas; on SQLite within the handle, the one
// process), events after the cursor in order, and a cursor moved by someone
// else refused rather than overwritten.
func TestForwardLease(t *testing.T) {
	ForEachBackend(t, func(t *testing.T, b Backend) {
		ctx := context.Background()
		db := b.Migrated(t)
		appendN := func(n int) {
			t.Helper()
			err := db.InTx(ctx, func(tx *Tx) error {
				for range n {
					if err := tx.AppendAudit(ctx, &AuditEvent{Category: "Policy", Activity: "x", Result: "success"}); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		appendN(3)
		if c, err := db.EnsureForwardCursor(ctx, "stdout"); err != nil || c != 3 {
			t.Fatalf("a new cursor starts at the newest event: %d %v", c, err)
		}
		appendN(4)
		l, err := db.AcquireForward(ctx, "stdout")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.AcquireForward(ctx, "stdout"); !errors.Is(err, ErrForwardHeld) {
			t.Errorf("second lease in the same process: %v", err)
		}
		other := b.Open(t)
		if b.Name == "postgres" {
			if _, err := other.AcquireForward(ctx, "stdout"); !errors.Is(err, ErrForwardHeld) {
				t.Errorf("second lease from another replica: %v", err)
			}
		}
		if s, err := db.AcquireForward(ctx, "syslog"); err != nil {
			t.Errorf("another destination: %v", err)
		} else {
			s.Release()
		}
		ev, err := l.Next(ctx, 2)
		if err != nil || len(ev) != 2 || ev[0].ID != 4 || ev[1].ID != 5 {
			t.Fatalf("next after 3: %+v %v", ev, err)
		}
		if err := l.Advance(ctx, 4); err != nil || l.Cursor() != 4 {
			t.Fatal(err)
		}
		if c, head, err := db.ForwardCursor(ctx, "stdout"); err != nil || c != 4 || head != 7 {
			t.Errorf("cursor %d head %d %v", c, head, err)
		}
		// Someone else moved it: refused, and not overwritten.
		if _, err := db.sql.Exec(`UPDATE audit_forward_cursors SET last_id = 6 WHERE name = 'stdout'`); err != nil {
			t.Fatal(err)
		}
		if err := l.Advance(ctx, 5); !errors.Is(err, ErrCursorMoved) {
			t.Errorf("advance over a moved cursor: %v", err)
		}
		l.Release()
		l, err = other.AcquireForward(ctx, "stdout")
		if err != nil {
			t.Fatalf("after release: %v", err)
		}
		defer l.Release()
		if ev, err := l.Next(ctx, 10); err != nil || l.Cursor() != 6 || len(ev) != 1 || ev[0].ID != 7 {
			t.Errorf("the next holder resumes after 6: %d %+v %v", l.Cursor(), ev, err)
		}
	})
}
