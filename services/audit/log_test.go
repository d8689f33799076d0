package audit

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/writeback/writeback/store"
)

func policyEntries(n int) []Entry {
	out := make([]Entry, n)
	for i := range out {
		out[i] = Entry{Category: CategoryPolicy, Activity: "Update self-service password reset policy", Actor: System, Result: Success}
	}
	return out
}

// maintainOnce runs Maintain until its first round has verified, as one
// start of the server does, and returns what it found.
func maintainOnce(t *testing.T, l *Log) Integrity {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	round := make(chan struct{})
	l.roundDone = func() { close(round) }
	done := make(chan struct{})
	go func() {
		defer close(done)
		l.Maintain(ctx, time.Hour, func(context.Context) (int, error) { return 3650, nil })
	}()
	select {
	case <-round:
	case <-time.After(30 * time.Second):
		t.Fatal("Maintain did not finish its first round within 30 s")
	}
	cancel()
	<-done
	return l.Integrity()
}

// TestMaintainVerifiesIncrementally: a start of the server reads only the
// events appended since the last verification; the first start, with
// nothing verified yet, reads them all; and once the last full check is
// older than FullCheckEvery a paced full check follows the incremental one.
func TestMaintainVerifiesIncrementally(t *testing.T) {
	db := newDB(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	newLog := func(now time.Time) *Log {
		l := NewLog(db, log)
		l.pace = store.Pace{Chunk: 7, Rest: 0.1}
		l.now = func() time.Time { return now }
		return l
	}
	record(t, db, policyEntries(50)...)
	now := time.Now()

	in := maintainOnce(t, newLog(now))
	if !in.Result.OK || !in.Result.Full || in.Result.Checked != 50 || in.LastFull.IsZero() {
		t.Fatalf("first start: %+v", in)
	}

	record(t, db, policyEntries(4)...)
	in = maintainOnce(t, newLog(now.Add(time.Hour)))
	if !in.Result.OK || in.Result.Full || in.Result.Checked != 4 || in.Result.FromID != 50 || in.Result.LastGoodID != 54 {
		t.Fatalf("second start read %d events (full %v), want the 4 new ones: %+v", in.Result.Checked, in.Result.Full, in)
	}

	in = maintainOnce(t, newLog(now.Add(FullCheckEvery+time.Hour)))
	if !in.Result.OK || !in.Result.Full || in.Result.Checked != 54 {
		t.Fatalf("a week later: %+v", in)
	}
	if cp, _, _ := db.AuditCheckpoint(context.Background()); cp.EventID != 54 {
		t.Fatalf("checkpoint %+v", cp)
	}
}
