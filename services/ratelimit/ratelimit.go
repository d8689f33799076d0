// Package ratelimit counts failures per key in a sliding window, for sign-in
// and self-service throttling that must not depend on a directory lockout.
package ratelimit

import (
	"sync"
	"time"
)

// Window counts failures per key in a sliding window and refuses a key
// that reached its limit until the window has passed. It is safe for
// concurrent use.
type Window struct {
	mu     sync.Mutex
	limit  int
	window time.Duration
	hits   map[string][]time.Time
}

// New returns a Window allowing limit failures per window.
func New(limit int, window time.Duration) *Window {
	return &Window{limit: limit, window: window, hits: map[string][]time.Time{}}
}

func (t *Window) prune(key string, now time.Time) []time.Time {
	h := t.hits[key]
	i := 0
	for i < len(h) && now.Sub(h[i]) >= t.window {
		i++
	}
	h = h[i:]
	if len(h) == 0 {
		delete(t.hits, key)
		return nil
	}
	t.hits[key] = h
	return h
}

// Blocked reports whether key is over its limit.
func (t *Window) Blocked(key string, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.prune(key, now)) >= t.limit
}

// Fail records one failure for key.
func (t *Window) Fail(key string, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.hits[key] = append(t.prune(key, now), now)
	if len(t.hits) > 100_000 { // bound memory under a spray of distinct keys
		for k := range t.hits {
			t.prune(k, now)
		}
	}
}

// Reset forgets key (after a success).
func (t *Window) Reset(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.hits, key)
}
