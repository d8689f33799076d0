package connector

import (
	"fmt"
	"testing"
	"time"
)

func TestFirstTimeRemembersForSeenForAndForgetsAfter(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	a := New(Config{Now: func() time.Time { return now }})
	if !a.firstTime("j1") || a.firstTime("j1") {
		t.Fatal("a new ID must be new once")
	}
	for _, step := range []time.Duration{seenFor / 2, seenFor / 2, seenFor / 2, seenFor/2 - time.Second} {
		now = now.Add(step)
		if a.firstTime("j1") {
			t.Fatalf("j1 forgotten %s after it was seen", now.Sub(time.Unix(1_700_000_000, 0)))
		}
	}
	// Long after, the memory is dropped: it holds what came since.
	now = now.Add(2 * seenFor)
	for i := range 100 {
		a.firstTime(fmt.Sprintf("k%d", i))
	}
	if !a.firstTime("j1") {
		t.Fatal("j1 still remembered after three times seenFor")
	}
	if n := len(a.seen) + len(a.seenOld); n != 101 {
		t.Fatalf("%d IDs remembered, want 101", n)
	}
}

// BenchmarkFirstTime: the cost per job with many IDs in memory (it used to
// scan them all once more than 4096 were remembered).
func BenchmarkFirstTime(b *testing.B) {
	a := New(Config{})
	for i := range 50_000 {
		a.firstTime(fmt.Sprintf("pre-%d", i))
	}
	i := 0
	for b.Loop() {
		i++
		if !a.firstTime(fmt.Sprintf("job-%d", i)) {
			b.Fatal("a new ID refused")
		}
	}
}
