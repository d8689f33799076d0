package replicas

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/writeback/writeback/store"
	"github.com/writeback/writeback/testbed"
)

// killable is a replica's database that can "die" like its process: every
// call fails from then on, so it neither renews nor releases anything.
type killable struct {
	*store.DB
	dead atomic.Bool
}

var errKilled = errors.New("killed")

func (k *killable) Heartbeat(ctx context.Context, id, host string, d time.Duration) (int, error) {
	if k.dead.Load() {
		return 0, errKilled
	}
	return k.DB.Heartbeat(ctx, id, host, d)
}

func (k *killable) AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error) {
	if k.dead.Load() {
		return false, errKilled
	}
	return k.DB.AcquireLease(ctx, name, holder, ttl)
}

func (k *killable) ReleaseLease(ctx context.Context, name, holder string) error {
	if k.dead.Load() {
		return errKilled
	}
	return k.DB.ReleaseLease(ctx, name, holder)
}

func (k *killable) Deregister(ctx context.Context, id string) error {
	if k.dead.Load() {
		return errKilled
	}
	return k.DB.Deregister(ctx, id)
}

var fast = Options{Heartbeat: 50 * time.Millisecond, DeadAfter: 500 * time.Millisecond, Lease: 500 * time.Millisecond}

// replica is one running Registry with a job that counts how many leaders
// run their work at once (across all replicas of a test).
type replica struct {
	reg    *Registry
	db     *killable
	cancel context.CancelFunc
	done   chan struct{}
	runs   atomic.Int64 // times its work started
}

func startReplica(t *testing.T, where, id string, running *atomic.Int64, overlap *atomic.Bool) *replica {
	t.Helper()
	db, err := store.OpenPostgres(context.Background(), where)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	o := fast
	o.ID = id
	r := &replica{db: &killable{DB: db}, done: make(chan struct{})}
	r.reg = New(r.db, slog.New(slog.NewTextHandler(io.Discard, nil)), o)
	r.reg.Lead(func(ctx context.Context) {
		r.runs.Add(1)
		if running.Add(1) > 1 {
			overlap.Store(true)
		}
		<-ctx.Done()
		running.Add(-1)
	})
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { r.reg.Run(ctx); close(r.done) }()
	t.Cleanup(func() { cancel(); <-r.done })
	return r
}

// waitFor polls cond until it holds or within passes.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > within {
			t.Fatalf("%s: not within %s", what, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start)
}

func leaders(rs ...*replica) (n int, which *replica) {
	for _, r := range rs {
		if r.reg.Leader() {
			n++
			which = r
		}
	}
	return n, which
}

// Two replicas on one PostgreSQL database: exactly one leads and runs the
// work, both count two live replicas; when the leader dies (no renewal, no
// release) the other takes over within the lease time plus a heartbeat,
// the dead one stops its work on its own, and the survivor counts one live
// replica once the dead one's heartbeats are older than DeadAfter. A clean
// stop hands over at the next heartbeat. Never do two run the work at once.
func TestOneLeaderAndTakeover(t *testing.T) {
	where := testbed.NewPostgresDB(t)
	var running atomic.Int64
	var overlap atomic.Bool
	a := startReplica(t, where, "replica-a", &running, &overlap)
	b := startReplica(t, where, "replica-b", &running, &overlap)

	waitFor(t, 2*time.Second, "both count two replicas", func() bool { return a.reg.Live() == 2 && b.reg.Live() == 2 })
	waitFor(t, 2*time.Second, "a leader", func() bool { n, _ := leaders(a, b); return n == 1 })
	time.Sleep(10 * fast.Heartbeat)
	n, lead := leaders(a, b)
	if n != 1 || running.Load() != 1 {
		t.Fatalf("%d leaders, %d running the work; want 1 and 1", n, running.Load())
	}
	other := a
	if lead == a {
		other = b
	}
	if a.reg.Self() == b.reg.Self() {
		t.Fatal("two replicas with one ID")
	}

	// The leader dies.
	lead.db.dead.Store(true)
	took := waitFor(t, fast.Lease+4*fast.Heartbeat+time.Second, "the other takes over", func() bool { return other.reg.Leader() })
	t.Logf("took over %s after the leader died (lease %s)", took, fast.Lease)
	waitFor(t, time.Second, "the dead leader stops its work", func() bool { return !lead.reg.Leader() })
	waitFor(t, fast.DeadAfter+time.Second, "the survivor counts one replica", func() bool { return other.reg.Live() == 1 })
	if other.runs.Load() != 1 {
		t.Errorf("the new leader started its work %d times", other.runs.Load())
	}

	// The dead one comes back and joins as a follower; then the leader
	// stops cleanly and hands over at once.
	lead.db.dead.Store(false)
	waitFor(t, 2*time.Second, "both count two again", func() bool { return a.reg.Live() == 2 && b.reg.Live() == 2 })
	if lead.reg.Leader() {
		t.Fatal("the returning replica took the lease from the live leader")
	}
	other.cancel()
	<-other.done
	took = waitFor(t, 4*fast.Heartbeat+time.Second, "handover after a clean stop", func() bool { return lead.reg.Leader() })
	if took > fast.Lease {
		t.Errorf("handover after a clean stop took %s, longer than the lease: the lease was not released", took)
	}
	waitFor(t, 4*fast.Heartbeat+time.Second, "the stopped one is not counted", func() bool { return lead.reg.Live() == 1 })
	if overlap.Load() {
		t.Error("two replicas ran the leader's work at once")
	}
}
