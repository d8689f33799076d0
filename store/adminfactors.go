package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// The kinds of administrator second factor (admin_factors.kind).
const (
	FactorTOTP    = "totp"
	FactorPasskey = "passkey"
)

// BucketAdminFactor counts wrong second factors of an administrator, by ID.
const BucketAdminFactor = "admin-factor"

// AdminFactor is one second factor of an administrator.
type AdminFactor struct {
	ID      int64
	AdminID int64
	Kind    string // FactorTOTP or FactorPasskey
	Name    string
	// Secret is sealed by the caller: the TOTP secret, or the WebAuthn
	// credential record.
	Secret       string
	CredentialID string // WebAuthn credential ID (base64url); "" for TOTP
	CreatedMS    int64
	LastUsedMS   int64
	LastStep     int64 // last TOTP time step used
}

const factorCols = `id, admin_id, kind, name, secret, credential_id, created_ms, last_used_ms, last_step`

func scanFactor(row interface{ Scan(...any) error }) (AdminFactor, error) {
	var f AdminFactor
	err := row.Scan(&f.ID, &f.AdminID, &f.Kind, &f.Name, &f.Secret, &f.CredentialID, &f.CreatedMS, &f.LastUsedMS, &f.LastStep)
	if errors.Is(err, sql.ErrNoRows) {
		return f, ErrNotFound
	}
	return f, err
}

// AdminFactors lists an administrator's second factors, oldest first.
func (db *DB) AdminFactors(ctx context.Context, adminID int64) ([]AdminFactor, error) {
	rows, err := db.sql.QueryContext(ctx, `SELECT `+factorCols+` FROM admin_factors WHERE admin_id = ? ORDER BY id`, adminID)
	if err != nil {
		return nil, fmt.Errorf("store: admin factors: %w", err)
	}
	defer rows.Close()
	var out []AdminFactor
	for rows.Next() {
		f, err := scanFactor(rows)
		if err != nil {
			return nil, fmt.Errorf("store: admin factors: %w", err)
		}
		out = append(out, f)
	}
	return out, rows.Err()
}

// CountAdminFactors counts an administrator's second factors inside a
// transaction.
func (tx *Tx) CountAdminFactors(ctx context.Context, adminID int64) (int, error) {
	var n int
	if err := tx.tx.QueryRowContext(ctx, `SELECT count(*) FROM admin_factors WHERE admin_id = ?`, adminID).Scan(&n); err != nil {
		return 0, fmt.Errorf("store: count admin factors: %w", err)
	}
	return n, nil
}

// InsertAdminFactor adds a second factor and returns its ID; a WebAuthn
// credential registered already is ErrDuplicate.
func (tx *Tx) InsertAdminFactor(ctx context.Context, f AdminFactor) (int64, error) {
	var id int64
	err := tx.tx.QueryRowContext(ctx, `INSERT INTO admin_factors (admin_id, kind, name, secret, credential_id, created_ms, last_used_ms, last_step)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`, f.AdminID, f.Kind, f.Name, f.Secret, f.CredentialID, f.CreatedMS, f.LastUsedMS, f.LastStep).Scan(&id)
	if err != nil {
		if tx.db.engine.isUnique(err) {
			return 0, ErrDuplicate
		}
		return 0, fmt.Errorf("store: insert admin factor: %w", err)
	}
	return id, nil
}

// AdminFactor reads one factor of an administrator inside a transaction.
func (tx *Tx) AdminFactor(ctx context.Context, adminID, id int64) (AdminFactor, error) {
	f, err := scanFactor(tx.tx.QueryRowContext(ctx, `SELECT `+factorCols+` FROM admin_factors WHERE id = ? AND admin_id = ?`, id, adminID))
	if err != nil && !errors.Is(err, ErrNotFound) {
		err = fmt.Errorf("store: admin factor: %w", err)
	}
	return f, err
}

// DeleteAdminFactor removes one factor of an administrator.
func (tx *Tx) DeleteAdminFactor(ctx context.Context, adminID, id int64) error {
	res, err := tx.tx.ExecContext(ctx, `DELETE FROM admin_factors WHERE id = ? AND admin_id = ?`, id, adminID)
	if err != nil {
		return fmt.Errorf("store: delete admin factor: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

// DeleteAdminFactors removes every factor and recovery code of an
// administrator and returns how many factors there were.
func (tx *Tx) DeleteAdminFactors(ctx context.Context, adminID int64) (int64, error) {
	res, err := tx.tx.ExecContext(ctx, `DELETE FROM admin_factors WHERE admin_id = ?`, adminID)
	if err != nil {
		return 0, fmt.Errorf("store: delete admin factors: %w", err)
	}
	n, _ := res.RowsAffected()
	if _, err := tx.tx.ExecContext(ctx, `DELETE FROM admin_recovery_codes WHERE admin_id = ?`, adminID); err != nil {
		return 0, fmt.Errorf("store: delete recovery codes: %w", err)
	}
	return n, nil
}

// UseTOTPFactorStep records step as used by a TOTP factor; false when that
// step or a later one was used already (the code was seen before).
func (tx *Tx) UseTOTPFactorStep(ctx context.Context, id, step, nowMS int64) (bool, error) {
	res, err := tx.tx.ExecContext(ctx, `UPDATE admin_factors SET last_step = ?, last_used_ms = ? WHERE id = ? AND kind = 'totp' AND last_step < ?`,
		step, nowMS, id, step)
	if err != nil {
		return false, fmt.Errorf("store: use totp step: %w", err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// UpdatePasskeyFactor stores a passkey's credential record after a sign-in
// (its sign count moves) and the time it was used.
func (tx *Tx) UpdatePasskeyFactor(ctx context.Context, id int64, secret string, nowMS int64) error {
	if _, err := tx.tx.ExecContext(ctx, `UPDATE admin_factors SET secret = ?, last_used_ms = ? WHERE id = ? AND kind = 'passkey'`,
		secret, nowMS, id); err != nil {
		return fmt.Errorf("store: update passkey: %w", err)
	}
	return nil
}

// ReplaceRecoveryCodes voids an administrator's recovery codes and stores
// new ones (their hashes).
func (tx *Tx) ReplaceRecoveryCodes(ctx context.Context, adminID int64, hashes []string, nowMS int64) error {
	if _, err := tx.tx.ExecContext(ctx, `DELETE FROM admin_recovery_codes WHERE admin_id = ?`, adminID); err != nil {
		return fmt.Errorf("store: replace recovery codes: %w", err)
	}
	for _, h := range hashes {
		if _, err := tx.tx.ExecContext(ctx, `INSERT INTO admin_recovery_codes (admin_id, code_hash, created_ms) VALUES (?, ?, ?)`,
			adminID, h, nowMS); err != nil {
			return fmt.Errorf("store: replace recovery codes: %w", err)
		}
	}
	return nil
}

// UseRecoveryCode marks an unused recovery code used; false when the
// administrator has no such unused code.
func (tx *Tx) UseRecoveryCode(ctx context.Context, adminID int64, hash string, nowMS int64) (bool, error) {
	res, err := tx.tx.ExecContext(ctx, `UPDATE admin_recovery_codes SET used_ms = ? WHERE admin_id = ? AND code_hash = ? AND used_ms IS NULL`,
		nowMS, adminID, hash)
	if err != nil {
		return false, fmt.Errorf("store: use recovery code: %w", err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// RecoveryCodesLeft counts an administrator's unused recovery codes.
func (db *DB) RecoveryCodesLeft(ctx context.Context, adminID int64) (int, error) {
	var n int
	if err := db.sql.QueryRowContext(ctx, `SELECT count(*) FROM admin_recovery_codes WHERE admin_id = ? AND used_ms IS NULL`,
		adminID).Scan(&n); err != nil {
		return 0, fmt.Errorf("store: recovery codes left: %w", err)
	}
	return n, nil
}

// The stages of a half-signed-in administrator (admin_signins.stage).
const (
	StageFactor = "factor" // the second factor is asked for
	StageEnrol  = "enrol"  // a second factor must be enrolled first
)

// AdminSignIn is the half-signed-in state of an administrator.
type AdminSignIn struct {
	IDHash    string
	AdminID   int64
	Stage     string
	CreatedMS int64
	ExpiresMS int64
}

// InsertAdminSignIn records a half-signed-in state.
func (db *DB) InsertAdminSignIn(ctx context.Context, s AdminSignIn) error {
	if _, err := db.sql.ExecContext(ctx, `INSERT INTO admin_signins (id_hash, admin_id, stage, created_ms, expires_ms) VALUES (?, ?, ?, ?, ?)`,
		s.IDHash, s.AdminID, s.Stage, s.CreatedMS, s.ExpiresMS); err != nil {
		return fmt.Errorf("store: insert admin sign-in: %w", err)
	}
	return nil
}

// AdminSignInByHash reads a half-signed-in state and its administrator;
// ErrNotFound when there is none.
func (db *DB) AdminSignInByHash(ctx context.Context, idHash string) (AdminSignIn, Admin, error) {
	s := AdminSignIn{IDHash: idHash}
	var a Admin
	var dis int
	err := db.sql.QueryRowContext(ctx, `SELECT s.admin_id, s.stage, s.created_ms, s.expires_ms,
		a.id, a.email, a.name, a.role, a.password_hash, a.disabled, a.created_ms, a.updated_ms
		FROM admin_signins s JOIN admins a ON a.id = s.admin_id WHERE s.id_hash = ?`, idHash).
		Scan(&s.AdminID, &s.Stage, &s.CreatedMS, &s.ExpiresMS, &a.ID, &a.Email, &a.Name, &a.Role, &a.PasswordHash, &dis, &a.CreatedMS, &a.UpdatedMS)
	a.Disabled = dis == 1
	if errors.Is(err, sql.ErrNoRows) {
		return s, a, ErrNotFound
	}
	if err != nil {
		return s, a, fmt.Errorf("store: admin sign-in: %w", err)
	}
	return s, a, nil
}

// DeleteAdminSignIn ends a half-signed-in state; false when it was gone
// already (so of two concurrent second steps only one finishes).
func (tx *Tx) DeleteAdminSignIn(ctx context.Context, idHash string) (bool, error) {
	res, err := tx.tx.ExecContext(ctx, `DELETE FROM admin_signins WHERE id_hash = ?`, idHash)
	if err != nil {
		return false, fmt.Errorf("store: delete admin sign-in: %w", err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// DeleteAdminSignIn ends a half-signed-in state outside a transaction.
func (db *DB) DeleteAdminSignIn(ctx context.Context, idHash string) error {
	if _, err := db.sql.ExecContext(ctx, `DELETE FROM admin_signins WHERE id_hash = ?`, idHash); err != nil {
		return fmt.Errorf("store: delete admin sign-in: %w", err)
	}
	return nil
}

// DeleteAdminSignInsOf ends every half-signed-in state of an administrator.
func (tx *Tx) DeleteAdminSignInsOf(ctx context.Context, adminID int64) error {
	if _, err := tx.tx.ExecContext(ctx, `DELETE FROM admin_signins WHERE admin_id = ?`, adminID); err != nil {
		return fmt.Errorf("store: delete admin sign-ins: %w", err)
	}
	return nil
}

// DeleteExpiredAdminSignIns removes half-signed-in states past their expiry.
func (db *DB) DeleteExpiredAdminSignIns(ctx context.Context, nowMS int64) (int64, error) {
	res, err := db.sql.ExecContext(ctx, `DELETE FROM admin_signins WHERE expires_ms <= ?`, nowMS)
	if err != nil {
		return 0, fmt.Errorf("store: delete expired admin sign-ins: %w", err)
	}
	return res.RowsAffected()
}

// InsertSession records a new session inside a transaction (the end of a
// sign-in that also deletes its half-signed-in state).
func (tx *Tx) InsertSession(ctx context.Context, s Session) error {
	tx.sessions = true
	_, err := tx.tx.ExecContext(ctx, `INSERT INTO admin_sessions (id_hash, admin_id, created_ms, last_seen_ms, client_ip, user_agent)
		VALUES (?, ?, ?, ?, ?, ?)`, s.IDHash, s.AdminID, s.CreatedMS, s.LastSeenMS, s.ClientIP, s.UserAgent)
	if err != nil {
		return fmt.Errorf("store: insert session: %w", err)
	}
	return nil
}

// InsertAdminResetToken stores the hash of a one-time reset link of an
// administrator, voiding the earlier ones.
func (tx *Tx) InsertAdminResetToken(ctx context.Context, hash string, adminID, createdMS, expiresMS int64) error {
	if _, err := tx.tx.ExecContext(ctx, `DELETE FROM admin_reset_tokens WHERE admin_id = ?`, adminID); err != nil {
		return fmt.Errorf("store: insert admin reset token: %w", err)
	}
	if _, err := tx.tx.ExecContext(ctx, `INSERT INTO admin_reset_tokens (token_hash, admin_id, created_ms, expires_ms) VALUES (?, ?, ?, ?)`,
		hash, adminID, createdMS, expiresMS); err != nil {
		return fmt.Errorf("store: insert admin reset token: %w", err)
	}
	return nil
}

// AdminResetToken returns the administrator of an unused, unexpired reset
// token; ErrNotFound otherwise.
func (db *DB) AdminResetToken(ctx context.Context, hash string, nowMS int64) (int64, error) {
	var id int64
	err := db.sql.QueryRowContext(ctx, `SELECT admin_id FROM admin_reset_tokens WHERE token_hash = ? AND used_ms IS NULL AND expires_ms > ?`,
		hash, nowMS).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, ErrNotFound
	}
	if err != nil {
		return 0, fmt.Errorf("store: admin reset token: %w", err)
	}
	return id, nil
}

// UseAdminResetToken marks a valid token used and returns its
// administrator; ErrNotFound when it was unknown, used or expired.
func (tx *Tx) UseAdminResetToken(ctx context.Context, hash string, nowMS int64) (int64, error) {
	var id int64
	err := tx.tx.QueryRowContext(ctx, `SELECT admin_id FROM admin_reset_tokens WHERE token_hash = ? AND used_ms IS NULL AND expires_ms > ?`,
		hash, nowMS).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, ErrNotFound
	}
	if err != nil {
		return 0, fmt.Errorf("store: use admin reset token: %w", err)
	}
	if _, err := tx.tx.ExecContext(ctx, `UPDATE admin_reset_tokens SET used_ms = ? WHERE token_hash = ?`, nowMS, hash); err != nil {
		return 0, fmt.Errorf("store: use admin reset token: %w", err)
	}
	return id, nil
}

// SetEnrolRequired makes an administrator enrol a second factor at the next
// sign-in (on), or forgets that (off).
func (tx *Tx) SetEnrolRequired(ctx context.Context, adminID int64, on bool, nowMS int64) error {
	var err error
	if on {
		_, err = tx.tx.ExecContext(ctx, `INSERT INTO admin_enrol_required (admin_id, since_ms) VALUES (?, ?)
			ON CONFLICT (admin_id) DO UPDATE SET since_ms = excluded.since_ms`, adminID, nowMS)
	} else {
		_, err = tx.tx.ExecContext(ctx, `DELETE FROM admin_enrol_required WHERE admin_id = ?`, adminID)
	}
	if err != nil {
		return fmt.Errorf("store: set enrol required: %w", err)
	}
	return nil
}

// EnrolRequired reports whether an administrator must enrol again.
func (db *DB) EnrolRequired(ctx context.Context, adminID int64) (bool, error) {
	var n int
	if err := db.sql.QueryRowContext(ctx, `SELECT count(*) FROM admin_enrol_required WHERE admin_id = ?`, adminID).Scan(&n); err != nil {
		return false, fmt.Errorf("store: enrol required: %w", err)
	}
	return n > 0, nil
}
