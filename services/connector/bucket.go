package connector

import (
	"sync"
	"time"
)

// bucket is a token bucket: n tokens that refill evenly over per, so at
// most n writes go through in a burst and n per period in the long run.
type bucket struct {
	mu     sync.Mutex
	cap    float64
	tokens float64
	rate   float64 // tokens per nanosecond
	last   time.Time
	now    func() time.Time
}

func newBucket(n int, per time.Duration, now func() time.Time) *bucket {
	return &bucket{cap: float64(n), tokens: float64(n), rate: float64(n) / float64(per), last: now(), now: now}
}

// take spends one token; false when none is left.
func (b *bucket) take() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	t := b.now()
	if el := t.Sub(b.last); el > 0 {
		b.tokens = min(b.cap, b.tokens+float64(el)*b.rate)
	}
	b.last = t
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}
