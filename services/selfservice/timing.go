package selfservice

import (
	"context"
	"errors"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/writeback/writeback/services/directory"
)

// Uniform timing. A public step that could tell whether an account exists
// (start a reset or unlock, send a code, change a password, sign in to
// register) must take the same time for an unknown, protected or
// method-less account, a wrong password and a right one. A fixed floor (the
// old 600 ms) buys that by making every answer slow. The Pacer instead
// learns what the step costs when it does an account's real work — the
// directory search that finds it, the password write the directory checks —
// and pads only the outcomes that skip that work to a duration drawn from
// those recent real ones. The real path pays what it costs; the others take
// what it takes, with the same spread, not only the same median.
//
// What marks an outcome as real is the work it did, not whether it
// succeeded: a wrong current password is sent to the directory like a right
// one and costs the same there, so both are recorded and neither is padded.
// Outcomes that did the work are never padded (padding them would take the
// larger of two draws of the same distribution and shift it); outcomes that
// skipped it are always padded.

// Defaults of a Pacer.
const (
	// DefaultPadStart is what every outcome of a step, real or not, takes
	// at least while fewer than paceWarm real durations of it are known (a
	// fresh process, a new directory): more than a real step normally
	// takes, so that nothing answers faster before there is anything to
	// match.
	DefaultPadStart = 250 * time.Millisecond
	// DefaultPadMax caps a pad, so that a directory that was slow for a
	// while does not hold every padded answer for as long.
	DefaultPadMax = 2 * time.Second
	// paceSamples is how many recent real durations a step keeps: enough for
	// a spread, few enough to follow the directory's latency within
	// minutes of use.
	paceSamples = 64
	// paceWarm is how many real durations a step needs before padded
	// outcomes are drawn from them and the real path stops being padded.
	paceWarm = 8
	// paceKeys bounds the rings kept (steps × directories).
	paceKeys = 64
)

// Pacer pads the outcomes of public steps that skipped an account's real
// work to the observed durations of the outcomes that did it: one ring of
// recent real durations per step and directory. It is safe for concurrent
// use. A pad is the last thing a step does, after its directory connections
// went back to the pool and its hashing and transactions ended, so a pad
// holds nothing but the request.
type Pacer struct {
	start, max time.Duration

	mu    sync.Mutex
	rings map[string]*ring
	// late holds by how much recent waits overran what was asked: timers
	// fire late (by up to the scheduler's granularity, more on a busy
	// machine), and a padded answer that is always that much later than
	// the real one it copies would stand out. Waits ask for that much less
	// (see lateness) and spin the rest.
	late ring

	// now, sleep, spin and pick are the clock, the wait (false when the
	// request ended first), the wait for the last moments of a pad and the
	// random draw (replaced in tests).
	now   func() time.Time
	sleep func(ctx context.Context, d time.Duration) bool
	spin  func(ctx context.Context, deadline time.Time)
	pick  func(n int) int
	// steer turns on the correction of padded medians (see correct); off
	// in tests of exact draws.
	steer bool
}

// NewPacer returns a Pacer that pads to start until a step has seen enough
// real durations, and never pads beyond DefaultPadMax. Production uses
// DefaultPadStart; tests use 0 so that a fresh process does not wait.
func NewPacer(start time.Duration) *Pacer {
	return &Pacer{start: start, max: DefaultPadMax, rings: map[string]*ring{}, now: time.Now, sleep: sleepCtx, spin: spinUntil, pick: rand.IntN, steer: true}
}

// ring holds the last paceSamples real durations of one step.
type ring struct {
	d    [paceSamples]time.Duration
	n    int // how many are filled
	next int // where the next one goes
	// shift is taken off every draw for a padded outcome. A padded outcome
	// that has already taken longer than its draw cannot be shortened, so
	// padded times come out a little later than the real ones when the two
	// paths cost nearly the same (an OpenLDAP lookup that finds nothing,
	// against one that finds an account); shift steers the median of the
	// padded times back to the median of the real ones (see correct).
	shift time.Duration
}

// median of the filled samples (r.n > 0).
func (r *ring) median() time.Duration { return r.quantile(1, 2) }

// quantile is the sample at num/den of the filled samples in order (r.n > 0).
func (r *ring) quantile(num, den int) time.Duration {
	s := slices.Clone(r.d[:r.n])
	slices.Sort(s)
	return s[len(s)*num/den]
}

func (r *ring) add(d time.Duration) {
	r.d[r.next] = d
	r.next = (r.next + 1) % len(r.d)
	r.n = min(r.n+1, len(r.d))
}

// outcome is how a paced step ended, for the Pacer.
type outcome int

const (
	// outPadded: the step skipped an account's real work (unknown account;
	// protected, disabled or locked account refused before anything was
	// sent; a refusal before the account was looked at). It is padded to
	// a recorded duration.
	outPadded outcome = iota
	// outReal: the step did an account's real work and gives the answer the
	// padded outcomes give (a found account; a wrong password the directory
	// checked). Its duration is recorded; it is not padded once the step is
	// warm.
	outReal
	// outShown: the step did the work and its answer tells what happened by
	// itself (a password changed, a sign-in that succeeded, a new password
	// the directory refused after accepting the current one): neither
	// recorded nor padded.
	outShown
)

// pace is one run of a paced step, begun by Pacer.begin and ended by end.
type pace struct {
	p     *Pacer
	step  string
	start time.Time
}

// begin starts timing a step.
func (p *Pacer) begin(step string) pace {
	return pace{p: p, step: step, start: p.now()}
}

// end finishes the step against the directory dir (steps of different
// directories cost differently, and a new directory starts afresh). A real
// outcome's duration is recorded; a padded one waits until it has taken a
// recorded real duration drawn at random. While the step has fewer than
// paceWarm real durations, real and padded outcomes both take the start
// value. A cancelled request stops waiting.
func (pc pace) end(ctx context.Context, dir string, o outcome) {
	if o == outShown {
		return
	}
	p := pc.p
	now := p.now()
	elapsed := now.Sub(pc.start)
	key := dir + "\x00" + pc.step
	target, median, steer := p.target(key, elapsed, o == outReal)
	deadline := pc.start.Add(min(target, p.max))
	if deadline.After(now) && !p.wait(ctx, now, deadline) {
		return
	}
	if steer && p.steer {
		p.correct(key, p.now().Sub(pc.start), median)
	}
}

// wait waits from now until deadline: it sleeps until shortly before (by
// as much as waits overrun), then spins the rest, so that pads of a
// fraction of a millisecond are as exact as long ones instead of all
// rounded to a timer's tick. It is false when the request ended first.
func (p *Pacer) wait(ctx context.Context, now, deadline time.Time) bool {
	if d := deadline.Sub(now) - p.lateness(); d > 0 {
		if !p.sleep(ctx, d) {
			return false
		}
		woke := p.now()
		p.mu.Lock()
		p.late.add(max(0, woke.Sub(now)-d))
		p.mu.Unlock()
	}
	p.spin(ctx, deadline)
	return ctx.Err() == nil
}

// correct moves the shift of the ring key by a small step after a padded
// outcome took took in all: down when it was over the real median, up when
// it was not, so that half the padded outcomes end up on either side of
// the real median (a stochastic approximation of the median). The shift
// stays within the median either way.
func (p *Pacer) correct(key string, took, median time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	r := p.rings[key]
	if r == nil {
		return
	}
	step := max(median/256, time.Microsecond)
	if took > median {
		r.shift += step
	} else {
		r.shift -= step
	}
	r.shift = max(-median, min(r.shift, median))
}

// maxSpin bounds the spinning at the end of a pad; a pad that still has
// longer to go (a late timer under heavy load) sleeps the rest.
const maxSpin = 2 * time.Millisecond

// spinUntil waits for deadline by yielding the processor in a loop.
func spinUntil(ctx context.Context, deadline time.Time) {
	for {
		left := time.Until(deadline)
		switch {
		case left <= 0 || ctx.Err() != nil:
			return
		case left > maxSpin:
			sleepCtx(ctx, left-maxSpin)
		default:
			runtime.Gosched()
		}
	}
}

// lateness is how much earlier than the deadline a pad stops sleeping:
// the 90th percentile of the recent overruns of waits (at most maxSpin),
// so that few waits end after the deadline (which would shift the padded
// times up) and the rest is spun.
func (p *Pacer) lateness() time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.late.n == 0 {
		return 0
	}
	return min(p.late.quantile(9, 10), maxSpin)
}

// target records a real duration and returns the duration the outcome
// should take in all; for a padded outcome drawn from the ring also the
// ring's median, and steer true (see correct).
func (p *Pacer) target(key string, elapsed time.Duration, isReal bool) (target, median time.Duration, steer bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	r := p.rings[key]
	if r == nil {
		if len(p.rings) >= paceKeys {
			clear(p.rings) // an old directory's steps: start afresh
		}
		r = &ring{}
		p.rings[key] = r
	}
	n := r.n
	if isReal {
		r.add(elapsed)
	}
	switch {
	case n < paceWarm:
		return p.start, 0, false
	case isReal:
		return 0, 0, false
	}
	return max(0, r.d[p.pick(n)]-r.shift), r.median(), true
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// reachedDirectory tells whether the directory itself answered a password
// write or bind: a success, or a refusal that carries the directory's
// result code (a wrong password, a policy, a lockout the directory found).
// A refusal made before anything was sent (a protected, disabled or locked
// account; a client-side check) did not cost the directory's work, and a
// network failure (go-ldap's codes from 200 up) may have cost anything.
func reachedDirectory(err error) bool {
	if err == nil {
		return true
	}
	var oe *directory.OpError
	return errors.As(err, &oe) && oe.LDAPResult > 0 && oe.LDAPResult < ldap.ErrorNetwork
}
