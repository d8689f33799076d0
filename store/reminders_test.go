package store_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/writeback/writeback/store"
)

// TestClaimReminder: a reminder is claimed once per password and threshold,
// by one of many concurrent claimers on two handles (two replicas); a new
// password starts afresh and forgets the old password's rows; a released
// claim can be claimed again; old rows are pruned.
func TestClaimReminder(t *testing.T) {
	store.ForEachBackend(t, func(t *testing.T, bk store.Backend) {
		ctx := context.Background()
		a := migrated(t, bk.Where)
		b := open(t, bk.Where)
		t.Cleanup(func() { b.Close() })
		claim := func(db *store.DB, k store.ReminderKey, now int64) bool {
			t.Helper()
			var ok bool
			if err := db.InTx(ctx, func(tx *store.Tx) (err error) { ok, err = tx.ClaimReminder(ctx, k, now); return err }); err != nil {
				t.Fatal(err)
			}
			return ok
		}
		k14 := store.ReminderKey{UserID: "guid-1", PasswordSetMS: 1000, ThresholdDays: 14}
		var won atomic.Int32
		var wg sync.WaitGroup
		for i := range 10 {
			db := a
			if i%2 == 1 {
				db = b
			}
			wg.Go(func() {
				if claim(db, k14, 5000) {
					won.Add(1)
				}
			})
		}
		wg.Wait()
		if won.Load() != 1 {
			t.Fatalf("%d claims won, want 1", won.Load())
		}
		k7 := k14
		k7.ThresholdDays = 7
		if !claim(a, k7, 6000) {
			t.Fatal("the 7-day threshold was taken by the 14-day one")
		}
		sent, err := a.SentReminders(ctx)
		if err != nil || !sent[k14] || !sent[k7] || len(sent) != 2 {
			t.Fatalf("SentReminders = %v, %v", sent, err)
		}
		// A new password: its 14-day reminder is new, and the old
		// password's rows go.
		next := store.ReminderKey{UserID: "guid-1", PasswordSetMS: 2000, ThresholdDays: 14}
		if !claim(b, next, 7000) {
			t.Fatal("the new password's reminder was refused")
		}
		if sent, _ = a.SentReminders(ctx); len(sent) != 1 || !sent[next] {
			t.Fatalf("after the new password: %v", sent)
		}
		// A failed mail releases its claim.
		if err := a.InTx(ctx, func(tx *store.Tx) error { return tx.ReleaseReminder(ctx, next) }); err != nil {
			t.Fatal(err)
		}
		if !claim(a, next, 8000) {
			t.Fatal("a released reminder cannot be claimed again")
		}
		if n, err := a.PruneReminders(ctx, 8001); err != nil || n != 1 {
			t.Fatalf("PruneReminders = %d, %v", n, err)
		}
	})
}
