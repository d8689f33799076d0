package store_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/writeback/writeback/store"
)

func migrated(t *testing.T, path string) *store.DB {
	t.Helper()
	db := open(t, path)
	t.Cleanup(func() { db.Close() })
	if _, err := db.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return db
}

// countAttempts returns how many attempts bucket/key holds.
func countAttempts(t *testing.T, db *store.DB, bucket, key string) int {
	t.Helper()
	var n int
	if err := db.SQL().QueryRow(db.Rebind(`SELECT count(*) FROM signin_attempts WHERE bucket = ? AND key = ?`), bucket, key).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func limit(bucket, key string, max int, since int64) store.AttemptLimit {
	return store.AttemptLimit{Bucket: bucket, Key: key, Max: max, SinceMS: since, Outside: -1}
}

// Two handles on one file stand for two portal processes: concurrent
// reservations from both never let more than Max attempts through.
func TestReserveAttemptConcurrentAcrossHandles(t *testing.T) {
	store.ForEachBackend(t, func(t *testing.T, bk store.Backend) {
		ctx := context.Background()
		path := bk.Where
		a := migrated(t, path)
		b := open(t, path)
		t.Cleanup(func() { b.Close() })
		now := time.Now().UnixMilli()
		var ok, blocked atomic.Int32
		var wg sync.WaitGroup
		for i := range 40 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				db := a
				if i%2 == 1 {
					db = b
				}
				r, err := db.ReserveAttempt(ctx, now, []store.AttemptLimit{
					limit(store.BucketDirectoryAddress, "ip", 100, now-1000),
					limit(store.BucketDirectoryAccount, "guid", 3, now-1000),
				})
				if err != nil {
					t.Error(err)
					return
				}
				if r.OK() {
					ok.Add(1)
					if len(r.IDs) != 2 {
						t.Errorf("reserved %d rows, want one per limit", len(r.IDs))
					}
				} else {
					blocked.Add(1)
					if r.Blocked != 1 {
						t.Errorf("blocked by limit %d, want the account's", r.Blocked)
					}
				}
			}()
		}
		wg.Wait()
		if ok.Load() != 3 || blocked.Load() != 37 {
			t.Fatalf("%d reserved, %d blocked; want 3 and 37", ok.Load(), blocked.Load())
		}
		// A blocked attempt wrote nothing, not even in the limits that had room.
		if n := countAttempts(t, a, store.BucketDirectoryAddress, "ip"); n != 3 {
			t.Fatalf("address bucket holds %d attempts, want 3", n)
		}
	})
}

func TestReserveAttemptLifecycle(t *testing.T) {
	store.ForEachBackend(t, func(t *testing.T, bk store.Backend) {
		ctx := context.Background()
		db := migrated(t, bk.Where)
		const window = 30 * 60 * 1000
		t0 := int64(1_800_000_000_000)
		reserve := func(now int64, l store.AttemptLimit) store.Reservation {
			t.Helper()
			r, err := db.ReserveAttempt(ctx, now, []store.AttemptLimit{l})
			if err != nil {
				t.Fatal(err)
			}
			return r
		}
		acct := func(now int64) store.AttemptLimit { return limit(store.BucketDirectoryAccount, "g", 2, now-window) }

		r1 := reserve(t0, acct(t0))
		r2 := reserve(t0+1000, acct(t0+1000))
		if !r1.OK() || !r2.OK() {
			t.Fatal("first two attempts refused")
		}
		r3 := reserve(t0+2000, acct(t0+2000))
		if r3.OK() || r3.Blocked != 0 {
			t.Fatalf("third attempt: %+v", r3)
		}
		if r3.RetryMS != t0+window {
			t.Fatalf("retry at %d, want when the oldest leaves the window (%d)", r3.RetryMS, t0+window)
		}
		// A released attempt (right password, or never checked) frees its slot.
		if err := db.ReleaseAttempt(ctx, r2.IDs); err != nil {
			t.Fatal(err)
		}
		r4 := reserve(t0+3000, acct(t0+3000))
		if !r4.OK() {
			t.Fatal("released slot not free")
		}
		if err := db.SettleAttempt(ctx, append(r1.IDs, r4.IDs...)); err != nil {
			t.Fatal(err)
		}
		if reserve(t0+4000, acct(t0+4000)).OK() {
			t.Fatal("settled failures do not count")
		}
		// After the window the oldest no longer counts.
		if !reserve(t0+window, acct(t0+window)).OK() {
			t.Fatal("still blocked after the window")
		}
		// Clearing one key leaves the others alone.
		other := limit(store.BucketDirectoryAccount, "other", 1, t0)
		if !reserve(t0+window, other).OK() {
			t.Fatal("other key refused")
		}
		if err := db.ClearAttempts(ctx, store.BucketDirectoryAccount, "g"); err != nil {
			t.Fatal(err)
		}
		if n := countAttempts(t, db, store.BucketDirectoryAccount, "g"); n != 0 {
			t.Fatalf("%d attempts after clearing", n)
		}
		if n := countAttempts(t, db, store.BucketDirectoryAccount, "other"); n != 1 {
			t.Fatalf("clearing g touched other: %d", n)
		}
		// Max 0 refuses every attempt.
		if reserve(t0, limit(store.BucketAdminName, "z", 0, t0)).OK() {
			t.Fatal("Max 0 let an attempt through")
		}
		// Rows older than MaxAttemptWindow are purged at the next reservation.
		later := t0 + window + store.MaxAttemptWindow.Milliseconds() + 1
		reserve(later, limit(store.BucketAdminAddress, "ip", 10, later))
		if n := countAttempts(t, db, store.BucketDirectoryAccount, "other"); n != 0 {
			t.Fatalf("old attempt not purged: %d", n)
		}
	})
}

// Outside counts (the directory's own bad-password count) add to the
// attempts still pending: those have not reached the directory's count yet.
func TestReserveAttemptOutsideCount(t *testing.T) {
	store.ForEachBackend(t, func(t *testing.T, bk store.Backend) {
		ctx := context.Background()
		db := migrated(t, bk.Where)
		now := int64(1_800_000_000_000)
		l := limit(store.BucketDirectoryAccount, "g", 2, now-1000)
		l.Outside = 2 // two wrong passwords typed elsewhere
		if r, _ := db.ReserveAttempt(ctx, now, []store.AttemptLimit{l}); r.OK() {
			t.Fatal("reserved although the directory already counts Max failures")
		}
		l.Outside = 1
		r, _ := db.ReserveAttempt(ctx, now, []store.AttemptLimit{l})
		if !r.OK() {
			t.Fatal("refused with room left")
		}
		// The first is still pending: 1 outside + 1 pending reaches Max.
		if r2, _ := db.ReserveAttempt(ctx, now, []store.AttemptLimit{l}); r2.OK() {
			t.Fatal("pending attempt not counted with the outside count")
		}
		// Once settled it is part of the outside count the caller reads next.
		if err := db.SettleAttempt(ctx, r.IDs); err != nil {
			t.Fatal(err)
		}
		l.Outside = 0
		l.Max = 3
		if r3, _ := db.ReserveAttempt(ctx, now, []store.AttemptLimit{l}); !r3.OK() {
			t.Fatal("settled attempt counted twice")
		}
	})
}
