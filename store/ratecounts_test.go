package store

import (
	"context"
	"sync"
	"testing"
	"time"
)

// Counts per key and window, the previous window's count beside the
// current one, and windows before the previous pruned.
func TestRateCounts(t *testing.T) {
	ForEachBackend(t, func(t *testing.T, b Backend) {
		ctx := context.Background()
		db, other := b.Migrated(t), b.Open(t)
		const w = time.Minute
		c, c2 := db.RateCounts(w), other.RateCounts(w)
		t0 := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
		add := func(c *RateCounts, key string, start time.Time, n, wantCur, wantPrev int) {
			t.Helper()
			cur, prev, err := c.Add(ctx, key, start, n)
			if err != nil || cur != wantCur || prev != wantPrev {
				t.Fatalf("Add(%s, %s, %d) = %d, %d, %v; want %d, %d", key, start.Format("15:04"), n, cur, prev, err, wantCur, wantPrev)
			}
		}
		add(c, "public 203.0.113.9", t0, 1, 1, 0)
		add(c2, "public 203.0.113.9", t0, 1, 2, 0) // another replica: the same count
		add(c, "public 203.0.113.9", t0, -1, 1, 0)
		add(c, "signin 203.0.113.9", t0, 1, 1, 0)
		add(c2, "public 203.0.113.9", t0.Add(w), 1, 1, 1)
		add(c, "public 203.0.113.9", t0.Add(3*w), 1, 1, 0)
		var n int
		if err := db.sql.QueryRowContext(ctx, `SELECT count(*) FROM rate_counts WHERE window_ms < ?`, t0.Add(2*w).UnixMilli()).Scan(&n); err != nil || n != 0 {
			t.Errorf("%d rows of old windows left (%v)", n, err)
		}
	})
}

// Concurrent Adds from two handles never return the same count.
func TestRateCountsConcurrent(t *testing.T) {
	ForEachBackend(t, func(t *testing.T, b Backend) {
		ctx := context.Background()
		cs := []*RateCounts{b.Migrated(t).RateCounts(time.Minute), b.Open(t).RateCounts(time.Minute)}
		start := time.Now().Truncate(time.Minute)
		const n = 40
		seen := make(chan int, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				cur, _, err := cs[i%2].Add(ctx, "k", start, 1)
				if err != nil {
					t.Error(err)
				}
				seen <- cur
			})
		}
		wg.Wait()
		close(seen)
		got := map[int]bool{}
		for v := range seen {
			if got[v] {
				t.Fatalf("two Adds returned %d", v)
			}
			got[v] = true
		}
		if len(got) != n || !got[n] {
			t.Errorf("counts %v, want 1…%d", got, n)
		}
	})
}
