package store

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// gcHarness queues InTx calls on one PostgreSQL handle behind a
// transaction that holds the batch, so that they run as one batch, in the
// order they were queued, once it is released.
type gcHarness struct {
	t       *testing.T
	db      *DB
	release chan struct{}
	done    chan error
	mu      sync.Mutex
	hooked  []string // activities of the events OnAudit was called with
}

func newGCHarness(t *testing.T) *gcHarness {
	h := &gcHarness{t: t, db: Backend{Name: "postgres"}.Fresh(t).Migrated(t)}
	h.db.OnAudit(func(e AuditEvent) {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.hooked = append(h.hooked, e.Activity)
	})
	return h
}

// hold starts a transaction that waits for go_, holding the batch.
func (h *gcHarness) hold() {
	h.release, h.done = make(chan struct{}), make(chan error, 1)
	inside := make(chan struct{})
	go func() {
		h.done <- h.db.InTx(context.Background(), func(*Tx) error { close(inside); <-h.release; return nil })
	}()
	<-inside
}

// queue starts InTx(ctx, fn) and waits until it is queued; the outcome
// (its error, or the value it panicked with) arrives on the channel.
func (h *gcHarness) queue(ctx context.Context, fn func(*Tx) error) chan any {
	h.t.Helper()
	h.db.group.mu.Lock()
	n := len(h.db.group.queue)
	h.db.group.mu.Unlock()
	out := make(chan any, 1)
	go func() {
		defer func() {
			if v := recover(); v != nil {
				out <- fmt.Sprintf("panic: %v", v)
			}
		}()
		out <- h.db.InTx(ctx, fn)
	}()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		h.db.group.mu.Lock()
		m := len(h.db.group.queue)
		h.db.group.mu.Unlock()
		if m > n {
			return out
		}
		if time.Now().After(deadline) {
			h.t.Fatal("the transaction did not queue")
		}
	}
}

func (h *gcHarness) go_() {
	close(h.release)
	if err := <-h.done; err != nil {
		h.t.Fatal(err)
	}
}

func (h *gcHarness) hookedNow() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.hooked)
}

func appendNamed(ctx context.Context, tx *Tx, name string) error {
	e := AuditEvent{Category: "UserManagement", Activity: name, ActorType: "cli", Result: "success"}
	return tx.AppendAudit(ctx, &e)
}

func xid(ctx context.Context, tx *Tx) (int64, error) {
	var x int64
	err := tx.tx.QueryRowContext(ctx, `SELECT txid_current()`).Scan(&x)
	return x, err
}

// Transactions that queue behind one another run as one batch, and each
// keeps what InTx promises alone: a fn that fails (returns an error,
// panics, ignores a failed statement, has its context cancelled while it
// runs) leaves nothing behind and its error goes to its caller only; the
// others commit, in order, each seeing the earlier ones' writes and chaining
// its event to theirs; OnAudit hears of them only after the commit.
func TestGroupCommitBatchIsolatesFailures(t *testing.T) {
	ctx := context.Background()
	h := newGCHarness(t)
	h.hold()
	var xids [3]int64
	var seen [3][]string // OnAudit calls seen from inside the fns
	var counted int
	ok := func(i int, name string, check func(tx *Tx) error) func(*Tx) error {
		return func(tx *Tx) error {
			seen[i] = h.hookedNow()
			if err := appendNamed(ctx, tx, name); err != nil {
				return err
			}
			if check != nil {
				if err := check(tx); err != nil {
					return err
				}
			}
			var err error
			xids[i], err = xid(ctx, tx)
			return err
		}
	}
	a := h.queue(ctx, ok(0, "A", nil))
	b := h.queue(ctx, func(tx *Tx) error {
		if err := appendNamed(ctx, tx, "B"); err != nil {
			return err
		}
		return errors.New("B fails")
	})
	c := h.queue(ctx, ok(1, "C", func(tx *Tx) error {
		return tx.tx.QueryRowContext(ctx, `SELECT count(*) FROM audit_events`).Scan(&counted)
	}))
	d := h.queue(ctx, func(tx *Tx) error {
		if err := appendNamed(ctx, tx, "D"); err != nil {
			return err
		}
		panic("D panics")
	})
	e := h.queue(ctx, func(tx *Tx) error {
		if err := appendNamed(ctx, tx, "E"); err != nil {
			return err
		}
		_, _ = tx.tx.ExecContext(ctx, `SELECT no_such_column FROM audit_events`) // failed, error ignored
		return nil
	})
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	f := h.queue(fctx, func(tx *Tx) error {
		if err := appendNamed(fctx, tx, "F1"); err != nil {
			return err
		}
		// The caller's context ends while a statement runs: that must not
		// break the connection everyone's work is on (pgx drops a
		// connection whose query is cancelled).
		time.AfterFunc(50*time.Millisecond, cancel)
		_, err := tx.tx.ExecContext(fctx, `SELECT pg_sleep(0.3)`)
		return err
	})
	g := h.queue(ctx, ok(2, "G", nil))
	h.go_()

	for name, ch := range map[string]chan any{"A": a, "C": c, "G": g} {
		if got := <-ch; got != nil {
			t.Errorf("%s: %v, want nil", name, got)
		}
	}
	if got := <-b; got == nil || got.(error).Error() != "B fails" {
		t.Errorf("B: %v, want its own error", got)
	}
	if got := <-d; got != "panic: D panics" {
		t.Errorf("D: %v, want its panic raised in its caller", got)
	}
	if got, ok := (<-e).(error); !ok || got == nil {
		t.Errorf("E, which ignored a failed statement: %v, want an error", got)
	}
	if got, ok := (<-f).(error); !ok || !errors.Is(got, context.Canceled) {
		t.Errorf("F, cancelled while it ran: %v, want context.Canceled", got)
	}
	if xids[0] == 0 || xids[0] != xids[1] || xids[1] != xids[2] {
		t.Errorf("transaction IDs of A, C, G: %v; want one batch", xids)
	}
	if counted != 2 {
		t.Errorf("C counted %d events; want 2 (A's and its own, not B's)", counted)
	}
	for i, s := range seen {
		if len(s) != 0 {
			t.Errorf("fn %d saw OnAudit calls %v before the batch committed", i, s)
		}
	}
	if got := h.hookedNow(); !slices.Equal(got, []string{"A", "C", "G"}) {
		t.Errorf("OnAudit calls %v, want [A C G]", got)
	}
	var names []string
	rows, err := h.db.sql.Query(`SELECT activity FROM audit_events ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		names = append(names, n)
	}
	rows.Close()
	if !slices.Equal(names, []string{"A", "C", "G"}) {
		t.Errorf("events in the log %v, want [A C G]", names)
	}
	if res, err := h.db.VerifyAuditFull(ctx, Pace{}); err != nil || !res.OK || res.Checked != 3 {
		t.Errorf("verify: %+v %v", res, err)
	}
}

// When the first fn of a batch fails (it runs without a savepoint: its
// failure rolls back the transaction), the rest run in a new transaction
// and commit.
func TestGroupCommitFirstFails(t *testing.T) {
	ctx := context.Background()
	h := newGCHarness(t)
	h.hold()
	var xids [2]int64
	x := h.queue(ctx, func(tx *Tx) error {
		if err := appendNamed(ctx, tx, "X"); err != nil {
			return err
		}
		return errors.New("X fails")
	})
	var ys []chan any
	for i, name := range []string{"Y", "Z"} {
		ys = append(ys, h.queue(ctx, func(tx *Tx) error {
			if err := appendNamed(ctx, tx, name); err != nil {
				return err
			}
			var err error
			xids[i], err = xid(ctx, tx)
			return err
		}))
	}
	h.go_()
	if got := <-x; got == nil {
		t.Error("X: nil, want its error")
	}
	for _, ch := range ys {
		if got := <-ch; got != nil {
			t.Error(got)
		}
	}
	if xids[0] == 0 || xids[0] != xids[1] {
		t.Errorf("transaction IDs of Y and Z: %v; want one", xids)
	}
	if got := h.hookedNow(); !slices.Equal(got, []string{"Y", "Z"}) {
		t.Errorf("OnAudit calls %v, want [Y Z]", got)
	}
	if res, err := h.db.VerifyAuditFull(ctx, Pace{}); err != nil || !res.OK || res.Checked != 2 {
		t.Errorf("verify: %+v %v", res, err)
	}
}

// Two replicas, many writers each, a third of whose transactions fail after
// appending: the log holds exactly the events of the transactions that
// returned nil, in one unbroken chain.
func TestGroupCommitReplicasWithFailures(t *testing.T) {
	ctx := context.Background()
	b := Backend{Name: "postgres"}.Fresh(t)
	dbs := []*DB{b.Migrated(t), b.Open(t)}
	const writers, each = 8, 40
	var committed atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		db := dbs[w%2]
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 1))
			for i := range each {
				n := 1 + r.IntN(2)
				fail := r.IntN(3) == 0
				err := db.InTx(ctx, func(tx *Tx) error {
					for j := range n {
						if err := appendNamed(ctx, tx, fmt.Sprintf("w%d-%d-%d", w, i, j)); err != nil {
							return err
						}
					}
					if fail {
						return errors.New("planned failure")
					}
					return nil
				})
				switch {
				case fail && err == nil:
					errs <- errors.New("a failing transaction committed")
					return
				case !fail && err != nil:
					errs <- err
					return
				case err == nil:
					committed.Add(int64(n))
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	res, err := dbs[1].VerifyAuditFull(ctx, Pace{})
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK || res.Checked != committed.Load() {
		t.Fatalf("after %d committed appends from two replicas: %+v", committed.Load(), res)
	}
}
