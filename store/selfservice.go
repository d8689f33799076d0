package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// Flow is the server-side state of one self-service attempt.
type Flow struct {
	ID          string
	Kind        string // reset, unlock, register
	BrowserHash string
	Login       string
	UserID      string
	UserDN      string
	// Account names the directory account the flow resolved to, for audit
	// rows; empty when nothing matched Login.
	Account       string
	Eligible      bool
	Verified      string // JSON array of verified methods
	State         string // JSON object
	CorrelationID string
	CreatedMS     int64
	ExpiresMS     int64
	DoneMS        int64
}

const flowCols = `id, kind, browser_hash, login, user_id, user_dn, account, eligible, verified, state, correlation_id, created_ms, expires_ms, coalesce(done_ms, 0)`

// InsertFlow records a new flow.
func (tx *Tx) InsertFlow(ctx context.Context, f Flow) error {
	_, err := tx.tx.ExecContext(ctx, `INSERT INTO sspr_flows (id, kind, browser_hash, login, user_id, user_dn, account, eligible, verified, state,
		correlation_id, created_ms, expires_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		f.ID, f.Kind, f.BrowserHash, f.Login, f.UserID, f.UserDN, f.Account, boolInt(f.Eligible), orJSON(f.Verified, "[]"), orJSON(f.State, "{}"),
		f.CorrelationID, f.CreatedMS, f.ExpiresMS)
	if err != nil {
		return fmt.Errorf("store: insert flow: %w", err)
	}
	return nil
}

// Flow reads a flow by ID.
func (db *DB) Flow(ctx context.Context, id string) (Flow, error) { return readFlow(ctx, db.sql, id) }

// Flow reads a flow by ID inside the transaction that will update it, so no
// other writer changes it in between (transactions take the write lock when
// they begin).
func (tx *Tx) Flow(ctx context.Context, id string) (Flow, error) { return readFlow(ctx, tx.tx, id) }

func readFlow(ctx context.Context, q querier, id string) (Flow, error) {
	var f Flow
	var eligible int
	err := q.QueryRowContext(ctx, `SELECT `+flowCols+` FROM sspr_flows WHERE id = ?`, id).Scan(&f.ID, &f.Kind, &f.BrowserHash,
		&f.Login, &f.UserID, &f.UserDN, &f.Account, &eligible, &f.Verified, &f.State, &f.CorrelationID, &f.CreatedMS, &f.ExpiresMS, &f.DoneMS)
	if errors.Is(err, sql.ErrNoRows) {
		return f, ErrNotFound
	}
	if err != nil {
		return f, fmt.Errorf("store: flow: %w", err)
	}
	f.Eligible = eligible == 1
	return f, nil
}

// UpdateFlow writes a flow's verified methods, state, expiry and completion.
func (tx *Tx) UpdateFlow(ctx context.Context, f Flow) error {
	var done any
	if f.DoneMS != 0 {
		done = f.DoneMS
	}
	_, err := tx.tx.ExecContext(ctx, `UPDATE sspr_flows SET verified = ?, state = ?, expires_ms = ?, done_ms = ? WHERE id = ?`,
		orJSON(f.Verified, "[]"), orJSON(f.State, "{}"), f.ExpiresMS, done, f.ID)
	if err != nil {
		return fmt.Errorf("store: update flow: %w", err)
	}
	return nil
}

// DeleteExpiredFlows removes flows (and their codes) that ended before ms.
func (db *DB) DeleteExpiredFlows(ctx context.Context, ms int64) (int64, error) {
	res, err := db.sql.ExecContext(ctx, `DELETE FROM sspr_flows WHERE expires_ms < ?`, ms)
	if err != nil {
		return 0, fmt.Errorf("store: delete expired flows: %w", err)
	}
	return res.RowsAffected()
}

// Code is a one-time verification code.
type Code struct {
	ID          int64
	FlowID      string
	Purpose     string
	UserID      string
	Destination string
	CodeHash    string
	CreatedMS   int64
	ExpiresMS   int64
	Tries       int
	UsedMS      int64
	Voided      bool
}

// InsertCode voids the flow's earlier codes for the same purpose and stores a new one.
func (tx *Tx) InsertCode(ctx context.Context, c Code) error {
	if _, err := tx.tx.ExecContext(ctx, `UPDATE sspr_codes SET voided = 1 WHERE flow_id = ? AND purpose = ? AND voided = 0`, c.FlowID, c.Purpose); err != nil {
		return fmt.Errorf("store: void codes: %w", err)
	}
	_, err := tx.tx.ExecContext(ctx, `INSERT INTO sspr_codes (flow_id, purpose, user_id, destination, code_hash, created_ms, expires_ms)
		VALUES (?, ?, ?, ?, ?, ?, ?)`, c.FlowID, c.Purpose, c.UserID, c.Destination, c.CodeHash, c.CreatedMS, c.ExpiresMS)
	if err != nil {
		return fmt.Errorf("store: insert code: %w", err)
	}
	return nil
}

// LatestCode returns the newest code of a flow for a purpose.
func (tx *Tx) LatestCode(ctx context.Context, flowID, purpose string) (Code, error) {
	var c Code
	var used sql.NullInt64
	var voided int
	err := tx.tx.QueryRowContext(ctx, `SELECT id, flow_id, purpose, user_id, destination, code_hash, created_ms, expires_ms, tries, used_ms, voided
		FROM sspr_codes WHERE flow_id = ? AND purpose = ? ORDER BY id DESC LIMIT 1`, flowID, purpose).Scan(&c.ID, &c.FlowID, &c.Purpose,
		&c.UserID, &c.Destination, &c.CodeHash, &c.CreatedMS, &c.ExpiresMS, &c.Tries, &used, &voided)
	if errors.Is(err, sql.ErrNoRows) {
		return c, ErrNotFound
	}
	if err != nil {
		return c, fmt.Errorf("store: latest code: %w", err)
	}
	c.UsedMS, c.Voided = used.Int64, voided == 1
	return c, nil
}

// MarkCode records one try of a code and, when used is non-zero, its use.
func (tx *Tx) MarkCode(ctx context.Context, id int64, usedMS int64) error {
	var used any
	if usedMS != 0 {
		used = usedMS
	}
	_, err := tx.tx.ExecContext(ctx, `UPDATE sspr_codes SET tries = tries + 1, used_ms = coalesce(used_ms, ?) WHERE id = ?`, used, id)
	if err != nil {
		return fmt.Errorf("store: mark code: %w", err)
	}
	return nil
}

// CountCodes counts codes sent since sinceMS to a user (column user_id) or a
// destination (column destination).
func (db *DB) CountCodes(ctx context.Context, byDestination bool, key string, sinceMS int64) (int, error) {
	return countCodes(ctx, db.sql, byDestination, key, sinceMS)
}

// CountCodes counts codes as DB.CountCodes does, inside a transaction that
// may then insert one, so two requests cannot both pass the limit.
func (tx *Tx) CountCodes(ctx context.Context, byDestination bool, key string, sinceMS int64) (int, error) {
	return countCodes(ctx, tx.tx, byDestination, key, sinceMS)
}

func countCodes(ctx context.Context, q querier, byDestination bool, key string, sinceMS int64) (int, error) {
	col := "user_id"
	if byDestination {
		col = "destination"
	}
	var n int
	err := q.QueryRowContext(ctx, `SELECT count(*) FROM sspr_codes WHERE `+col+` = ? AND created_ms >= ?`, key, sinceMS).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("store: count codes: %w", err)
	}
	return n, nil
}

// Method is a registered verification method.
type Method struct {
	UserID      string
	Method      string
	Secret      string // sealed
	ConfirmedMS int64
	// LastStep is the last authenticator time step used (app only): the one
	// that confirmed the app at registration, then each one used to verify.
	LastStep int64
}

// PutMethod registers (or replaces) a method. A replaced app starts from the
// time step that confirmed it, so that code cannot be used again.
func (tx *Tx) PutMethod(ctx context.Context, m Method) error {
	_, err := tx.tx.ExecContext(ctx, `INSERT INTO sspr_methods (user_id, method, secret, confirmed_ms, last_step) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (user_id, method) DO UPDATE SET secret = excluded.secret, confirmed_ms = excluded.confirmed_ms, last_step = excluded.last_step`,
		m.UserID, m.Method, m.Secret, m.ConfirmedMS, m.LastStep)
	if err != nil {
		return fmt.Errorf("store: put method: %w", err)
	}
	return nil
}

// ConfirmRegistrations marks every method and the registered number of a
// user as confirmed at ms, and reports how many there were.
func (tx *Tx) ConfirmRegistrations(ctx context.Context, userID string, ms int64) (int64, error) {
	var n int64
	for _, q := range []string{`UPDATE sspr_methods SET confirmed_ms = ? WHERE user_id = ?`, `UPDATE sspr_phones SET confirmed_ms = ? WHERE user_id = ?`} {
		res, err := tx.tx.ExecContext(ctx, q, ms, userID)
		if err != nil {
			return 0, fmt.Errorf("store: confirm registrations: %w", err)
		}
		k, err := res.RowsAffected()
		if err != nil {
			return 0, fmt.Errorf("store: confirm registrations: %w", err)
		}
		n += k
	}
	return n, nil
}

// DeleteMethod removes a registered method.
func (tx *Tx) DeleteMethod(ctx context.Context, userID, method string) error {
	if _, err := tx.tx.ExecContext(ctx, `DELETE FROM sspr_methods WHERE user_id = ? AND method = ?`, userID, method); err != nil {
		return fmt.Errorf("store: delete method: %w", err)
	}
	return nil
}

// Methods lists a user's registered methods.
func (db *DB) Methods(ctx context.Context, userID string) ([]Method, error) {
	rows, err := db.sql.QueryContext(ctx, `SELECT user_id, method, secret, confirmed_ms, last_step FROM sspr_methods WHERE user_id = ? ORDER BY method`, userID)
	if err != nil {
		return nil, fmt.Errorf("store: methods: %w", err)
	}
	defer rows.Close()
	var out []Method
	for rows.Next() {
		var m Method
		if err := rows.Scan(&m.UserID, &m.Method, &m.Secret, &m.ConfirmedMS, &m.LastStep); err != nil {
			return nil, fmt.Errorf("store: methods: %w", err)
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// Failures counts a user's failed verifications since sinceMS: settled ones
// (wrong answers) and pending ones (reservations whose guess is still being
// evaluated).
func (tx *Tx) Failures(ctx context.Context, userID string, sinceMS int64) (settled, pending int, err error) {
	err = tx.tx.QueryRowContext(ctx, `SELECT coalesce(sum(CASE WHEN pending = 0 THEN 1 ELSE 0 END), 0), coalesce(sum(pending), 0) FROM sspr_failures
		WHERE user_id = ? AND time_ms >= ?`, userID, sinceMS).Scan(&settled, &pending)
	if err != nil {
		return 0, 0, fmt.Errorf("store: count failures: %w", err)
	}
	return settled, pending, nil
}

// ReserveFailure records a pending failure at ms before a guess is evaluated
// and returns its ID, for SettleFailure or ReleaseFailure.
func (tx *Tx) ReserveFailure(ctx context.Context, userID string, ms int64) (int64, error) {
	var id int64
	err := tx.tx.QueryRowContext(ctx, `INSERT INTO sspr_failures (user_id, time_ms, pending) VALUES (?, ?, 1) RETURNING rowid`, userID, ms).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("store: reserve failure: %w", err)
	}
	return id, nil
}

// SettleFailure turns a reservation into a failure: the guess was wrong.
func (tx *Tx) SettleFailure(ctx context.Context, id int64) error {
	if _, err := tx.tx.ExecContext(ctx, `UPDATE sspr_failures SET pending = 0 WHERE rowid = ?`, id); err != nil {
		return fmt.Errorf("store: settle failure: %w", err)
	}
	return nil
}

// ReleaseFailure removes a reservation: the guess was right, or was never
// evaluated.
func (tx *Tx) ReleaseFailure(ctx context.Context, id int64) error {
	if _, err := tx.tx.ExecContext(ctx, `DELETE FROM sspr_failures WHERE rowid = ? AND pending = 1`, id); err != nil {
		return fmt.Errorf("store: release failure: %w", err)
	}
	return nil
}

// Block keeps a user out of self-service until untilMS. The failures that
// led to it are kept: wiping them would let the next five guesses start
// counting afresh.
func (tx *Tx) Block(ctx context.Context, userID string, untilMS int64) error {
	_, err := tx.tx.ExecContext(ctx, `INSERT INTO sspr_blocks (user_id, until_ms) VALUES (?, ?)
		ON CONFLICT (user_id) DO UPDATE SET until_ms = CASE WHEN excluded.until_ms > sspr_blocks.until_ms
			THEN excluded.until_ms ELSE sspr_blocks.until_ms END`, userID, untilMS)
	if err != nil {
		return fmt.Errorf("store: block: %w", err)
	}
	return nil
}

// Unblock ends a user's block and forgets their failed verifications, as
// the helpdesk's "lift the block" does.
func (tx *Tx) Unblock(ctx context.Context, userID string) error {
	if _, err := tx.tx.ExecContext(ctx, `DELETE FROM sspr_blocks WHERE user_id = ?`, userID); err != nil {
		return fmt.Errorf("store: unblock: %w", err)
	}
	if _, err := tx.tx.ExecContext(ctx, `DELETE FROM sspr_failures WHERE user_id = ?`, userID); err != nil {
		return fmt.Errorf("store: unblock: %w", err)
	}
	return nil
}

// BlockedUntil returns when a user's block ends (0 when not blocked).
func (db *DB) BlockedUntil(ctx context.Context, userID string) (int64, error) {
	return blockedUntil(ctx, db.sql, userID)
}

// BlockedUntil reads a user's block inside a transaction.
func (tx *Tx) BlockedUntil(ctx context.Context, userID string) (int64, error) {
	return blockedUntil(ctx, tx.tx, userID)
}

func blockedUntil(ctx context.Context, q querier, userID string) (int64, error) {
	var until int64
	err := q.QueryRowContext(ctx, `SELECT until_ms FROM sspr_blocks WHERE user_id = ?`, userID).Scan(&until)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("store: blocked until: %w", err)
	}
	return until, nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func orJSON(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// UseTOTPStep records that a user's authenticator code for time step step
// was used; it reports false when that step or a later one was used before.
func (tx *Tx) UseTOTPStep(ctx context.Context, userID string, step int64) (bool, error) {
	res, err := tx.tx.ExecContext(ctx, `UPDATE sspr_methods SET last_step = ? WHERE user_id = ? AND method = 'app' AND last_step < ?`,
		step, userID, step)
	if err != nil {
		return false, fmt.Errorf("store: use totp step: %w", err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}
