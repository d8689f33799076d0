package admins

import (
	"errors"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestHashAndVerify(t *testing.T) {
	p := HashParams{Memory: 1024, Time: 1, Threads: 1}
	h, err := HashPassword("correct horse", p)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		pw   string
		want bool
	}{{"correct horse", true}, {"correct hors", false}, {"", false}}
	for _, c := range cases {
		if ok, err := VerifyPassword(h, c.pw); err != nil || ok != c.want {
			t.Errorf("%q: %v %v", c.pw, ok, err)
		}
	}
	for _, bad := range []string{"$bcrypt$junk", "$argon2id$v=19$m=1024,t=1,p=1$c2FsdA$", "$argon2id$v=18$m=1024,t=1,p=1$c2FsdA$a2V5"} {
		if _, err := VerifyPassword(bad, "x"); err == nil {
			t.Errorf("malformed hash %q accepted", bad)
		}
	}
}

// The dummy hash must cost exactly what a real hash with the same
// parameters costs, or unknown accounts would answer faster than real ones.
func TestDummyHashIsShapedLikeARealOne(t *testing.T) {
	for _, params := range []HashParams{DefaultHashParams, {Memory: 1024, Time: 1, Threads: 1}} {
		dummy := DummyHash(params)
		p, salt, key, err := parseHash(dummy)
		if err != nil {
			t.Fatal(err)
		}
		real, err := HashPassword("some password", params)
		if err != nil {
			t.Fatal(err)
		}
		rp, rsalt, rkey, _ := parseHash(real)
		if p != params || rp != p || len(rsalt) != len(salt) || len(rkey) != len(key) {
			t.Fatalf("dummy %q and real %q are shaped differently", dummy, real)
		}
		for _, pw := range []string{"", "writeback-timing-equaliser", "password"} {
			if ok, err := VerifyPassword(dummy, pw); ok || err != nil {
				t.Fatalf("dummy hash matched %q (%v)", pw, err)
			}
		}
		if DummyHash(params) == dummy {
			t.Fatal("two dummy hashes are the same")
		}
	}
}

// New must not hash anything: it used to compute the dummy hash at every
// start (19 MiB of argon2id memory and tens of milliseconds). Measured by
// what New allocates, so the test runs against the old code too.
func TestNewComputesNoHash(t *testing.T) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	s, err := New(nil, nil, DefaultHashParams)
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	if d := after.TotalAlloc - before.TotalAlloc; d > 1<<20 {
		t.Fatalf("New and the dummy hash allocated %d KiB: something was hashed", d>>10)
	}
	if _, _, _, err := parseHash(s.dummyHash); err != nil {
		t.Fatalf("dummy hash %q: %v", s.dummyHash, err)
	}
}

// swapGate installs g for the test.
func swapGate(t *testing.T, g *gate) {
	old := hashes
	hashes = g
	t.Cleanup(func() { hashes = old })
}

// 32 concurrent password checks: never more than the bound run at once,
// the queue holds its limit, and the rest get ErrBusy without hashing.
func TestHashesRunUnderABound(t *testing.T) {
	const running, queue, callers = 2, 4, 32
	g := newGate(running, queue, 10*time.Second)
	release := make(chan struct{})
	var peak, ran atomic.Int32
	g.onRun = func(n int) {
		ran.Add(1)
		for {
			p := peak.Load()
			if int32(n) <= p || peak.CompareAndSwap(p, int32(n)) {
				break
			}
		}
		<-release // hold the turn until every caller has arrived
	}
	swapGate(t, g)
	h, err := func() (string, error) {
		// Hash outside the test's gate.
		hashes = newGate(1, 0, time.Second)
		defer func() { hashes = g }()
		return HashPassword("pw", HashParams{Memory: 1024, Time: 1, Threads: 1})
	}()
	if err != nil {
		t.Fatal(err)
	}
	var busy, done atomic.Int32
	var wg sync.WaitGroup
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := VerifyPassword(h, "wrong")
			switch {
			case errors.Is(err, ErrBusy):
				busy.Add(1)
			case err != nil:
				t.Error(err)
			default:
				done.Add(1)
			}
		}()
	}
	// Everyone beyond running+queue is refused at once, while the first
	// ones still hold their turns.
	deadline := time.Now().Add(10 * time.Second)
	for busy.Load() < callers-running-queue && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if got := busy.Load(); got != callers-running-queue {
		t.Fatalf("%d callers got ErrBusy while the queue was full, want %d", got, callers-running-queue)
	}
	close(release)
	wg.Wait()
	if peak.Load() > running {
		t.Fatalf("%d hashes ran at once, the bound is %d", peak.Load(), running)
	}
	if done.Load() != running+queue || ran.Load() != running+queue {
		t.Fatalf("%d finished, %d ran; want %d", done.Load(), ran.Load(), running+queue)
	}
	if ErrBusy.Message == "" || !strings.Contains(ErrBusy.Message, "busy") {
		t.Fatal("ErrBusy says nothing")
	}
}

// A waiting caller gives up after the gate's wait instead of queueing forever.
func TestHashWaitIsBounded(t *testing.T) {
	g := newGate(1, 1, 50*time.Millisecond)
	release := make(chan struct{})
	g.onRun = func(int) { <-release }
	swapGate(t, g)
	go func() { _ = g.do(func() {}) }()
	for g.running.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	start := time.Now()
	err := g.do(func() { t.Error("ran while the only turn was taken") })
	close(release)
	if !errors.Is(err, ErrBusy) || time.Since(start) < 50*time.Millisecond {
		t.Fatalf("waiting caller: %v after %v", err, time.Since(start))
	}
}

// TestHashSlots: the number of hashes running at once follows the cores on
// a small machine and the memory budget on a big one.
func TestHashSlots(t *testing.T) {
	def := DefaultHashParams.Memory
	cases := []struct {
		procs  int
		memKiB uint32
		want   int
	}{
		{1, def, 1},
		{2, def, 2},
		{4, def, 2},
		{64, def, 2},
		{64, 1024, 40},
		{8, 1024, 8},
		{4, 64 * 1024, 1}, // bigger than the budget: one at a time, never none
		{4, 0, 4},
	}
	for _, c := range cases {
		if got := hashSlots(c.procs, c.memKiB, HashMemoryBudget); got != c.want {
			t.Errorf("hashSlots(%d, %d KiB) = %d, want %d", c.procs, c.memKiB, got, c.want)
		}
	}
	if n := cap(hashes.run); int64(n)*int64(def)<<10 > HashMemoryBudget && n > 1 {
		t.Errorf("the portal's gate runs %d hashes of %d KiB at once, over the %d-byte budget", n, def, HashMemoryBudget)
	}
}
