package handlers

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/writeback/writeback/services/errs"
	"github.com/writeback/writeback/services/selfservice"
)

// RateCounter keeps the request counts behind the per-address rate limits:
// one count per key and fixed window (of the limiter's window length,
// windows aligned to the wall clock so that replicas agree on them). It is
// all a limiter needs of its storage, so that a counter shared through the
// database can replace the in-memory one when several replicas serve the
// portal.
//
// Add is one operation on purpose: it counts first and the limiter decides
// on what it returns, taking a refused request back with Add(…, -1). A
// shared counter does that in one statement (an upsert that returns both
// counts), so concurrent requests on any number of replicas never let more
// than the limit through. httprate's LimitCounter reads, then increments,
// which is only safe under the one process's mutex that httprate holds
// around both.
type RateCounter interface {
	// Add adds n to key's count in the window that starts at start and
	// returns that count after the addition (cur) and key's count in the
	// window before it (prev). Calls for one key are atomic: two
	// concurrent Adds of 1 never both return the same cur.
	Add(ctx context.Context, key string, start time.Time, n int) (cur, prev int, err error)
}

// LimitSource is where the limits that administrators set come from (the
// Properties page, *selfservice.Service); it is read on every limited
// request, so it must answer from memory.
type LimitSource interface {
	RateLimits(ctx context.Context) (selfservice.RateLimits, error)
}

// rateWindow is the window of every per-address limit.
const rateWindow = time.Minute

// rateLimiter refuses a request when its key (the client address) has sent
// more than limit requests in the last window, with httprate's semantics:
// the rate is the current fixed window's count plus the previous window's
// weighted by how much of it the sliding window still covers; a refused
// request is not counted; the answer is 429 with Retry-After (the window)
// and the X-RateLimit-* headers on every answer. Unlike httprate's, the
// limit is read per request, so that a change on the Properties page
// applies to the next request without a restart.
type rateLimiter struct {
	name    string // names the limit in the log
	window  time.Duration
	limit   func(ctx context.Context) int
	key     func(r *http.Request) (string, error)
	counter RateCounter
	now     func() time.Time
	refused http.HandlerFunc // writes the 429 answer
	failed  func(w http.ResponseWriter, r *http.Request, err error)
}

// handler wraps next in the limit.
func (l *rateLimiter) handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key, err := l.key(r)
		if err != nil {
			l.failed(w, r, fmt.Errorf("rate limit %s: key: %w", l.name, err))
			return
		}
		ok, err := l.allow(r.Context(), w.Header(), key)
		if err != nil {
			l.failed(w, r, fmt.Errorf("rate limit %s: %w", l.name, err))
			return
		}
		if !ok {
			l.refused(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// allow counts a request of key and tells whether it is within the limit,
// setting the rate limit headers on h.
func (l *rateLimiter) allow(ctx context.Context, h http.Header, key string) (bool, error) {
	limit := l.limit(ctx)
	now := l.now().UTC()
	start := now.Truncate(l.window)
	cur, prev, err := l.counter.Add(ctx, key, start, 1)
	if err != nil {
		return false, err
	}
	// As httprate: round(previous count × the share of the previous window
	// still inside the sliding window + the current count before this
	// request) + 1 must not exceed the limit.
	weight := float64(l.window-now.Sub(start)) / float64(l.window)
	rate := int(math.Round(float64(prev)*weight)) + cur
	h.Set("X-RateLimit-Limit", strconv.Itoa(limit))
	h.Set("X-RateLimit-Reset", strconv.FormatInt(start.Add(l.window).Unix(), 10))
	if rate > limit {
		// A refused request does not count (as in httprate): someone who
		// keeps trying still gets limit requests a window, not none.
		if _, _, err := l.counter.Add(ctx, key, start, -1); err != nil {
			return false, err
		}
		h.Set("X-RateLimit-Remaining", "0")
		h.Set("Retry-After", strconv.Itoa(int(l.window.Seconds()))) // RFC 6585
		return false, nil
	}
	h.Set("X-RateLimit-Remaining", strconv.Itoa(limit-rate))
	return true, nil
}

// memoryCounter is the RateCounter of one process: the counts of the
// current and the previous window, every key's window moving together
// (they are aligned), so that a window's end costs one map swap and no
// key outlives two windows.
type memoryCounter struct {
	window time.Duration
	mu     sync.Mutex
	start  time.Time // of the current window
	cur    map[string]int
	prev   map[string]int
}

func newMemoryCounter(window time.Duration) *memoryCounter {
	return &memoryCounter{window: window, cur: map[string]int{}, prev: map[string]int{}}
}

// Add implements RateCounter.
func (c *memoryCounter) Add(_ context.Context, key string, start time.Time, n int) (int, int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cur, prev := c.cur, c.prev
	switch {
	case start.Equal(c.start):
	case start.Equal(c.start.Add(c.window)):
		clear(c.prev)
		c.cur, c.prev, c.start = c.prev, c.cur, start
		cur, prev = c.cur, c.prev
	case start.After(c.start):
		clear(c.cur)
		clear(c.prev)
		c.start = start
	case start.Equal(c.start.Add(-c.window)):
		// A request that read the clock just before another moved the
		// window on (or takes itself back after that): its window is now
		// the previous one, and the one before that is gone.
		cur, prev = c.prev, nil
	default:
		// Older still (the clock stepped back): count it in the current
		// window rather than not at all.
	}
	v := cur[key] + n
	if v <= 0 {
		delete(cur, key)
		v = 0
	} else {
		cur[key] = v
	}
	return v, prev[key], nil
}

// limiter builds the per-address limit name over the counter of Deps (or,
// without one, an in-memory counter of its own). It answers a refusal with
// the portal's "Too many attempts" page, or with refused when not nil: the
// agents' endpoints answer programs, not people.
func (s *Server) limiter(name string, limit func(context.Context) int, refused http.HandlerFunc) func(http.Handler) http.Handler {
	if refused == nil {
		refused = s.handle(func(http.ResponseWriter, *http.Request) error { return errRateLimited })
	}
	var counter RateCounter = newMemoryCounter(rateWindow)
	if s.rateCounter != nil {
		counter = s.rateCounter
	}
	// The limit's name in the key keeps the limits apart in a counter they
	// share.
	key := func(r *http.Request) (string, error) {
		k, err := s.clientKey(r)
		return name + " " + k, err
	}
	l := &rateLimiter{name: name, window: rateWindow, limit: limit, key: key, counter: counter,
		now: time.Now, refused: refused, failed: s.renderError}
	return l.handler
}

// tokenLimiter is the limit of REST API requests per token and minute,
// over the counter of Deps (or one of its own): keyed by the token, not the
// address, so that one script's burst does not use up another's.
func (s *Server) tokenLimiter() *rateLimiter {
	var counter RateCounter = newMemoryCounter(rateWindow)
	if s.rateCounter != nil {
		counter = s.rateCounter
	}
	n := s.cfg.APIPerMinute
	if n <= 0 {
		n = DefaultAPIPerMinute
	}
	return &rateLimiter{name: "api-token", window: rateWindow, limit: fixed(n), counter: counter, now: time.Now}
}

// errRateLimited is the answer to an address over a limit, the same for
// every limited page.
var errRateLimited = errs.E(errs.TooMany, "Too many attempts from your network. Wait a minute and try again.", nil)

// fixed is a limit that nobody changes.
func fixed(n int) func(context.Context) int { return func(context.Context) int { return n } }

// publicLimit is the limit on the employee pages' forms per address and
// minute: the Properties page's, else the server's default.
func (s *Server) publicLimit(ctx context.Context) int {
	return s.configuredLimit(ctx, "public", func(l selfservice.RateLimits) int { return l.PublicPerMinute }, s.cfg.PublicPerMinute)
}

// signInLimit is the limit on administrator sign-ins per address and
// minute: the Properties page's, else the server's default.
func (s *Server) signInLimit(ctx context.Context) int {
	return s.configuredLimit(ctx, "signin", func(l selfservice.RateLimits) int { return l.SignInPerMinute }, s.cfg.SignInPerMinute)
}

// configuredLimit applies the precedence of the two ways to set a limit:
// a value saved on the Properties page wins; the flag (def) is the default
// until one is saved, and again when it is cleared. The page wins because
// it is where an administrator reacts on the day a large NAT hits the
// limit, without a restart, and because every replica reads the same
// page, while flags may differ from one process to the next. When the
// setting cannot be read, the default applies (not no limit at all).
func (s *Server) configuredLimit(ctx context.Context, name string, pick func(selfservice.RateLimits) int, def int) int {
	def = defaultLimit(def)
	if s.limits == nil {
		return def
	}
	l, err := s.limits.RateLimits(ctx)
	if err != nil {
		s.log.ErrorContext(ctx, "read rate limit; using the default", "limit", name, "default", def, "err", err)
		return def
	}
	if n := pick(l); n > 0 {
		return n
	}
	return def
}

// agentConnectTooMany answers an agent over the connection limit as
// httprate did: plain text, for a program that backs off and retries.
func agentConnectTooMany(w http.ResponseWriter, _ *http.Request) {
	http.Error(w, http.StatusText(http.StatusTooManyRequests), http.StatusTooManyRequests)
}
