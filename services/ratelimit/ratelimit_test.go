package ratelimit

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/writeback/writeback/store"
)

func TestBudgetFor(t *testing.T) {
	const m = time.Minute
	cases := []struct {
		name            string
		threshold       int
		window, lockout time.Duration
		known           bool
		want            DirectoryBudget
	}{
		{"no lockout: the portal's own cap", 0, 0, 0, true, DirectoryBudget{Max: MaxDirectoryAttempts, Window: 30 * m}},
		{"threshold 1: never send a password", 1, 30 * m, 30 * m, true, DirectoryBudget{Max: 0, Window: 30 * m, Refuse: true}},
		{"threshold 2", 2, 30 * m, 30 * m, true, DirectoryBudget{Max: 1, Window: 30 * m}},
		{"threshold 3 (the test bed)", 3, 30 * m, 30 * m, true, DirectoryBudget{Max: 2, Window: 30 * m}},
		{"threshold 10: capped", 10, 30 * m, 30 * m, true, DirectoryBudget{Max: MaxDirectoryAttempts, Window: 30 * m}},
		{"threshold 5: one below", 5, 60 * m, 30 * m, true, DirectoryBudget{Max: 4, Window: 60 * m}},
		{"no window: the lockout duration", 3, 0, 45 * m, true, DirectoryBudget{Max: 2, Window: 45 * m}},
		{"neither: 30 minutes", 3, 0, 0, true, DirectoryBudget{Max: 2, Window: 30 * m}},
		{"short window: at least 15 minutes", 3, time.Minute, 0, true, DirectoryBudget{Max: 2, Window: 15 * m}},
		{"long window: at most a day", 3, 72 * time.Hour, 0, true, DirectoryBudget{Max: 2, Window: 24 * time.Hour}},
		{"policy unreadable: one try", 0, 0, 0, false, DirectoryBudget{Max: 1, Window: 30 * m}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := BudgetFor(c.threshold, c.window, c.lockout, c.known); got != c.want {
				t.Fatalf("BudgetFor(%d, %v, %v, %v) = %+v, want %+v", c.threshold, c.window, c.lockout, c.known, got, c.want)
			}
		})
	}
	// Whatever the policy, the portal alone never reaches the threshold.
	for threshold := 1; threshold <= 50; threshold++ {
		if b := BudgetFor(threshold, 30*m, 30*m, true); b.Max >= threshold {
			t.Fatalf("threshold %d: budget %d reaches it", threshold, b.Max)
		}
	}
}

func TestReserve(t *testing.T) {
	ctx := context.Background()
	db, err := store.Open(ctx, filepath.Join(t.TempDir(), store.FileName))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	now := time.UnixMilli(1_800_000_000_000)
	acct := Limit{Bucket: store.BucketAdminAccount, Key: Key("7"), Max: 2, Window: 15 * time.Minute, Outside: -1}
	addr := Limit{Bucket: store.BucketAdminAddress, Key: Key("192.0.2.1"), Max: 10, Window: 15 * time.Minute, Outside: -1}
	a1, ref, err := Reserve(ctx, db, now, addr, acct)
	if err != nil || ref != nil {
		t.Fatalf("first: %v %v", ref, err)
	}
	a2, _, _ := Reserve(ctx, db, now.Add(time.Second), addr, acct)
	if err := a1.Fail(ctx); err != nil {
		t.Fatal(err)
	}
	_, ref, _ = Reserve(ctx, db, now.Add(2*time.Second), addr, acct)
	if ref == nil || ref.Limit.Bucket != store.BucketAdminAccount || !ref.Retry.Equal(now.Add(15*time.Minute)) {
		t.Fatalf("third: %+v", ref)
	}
	if err := a2.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ref, _ := Reserve(ctx, db, now.Add(3*time.Second), addr, acct); ref != nil {
		t.Fatalf("released slot still taken: %+v", ref)
	}
	if Key("a", "b") == Key("ab") || Key("x") != Key("x") {
		t.Fatal("Key does not separate its parts or is not stable")
	}
}
