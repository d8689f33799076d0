package admins

import (
	"context"
	"log/slog"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/errs"
	"github.com/writeback/writeback/store"
)

var cheap = HashParams{Memory: 1024, Time: 1, Threads: 1}

func newService(t *testing.T) (*Service, *store.DB) {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, filepath.Join(t.TempDir(), store.FileName))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	s, err := New(db, slog.New(slog.DiscardHandler), cheap)
	if err != nil {
		t.Fatal(err)
	}
	return s, db
}

// countAttempts returns how many sign-in attempts bucket/key holds.
func countAttempts(t *testing.T, db *store.DB, bucket, key string) int {
	t.Helper()
	var n int
	if err := db.SQL().QueryRow(`SELECT count(*) FROM signin_attempts WHERE bucket = ? AND key = ?`, bucket, key).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// countHashes counts the argon2id evaluations of the test.
func countHashes(t *testing.T) *atomic.Int32 {
	var n atomic.Int32
	hashes.onRun = func(int) { n.Add(1) }
	t.Cleanup(func() { hashes.onRun = nil })
	return &n
}

// Concurrent wrong passwords for one administrator, under every spelling of
// the address and from many client addresses, get no more hashes evaluated
// than AccountAttempts: the slot is reserved before the hash.
func TestAuthenticateReservesBeforeHashing(t *testing.T) {
	s, _ := newService(t)
	ctx := context.Background()
	const pw = "correct horse battery"
	if _, err := s.Create(ctx, audit.CommandLine, NewAdmin{Email: "ada@example.com", Name: "Ada", Role: GlobalAdmin, Password: pw}); err != nil {
		t.Fatal(err)
	}
	n := countHashes(t)
	var bad, throttled atomic.Int32
	var wg sync.WaitGroup
	for i := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			email := []string{"ada@example.com", "ADA@Example.com", "  ada@example.com"}[i%3]
			_, err := s.Authenticate(ctx, email, "wrong "+strconv.Itoa(i), audit.Actor{ClientIP: "192.0.2." + strconv.Itoa(i)})
			switch err {
			case ErrBadCredentials:
				bad.Add(1)
			case ErrThrottled:
				throttled.Add(1)
			default:
				t.Errorf("attempt %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	if n.Load() != AccountAttempts || bad.Load() != AccountAttempts || throttled.Load() != 32-AccountAttempts {
		t.Fatalf("%d hashes, %d wrong, %d throttled; want %d hashes", n.Load(), bad.Load(), throttled.Load(), AccountAttempts)
	}
	// The right password too waits for the window.
	if _, err := s.Authenticate(ctx, "ada@example.com", pw, audit.Actor{ClientIP: "198.51.100.1"}); err != ErrThrottled {
		t.Fatalf("right password within the window: %v", err)
	}
	s.SetClock(func() time.Time { return time.Now().Add(AttemptWindow + time.Second) })
	if _, err := s.Authenticate(ctx, "ada@example.com", pw, audit.Actor{ClientIP: "198.51.100.1"}); err != nil {
		t.Fatalf("right password after the window: %v", err)
	}
}

// One address spraying many unknown names is capped at AddressAttempts,
// and unknown names cost a hash like real ones.
func TestAuthenticateAddressCap(t *testing.T) {
	s, _ := newService(t)
	ctx := context.Background()
	n := countHashes(t)
	from := audit.Actor{ClientIP: "203.0.113.7"}
	for i := range AddressAttempts {
		if _, err := s.Authenticate(ctx, "nobody"+strconv.Itoa(i)+"@example.com", "x", from); err != ErrBadCredentials {
			t.Fatalf("attempt %d: %v", i, err)
		}
	}
	if _, err := s.Authenticate(ctx, "someone-else@example.com", "x", from); err != ErrThrottled {
		t.Fatalf("beyond the address cap: %v", err)
	}
	// One per evaluated attempt: the dummy hash itself costs none.
	if got := n.Load(); got != AddressAttempts {
		t.Fatalf("%d hashes for %d evaluated attempts", got, AddressAttempts)
	}
	// Another address is not affected.
	if _, err := s.Authenticate(ctx, "someone-else@example.com", "x", audit.Actor{ClientIP: "203.0.113.8"}); err != ErrBadCredentials {
		t.Fatalf("other address: %v", err)
	}
}

// A success forgets the account's failures but not the address's, and
// nobody can clear another account's count without its password.
func TestAuthenticateSuccessClearsOnlyItsAccount(t *testing.T) {
	s, db := newService(t)
	ctx := context.Background()
	for _, e := range []string{"ada@example.com", "bob@example.com"} {
		if _, err := s.Create(ctx, audit.CommandLine, NewAdmin{Email: e, Name: e[:3], Role: GlobalAdmin, Password: "correct horse battery"}); err != nil {
			t.Fatal(err)
		}
	}
	from := audit.Actor{ClientIP: "192.0.2.50"}
	for range AccountAttempts - 1 {
		s.Authenticate(ctx, "ada@example.com", "wrong", from)
		s.Authenticate(ctx, "bob@example.com", "wrong", from)
	}
	if _, err := s.Authenticate(ctx, "bob@example.com", "correct horse battery", from); err != nil {
		t.Fatal(err)
	}
	ada, _ := db.AdminByEmail(ctx, "ada@example.com")
	bob, _ := db.AdminByEmail(ctx, "bob@example.com")
	if got := countAttempts(t, db, store.BucketAdminAccount, keyOf(bob.ID)); got != 0 {
		t.Errorf("bob's failures after his success: %d", got)
	}
	if got := countAttempts(t, db, store.BucketAdminAccount, keyOf(ada.ID)); got != AccountAttempts-1 {
		t.Errorf("ada's failures after bob's success: %d", got)
	}
	if _, err := s.Authenticate(ctx, "ada@example.com", "wrong", from); err != ErrBadCredentials {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(ctx, "ada@example.com", "correct horse battery", from); err != ErrThrottled {
		t.Fatalf("ada's budget was reset by someone else's success: %v", err)
	}
}

// A full hash queue answers busy and does not count as a wrong password.
func TestAuthenticateBusyIsNotAFailure(t *testing.T) {
	s, db := newService(t)
	ctx := context.Background()
	if _, err := s.Create(ctx, audit.CommandLine, NewAdmin{Email: "ada@example.com", Name: "Ada", Role: GlobalAdmin, Password: "correct horse battery"}); err != nil {
		t.Fatal(err)
	}
	swapGate(t, newGate(1, 0, time.Millisecond))
	release := make(chan struct{})
	hashes.onRun = func(int) { <-release }
	go func() { _ = hashes.do(func() {}) }()
	for hashes.running.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	_, err := s.Authenticate(ctx, "ada@example.com", "wrong", audit.Actor{ClientIP: "192.0.2.1"})
	close(release)
	if err != ErrBusy || errs.KindOf(err) != errs.TooMany {
		t.Fatalf("with the queue full: %v", err)
	}
	a, _ := db.AdminByEmail(ctx, "ada@example.com")
	if n := countAttempts(t, db, store.BucketAdminAccount, keyOf(a.ID)); n != 0 {
		t.Fatalf("a busy answer counted as %d failures", n)
	}
}

// 32 concurrent failed sign-ins of 32 administrators (so no budget stops
// them) never run more hashes at once than the gate's bound.
func TestAuthenticateHashesUnderTheBound(t *testing.T) {
	s, _ := newService(t)
	ctx := context.Background()
	for i := range 32 {
		if _, err := s.Create(ctx, audit.CommandLine, NewAdmin{Email: "a" + strconv.Itoa(i) + "@example.com", Name: "A", Role: HelpdeskAdmin,
			Password: "correct horse battery"}); err != nil {
			t.Fatal(err)
		}
	}
	const bound = 2
	g := newGate(bound, 64, 10*time.Second)
	var peak, ran atomic.Int32
	g.onRun = func(n int) {
		ran.Add(1)
		for p := peak.Load(); int32(n) > p && !peak.CompareAndSwap(p, int32(n)); p = peak.Load() {
		}
		time.Sleep(2 * time.Millisecond) // long enough for the others to pile up
	}
	swapGate(t, g)
	var wg sync.WaitGroup
	for i := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.Authenticate(ctx, "a"+strconv.Itoa(i)+"@example.com", "wrong", audit.Actor{ClientIP: "192.0.2." + strconv.Itoa(i)}); err != ErrBadCredentials {
				t.Errorf("sign-in %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	if peak.Load() > bound || ran.Load() != 32 {
		t.Fatalf("peak %d hashes at once (bound %d), %d ran", peak.Load(), bound, ran.Load())
	}
}
