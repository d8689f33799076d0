package store

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/writeback/writeback/testbed"
)

// Heartbeats register replicas and count those seen within deadAfter; a
// replica that stops beating drops out of the count; Deregister removes
// one at once.
func TestReplicaHeartbeats(t *testing.T) {
	ForEachBackend(t, func(t *testing.T, b Backend) {
		ctx := context.Background()
		a, c := b.Migrated(t), b.Open(t)
		const dead = 400 * time.Millisecond
		if n, err := a.Heartbeat(ctx, "ra", "host-a", dead); err != nil || n != 1 {
			t.Fatalf("first heartbeat: %d %v, want 1", n, err)
		}
		if n, err := c.Heartbeat(ctx, "rc", "host-c", dead); err != nil || n != 2 {
			t.Fatalf("second replica: %d %v, want 2", n, err)
		}
		list, err := a.Replicas(ctx, dead)
		if err != nil || len(list) != 2 || !list[0].Live || !list[1].Live || list[0].Host == "" {
			t.Fatalf("replicas: %+v %v", list, err)
		}
		time.Sleep(dead + 100*time.Millisecond) // ra stops beating
		if n, err := c.Heartbeat(ctx, "rc", "host-c", dead); err != nil || n != 1 {
			t.Fatalf("after ra stopped: %d %v, want 1", n, err)
		}
		if n, err := a.Heartbeat(ctx, "ra", "host-a", dead); err != nil || n != 2 {
			t.Fatalf("ra back: %d %v, want 2", n, err)
		}
		if err := a.Deregister(ctx, "ra"); err != nil {
			t.Fatal(err)
		}
		if n, err := c.Heartbeat(ctx, "rc", "host-c", dead); err != nil || n != 1 {
			t.Fatalf("after ra deregistered: %d %v, want 1", n, err)
		}
	})
}

// A lease has one holder: others are refused while it holds and renews it,
// take it once it expired or was released, and the holder's renewal fails
// once another took it.
func TestLeases(t *testing.T) {
	ForEachBackend(t, func(t *testing.T, b Backend) {
		ctx := context.Background()
		a, c := b.Migrated(t), b.Open(t)
		const ttl = 300 * time.Millisecond
		acquire := func(db *DB, holder string) bool {
			t.Helper()
			ok, err := db.AcquireLease(ctx, "background", holder, ttl)
			if err != nil {
				t.Fatal(err)
			}
			return ok
		}
		if !acquire(a, "ra") || acquire(c, "rc") {
			t.Fatal("want ra to take the free lease and rc refused")
		}
		for range 3 { // ra renews: rc stays refused past the first ttl
			time.Sleep(ttl / 2)
			if !acquire(a, "ra") || acquire(c, "rc") {
				t.Fatal("renewing: want ra to keep it")
			}
		}
		if h, err := c.LeaseHolder(ctx, "background"); err != nil || h != "ra" {
			t.Fatalf("holder %q %v", h, err)
		}
		time.Sleep(ttl + 50*time.Millisecond) // ra stops renewing
		if h, _ := c.LeaseHolder(ctx, "background"); h != "" {
			t.Errorf("an expired lease still has holder %q", h)
		}
		if !acquire(c, "rc") || acquire(a, "ra") {
			t.Fatal("after expiry: want rc to take it and ra refused")
		}
		if err := c.ReleaseLease(ctx, "background", "rc"); err != nil {
			t.Fatal(err)
		}
		if !acquire(a, "ra") {
			t.Fatal("after release: ra refused")
		}
		if err := c.ReleaseLease(ctx, "background", "rc"); err != nil { // not rc's: changes nothing
			t.Fatal(err)
		}
		if acquire(c, "rc") {
			t.Fatal("a release by another holder freed ra's lease")
		}
	})
}

// Replicas asking for a free lease at once: exactly one gets it.
func TestLeaseConcurrentOneHolder(t *testing.T) {
	ctx := context.Background()
	b := Backend{Name: "postgres", Where: testbed.NewPostgresDB(t)}
	b.Migrated(t)
	const n = 8
	got := make([]bool, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		db := b.Open(t)
		wg.Go(func() {
			<-start
			got[i], errs[i] = db.AcquireLease(ctx, "background", string(rune('a'+i)), time.Minute)
		})
	}
	close(start)
	wg.Wait()
	holders := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("replica %d: %v", i, errs[i])
		}
		if got[i] {
			holders++
		}
	}
	if holders != 1 {
		t.Fatalf("%d replicas hold the lease, want 1", holders)
	}
}
