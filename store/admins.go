package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
)

// Admin is a portal administrator.
type Admin struct {
	ID           int64
	Email        string
	Name         string
	Role         string
	PasswordHash string
	Disabled     bool
	CreatedMS    int64
	UpdatedMS    int64
}

const adminCols = `id, email, name, role, password_hash, disabled, created_ms, updated_ms`

func scanAdmin(row interface{ Scan(...any) error }) (Admin, error) {
	var a Admin
	var dis int
	err := row.Scan(&a.ID, &a.Email, &a.Name, &a.Role, &a.PasswordHash, &dis, &a.CreatedMS, &a.UpdatedMS)
	a.Disabled = dis == 1
	if errors.Is(err, sql.ErrNoRows) {
		return a, ErrNotFound
	}
	return a, err
}

// ErrDuplicate is returned when a unique value is taken.
var ErrDuplicate = errors.New("store: already exists")

// CountAdmins counts administrators (any state).
func (db *DB) CountAdmins(ctx context.Context) (int, error) {
	var n int
	err := db.sql.QueryRowContext(ctx, `SELECT count(*) FROM admins`).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("store: count admins: %w", err)
	}
	return n, nil
}

// AdminByEmail finds an administrator by e-mail (case-insensitive).
func (db *DB) AdminByEmail(ctx context.Context, email string) (Admin, error) {
	a, err := scanAdmin(db.sql.QueryRowContext(ctx, `SELECT `+adminCols+` FROM admins WHERE email = ?`, strings.TrimSpace(email)))
	if err != nil && !errors.Is(err, ErrNotFound) {
		err = fmt.Errorf("store: admin by email: %w", err)
	}
	return a, err
}

// AdminByID finds an administrator by ID.
func (db *DB) AdminByID(ctx context.Context, id int64) (Admin, error) {
	a, err := scanAdmin(db.queryRow(ctx, `SELECT `+adminCols+` FROM admins WHERE id = ?`, id))
	if err != nil && !errors.Is(err, ErrNotFound) {
		err = fmt.Errorf("store: admin by id: %w", err)
	}
	return a, err
}

// ListAdmins lists every administrator, by name.
func (db *DB) ListAdmins(ctx context.Context) ([]Admin, error) {
	rows, err := db.sql.QueryContext(ctx, `SELECT `+adminCols+` FROM admins ORDER BY disabled, name COLLATE NOCASE, id`)
	if err != nil {
		return nil, fmt.Errorf("store: list admins: %w", err)
	}
	defer rows.Close()
	var out []Admin
	for rows.Next() {
		a, err := scanAdmin(rows)
		if err != nil {
			return nil, fmt.Errorf("store: list admins: %w", err)
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// AdminByID reads an administrator inside a transaction.
func (tx *Tx) AdminByID(ctx context.Context, id int64) (Admin, error) {
	a, err := scanAdmin(tx.tx.QueryRowContext(ctx, `SELECT `+adminCols+` FROM admins WHERE id = ?`, id))
	if err != nil && !errors.Is(err, ErrNotFound) {
		err = fmt.Errorf("store: admin by id: %w", err)
	}
	return a, err
}

// AdminByEmail reads an administrator inside a transaction.
func (tx *Tx) AdminByEmail(ctx context.Context, email string) (Admin, error) {
	a, err := scanAdmin(tx.tx.QueryRowContext(ctx, `SELECT `+adminCols+` FROM admins WHERE email = ?`, strings.TrimSpace(email)))
	if err != nil && !errors.Is(err, ErrNotFound) {
		err = fmt.Errorf("store: admin by email: %w", err)
	}
	return a, err
}

// CountAdmins counts administrators inside a transaction.
func (tx *Tx) CountAdmins(ctx context.Context) (int, error) {
	var n int
	if err := tx.tx.QueryRowContext(ctx, `SELECT count(*) FROM admins`).Scan(&n); err != nil {
		return 0, fmt.Errorf("store: count admins: %w", err)
	}
	return n, nil
}

// CountActiveGlobalAdmins counts enabled Global Administrators.
func (tx *Tx) CountActiveGlobalAdmins(ctx context.Context) (int, error) {
	var n int
	err := tx.tx.QueryRowContext(ctx, `SELECT count(*) FROM admins WHERE role = 'global-admin' AND disabled = 0`).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("store: count global admins: %w", err)
	}
	return n, nil
}

// InsertAdmin adds an administrator and returns its ID.
func (tx *Tx) InsertAdmin(ctx context.Context, a Admin) (int64, error) {
	now := tx.db.nowMS()
	var id int64
	err := tx.tx.QueryRowContext(ctx, `INSERT INTO admins (email, name, role, password_hash, disabled, created_ms, updated_ms)
		VALUES (?, ?, ?, ?, 0, ?, ?) RETURNING id`, strings.TrimSpace(a.Email), a.Name, a.Role, a.PasswordHash, now, now).Scan(&id)
	if err != nil {
		if tx.db.engine.isUnique(err) {
			return 0, ErrDuplicate
		}
		return 0, fmt.Errorf("store: insert admin: %w", err)
	}
	return id, nil
}

// UpdateAdmin writes name, role, disabled and password hash of an
// administrator. Callers end the administrator's sessions when role or
// disabled change.
func (tx *Tx) UpdateAdmin(ctx context.Context, a Admin) error {
	dis := 0
	if a.Disabled {
		dis = 1
	}
	tx.sessions = true
	res, err := tx.tx.ExecContext(ctx, `UPDATE admins SET name = ?, role = ?, disabled = ?, password_hash = ?, updated_ms = ? WHERE id = ?`,
		a.Name, a.Role, dis, a.PasswordHash, tx.db.nowMS(), a.ID)
	if err != nil {
		return fmt.Errorf("store: update admin: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}
