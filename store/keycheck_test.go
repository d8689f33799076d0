package store

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/writeback/writeback/testbed"
)

// The first check records the value; the same value passes after it, from
// another handle too; another value is refused and changes nothing; a
// database without one (from before the check) gets one on its next check.
func TestCheckKey(t *testing.T) {
	ForEachBackend(t, func(t *testing.T, b Backend) {
		ctx := context.Background()
		first, second := strings.Repeat("a", 64), strings.Repeat("b", 64)
		db := b.Migrated(t)
		if rec, err := db.CheckKey(ctx, first); err != nil || !rec {
			t.Fatalf("first check: recorded %v, %v; want recorded", rec, err)
		}
		if rec, err := db.CheckKey(ctx, first); err != nil || rec {
			t.Fatalf("same key again: recorded %v, %v; want it passed", rec, err)
		}
		other := b.Open(t)
		if _, err := other.CheckKey(ctx, first); err != nil {
			t.Fatalf("same key from another handle: %v", err)
		}
		if _, err := other.CheckKey(ctx, second); !errors.Is(err, ErrKeyMismatch) {
			t.Fatalf("another key: %v, want ErrKeyMismatch", err)
		}
		if _, err := db.CheckKey(ctx, first); err != nil {
			t.Fatalf("a refused key replaced the recorded one: %v", err)
		}
		// A database from before the check has none: the next key is taken.
		if _, err := db.sql.ExecContext(ctx, `DELETE FROM key_check`); err != nil {
			t.Fatal(err)
		}
		if rec, err := other.CheckKey(ctx, second); err != nil || !rec {
			t.Fatalf("database without a check value: recorded %v, %v", rec, err)
		}
		if _, err := db.CheckKey(ctx, first); !errors.Is(err, ErrKeyMismatch) {
			t.Fatalf("after recording the second: first gives %v", err)
		}
		if _, err := db.CheckKey(ctx, "short"); err == nil || errors.Is(err, ErrKeyMismatch) {
			t.Errorf("a malformed value: %v", err)
		}
	})
}

// Replicas starting at once on a new PostgreSQL database with different
// keys: exactly one records its value, and every other is compared with
// it (passes with the same key, refused with another).
func TestCheckKeyConcurrentFirstStart(t *testing.T) {
	ctx := context.Background()
	b := Backend{Name: "postgres", Where: testbed.NewPostgresDB(t)}
	b.Migrated(t)
	const n = 6
	values := make([]string, n)
	for i := range values {
		values[i] = strings.Repeat(string(rune('a'+i%2)), 64) // two keys among six replicas
	}
	recorded := make([]bool, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		db := b.Open(t)
		wg.Go(func() {
			<-start
			recorded[i], errs[i] = db.CheckKey(ctx, values[i])
		})
	}
	close(start)
	wg.Wait()
	winner := -1
	for i := range n {
		if recorded[i] {
			if winner >= 0 {
				t.Fatalf("replicas %d and %d both recorded a check value", winner, i)
			}
			winner = i
		}
	}
	if winner < 0 {
		t.Fatalf("no replica recorded a check value: %v", errs)
	}
	for i := range n {
		same := values[i] == values[winner]
		if same && errs[i] != nil || !same && !errors.Is(errs[i], ErrKeyMismatch) {
			t.Errorf("replica %d (same key as the first: %v): %v", i, same, errs[i])
		}
	}
}
