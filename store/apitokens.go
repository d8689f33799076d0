package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// APIToken is a bearer token of the REST API (migration 0012), by the hash
// of its secret. Times are Unix milliseconds; zero means "not set".
type APIToken struct {
	ID         int64
	Hash       string
	Name       string
	Role       string
	CreatedBy  string
	CreatedMS  int64
	ExpiresMS  int64
	LastUsedMS int64
	LastUsedIP string
	RevokedMS  int64
	RevokedBy  string
}

const apiTokenCols = `id, token_hash, name, role, created_by, created_ms, expires_ms, coalesce(last_used_ms, 0), last_used_ip,
	coalesce(revoked_ms, 0), revoked_by`

func scanAPIToken(row interface{ Scan(...any) error }) (APIToken, error) {
	var t APIToken
	err := row.Scan(&t.ID, &t.Hash, &t.Name, &t.Role, &t.CreatedBy, &t.CreatedMS, &t.ExpiresMS, &t.LastUsedMS, &t.LastUsedIP,
		&t.RevokedMS, &t.RevokedBy)
	if errors.Is(err, sql.ErrNoRows) {
		return t, ErrNotFound
	}
	return t, err
}

// InsertAPIToken stores a new token and returns its ID; a name that a
// token not revoked has already (case-insensitive) is ErrDuplicate.
func (tx *Tx) InsertAPIToken(ctx context.Context, t APIToken) (int64, error) {
	var id int64
	err := tx.tx.QueryRowContext(ctx, `INSERT INTO api_tokens (token_hash, name, role, created_by, created_ms, expires_ms)
		VALUES (?, ?, ?, ?, ?, ?) RETURNING id`, t.Hash, t.Name, t.Role, t.CreatedBy, t.CreatedMS, t.ExpiresMS).Scan(&id)
	if err != nil {
		if tx.db.engine.isUnique(err) {
			return 0, ErrDuplicate
		}
		return 0, fmt.Errorf("store: insert api token: %w", err)
	}
	return id, nil
}

// APITokenByHash reads the token whose secret hashes to hash, revoked or
// not: ErrNotFound when there is none. It runs on every API request.
func (db *DB) APITokenByHash(ctx context.Context, hash string) (APIToken, error) {
	t, err := scanAPIToken(db.queryRow(ctx, `SELECT `+apiTokenCols+` FROM api_tokens WHERE token_hash = ?`, hash))
	if err != nil && !errors.Is(err, ErrNotFound) {
		err = fmt.Errorf("store: api token by hash: %w", err)
	}
	return t, err
}

// ListAPITokens lists every token: those not revoked first, newest first.
func (db *DB) ListAPITokens(ctx context.Context) ([]APIToken, error) {
	rows, err := db.sql.QueryContext(ctx, `SELECT `+apiTokenCols+` FROM api_tokens
		ORDER BY revoked_ms IS NOT NULL, created_ms DESC, id DESC`)
	if err != nil {
		return nil, fmt.Errorf("store: list api tokens: %w", err)
	}
	defer rows.Close()
	var out []APIToken
	for rows.Next() {
		t, err := scanAPIToken(rows)
		if err != nil {
			return nil, fmt.Errorf("store: list api tokens: %w", err)
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: list api tokens: %w", err)
	}
	return out, nil
}

// ActiveAPIToken reads, inside a transaction, the token not revoked with
// this ID (id > 0) or, when id is 0, with this name (case-insensitive):
// ErrNotFound when there is none.
func (tx *Tx) ActiveAPIToken(ctx context.Context, id int64, name string) (APIToken, error) {
	q, arg := `SELECT `+apiTokenCols+` FROM api_tokens WHERE id = ? AND revoked_ms IS NULL`, any(id)
	if id == 0 {
		q, arg = `SELECT `+apiTokenCols+` FROM api_tokens WHERE name = ? COLLATE NOCASE AND revoked_ms IS NULL`, name
	}
	t, err := scanAPIToken(tx.tx.QueryRowContext(ctx, q, arg))
	if err != nil && !errors.Is(err, ErrNotFound) {
		err = fmt.Errorf("store: active api token: %w", err)
	}
	return t, err
}

// RevokeAPIToken revokes the token with this ID, if it is not revoked
// already (ErrNotFound otherwise).
func (tx *Tx) RevokeAPIToken(ctx context.Context, id int64, by string, nowMS int64) error {
	res, err := tx.tx.ExecContext(ctx, `UPDATE api_tokens SET revoked_ms = ?, revoked_by = ? WHERE id = ? AND revoked_ms IS NULL`,
		nowMS, by, id)
	if err != nil {
		return fmt.Errorf("store: revoke api token: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

// TouchAPIToken records a use of the token, at nowMS from ip.
func (tx *Tx) TouchAPIToken(ctx context.Context, id int64, ip string, nowMS int64) error {
	if len(ip) > 100 {
		ip = ip[:100]
	}
	if _, err := tx.tx.ExecContext(ctx, `UPDATE api_tokens SET last_used_ms = ?, last_used_ip = ? WHERE id = ?`, nowMS, ip, id); err != nil {
		return fmt.Errorf("store: touch api token: %w", err)
	}
	return nil
}
