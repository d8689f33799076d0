package audit

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/writeback/writeback/store"
	"github.com/writeback/writeback/testbed"
)

// forEngine runs fn on a fresh migrated database of each engine (the
// PostgreSQL one from the test bed), with a function that opens another
// handle on it, as another replica or process would.
func forEngine(t *testing.T, fn func(t *testing.T, db *store.DB, open func() *store.DB)) {
	for _, engine := range []string{"sqlite", "postgres"} {
		t.Run(engine, func(t *testing.T) {
			where := t.TempDir() + "/" + store.FileName
			if engine == "postgres" {
				where = testbed.NewPostgresDB(t)
			}
			open := func() *store.DB {
				open := store.Open
				if engine == "postgres" {
					open = store.OpenPostgres
				}
				db, err := open(context.Background(), where)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { db.Close() })
				if _, err := db.Migrate(context.Background()); err != nil {
					t.Fatal(err)
				}
				return db
			}
			fn(t, open(), open)
		})
	}
}

// lines is a standard output that a test reads the forwarded IDs from.
type lines struct{ testbed.SyncBuffer }

func (l *lines) ids(t *testing.T) []int64 {
	t.Helper()
	var out []int64
	sc := bufio.NewScanner(strings.NewReader(l.String()))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var j JSONEvent
		if err := json.Unmarshal(sc.Bytes(), &j); err != nil {
			t.Fatalf("not a JSON line: %q", sc.Text())
		}
		out = append(out, j.ID)
	}
	return out
}

// stdoutTo starts a stdout forwarder on db writing to out, quick to take
// over from another.
func stdoutTo(t *testing.T, db *store.DB, out *lines) *Forwarder {
	t.Helper()
	bw := bufio.NewWriter(out)
	f, err := newForwarder(context.Background(), db, "stdout", &stdoutSender{bw: bw, enc: newJSONEncoder(bw)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	f.leaseRetry, f.poll = 50*time.Millisecond, 50*time.Millisecond
	return f.start()
}

func recordN(t *testing.T, db *store.DB, n int) []int64 {
	t.Helper()
	var ids []int64
	for range n {
		ids = append(ids, record(t, db, Entry{Category: CategoryPolicy, Activity: ActivityUpdateSSPRPolicy, Actor: System})[0].ID)
	}
	return ids
}

func waitIDs(t *testing.T, what string, n int, got func() int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for got() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d of %d events forwarded", what, got(), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestForwardResumesAfterRestart: events recorded while no forwarder runs
// (the portal stopped; another process, here another handle, wrote them)
// are sent by the next start, after the ones sent before, in order, none
// twice; events the first run sent are not sent again.
func TestForwardResumesAfterRestart(t *testing.T) {
	forEngine(t, func(t *testing.T, db *store.DB, open func() *store.DB) {
		recordN(t, db, 2) // before the destination was first set up: not forwarded
		var first lines
		f := stdoutTo(t, db, &first)
		sent := recordN(t, db, 3)
		waitIDs(t, "first run", 3, func() int { return len(first.ids(t)) })
		closeFwd(t, f)
		if got := first.ids(t); !slices.Equal(got, sent) {
			t.Fatalf("first run sent %v, want %v", got, sent)
		}
		// Stopped: another process records events.
		other := open()
		while := recordN(t, other, 5)
		var second lines
		f2 := stdoutTo(t, open(), &second)
		later := recordN(t, db, 2)
		want := append(append([]int64{}, while...), later...)
		waitIDs(t, "second run", len(want), func() int { return len(second.ids(t)) })
		closeFwd(t, f2)
		if got := second.ids(t); !slices.Equal(got, want) {
			t.Fatalf("after the restart sent %v, want %v", got, want)
		}
	})
}

// TestForwardDrainsAtClose: Close sends what was committed before it.
func TestForwardDrainsAtClose(t *testing.T) {
	db := newDB(t)
	var out lines
	f := stdoutTo(t, db, &out)
	f.poll = time.Hour // only the drain can find what another handle wrote
	want := recordN(t, db, 20)
	closeFwd(t, f)
	if got := out.ids(t); !slices.Equal(got, want) {
		t.Fatalf("sent %v, want %v", got, want)
	}
}

// TestForwardOnceAcrossReplicas: two replicas on one PostgreSQL database,
// both forwarding to the same destination while both record events, and
// the holder stops half way: between them every event is sent exactly
// once, in order (what the second sent follows what the first sent).
func TestForwardOnceAcrossReplicas(t *testing.T) {
	dbURL := testbed.NewPostgresDB(t)
	open := func() *store.DB {
		db, err := store.OpenPostgres(context.Background(), dbURL)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		if _, err := db.Migrate(context.Background()); err != nil {
			t.Fatal(err)
		}
		return db
	}
	a, b := open(), open()
	var outA, outB lines
	fa := stdoutTo(t, a, &outA)
	fb := stdoutTo(t, b, &outB)
	record := func(n int) []int64 {
		var mu sync.Mutex
		var ids []int64
		var wg sync.WaitGroup
		for _, db := range []*store.DB{a, b} {
			wg.Go(func() {
				got := recordN(t, db, n)
				mu.Lock()
				ids = append(ids, got...)
				mu.Unlock()
			})
		}
		wg.Wait()
		return ids
	}
	all := record(50)
	total := func() int { return len(outA.ids(t)) + len(outB.ids(t)) }
	waitIDs(t, "both running", len(all), total)
	// Stop the one that holds the lock; the other takes over.
	holder, rest := fa, fb
	if fb.Holding() {
		holder, rest = fb, fa
	}
	if !holder.Holding() || rest.Holding() {
		t.Fatalf("holding: %v and %v; want exactly one", fa.Holding(), fb.Holding())
	}
	closeFwd(t, holder)
	all = append(all, record(50)...)
	waitIDs(t, "after the takeover", len(all), total)
	closeFwd(t, rest)

	ga, gb := outA.ids(t), outB.ids(t)
	first, second := ga, gb
	if holder == fb {
		first, second = gb, ga
	}
	got := append(append([]int64{}, first...), second...)
	want := append([]int64{}, all...)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("forwarded %v (first holder %d, then %d), want each of %v once, in order", got, len(first), len(second), want)
	}
	if len(second) == 0 {
		t.Error("the second replica sent nothing after the first stopped")
	}
}

// cutSender records what it is given and, once, right after "sending" the
// event with ID cutAt, ends the PostgreSQL session that holds the
// forwarder's lock: a crash between a send and the cursor's save.
type cutSender struct {
	mu    sync.Mutex
	got   []int64
	cutAt int64
	cut   func()
}

func (s *cutSender) send(ctx context.Context, e store.AuditEvent) error {
	s.mu.Lock()
	s.got = append(s.got, e.ID)
	s.mu.Unlock()
	if e.ID == s.cutAt && s.cut != nil {
		s.cut()
		s.cut = nil
	}
	return ctx.Err()
}
func (s *cutSender) interrupt()   {}
func (s *cutSender) close() error { return nil }
func (s *cutSender) ids() []int64 { s.mu.Lock(); defer s.mu.Unlock(); return slices.Clone(s.got) }

// TestForwardConnectionLostResendsOnlyInFlight: the lock's connection ends
// between a send and the cursor's save; the forwarder takes the lock again
// and sends that one event a second time, then carries on: nothing skipped,
// nothing else repeated.
func TestForwardConnectionLostResendsOnlyInFlight(t *testing.T) {
	db, err := store.OpenPostgres(context.Background(), testbed.NewPostgresDB(t))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	snd := &cutSender{}
	f, err := newForwarder(context.Background(), db, "syslog", snd, nil)
	if err != nil {
		t.Fatal(err)
	}
	f.leaseRetry, f.poll = 50*time.Millisecond, 50*time.Millisecond
	ids := recordN(t, db, 10)
	snd.cutAt = ids[4]
	snd.cut = func() {
		var n int
		err := db.SQL().QueryRow(`SELECT count(pg_terminate_backend(pid)) FROM pg_locks WHERE locktype = 'advisory' AND granted
			AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`).Scan(&n)
		if err != nil || n != 1 {
			t.Errorf("end the lock's session: %d %v", n, err)
		}
	}
	f.start()
	want := append(append(slices.Clone(ids[:5]), ids[4]), ids[5:]...)
	waitIDs(t, "after the lost connection", len(want), func() int { return len(snd.ids()) })
	closeFwd(t, f)
	if got := snd.ids(); !slices.Equal(got, want) {
		t.Fatalf("sent %v, want %v (only the event in flight twice)", got, want)
	}
}

// blockingWriter is a standard output nobody reads: every write blocks
// until the test ends.
type blockingWriter struct{ release chan struct{} }

func (w blockingWriter) Write(p []byte) (int, error) { <-w.release; return len(p), nil }

// TestStdoutCloseAbandonsStuckWrite: a write to standard output that never
// returns cannot be interrupted; Close gives up on it soon after its
// context ends (ErrStuck) instead of holding up the shutdown.
func TestStdoutCloseAbandonsStuckWrite(t *testing.T) {
	db := newDB(t)
	w := blockingWriter{release: make(chan struct{})}
	defer close(w.release)
	f, err := NewStdoutForwarder(context.Background(), db, w, nil)
	if err != nil {
		t.Fatal(err)
	}
	recordN(t, db, 1)
	time.Sleep(200 * time.Millisecond) // the write is under way
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := f.Close(ctx); !errors.Is(err, ErrStuck) {
		t.Errorf("Close = %v, want ErrStuck", err)
	}
	if el := time.Since(start); el > 200*time.Millisecond+abortWait+time.Second {
		t.Errorf("Close took %v", el)
	}
}
