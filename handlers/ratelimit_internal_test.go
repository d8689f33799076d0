package handlers

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeClock is a settable clock for the limiter.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) set(t time.Time) { c.mu.Lock(); defer c.mu.Unlock(); c.t = t }

// t0 starts a window.
var t0 = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

func testLimiter(limit int, counter RateCounter, clock func() time.Time) *rateLimiter {
	return &rateLimiter{name: "test", window: time.Minute, limit: fixed(limit), counter: counter, now: clock,
		key:     func(r *http.Request) (string, error) { return r.Header.Get("X-Test-Key"), nil },
		refused: func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusTooManyRequests) },
		failed:  func(w http.ResponseWriter, _ *http.Request, _ error) { w.WriteHeader(http.StatusInternalServerError) }}
}

// TestRateLimiterSlidingWindow: the limiter's decisions follow httprate's
// sliding window: the previous minute's count weighted by how much of it
// is still inside the last minute, plus this minute's; refused requests
// are not counted; each key has its own count.
func TestRateLimiterSlidingWindow(t *testing.T) {
	type step struct {
		at        time.Duration // after t0
		key       string
		n         int // requests at that time
		allowed   int // how many of them pass
		remaining string
	}
	cases := []struct {
		name  string
		limit int
		steps []step
	}{
		{"the limit in one window", 3, []step{{10 * time.Second, "a", 5, 3, "0"}}},
		{"another key has its own", 3, []step{{10 * time.Second, "a", 3, 3, "0"}, {11 * time.Second, "b", 4, 3, "0"}}},
		{"the next window starts full", 3, []step{{10 * time.Second, "a", 3, 3, "0"}, {60 * time.Second, "a", 1, 0, "0"}}},
		// At 80 s a third of the previous window has slid out: round(3 × 40/60) = 2 counted.
		{"the previous window slides out", 3, []step{{10 * time.Second, "a", 3, 3, "0"}, {80 * time.Second, "a", 2, 1, "0"}}},
		{"two windows later all is forgotten", 3, []step{{10 * time.Second, "a", 3, 3, "0"}, {130 * time.Second, "a", 4, 3, "0"}}},
		// 100 refused requests at 20 s do not count against the next window:
		// at 119 s round(3 × 1/60) = 0.
		{"refused requests are not counted", 3, []step{{10 * time.Second, "a", 3, 3, "0"}, {20 * time.Second, "a", 100, 0, "0"},
			{119 * time.Second, "a", 3, 3, "0"}}},
		{"remaining counts down", 10, []step{{5 * time.Second, "a", 4, 4, "6"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clock := &fakeClock{}
			l := testLimiter(tc.limit, newMemoryCounter(time.Minute), clock.now)
			for _, st := range tc.steps {
				clock.set(t0.Add(st.at))
				allowed := 0
				var last http.Header
				for range st.n {
					h := http.Header{}
					ok, err := l.allow(context.Background(), h, st.key)
					if err != nil {
						t.Fatal(err)
					}
					if ok {
						allowed++
						last = h
					}
				}
				if allowed != st.allowed {
					t.Fatalf("at %s: %d of %d allowed for %s, want %d", st.at, allowed, st.n, st.key, st.allowed)
				}
				if last != nil && last.Get("X-RateLimit-Remaining") != st.remaining {
					t.Errorf("at %s: remaining %q, want %q", st.at, last.Get("X-RateLimit-Remaining"), st.remaining)
				}
			}
		})
	}
}

// TestRateLimiterConcurrency: N concurrent requests of one key never let
// more than the limit through, whether the clock stands or moves on.
func TestRateLimiterConcurrency(t *testing.T) {
	const limit, n = 7, 300
	for _, tc := range []struct {
		name  string
		clock func() time.Time
	}{{"fixed clock", func() time.Time { return t0.Add(time.Second) }}, {"real clock", time.Now}} {
		t.Run(tc.name, func(t *testing.T) {
			var served atomic.Int64
			h := testLimiter(limit, newMemoryCounter(time.Minute), tc.clock).handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				served.Add(1)
			}))
			var refused atomic.Int64
			var wg sync.WaitGroup
			start := make(chan struct{})
			for range n {
				wg.Go(func() {
					<-start
					req := httptest.NewRequest(http.MethodPost, "/reset", nil)
					req.Header.Set("X-Test-Key", "203.0.113.7")
					w := httptest.NewRecorder()
					h.ServeHTTP(w, req)
					if w.Code == http.StatusTooManyRequests {
						refused.Add(1)
					}
				})
			}
			close(start)
			wg.Wait()
			// With the real clock a minute may begin during the burst; the
			// previous window then counts almost fully, so no more pass.
			if served.Load() != limit || refused.Load() != n-limit {
				t.Errorf("%d served, %d refused; want %d and %d", served.Load(), refused.Load(), limit, n-limit)
			}
		})
	}
}

// TestRateCounterSharedByReplicas: two servers (replicas) given one
// counter limit an address together, and keep their limits apart.
func TestRateCounterSharedByReplicas(t *testing.T) {
	shared := newMemoryCounter(time.Minute)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	a, b := &Server{log: log, rateCounter: shared}, &Server{log: log, rateCounter: shared}
	ok := http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})
	plain := func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusTooManyRequests) }
	la, lb := a.limiter("public", fixed(3), plain)(ok), b.limiter("public", fixed(3), plain)(ok)
	other := b.limiter("signin", fixed(3), plain)(ok)
	send := func(h http.Handler) int {
		req := httptest.NewRequest(http.MethodPost, "/reset", nil)
		req.RemoteAddr = "203.0.113.7:4000"
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w.Code
	}
	for i, h := range []http.Handler{la, lb, la} {
		if got := send(h); got != http.StatusOK {
			t.Fatalf("request %d: %d", i+1, got)
		}
	}
	if got := send(lb); got != http.StatusTooManyRequests {
		t.Errorf("4th request, on the other replica: %d", got)
	}
	if got := send(other); got != http.StatusOK {
		t.Errorf("another limit in the same counter: %d", got)
	}
}

// failingCounter is a counter whose storage is down.
type failingCounter struct{}

func (failingCounter) Add(context.Context, string, time.Time, int) (int, int, error) {
	return 0, 0, errors.New("database is unreachable")
}

// TestRateLimiterCounterFailure: a counter that fails stops the request
// with the portal's error page (never its detail), rather than letting it
// through unlimited.
func TestRateLimiterCounterFailure(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	s := &Server{log: log, rateCounter: failingCounter{}}
	var served bool
	h := s.limiter("public", fixed(3), nil)(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { served = true }))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/reset", nil))
	if served || w.Code != http.StatusInternalServerError || strings.Contains(w.Body.String(), "unreachable") {
		t.Errorf("served %v, status %d\n%s", served, w.Code, w.Body.String())
	}
}

// TestMemoryCounterWindows: the in-memory counter keeps two windows: the
// counts move to "previous" when a window ends, are forgotten after two,
// and a late request (one that read the clock before the window moved on)
// is counted in its own window.
func TestMemoryCounterWindows(t *testing.T) {
	ctx := context.Background()
	c := newMemoryCounter(time.Minute)
	w0, w1, w3 := t0, t0.Add(time.Minute), t0.Add(3*time.Minute)
	type add struct {
		start     time.Time
		key       string
		n         int
		cur, prev int
	}
	for i, a := range []add{
		{w0, "a", 1, 1, 0},
		{w0, "a", 1, 2, 0},
		{w0, "b", 1, 1, 0},
		{w1, "a", 1, 1, 2}, // the window moved on: w0's counts are previous
		{w0, "a", 1, 3, 0}, // late, for w0
		{w0, "a", -1, 2, 0},
		{w1, "a", -1, 0, 2},
		{w1, "a", -1, 0, 2}, // never below zero
		{w3, "a", 1, 1, 0},  // two windows later: forgotten
		{w3, "b", 1, 1, 0},
	} {
		cur, prev, err := c.Add(ctx, a.key, a.start, a.n)
		if err != nil || cur != a.cur || prev != a.prev {
			t.Fatalf("step %d: Add(%s, %s, %d) = %d, %d, %v; want %d, %d", i+1, a.key, a.start.Format("15:04"), a.n, cur, prev, err, a.cur, a.prev)
		}
	}
	if len(c.cur) != 2 || len(c.prev) != 0 {
		t.Errorf("kept %d current and %d previous keys", len(c.cur), len(c.prev))
	}
}

// BenchmarkRateLimiterAllow is the limiter's own cost per request with the
// in-memory counter, over many addresses (as behind a NAT-free internet).
func BenchmarkRateLimiterAllow(b *testing.B) {
	l := testLimiter(1<<30, newMemoryCounter(time.Minute), time.Now)
	keys := make([]string, 4096)
	for i := range keys {
		keys[i] = "public 10." + strconv.Itoa(i>>8) + "." + strconv.Itoa(i&255) + ".1"
	}
	h := http.Header{}
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := l.allow(ctx, h, keys[i&4095]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
