package ratelimit

import (
	"testing"
	"time"
)

func TestWindow(t *testing.T) {
	w := New(2, time.Minute)
	now := time.Unix(1000, 0)
	w.Fail("k", now)
	if w.Blocked("k", now) {
		t.Fatal("blocked after one failure")
	}
	w.Fail("k", now)
	if !w.Blocked("k", now) {
		t.Fatal("not blocked at the limit")
	}
	if w.Blocked("other", now) {
		t.Fatal("keys share a count")
	}
	if w.Blocked("k", now.Add(time.Minute)) {
		t.Fatal("still blocked after the window")
	}
	w.Fail("k", now)
	w.Reset("k")
	if w.Blocked("k", now) {
		t.Fatal("blocked after reset")
	}
}
