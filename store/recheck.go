package store

import (
	"sync/atomic"
	"time"
)

// recheckGate is the "at most once per interval, one caller at a time" of
// the caches that ask the database whether another process changed what
// they hold (configcache.go, sessioncache.go). Each asks its own question;
// the gate only says when to ask it.
type recheckGate struct {
	start    time.Time    // base of checked, on the monotonic clock
	every    atomic.Int64 // a time.Duration
	checked  atomic.Int64 // nanoseconds after start of the last check; -1 before the first (or to force the next)
	checking atomic.Bool  // a check is running
}

func (g *recheckGate) init(every time.Duration) {
	g.start = time.Now()
	g.every.Store(int64(every))
	g.checked.Store(-1)
}

// set sets the interval (0: every time).
func (g *recheckGate) set(every time.Duration) { g.every.Store(int64(max(every, 0))) }

// enter tells whether a check is due and this caller is to make it, with
// the time to store in checked once it is made; a caller let in must call
// leave when done. Others meanwhile are not let in.
func (g *recheckGate) enter() (now int64, ok bool) {
	now = time.Since(g.start).Nanoseconds()
	if last := g.checked.Load(); last >= 0 && now-last < g.every.Load() {
		return 0, false
	}
	if !g.checking.CompareAndSwap(false, true) {
		return 0, false
	}
	return now, true
}

func (g *recheckGate) leave() { g.checking.Store(false) }
