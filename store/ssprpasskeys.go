package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// Passkey is a passkey an employee registered as a self-service
// verification method.
type Passkey struct {
	CredentialID string // base64url of the credential ID
	UserID       string // the directory's stable ID
	Name         string
	Secret       string // sealed credential record
	CreatedMS    int64
	LastUsedMS   int64
}

const passkeyCols = `credential_id, user_id, name, secret, created_ms, last_used_ms`

func scanPasskey(row interface{ Scan(...any) error }) (Passkey, error) {
	var p Passkey
	err := row.Scan(&p.CredentialID, &p.UserID, &p.Name, &p.Secret, &p.CreatedMS, &p.LastUsedMS)
	if errors.Is(err, sql.ErrNoRows) {
		return p, ErrNotFound
	}
	return p, err
}

// AddPasskey stores a newly registered passkey (a credential ID already
// stored, for anyone, fails on the primary key).
func (tx *Tx) AddPasskey(ctx context.Context, p Passkey) error {
	if _, err := tx.tx.ExecContext(ctx, `INSERT INTO sspr_passkeys (`+passkeyCols+`) VALUES (?, ?, ?, ?, ?, ?)`,
		p.CredentialID, p.UserID, p.Name, p.Secret, p.CreatedMS, p.LastUsedMS); err != nil {
		return fmt.Errorf("store: add passkey: %w", err)
	}
	return nil
}

// Passkeys lists a user's passkeys, oldest first.
func (db *DB) Passkeys(ctx context.Context, userID string) ([]Passkey, error) {
	rows, err := db.sql.QueryContext(ctx, `SELECT `+passkeyCols+` FROM sspr_passkeys WHERE user_id = ? ORDER BY created_ms, credential_id`, userID)
	if err != nil {
		return nil, fmt.Errorf("store: passkeys: %w", err)
	}
	defer rows.Close()
	var out []Passkey
	for rows.Next() {
		p, err := scanPasskey(rows)
		if err != nil {
			return nil, fmt.Errorf("store: passkeys: %w", err)
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// PasskeyByCredential finds the passkey with a credential ID, whoever's it
// is; ErrNotFound when none.
func (db *DB) PasskeyByCredential(ctx context.Context, credentialID string) (Passkey, error) {
	p, err := scanPasskey(db.sql.QueryRowContext(ctx, `SELECT `+passkeyCols+` FROM sspr_passkeys WHERE credential_id = ?`, credentialID))
	if err != nil && !errors.Is(err, ErrNotFound) {
		err = fmt.Errorf("store: passkey: %w", err)
	}
	return p, err
}

// UsePasskey stores a passkey's credential record after a verification
// (its sign count moved) and the time it was used.
func (tx *Tx) UsePasskey(ctx context.Context, userID, credentialID, secret string, nowMS int64) error {
	if _, err := tx.tx.ExecContext(ctx, `UPDATE sspr_passkeys SET secret = ?, last_used_ms = ? WHERE credential_id = ? AND user_id = ?`,
		secret, nowMS, credentialID, userID); err != nil {
		return fmt.Errorf("store: use passkey: %w", err)
	}
	return nil
}

// DeletePasskey removes one of a user's passkeys; ErrNotFound when the user
// has none with that ID.
func (tx *Tx) DeletePasskey(ctx context.Context, userID, credentialID string) (Passkey, error) {
	p, err := scanPasskey(tx.tx.QueryRowContext(ctx, `SELECT `+passkeyCols+` FROM sspr_passkeys WHERE credential_id = ? AND user_id = ?`, credentialID, userID))
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return p, err
		}
		return p, fmt.Errorf("store: delete passkey: %w", err)
	}
	if _, err := tx.tx.ExecContext(ctx, `DELETE FROM sspr_passkeys WHERE credential_id = ? AND user_id = ?`, credentialID, userID); err != nil {
		return p, fmt.Errorf("store: delete passkey: %w", err)
	}
	return p, nil
}
