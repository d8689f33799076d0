package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// ErrKeyMismatch is returned by CheckKey when the database was first used
// with another key file.
var ErrKeyMismatch = errors.New("store: the database was set up with another key file")

// CheckKey compares check (keyring.Check of the key file this process
// uses) with the value the database recorded on first use, recording it
// when there is none yet (a new database, or one from before the check);
// another value is ErrKeyMismatch. recorded reports that this call
// recorded it. Of processes starting at once on a new database, one
// records its value and the others are compared with it.
func (db *DB) CheckKey(ctx context.Context, check string) (recorded bool, err error) {
	if len(check) != 64 {
		return false, fmt.Errorf("store: key check value of %d characters, want 64", len(check))
	}
	// Every start but the first only reads.
	have, err := db.keyCheck(ctx, db.sql)
	if err != nil {
		return false, err
	}
	if have == "" {
		err = db.InTx(ctx, func(tx *Tx) error {
			if have, err = db.keyCheck(ctx, tx.tx); err != nil || have != "" {
				return err
			}
			if _, err := tx.tx.ExecContext(ctx, `INSERT INTO key_check (id, value, created_ms) VALUES (1, ?, ?)`, check, db.nowMS()); err != nil {
				return fmt.Errorf("store: record the key check: %w", err)
			}
			have, recorded = check, true
			return nil
		})
		if err != nil {
			return false, err
		}
	}
	if have != check {
		return false, ErrKeyMismatch
	}
	return recorded, nil
}

func (db *DB) keyCheck(ctx context.Context, q querier) (string, error) {
	var v string
	err := q.QueryRowContext(ctx, `SELECT value FROM key_check WHERE id = 1`).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("store: read the key check: %w", err)
	}
	return v, nil
}
