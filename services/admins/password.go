package admins

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/argon2"

	"github.com/writeback/writeback/services/errs"
)

// HashParams are argon2id cost parameters.
type HashParams struct {
	Memory  uint32 // KiB
	Time    uint32
	Threads uint8
}

// DefaultHashParams follow OWASP's argon2id recommendation (19 MiB, 2 passes).
var DefaultHashParams = HashParams{Memory: 19 * 1024, Time: 2, Threads: 1}

// ErrBusy is returned instead of hashing when as many hashes as the portal
// allows are running and as many as it lets wait are waiting already.
var ErrBusy = errs.E(errs.TooMany, "The portal is busy. Try again in a moment.", nil)

// gate bounds how many argon2id hashes run at once (each holds
// HashParams.Memory, 19 MiB by default, while it runs) and how many may wait
// for a turn; beyond that a caller gets ErrBusy at once instead of
// allocating, so a burst of sign-ins cannot take the process's memory with
// it. It is process-wide: every hash in the portal passes through it.
type gate struct {
	run   chan struct{} // one token per running hash
	admit chan struct{} // one token per running or waiting hash
	wait  time.Duration // longest wait for a turn before ErrBusy
	// onRun, when set (tests), is called with the number running once a
	// hash starts.
	onRun   func(running int)
	running atomic.Int32
}

func newGate(running, queue int, wait time.Duration) *gate {
	running = max(running, 1)
	return &gate{run: make(chan struct{}, running), admit: make(chan struct{}, running+max(queue, 0)), wait: wait}
}

// HashMemoryBudget is how much argon2id memory the running hashes may hold
// at once: 40 MiB, two hashes with DefaultHashParams. With the process's
// other memory (about 17 MB at rest) it keeps a burst of failed sign-ins or
// security-question answers under 100 MB however many cores the machine
// has; each hash is CPU-bound, so on a small machine the cores are the bound
// first.
const HashMemoryBudget = 40 << 20

// hashSlots is how many hashes of memKiB each may run at once: one per core
// (GOMAXPROCS, procs), no more than the budget holds, and at least one.
func hashSlots(procs int, memKiB uint32, budget int64) int {
	return max(1, min(procs, int(budget/max(int64(memKiB)<<10, 1))))
}

// hashes is the portal's gate: as many running hashes as hashSlots allows
// for DefaultHashParams (every hash the portal makes uses them), 16 times
// as many waiting, for at most 5 seconds.
var hashes = newGate(hashSlots(runtime.GOMAXPROCS(0), DefaultHashParams.Memory, HashMemoryBudget), 16*runtime.GOMAXPROCS(0), 5*time.Second)

// do runs f when a turn is free, or returns ErrBusy.
func (g *gate) do(f func()) error {
	select {
	case g.admit <- struct{}{}:
	default:
		return ErrBusy
	}
	defer func() { <-g.admit }()
	t := time.NewTimer(g.wait)
	defer t.Stop()
	select {
	case g.run <- struct{}{}:
	case <-t.C:
		return ErrBusy
	}
	n := g.running.Add(1)
	defer func() { g.running.Add(-1); <-g.run }()
	if g.onRun != nil {
		g.onRun(int(n))
	}
	f()
	return nil
}

// HashPassword returns an encoded argon2id hash of password. It returns
// ErrBusy when too many hashes are running and waiting already.
func HashPassword(password string, p HashParams) (string, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("admins: salt: %w", err)
	}
	var key []byte
	if err := hashes.do(func() { key = argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, 32) }); err != nil {
		return "", err
	}
	return encodeHash(p, salt, key), nil
}

func encodeHash(p HashParams, salt, key []byte) string {
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.Memory, p.Time, p.Threads,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key))
}

var errBadHash = errors.New("admins: malformed password hash")

// parseHash splits an encoded argon2id hash into its parameters, salt and key.
func parseHash(encoded string) (HashParams, []byte, []byte, error) {
	var p HashParams
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return p, nil, nil, errBadHash
	}
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return p, nil, nil, errBadHash
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.Memory, &p.Time, &p.Threads); err != nil {
		return p, nil, nil, errBadHash
	}
	salt, err := base64.RawStdEncoding.DecodeString(parts[4])
	if err != nil {
		return p, nil, nil, errBadHash
	}
	want, err := base64.RawStdEncoding.DecodeString(parts[5])
	if err != nil || len(want) == 0 {
		return p, nil, nil, errBadHash
	}
	return p, salt, want, nil
}

// VerifyPassword reports whether password matches an encoded argon2id hash.
// Its cost is the same whether or not the password matches. It returns
// ErrBusy (and false) when too many hashes are running and waiting already:
// callers must not count that as a wrong password.
func VerifyPassword(encoded, password string) (bool, error) {
	p, salt, want, err := parseHash(encoded)
	if err != nil {
		return false, err
	}
	var got []byte
	if err := hashes.do(func() { got = argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, uint32(len(want))) }); err != nil {
		return false, err
	}
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

// DummyHash returns an encoded hash with parameters p that no password
// matches: a random salt and a random key, so nothing is hashed to make it.
// Verifying a password against it costs what a real hash with p costs, which
// is what uniform timing for unknown accounts and unregistered answers needs.
func DummyHash(p HashParams) string {
	salt, key := make([]byte, 16), make([]byte, 32)
	if _, err := rand.Read(salt); err != nil {
		panic("crypto/rand: " + err.Error())
	}
	if _, err := rand.Read(key); err != nil {
		panic("crypto/rand: " + err.Error())
	}
	return encodeHash(p, salt, key)
}
