package admins

import (
	"sync"
	"time"
)

// throttle counts failures per key in a sliding window and refuses a key
// that reached its limit until the window has passed.
type throttle struct {
	mu     sync.Mutex
	limit  int
	window time.Duration
	hits   map[string][]time.Time
}

func newThrottle(limit int, window time.Duration) *throttle {
	return &throttle{limit: limit, window: window, hits: map[string][]time.Time{}}
}

func (t *throttle) prune(key string, now time.Time) []time.Time {
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
func (t *throttle) Blocked(key string, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.prune(key, now)) >= t.limit
}

// Fail records one failure for key.
func (t *throttle) Fail(key string, now time.Time) {
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
func (t *throttle) Reset(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.hits, key)
}
