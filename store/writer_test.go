package store_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/writeback/writeback/store"
)

// A write transaction waiting for another of the same process gives up when
// its context ends, instead of sitting in SQLite's busy wait until
// busy_timeout (10 s).
func TestInTxWaitEndsWithContext(t *testing.T) {
	store.ForEachBackend(t, func(t *testing.T, bk store.Backend) {
		db := migrated(t, bk.Where)
		inside, release := make(chan struct{}), make(chan struct{})
		done := make(chan error, 1)
		go func() {
			done <- db.InTx(context.Background(), func(*store.Tx) error {
				close(inside)
				<-release
				return nil
			})
		}()
		<-inside
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		start := time.Now()
		ran := false
		err := db.InTx(ctx, func(*store.Tx) error { ran = true; return nil })
		waited := time.Since(start)
		close(release)
		if err := <-done; err != nil {
			t.Fatalf("the first transaction: %v", err)
		}
		if !errors.Is(err, context.DeadlineExceeded) || ran {
			t.Fatalf("InTx while another transaction runs, with a 100 ms context: err %v, ran %t; want the context's error, fn not run", err, ran)
		}
		if waited > 5*time.Second {
			t.Fatalf("InTx waited %s past its context's end", waited)
		}
		// The slot is free again.
		if err := db.InTx(context.Background(), func(*store.Tx) error { return nil }); err != nil {
			t.Fatal(err)
		}
	})
}

// A panic inside a transaction leaves neither the write slot nor SQLite's
// write lock taken.
func TestInTxPanicFreesTheSlot(t *testing.T) {
	store.ForEachBackend(t, func(t *testing.T, bk store.Backend) {
		db := migrated(t, bk.Where)
		func() {
			defer func() { _ = recover() }()
			_ = db.InTx(context.Background(), func(*store.Tx) error { panic("boom") })
		}()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		err := db.InTx(ctx, func(tx *store.Tx) error {
			e := store.AuditEvent{Category: "UserManagement", Activity: "Reset password (by admin)", ActorType: "cli", Result: "success"}
			return tx.AppendAudit(ctx, &e)
		})
		if err != nil {
			t.Fatalf("InTx after a panic: %v", err)
		}
	})
}

// Concurrent appends from several goroutines of one process and from a
// second handle on the same file (another process) make one valid chain
// with every event in it: each event's previous hash is the committed last
// one, whoever appended it.
func TestConcurrentAppendsKeepTheChain(t *testing.T) {
	store.ForEachBackend(t, func(t *testing.T, bk store.Backend) {
		ctx := context.Background()
		path := bk.Where
		a := migrated(t, path)
		b := open(t, path)
		t.Cleanup(func() { b.Close() })
		const writers, each = 8, 25
		var wg sync.WaitGroup
		errs := make(chan error, writers)
		for w := range writers {
			db := a
			if w%4 == 3 {
				db = b
			}
			wg.Go(func() {
				for range each {
					e := store.AuditEvent{Category: "UserManagement", Activity: "Reset password (by admin)", ActorType: "cli",
						TargetType: "User", TargetID: "id", Result: "success", Details: `{"server":"ldaps://x"}`}
					if err := db.InTx(ctx, func(tx *store.Tx) error { return tx.AppendAudit(ctx, &e) }); err != nil {
						errs <- err
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		res, err := a.VerifyAudit(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !res.OK || res.Checked != writers*each {
			t.Fatalf("after %d concurrent appends: %+v", writers*each, res)
		}
	})
}
