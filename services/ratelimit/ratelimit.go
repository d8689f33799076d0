// Package ratelimit keeps password guessing through the portal within
// budgets that hold across concurrent requests and across portal processes:
// an attempt reserves its slot in the database before the slow part (a bind
// to the directory, an argon2id hash) runs, and a full budget refuses the
// attempt without running it.
//
// It also computes the budget for a person's directory password from the
// directory's lockout policy, so the portal never becomes the thing that
// locks an account.
package ratelimit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"time"

	"github.com/writeback/writeback/store"
)

// Store is what the limiter needs from the database.
type Store interface {
	ReserveAttempt(ctx context.Context, nowMS int64, limits []store.AttemptLimit) (store.Reservation, error)
	SettleAttempt(ctx context.Context, ids []int64) error
	ReleaseAttempt(ctx context.Context, ids []int64) error
}

// Limit is one budget: at most Max attempts per Window for one key of a
// bucket. Outside is a count the checker of the password already holds (the
// directory's bad-password count), or -1.
type Limit struct {
	Bucket  string
	Key     string
	Max     int
	Window  time.Duration
	Outside int
}

// Attempt is a reserved attempt. Exactly one of Fail and Release should be
// called once its outcome is known; an attempt left alone (a crash) stays
// counted, which errs on the safe side.
type Attempt struct {
	db  Store
	ids []int64
}

// Refusal says which limit refused an attempt and when it frees a slot.
type Refusal struct {
	Limit Limit
	// Retry is when the limit frees a slot again; zero when unknown.
	Retry time.Time
}

// Reserve counts one attempt in every limit, or in none when one is full
// (then the Refusal says which). Check and count are one transaction.
func Reserve(ctx context.Context, db Store, now time.Time, limits ...Limit) (*Attempt, *Refusal, error) {
	ls := make([]store.AttemptLimit, len(limits))
	for i, l := range limits {
		ls[i] = store.AttemptLimit{Bucket: l.Bucket, Key: l.Key, Max: l.Max, SinceMS: now.Add(-l.Window).UnixMilli(), Outside: l.Outside}
	}
	r, err := db.ReserveAttempt(ctx, now.UnixMilli(), ls)
	if err != nil {
		return nil, nil, err
	}
	if !r.OK() {
		ref := &Refusal{Limit: limits[r.Blocked]}
		if r.RetryMS > 0 {
			ref.Retry = time.UnixMilli(r.RetryMS)
		}
		return nil, ref, nil
	}
	return &Attempt{db: db, ids: r.IDs}, nil, nil
}

// Fail keeps the attempt counted: the password was checked and was wrong
// (or the account cannot sign in).
func (a *Attempt) Fail(ctx context.Context) error {
	if a == nil {
		return nil
	}
	return a.db.SettleAttempt(context.WithoutCancel(ctx), a.ids)
}

// Release forgets the attempt: the password was right, or it never reached
// whoever checks it (the directory could not be reached).
func (a *Attempt) Release(ctx context.Context) error {
	if a == nil {
		return nil
	}
	return a.db.ReleaseAttempt(context.WithoutCancel(ctx), a.ids)
}

// Key turns the parts naming a budget (an account ID, a typed name, an
// address) into a bucket key, so the table never holds typed text.
// Callers with a secret should pass their keyed hash instead.
func Key(parts ...string) string {
	h := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return hex.EncodeToString(h[:])
}

// Directory password budgets.
const (
	// MaxDirectoryAttempts caps wrong directory passwords per account per
	// window however high the directory's threshold is, and is the budget
	// when the directory never locks (threshold 0): online guessing through
	// the portal stays slow either way.
	MaxDirectoryAttempts = 5
	// MinDirectoryWindow is the shortest window the portal counts in; a
	// longer window than the directory's only makes it stricter.
	MinDirectoryWindow = 15 * time.Minute
	// DefaultDirectoryWindow is used when the directory names no window.
	DefaultDirectoryWindow = 30 * time.Minute
)

// DirectoryBudget is how many wrong passwords of one account the portal
// sends to the directory within Window. Refuse means none may be sent at
// all: the directory locks an account at the first wrong password.
type DirectoryBudget struct {
	Max    int
	Window time.Duration
	Refuse bool
}

// BudgetFor computes the budget from the directory's lockout policy: one
// below the threshold (so the portal's attempts alone never lock the
// account), at most MaxDirectoryAttempts, within the directory's observation
// window (AD lockOutObservationWindow, OpenLDAP pwdFailureCountInterval),
// else its lockout duration, else 30 minutes; never under 15 minutes and
// never over store.MaxAttemptWindow. known is false when the policy could
// not be read: then a single attempt per default window, which no threshold
// above 1 can turn into a lockout.
func BudgetFor(threshold int, window, lockout time.Duration, known bool) DirectoryBudget {
	if !known {
		return DirectoryBudget{Max: 1, Window: DefaultDirectoryWindow}
	}
	w := window
	if w <= 0 {
		w = lockout
	}
	if w <= 0 {
		w = DefaultDirectoryWindow
	}
	w = min(max(w, MinDirectoryWindow), store.MaxAttemptWindow)
	switch {
	case threshold <= 0:
		return DirectoryBudget{Max: MaxDirectoryAttempts, Window: w}
	case threshold == 1:
		return DirectoryBudget{Max: 0, Window: w, Refuse: true}
	}
	return DirectoryBudget{Max: min(threshold-1, MaxDirectoryAttempts), Window: w}
}
