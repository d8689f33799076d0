package store

import (
	"context"
	"fmt"
)

// ReminderKey names one password-expiry reminder: an account's password
// (its ID and when the password was set) and a threshold in days.
type ReminderKey struct {
	UserID        string
	PasswordSetMS int64
	ThresholdDays int
}

// SentReminders lists the reminders sent, for the passwords they were sent
// for: what the expiry reminders skip (and the dry run leaves out).
func (db *DB) SentReminders(ctx context.Context) (map[ReminderKey]bool, error) {
	rows, err := db.sql.QueryContext(ctx, `SELECT user_id, password_set_ms, threshold_days FROM expiry_reminders`)
	if err != nil {
		return nil, fmt.Errorf("store: list expiry reminders: %w", err)
	}
	defer rows.Close()
	out := map[ReminderKey]bool{}
	for rows.Next() {
		var k ReminderKey
		if err := rows.Scan(&k.UserID, &k.PasswordSetMS, &k.ThresholdDays); err != nil {
			return nil, fmt.Errorf("store: list expiry reminders: %w", err)
		}
		out[k] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: list expiry reminders: %w", err)
	}
	return out, nil
}

// ClaimReminder records that the reminder k is being sent, unless it was
// sent already: false then. The account's rows of an older password go in
// the same transaction (a changed password starts its reminders afresh).
func (tx *Tx) ClaimReminder(ctx context.Context, k ReminderKey, nowMS int64) (bool, error) {
	if _, err := tx.tx.ExecContext(ctx, `DELETE FROM expiry_reminders WHERE user_id = ? AND password_set_ms <> ?`,
		k.UserID, k.PasswordSetMS); err != nil {
		return false, fmt.Errorf("store: claim expiry reminder: %w", err)
	}
	res, err := tx.tx.ExecContext(ctx, `INSERT INTO expiry_reminders (user_id, threshold_days, password_set_ms, sent_ms)
		VALUES (?, ?, ?, ?) ON CONFLICT (user_id, threshold_days) DO NOTHING`, k.UserID, k.ThresholdDays, k.PasswordSetMS, nowMS)
	if err != nil {
		return false, fmt.Errorf("store: claim expiry reminder: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("store: claim expiry reminder: %w", err)
	}
	return n == 1, nil
}

// ReleaseReminder forgets a claimed reminder whose mail could not be sent,
// so that the next round tries it again.
func (tx *Tx) ReleaseReminder(ctx context.Context, k ReminderKey) error {
	if _, err := tx.tx.ExecContext(ctx, `DELETE FROM expiry_reminders WHERE user_id = ? AND threshold_days = ? AND password_set_ms = ?`,
		k.UserID, k.ThresholdDays, k.PasswordSetMS); err != nil {
		return fmt.Errorf("store: release expiry reminder: %w", err)
	}
	return nil
}

// PruneReminders removes the rows of reminders sent before beforeMS (their
// passwords have long expired or been changed).
func (db *DB) PruneReminders(ctx context.Context, beforeMS int64) (int64, error) {
	var n int64
	err := db.InTx(ctx, func(tx *Tx) error {
		res, err := tx.tx.ExecContext(ctx, `DELETE FROM expiry_reminders WHERE sent_ms < ?`, beforeMS)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("store: prune expiry reminders: %w", err)
	}
	return n, nil
}
