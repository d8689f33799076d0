package connector

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/writeback/writeback/services/agentwire"
)

// Run keeps the agent connected to the portal: it dials, serves the
// connection until it ends, and dials again after a wait that starts at
// MinBackoff and doubles up to MaxBackoff (with jitter, and back to the
// start after a connection that was welcomed).
//
// When the portal runs as several replicas on one database, a job comes
// from the replica that took the person's request, so the agent keeps one
// connection to each: the welcome says how many replicas there are, and Run
// dials that many connections through the load balancer. A connection that
// reaches a replica the agent has already is refused there (ErrDuplicate)
// and dialled again. Dials and handshakes take turns, so that each hello
// names every replica already connected.
//
// It returns ErrRevoked when the portal revoked the agent, ErrNoPortalKey
// without a portal key, or ctx's error when ctx ends.
func (a *Agent) Run(ctx context.Context, dial func(context.Context) (Conn, error)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	r := &runner{a: a, dial: dial, want: 1, have: map[string]int{}, stop: make(chan error, 1)}
	r.mu.Lock()
	r.spawnLocked(ctx)
	r.mu.Unlock()
	var err error
	select {
	case err = <-r.stop:
	case <-ctx.Done():
		err = ctx.Err()
	}
	cancel()
	r.wg.Wait()
	return err
}

// runner is Run's state: the connections wanted and those up.
type runner struct {
	a    *Agent
	dial func(context.Context) (Conn, error)
	stop chan error // the first error that ends Run

	turn sync.Mutex // one dial and handshake at a time

	mu    sync.Mutex
	want  int            // connections wanted: the portal's replicas
	slots int            // goroutines keeping a connection
	have  map[string]int // replica ID → connections to it
	wg    sync.WaitGroup
}

// spawnLocked starts slots until there are want of them.
func (r *runner) spawnLocked(ctx context.Context) {
	for r.slots < r.want {
		r.slots++
		r.wg.Go(func() { r.slot(ctx) })
	}
}

// setWant records the portal's number of replicas and starts the slots
// it needs; slots beyond it end once their connection does.
func (r *runner) setWant(ctx context.Context, n int) {
	n = min(max(n, 1), agentwire.MaxReplicas)
	r.mu.Lock()
	defer r.mu.Unlock()
	if n != r.want {
		r.a.log.Info("writeback agent: the portal runs as several replicas; keeping a connection to each", "replicas", n)
	}
	r.want = n
	r.spawnLocked(ctx)
}

// surplus ends a slot when there are more than wanted (the first one
// always stays).
func (r *runner) surplus() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.slots > r.want {
		r.slots--
		return true
	}
	return false
}

// slot keeps one connection: dial, serve, wait, again.
func (r *runner) slot(ctx context.Context) {
	a := r.a
	delay := a.cfg.MinBackoff
	for {
		if ctx.Err() != nil || r.surplus() {
			return
		}
		t := &try{r: r, ctx: ctx}
		r.turn.Lock()
		c, err := r.dial(ctx)
		if err == nil {
			var welcomed bool
			welcomed, err = a.serve(ctx, c, t)
			if errors.Is(err, ErrRevoked) {
				a.log.Error("writeback agent: the portal revoked this agent; stopping (enrol it again with `writeback-agent enroll --force`)")
			}
			if errors.Is(err, ErrRevoked) || errors.Is(err, ErrNoPortalKey) {
				select {
				case r.stop <- err:
				default:
				}
				return
			}
			if welcomed {
				delay = a.cfg.MinBackoff
			}
		}
		t.release()
		if ctx.Err() != nil {
			return
		}
		wait := jitter(delay)
		switch {
		case c == nil:
			a.log.Warn("writeback agent: the portal is unreachable; trying again", "err", err, "retry_in", wait.Round(time.Millisecond).String())
		case errors.Is(err, ErrDuplicate):
			// Not a failure: the next dial likely reaches another replica.
			a.log.Info("writeback agent: reached a portal replica this agent is connected to already; dialling again for another",
				"retry_in", wait.Round(time.Millisecond).String())
		case errors.Is(err, ErrUnauthorized), errors.Is(err, ErrVersion), errors.Is(err, ErrReplaced):
			a.log.Error("writeback agent: the portal refused the connection; trying again", "err", err, "retry_in", wait.Round(time.Millisecond).String())
		default:
			a.log.Warn("writeback agent: the connection to the portal ended; reconnecting", "err", err, "retry_in", wait.Round(time.Millisecond).String())
		}
		tm := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			tm.Stop()
			return
		case <-tm.C:
		}
		if !errors.Is(err, ErrDuplicate) {
			delay = min(2*delay, a.cfg.MaxBackoff)
		}
	}
}

// try is one dial of a slot, as serve sees it. A nil *try (Serve) does
// nothing.
type try struct {
	r        *runner
	ctx      context.Context
	released bool
}

// have lists the replicas connected already, for the hello.
func (t *try) have() []string {
	if t == nil {
		return nil
	}
	t.r.mu.Lock()
	defer t.r.mu.Unlock()
	var ids []string
	for id, n := range t.r.have {
		if n > 0 && id != "" {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// release lets the next slot dial: the handshake is over.
func (t *try) release() {
	if t == nil || t.released {
		return
	}
	t.released = true
	t.r.turn.Unlock()
}

// joined records a welcome: its replica, and how many there are.
func (t *try) joined(replica string, replicas int) {
	if t == nil {
		return
	}
	t.r.mu.Lock()
	t.r.have[replica]++
	t.r.mu.Unlock()
	t.release()
	t.r.setWant(t.ctx, replicas)
}

// replicas records a change in the number of replicas.
func (t *try) replicas(n int) {
	if t != nil {
		t.r.setWant(t.ctx, n)
	}
}

// left records that the connection to replica ended.
func (t *try) left(replica string) {
	if t == nil {
		return
	}
	t.r.mu.Lock()
	defer t.r.mu.Unlock()
	if t.r.have[replica]--; t.r.have[replica] <= 0 {
		delete(t.r.have, replica)
	}
}

// jitter spreads reconnects of many agents: a wait between d/2 and d.
func jitter(d time.Duration) time.Duration {
	if d < 2 {
		return d
	}
	return d/2 + rand.N(d/2+1)
}
