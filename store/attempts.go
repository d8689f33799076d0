package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"
)

// The buckets of sign-in attempts (signin_attempts.bucket).
const (
	BucketDirectoryAccount = "directory-account" // a resolved directory account, by its ID
	BucketDirectoryName    = "directory-name"    // a typed name that resolved to no account
	BucketDirectoryAddress = "directory-address" // a client address
	BucketAdminAccount     = "admin-account"     // an administrator, by ID
	BucketAdminName        = "admin-name"        // a typed e-mail address of no administrator
	BucketAdminAddress     = "admin-address"     // a client address
)

// MaxAttemptWindow is the longest window attempts are counted in: older rows
// are deleted at every reservation, so longer windows are cut to this.
const MaxAttemptWindow = 24 * time.Hour

// AttemptLimit is one budget a sign-in attempt must fit in.
type AttemptLimit struct {
	Bucket string
	Key    string
	// Max is how many attempts the budget allows after SinceMS (the start
	// of its window); 0 allows none.
	Max     int
	SinceMS int64
	// Outside is how many failures the one who checks the password already
	// counts for this key (the directory's own bad-password count), or -1
	// when unknown. It includes the attempts of this budget that reached
	// the directory, but not the ones still pending, so the attempt fits
	// only if Outside + pending < Max as well.
	Outside int
}

// Reservation is the outcome of ReserveAttempt.
type Reservation struct {
	// IDs are the rows written, one per limit, when the attempt fits.
	IDs []int64
	// Blocked is the index of the first limit that is full; -1 when the
	// attempt was reserved.
	Blocked int
	// RetryMS is when the blocking limit frees a slot again (its oldest
	// counted attempt leaves the window); 0 when not known.
	RetryMS int64
}

// OK reports whether the attempt was reserved.
func (r Reservation) OK() bool { return r.Blocked < 0 }

// ReserveAttempt checks every limit and, when all have room, counts one
// attempt in each — in one immediate transaction, so concurrent attempts
// (in this process or another on the same database) are counted one by one
// and never more than Max of them get past. Nothing is written when a limit
// is full.
func (db *DB) ReserveAttempt(ctx context.Context, nowMS int64, limits []AttemptLimit) (Reservation, error) {
	r := Reservation{Blocked: -1}
	err := db.InTx(ctx, func(tx *Tx) error {
		r = Reservation{Blocked: -1}
		if _, err := tx.tx.ExecContext(ctx, `DELETE FROM signin_attempts WHERE time_ms < ?`,
			nowMS-MaxAttemptWindow.Milliseconds()); err != nil {
			return err
		}
		for i, l := range limits {
			since := max(l.SinceMS, nowMS-MaxAttemptWindow.Milliseconds())
			var all, pending int
			var oldest sql.NullInt64
			if err := tx.tx.QueryRowContext(ctx, `SELECT count(*), coalesce(sum(pending), 0), min(time_ms) FROM signin_attempts
				WHERE bucket = ? AND key = ? AND time_ms > ?`, l.Bucket, l.Key, since).Scan(&all, &pending, &oldest); err != nil {
				return err
			}
			full := all >= l.Max
			if l.Outside >= 0 && l.Outside+pending >= l.Max {
				full = true
			}
			if full {
				r.Blocked = i
				if all >= l.Max && oldest.Valid {
					r.RetryMS = oldest.Int64 + (nowMS - since)
				}
				return nil
			}
		}
		for _, l := range limits {
			var id int64
			if err := tx.tx.QueryRowContext(ctx, `INSERT INTO signin_attempts (bucket, key, time_ms) VALUES (?, ?, ?) RETURNING id`,
				l.Bucket, l.Key, nowMS).Scan(&id); err != nil {
				return err
			}
			r.IDs = append(r.IDs, id)
		}
		return nil
	})
	if err != nil {
		return Reservation{Blocked: -1}, fmt.Errorf("store: reserve sign-in attempt: %w", err)
	}
	return r, nil
}

// SettleAttempt keeps a reservation as a counted failure (the password was
// checked and was wrong, or the account could not sign in).
func (db *DB) SettleAttempt(ctx context.Context, ids []int64) error {
	return db.attemptRows(ctx, `UPDATE signin_attempts SET pending = 0 WHERE id IN `, ids, "settle")
}

// ReleaseAttempt forgets a reservation: the attempt does not count (the
// password was right, or it never reached whoever checks it).
func (db *DB) ReleaseAttempt(ctx context.Context, ids []int64) error {
	return db.attemptRows(ctx, `DELETE FROM signin_attempts WHERE id IN `, ids, "release")
}

func (db *DB) attemptRows(ctx context.Context, stmt string, ids []int64, what string) error {
	if len(ids) == 0 {
		return nil
	}
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	q := stmt + "(?" + strings.Repeat(", ?", len(ids)-1) + ")"
	if _, err := db.sql.ExecContext(ctx, q, args...); err != nil {
		return fmt.Errorf("store: %s sign-in attempt: %w", what, err)
	}
	return nil
}

// ClearAttempts forgets every attempt of bucket/key, as a directory forgets
// its bad-password count after a successful sign-in.
func (db *DB) ClearAttempts(ctx context.Context, bucket, key string) error {
	if _, err := db.sql.ExecContext(ctx, `DELETE FROM signin_attempts WHERE bucket = ? AND key = ?`, bucket, key); err != nil {
		return fmt.Errorf("store: clear sign-in attempts: %w", err)
	}
	return nil
}
