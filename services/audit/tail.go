package audit

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/writeback/writeback/store"
)

// Forwarder passes the audit log on to a SIEM (NewSyslogForwarder) or to
// standard output (NewStdoutForwarder). It does not take events from the
// requests that record them: it reads the log itself, after a cursor kept
// in the database for its destination, sends each event and then moves the
// cursor past it. So:
//
//   - Nothing is dropped: while the destination is away the events wait in
//     the database, and they are sent, in order, when it is back.
//   - A restart resumes from the cursor: what was recorded while no portal
//     forwarded (the process stopped, a command such as `writeback admin
//     create` ran) is sent by the next start, in order.
//   - Several replicas on one PostgreSQL database forward each event once
//     between them: one at a time holds the destination's lock
//     (store.AcquireForward), the others wait to take over should it stop.
//
// Exactly once, precisely: the cursor is saved after each event is sent,
// not in the same transaction as the send (a syslog server or a pipe takes
// no part in one). A crash between the send and the save (the process
// killed, its database connection lost) means the next holder sends that
// one event again; a crash of the PostgreSQL server itself may take back the
// cursor's last moves of a few hundred milliseconds (store/auditforward.go),
// and those events are sent again. Nothing is ever skipped. Every message
// carries the event's ID, its sequence in the log ("id" in the JSON), so a
// SIEM can drop a repeat. "Sent" means written to the connection or to
// standard output: syslog over TCP or TLS has no acknowledgement, so an
// event written into a connection the server then drops can still be lost
// in the network, and UDP may lose any datagram.
//
// A destination's cursor is created, at the newest event, the first time
// the portal starts with it: the history before that is for export, not
// forwarding. Events removed by the retention pruning before they were sent
// are skipped with a warning in the operator log.
type Forwarder struct {
	db   *store.DB
	name string // the cursor: "stdout" or "syslog"
	snd  sender
	log  *slog.Logger

	poll       time.Duration // how often to look for events appended elsewhere
	leaseRetry time.Duration // how often a waiting forwarder tries to take over
	batch      int

	wake     chan struct{} // an event was committed in this process
	draining chan struct{} // Close: send what is there, then stop
	drainOne sync.Once
	// abortCtx ends when Close gives up: a send in progress is interrupted.
	abortCtx context.Context
	abort    context.CancelFunc
	done     chan struct{}
	remove   func() // unhooks wake from the database

	sent    atomic.Uint64
	holding atomic.Bool
	// heldDraining: the lock was taken after Close began (a start that
	// had not got so far yet when Close came).
	heldDraining atomic.Bool
}

// sender delivers one event to a destination, retrying as it sees fit
// until the event is written or ctx ends (then it returns ctx's error).
type sender interface {
	send(ctx context.Context, e store.AuditEvent) error
	// interrupt makes a send in progress return soon (ctx has ended).
	interrupt()
	close() error
}

// Poll and retry defaults of a Forwarder.
const (
	defaultPoll       = 500 * time.Millisecond
	defaultLeaseRetry = 2 * time.Second
	forwardBatch      = 256
)

func newForwarder(ctx context.Context, db *store.DB, name string, snd sender, log *slog.Logger) (*Forwarder, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// Created now, not when the lock is first taken: a destination's first
	// start forwards everything recorded from this moment on.
	if _, err := db.EnsureForwardCursor(ctx, name); err != nil {
		return nil, err
	}
	f := &Forwarder{
		db: db, name: name, snd: snd, log: log,
		poll: defaultPoll, leaseRetry: defaultLeaseRetry, batch: forwardBatch,
		wake: make(chan struct{}, 1), draining: make(chan struct{}), done: make(chan struct{}),
	}
	f.abortCtx, f.abort = context.WithCancel(context.Background())
	f.remove = db.OnAudit(func(store.AuditEvent) {
		select {
		case f.wake <- struct{}{}:
		default:
		}
	})
	return f, nil
}

func (f *Forwarder) start() *Forwarder {
	go f.run()
	return f
}

// Sent returns how many events this forwarder sent.
func (f *Forwarder) Sent() uint64 { return f.sent.Load() }

// Holding reports whether this forwarder holds its destination's lock (on
// PostgreSQL, one replica of those forwarding to it does).
func (f *Forwarder) Holding() bool { return f.holding.Load() }

// ErrStuck is returned by Close when a delivery in progress could not be
// interrupted in time; the forwarder was abandoned (the process may exit).
var ErrStuck = errors.New("audit: forwarder still busy delivering when its close deadline passed")

// abortWait bounds how long Close waits, once its context has ended, for a
// delivery in progress to notice that it must stop. Deliveries that can be
// interrupted (the syslog connection) return at once; a writer that cannot
// (a stuck standard output) is left behind rather than holding up shutdown.
const abortWait = time.Second

// Close sends what the log holds, giving up when ctx ends, and stops. What
// was not sent stays in the database after the cursor: the next start (or
// another replica) sends it; the operator log says how many. A write that
// blocks past ctx and cannot be interrupted is abandoned: ErrStuck.
func (f *Forwarder) Close(ctx context.Context) error {
	f.remove()
	// A replica that waits for another to stop has nothing of its own
	// left to send, whatever the holder's backlog.
	holding := f.holding.Load()
	f.drainOne.Do(func() { close(f.draining) })
	returned := true
	select {
	case <-f.done:
	case <-ctx.Done():
		f.abort()
		f.snd.interrupt()
		select {
		case <-f.done:
		case <-time.After(abortWait):
			returned = false
		}
	}
	f.abort()
	rctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if cursor, head, err := f.db.ForwardCursor(rctx, f.name); (holding || f.heldDraining.Load()) && err == nil && head > cursor {
		f.log.Warn("audit forwarder stopped with events not yet forwarded; they stay in the audit log and are sent by the next start",
			"forwarder", f.name, "pending", head-cursor, "cursor", cursor, "sent_total", f.sent.Load(), "delivery_stuck", !returned)
	}
	if !returned {
		return ErrStuck // the goroutine still owns the sender
	}
	return f.snd.close()
}

func (f *Forwarder) isDraining() bool {
	select {
	case <-f.draining:
		return true
	default:
		return false
	}
}

// wait pauses d, or until woken, asked to drain or aborted; false when
// aborted.
func (f *Forwarder) wait(d time.Duration, wake bool) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	var w chan struct{}
	if wake {
		w = f.wake
	}
	select {
	case <-t.C:
	case <-w:
	case <-f.draining:
	case <-f.abortCtx.Done():
		return false
	}
	return true
}

func (f *Forwarder) run() {
	defer close(f.done)
	ctx := f.abortCtx
	backoff := minBackoff
	for ctx.Err() == nil {
		lease, err := f.db.AcquireForward(ctx, f.name)
		switch {
		case errors.Is(err, store.ErrForwardHeld):
			// Another replica forwards; at shutdown there is nothing of
			// this one's to finish.
			if f.isDraining() || !f.wait(f.leaseRetry, false) {
				return
			}
			continue
		case err != nil:
			if ctx.Err() != nil {
				return
			}
			f.log.Warn("audit forwarder cannot read the audit log", "forwarder", f.name, "retry_in", backoff.String(), "err", err)
			if f.isDraining() || !f.wait(backoff, false) {
				return
			}
			backoff = min(backoff*2, maxBackoff)
			continue
		}
		backoff = minBackoff
		f.holding.Store(true)
		if f.isDraining() {
			f.heldDraining.Store(true)
		}
		stop := f.forward(ctx, lease)
		f.holding.Store(false)
		lease.Release()
		if stop {
			return
		}
	}
}

// forward sends events while it holds lease; true when the forwarder is
// to stop (drained or aborted), false to take the lease again.
func (f *Forwarder) forward(ctx context.Context, lease *store.ForwardLease) bool {
	for {
		// Asked to drain before this read: what it returns is everything
		// committed before Close, and an empty answer means done.
		draining := f.isDraining()
		events, err := lease.Next(ctx, f.batch)
		if err != nil {
			if ctx.Err() != nil {
				return true
			}
			f.log.Warn("audit forwarder cannot read the audit log", "forwarder", f.name, "err", err)
			return draining || !f.wait(minBackoff, false)
		}
		if len(events) == 0 {
			if draining || !f.wait(f.poll, true) {
				return true
			}
			continue
		}
		for _, e := range events {
			if want := lease.Cursor() + 1; e.ID != want {
				f.log.Warn("audit events were pruned before they were forwarded", "forwarder", f.name,
					"first_missing", want, "last_missing", e.ID-1)
			}
			if err := f.snd.send(ctx, e); err != nil {
				return true // aborted: the event stays after the cursor
			}
			f.sent.Add(1)
			// The context of the save is not the abort's: an event sent is
			// worth recording even as Close gives up.
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			err := lease.Advance(sctx, e.ID)
			cancel()
			if errors.Is(err, store.ErrCursorMoved) {
				f.log.Warn("audit forwarder lost its lock to another replica; it stops sending", "forwarder", f.name, "event", e.ID)
				return false
			}
			if err != nil {
				// The lock may be gone with the connection: start over, and
				// this event may be sent once more (its ID tells).
				f.log.Warn("audit forwarder cannot save its cursor", "forwarder", f.name, "event", e.ID, "err", err)
				return ctx.Err() != nil || !f.wait(minBackoff, false)
			}
		}
	}
}
