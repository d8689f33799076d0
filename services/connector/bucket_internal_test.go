package connector

import (
	"testing"
	"time"
)

func TestBucket(t *testing.T) {
	now := time.Unix(1000, 0)
	b := newBucket(3, time.Minute, func() time.Time { return now })
	for i := range 3 {
		if !b.take() {
			t.Fatalf("take %d of a full bucket refused", i)
		}
	}
	if b.take() {
		t.Fatal("a fourth write within the minute went through")
	}
	now = now.Add(20 * time.Second) // one token back
	if !b.take() || b.take() {
		t.Fatal("after a third of the minute, want exactly one more write")
	}
	now = now.Add(time.Hour) // full again, never more than its size
	for i := range 3 {
		if !b.take() {
			t.Fatalf("take %d after an hour refused", i)
		}
	}
	if b.take() {
		t.Fatal("the bucket filled past its size")
	}
}
