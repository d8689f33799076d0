package store

import (
	"context"
	"fmt"
)

// SpendChallenge records a solved proof-of-work challenge, by the keyed hash
// of its salt, until expiresMS. It reports false when it was spent already:
// the solution is a replay. One statement, so two replicas given the same
// solution at once accept it once.
func (db *DB) SpendChallenge(ctx context.Context, id string, expiresMS int64) (bool, error) {
	res, err := db.sql.ExecContext(ctx, `INSERT INTO sspr_challenges_spent (id, expires_ms) VALUES (?, ?) ON CONFLICT (id) DO NOTHING`, id, expiresMS)
	if err != nil {
		return false, fmt.Errorf("store: spend challenge: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("store: spend challenge: %w", err)
	}
	return n == 1, nil
}

// AddAddressAttempt counts one protected self-service step (a code sent, an
// answer checked) for a client address (its keyed hash) at ms.
func (db *DB) AddAddressAttempt(ctx context.Context, address string, ms int64) error {
	if _, err := db.sql.ExecContext(ctx, `INSERT INTO sspr_address_attempts (address, time_ms) VALUES (?, ?)`, address, ms); err != nil {
		return fmt.Errorf("store: add address attempt: %w", err)
	}
	return nil
}

// AddressAttempts counts the protected steps of a client address since sinceMS.
func (db *DB) AddressAttempts(ctx context.Context, address string, sinceMS int64) (int, error) {
	var n int
	if err := db.sql.QueryRowContext(ctx, `SELECT count(*) FROM sspr_address_attempts WHERE address = ? AND time_ms >= ?`, address, sinceMS).Scan(&n); err != nil {
		return 0, fmt.Errorf("store: count address attempts: %w", err)
	}
	return n, nil
}

// AccountAttempts counts what the challenge's per-account threshold reads
// for a self-service key (an account's directory ID, or "login:" and a typed
// name that matched nothing) since sinceMS: its failed verifications,
// settled or pending, and the codes made for it.
func (db *DB) AccountAttempts(ctx context.Context, userID string, sinceMS int64) (int, error) {
	var n int
	err := db.sql.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM sspr_failures WHERE user_id = ? AND time_ms >= ?)
		+ (SELECT count(*) FROM sspr_codes WHERE user_id = ? AND created_ms >= ?)`, userID, sinceMS, userID, sinceMS).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("store: count account attempts: %w", err)
	}
	return n, nil
}

// DeleteExpiredChallenges removes spent challenges that expired before ms
// and address attempts older than ms (the counters look back an hour).
func (db *DB) DeleteExpiredChallenges(ctx context.Context, ms int64) (int64, error) {
	a, err := db.sql.ExecContext(ctx, `DELETE FROM sspr_challenges_spent WHERE expires_ms < ?`, ms)
	if err != nil {
		return 0, fmt.Errorf("store: delete expired challenges: %w", err)
	}
	b, err := db.sql.ExecContext(ctx, `DELETE FROM sspr_address_attempts WHERE time_ms < ?`, ms)
	if err != nil {
		return 0, fmt.Errorf("store: delete old address attempts: %w", err)
	}
	na, _ := a.RowsAffected()
	nb, _ := b.RowsAffected()
	return na + nb, nil
}
