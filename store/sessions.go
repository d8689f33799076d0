package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// Session is the server-side half of an administrator session.
type Session struct {
	IDHash     string
	AdminID    int64
	CreatedMS  int64
	LastSeenMS int64
	ClientIP   string
	UserAgent  string
}

// InsertSession records a new session.
func (db *DB) InsertSession(ctx context.Context, s Session) error {
	_, err := db.sql.ExecContext(ctx, `INSERT INTO admin_sessions (id_hash, admin_id, created_ms, last_seen_ms, client_ip, user_agent)
		VALUES (?, ?, ?, ?, ?, ?)`, s.IDHash, s.AdminID, s.CreatedMS, s.LastSeenMS, s.ClientIP, s.UserAgent)
	if err != nil {
		return fmt.Errorf("store: insert session: %w", err)
	}
	return nil
}

// SessionByHash reads a session.
func (db *DB) SessionByHash(ctx context.Context, idHash string) (Session, error) {
	var s Session
	err := db.queryRow(ctx, `SELECT id_hash, admin_id, created_ms, last_seen_ms, client_ip, user_agent
		FROM admin_sessions WHERE id_hash = ?`, idHash).Scan(&s.IDHash, &s.AdminID, &s.CreatedMS, &s.LastSeenMS, &s.ClientIP, &s.UserAgent)
	if errors.Is(err, sql.ErrNoRows) {
		return s, ErrNotFound
	}
	if err != nil {
		return s, fmt.Errorf("store: session: %w", err)
	}
	return s, nil
}

// SessionAdmin reads a session and its administrator in one query: the
// read every signed-in request makes. The session's ClientIP and UserAgent
// are left empty. A session always has its administrator (the foreign key
// deletes sessions with it), so no row is ErrNotFound: no such session.
// While nothing at all was committed to the database since the last read
// of the same session, that read's rows are returned (sessioncache.go).
func (db *DB) SessionAdmin(ctx context.Context, idHash string) (Session, Admin, error) {
	return db.cachedSessionAdmin(ctx, idHash)
}

func (db *DB) readSessionAdmin(ctx context.Context, idHash string) (Session, Admin, error) {
	s := Session{IDHash: idHash}
	var a Admin
	var dis int
	err := db.queryRow(ctx, `SELECT s.admin_id, s.created_ms, s.last_seen_ms,
		a.id, a.email, a.name, a.role, a.password_hash, a.disabled, a.created_ms, a.updated_ms
		FROM admin_sessions s JOIN admins a ON a.id = s.admin_id WHERE s.id_hash = ?`, idHash).
		Scan(&s.AdminID, &s.CreatedMS, &s.LastSeenMS, &a.ID, &a.Email, &a.Name, &a.Role, &a.PasswordHash, &dis, &a.CreatedMS, &a.UpdatedMS)
	a.Disabled = dis == 1
	if errors.Is(err, sql.ErrNoRows) {
		return s, a, ErrNotFound
	}
	if err != nil {
		return s, a, fmt.Errorf("store: session and admin: %w", err)
	}
	return s, a, nil
}

// TouchSession moves a session's last-seen time forward.
func (db *DB) TouchSession(ctx context.Context, idHash string, ms int64) error {
	_, err := db.sql.ExecContext(ctx, `UPDATE admin_sessions SET last_seen_ms = ? WHERE id_hash = ?`, ms, idHash)
	db.sessions.changed()
	if err != nil {
		return fmt.Errorf("store: touch session: %w", err)
	}
	return nil
}

// DeleteSession ends one session.
func (db *DB) DeleteSession(ctx context.Context, idHash string) error {
	_, err := db.sql.ExecContext(ctx, `DELETE FROM admin_sessions WHERE id_hash = ?`, idHash)
	db.sessions.changed()
	if err != nil {
		return fmt.Errorf("store: delete session: %w", err)
	}
	return nil
}

// DeleteSessionsOf ends every session of an administrator.
func (tx *Tx) DeleteSessionsOf(ctx context.Context, adminID int64) error {
	tx.sessions = true
	if _, err := tx.tx.ExecContext(ctx, `DELETE FROM admin_sessions WHERE admin_id = ?`, adminID); err != nil {
		return fmt.Errorf("store: delete sessions of admin: %w", err)
	}
	return nil
}

// DeleteExpiredSessions removes sessions idle since idleBefore or created
// before createdBefore (both in Unix milliseconds).
func (db *DB) DeleteExpiredSessions(ctx context.Context, idleBefore, createdBefore int64) (int64, error) {
	res, err := db.sql.ExecContext(ctx, `DELETE FROM admin_sessions WHERE last_seen_ms < ? OR created_ms < ?`, idleBefore, createdBefore)
	db.sessions.changed()
	if err != nil {
		return 0, fmt.Errorf("store: delete expired sessions: %w", err)
	}
	return res.RowsAffected()
}

// InsertSetupToken stores the hash of a one-time setup token.
func (db *DB) InsertSetupToken(ctx context.Context, hash string, createdMS, expiresMS int64) error {
	if _, err := db.sql.ExecContext(ctx, `INSERT INTO setup_tokens (token_hash, created_ms, expires_ms) VALUES (?, ?, ?)`,
		hash, createdMS, expiresMS); err != nil {
		return fmt.Errorf("store: insert setup token: %w", err)
	}
	return nil
}

// SetupTokenValid reports whether an unused, unexpired token with this hash exists.
func (db *DB) SetupTokenValid(ctx context.Context, hash string, nowMS int64) (bool, error) {
	var n int
	err := db.sql.QueryRowContext(ctx, `SELECT count(*) FROM setup_tokens WHERE token_hash = ? AND used_ms IS NULL AND expires_ms > ?`,
		hash, nowMS).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("store: setup token: %w", err)
	}
	return n > 0, nil
}

// UseSetupToken marks a valid token used; it reports false when the token
// was unknown, used or expired.
func (tx *Tx) UseSetupToken(ctx context.Context, hash string, nowMS int64) (bool, error) {
	res, err := tx.tx.ExecContext(ctx, `UPDATE setup_tokens SET used_ms = ? WHERE token_hash = ? AND used_ms IS NULL AND expires_ms > ?`,
		nowMS, hash, nowMS)
	if err != nil {
		return false, fmt.Errorf("store: use setup token: %w", err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}
