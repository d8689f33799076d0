package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// Config is a named settings document.
type Config struct {
	Name      string
	Value     string // JSON
	Version   int64  // 0 when never saved
	UpdatedMS int64
	UpdatedBy string
}

// Config reads a settings document; a document never saved comes back with
// Version 0 and Value "".
func (db *DB) Config(ctx context.Context, name string) (Config, error) {
	db.docs.reads.Add(1)
	return readConfig(ctx, db, name)
}

// Config reads a settings document inside a transaction.
func (tx *Tx) Config(ctx context.Context, name string) (Config, error) {
	return readConfig(ctx, tx, name)
}

type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// configQuerier is a DB (through its prepared statements) or a transaction.
type configQuerier interface {
	queryRow(ctx context.Context, query string, args ...any) *sql.Row
}

func (tx *Tx) queryRow(ctx context.Context, query string, args ...any) *sql.Row {
	return tx.tx.QueryRowContext(ctx, query, args...)
}

func readConfig(ctx context.Context, q configQuerier, name string) (Config, error) {
	c := Config{Name: name}
	err := q.queryRow(ctx, `SELECT value, version, updated_ms, updated_by FROM config WHERE name = ?`, name).
		Scan(&c.Value, &c.Version, &c.UpdatedMS, &c.UpdatedBy)
	if errors.Is(err, sql.ErrNoRows) {
		return c, nil
	}
	if err != nil {
		return c, fmt.Errorf("store: read config %s: %w", name, err)
	}
	return c, nil
}

// PutConfig writes a settings document if its stored version still equals
// expectVersion (0 for a document never saved) and returns the new version.
// A mismatch returns ErrConflict and writes nothing. Once the transaction
// commits, the settings cache (CachedConfig) serves nothing older.
func (tx *Tx) PutConfig(ctx context.Context, name string, expectVersion int64, value, updatedBy string) (int64, error) {
	cur, err := tx.Config(ctx, name)
	if err != nil {
		return 0, err
	}
	if cur.Version != expectVersion {
		return 0, ErrConflict
	}
	now := tx.db.nowMS()
	next := expectVersion + 1
	_, err = tx.tx.ExecContext(ctx, `INSERT INTO config (name, value, version, updated_ms, updated_by) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET value = excluded.value, version = excluded.version,
		updated_ms = excluded.updated_ms, updated_by = excluded.updated_by`, name, value, next, now, updatedBy)
	if err != nil {
		return 0, fmt.Errorf("store: put config %s: %w", name, err)
	}
	if tx.saved == nil {
		tx.saved = map[string]int64{}
	}
	tx.saved[name] = next
	return next, nil
}
