package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// Campaign run states.
const (
	CampaignSending  = "sending"
	CampaignFinished = "finished"
	CampaignStopped  = "stopped"
)

// Campaign queue states.
const (
	QueueQueued  = "queued"
	QueueSending = "sending"
	QueueSent    = "sent"
	QueueSkipped = "skipped"
	QueueFailed  = "failed"
)

// CampaignRun is one run of the registration campaign, with the counts of
// its queue by state.
type CampaignRun struct {
	ID                                     int64
	State                                  string
	StartedMS, EndedMS                     int64
	StartedBy                              string
	InScope, NotRegistered, ReconfirmDue   int
	Queued, Sending, Sent, Skipped, Failed int
}

// Total is the number of people the run was to mail.
func (r CampaignRun) Total() int { return r.Queued + r.Sending + r.Sent + r.Skipped + r.Failed }

// CampaignItem is one person of a run's queue.
type CampaignItem struct {
	RunID       int64
	UserID      string
	Login, Name string
	Email       string
	Why         string // "register" or "reconfirm"
	State       string
	Reason      string
}

// ErrCampaignRunning means a run is sending already.
var ErrCampaignRunning = errors.New("store: a campaign run is under way")

// StartCampaignRun records a new run in the sending state with its queue
// (mailed in the order given); ErrCampaignRunning when one is sending.
func (tx *Tx) StartCampaignRun(ctx context.Context, r CampaignRun, items []CampaignItem) (int64, error) {
	var busy int
	if err := tx.tx.QueryRowContext(ctx, `SELECT count(*) FROM campaign_runs WHERE state = 'sending'`).Scan(&busy); err != nil {
		return 0, fmt.Errorf("store: start campaign run: %w", err)
	}
	if busy > 0 {
		return 0, ErrCampaignRunning
	}
	var id int64
	if err := tx.tx.QueryRowContext(ctx, `INSERT INTO campaign_runs (state, started_ms, started_by, in_scope, not_registered, reconfirm_due)
		VALUES ('sending', ?, ?, ?, ?, ?) RETURNING id`, r.StartedMS, r.StartedBy, r.InScope, r.NotRegistered, r.ReconfirmDue).Scan(&id); err != nil {
		return 0, fmt.Errorf("store: start campaign run: %w", err)
	}
	for i, it := range items {
		if _, err := tx.tx.ExecContext(ctx, `INSERT INTO campaign_queue (run_id, seq, user_id, login, name, email, why, updated_ms)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run_id, user_id) DO NOTHING`,
			id, i, it.UserID, it.Login, it.Name, it.Email, it.Why, r.StartedMS); err != nil {
			return 0, fmt.Errorf("store: queue campaign mail: %w", err)
		}
	}
	return id, nil
}

const runColumns = `r.id, r.state, r.started_ms, r.ended_ms, r.started_by, r.in_scope, r.not_registered, r.reconfirm_due,
	coalesce(sum(CASE WHEN q.state = 'queued' THEN 1 ELSE 0 END), 0),
	coalesce(sum(CASE WHEN q.state = 'sending' THEN 1 ELSE 0 END), 0),
	coalesce(sum(CASE WHEN q.state = 'sent' THEN 1 ELSE 0 END), 0),
	coalesce(sum(CASE WHEN q.state = 'skipped' THEN 1 ELSE 0 END), 0),
	coalesce(sum(CASE WHEN q.state = 'failed' THEN 1 ELSE 0 END), 0)`

const runGroup = ` GROUP BY r.id, r.state, r.started_ms, r.ended_ms, r.started_by, r.in_scope, r.not_registered, r.reconfirm_due`

type rowScanner interface{ Scan(dest ...any) error }

func scanRun(s rowScanner) (CampaignRun, error) {
	var r CampaignRun
	err := s.Scan(&r.ID, &r.State, &r.StartedMS, &r.EndedMS, &r.StartedBy, &r.InScope, &r.NotRegistered, &r.ReconfirmDue,
		&r.Queued, &r.Sending, &r.Sent, &r.Skipped, &r.Failed)
	return r, err
}

// LatestCampaignRun is the newest run with its counts; ErrNotFound when
// there was none.
func (db *DB) LatestCampaignRun(ctx context.Context) (CampaignRun, error) {
	return latestRun(ctx, db.sql)
}

// LatestCampaignRun is DB.LatestCampaignRun inside a transaction.
func (tx *Tx) LatestCampaignRun(ctx context.Context) (CampaignRun, error) {
	return latestRun(ctx, tx.tx)
}

func latestRun(ctx context.Context, q querier) (CampaignRun, error) {
	r, err := scanRun(q.QueryRowContext(ctx, `SELECT `+runColumns+` FROM campaign_runs r LEFT JOIN campaign_queue q ON q.run_id = r.id
		WHERE r.id = (SELECT max(id) FROM campaign_runs)`+runGroup))
	if errors.Is(err, sql.ErrNoRows) {
		return r, ErrNotFound
	}
	if err != nil {
		return r, fmt.Errorf("store: latest campaign run: %w", err)
	}
	return r, nil
}

// EndCampaignRun moves run id from sending to state (finished or stopped)
// and forgets the addresses of its queue; false when it was not sending.
func (tx *Tx) EndCampaignRun(ctx context.Context, id int64, state string, nowMS int64) (bool, error) {
	res, err := tx.tx.ExecContext(ctx, `UPDATE campaign_runs SET state = ?, ended_ms = ? WHERE id = ? AND state = 'sending'`, state, nowMS, id)
	if err != nil {
		return false, fmt.Errorf("store: end campaign run: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil || n == 0 {
		return false, err
	}
	if _, err := tx.tx.ExecContext(ctx, `UPDATE campaign_queue SET email = '' WHERE run_id = ?`, id); err != nil {
		return false, fmt.Errorf("store: end campaign run: %w", err)
	}
	return true, nil
}

// ClaimCampaignItem takes the next queued person of run id, if the run is
// still sending, and marks them sending: no other worker gets them. ok is
// false when nobody is left (or the run ended).
func (tx *Tx) ClaimCampaignItem(ctx context.Context, id int64, nowMS int64) (it CampaignItem, ok bool, err error) {
	err = tx.tx.QueryRowContext(ctx, `SELECT q.run_id, q.user_id, q.login, q.name, q.email, q.why FROM campaign_queue q
		JOIN campaign_runs r ON r.id = q.run_id AND r.state = 'sending'
		WHERE q.run_id = ? AND q.state = 'queued' ORDER BY q.seq LIMIT 1`, id).
		Scan(&it.RunID, &it.UserID, &it.Login, &it.Name, &it.Email, &it.Why)
	if errors.Is(err, sql.ErrNoRows) {
		return it, false, nil
	}
	if err != nil {
		return it, false, fmt.Errorf("store: claim campaign mail: %w", err)
	}
	res, err := tx.tx.ExecContext(ctx, `UPDATE campaign_queue SET state = 'sending', updated_ms = ? WHERE run_id = ? AND user_id = ? AND state = 'queued'`,
		nowMS, id, it.UserID)
	if err != nil {
		return it, false, fmt.Errorf("store: claim campaign mail: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return it, false, fmt.Errorf("store: claim campaign mail: %w", err)
	}
	it.State = QueueSending
	return it, n == 1, nil
}

// SettleCampaignItem records how a claimed person ended (sent, skipped or
// failed, with reason) and forgets their address.
func (tx *Tx) SettleCampaignItem(ctx context.Context, runID int64, userID, state, reason string, nowMS int64) error {
	if _, err := tx.tx.ExecContext(ctx, `UPDATE campaign_queue SET state = ?, reason = ?, email = '', updated_ms = ?
		WHERE run_id = ? AND user_id = ? AND state = 'sending'`, state, reason, nowMS, runID, userID); err != nil {
		return fmt.Errorf("store: settle campaign mail: %w", err)
	}
	return nil
}

// ReleaseCampaignItem puts a claimed person back in the queue: their mail
// was not sent, and the run waits for what stopped it.
func (tx *Tx) ReleaseCampaignItem(ctx context.Context, runID int64, userID string, nowMS int64) error {
	if _, err := tx.tx.ExecContext(ctx, `UPDATE campaign_queue SET state = 'queued', updated_ms = ?
		WHERE run_id = ? AND user_id = ? AND state = 'sending'`, nowMS, runID, userID); err != nil {
		return fmt.Errorf("store: release campaign mail: %w", err)
	}
	return nil
}

// FailStaleCampaignItems marks the people of run id claimed before
// beforeMS and never settled (the process stopped while mailing them) as
// failed with reason: their mail may or may not have gone, and is not sent
// again in this run.
func (tx *Tx) FailStaleCampaignItems(ctx context.Context, id, beforeMS, nowMS int64, reason string) (int64, error) {
	res, err := tx.tx.ExecContext(ctx, `UPDATE campaign_queue SET state = 'failed', reason = ?, email = '', updated_ms = ?
		WHERE run_id = ? AND state = 'sending' AND updated_ms < ?`, reason, nowMS, id, beforeMS)
	if err != nil {
		return 0, fmt.Errorf("store: fail stale campaign mails: %w", err)
	}
	return res.RowsAffected()
}

// CampaignItems lists up to limit people of run id in their order, for
// the administrators' page and tests.
func (db *DB) CampaignItems(ctx context.Context, id int64, limit int) ([]CampaignItem, error) {
	rows, err := db.sql.QueryContext(ctx, `SELECT run_id, user_id, login, name, email, why, state, reason FROM campaign_queue
		WHERE run_id = ? ORDER BY seq LIMIT ?`, id, limit)
	if err != nil {
		return nil, fmt.Errorf("store: campaign queue: %w", err)
	}
	defer rows.Close()
	var out []CampaignItem
	for rows.Next() {
		var it CampaignItem
		if err := rows.Scan(&it.RunID, &it.UserID, &it.Login, &it.Name, &it.Email, &it.Why, &it.State, &it.Reason); err != nil {
			return nil, fmt.Errorf("store: campaign queue: %w", err)
		}
		out = append(out, it)
	}
	return out, rows.Err()
}

// Registration is what one person registered: how many methods (a
// registered mobile number counts as one) and when the least recently
// confirmed of them was confirmed (0 when none).
type Registration struct {
	Methods     int
	ConfirmedMS int64
}

// registeredConfirmed is every registered method as (user_id, confirmed_ms): the
// methods table, the registered mobile numbers (the "sms" method) and the
// passkeys (one "passkey" method however many, confirmed when the first was
// added).
const registeredConfirmed = `(SELECT user_id, confirmed_ms FROM sspr_methods UNION ALL SELECT user_id, confirmed_ms FROM sspr_phones
	UNION ALL SELECT user_id, min(created_ms) FROM sspr_passkeys GROUP BY user_id) AS registered`

// RegistrationOf reads userID's Registration inside a transaction: the
// campaign decides with it, at the moment it would mail, whether the person
// still needs the mail.
func (tx *Tx) RegistrationOf(ctx context.Context, userID string) (Registration, error) {
	var r Registration
	if err := tx.tx.QueryRowContext(ctx, `SELECT count(*), coalesce(min(confirmed_ms), 0) FROM `+registeredConfirmed+` WHERE user_id = ?`,
		userID).Scan(&r.Methods, &r.ConfirmedMS); err != nil {
		return r, fmt.Errorf("store: registration of a user: %w", err)
	}
	return r, nil
}

// Registrations reads the Registration of everyone who registered
// something, by user ID (the enumeration compares the directory with it).
func (db *DB) Registrations(ctx context.Context) (map[string]Registration, error) {
	rows, err := db.sql.QueryContext(ctx, `SELECT user_id, count(*), min(confirmed_ms) FROM `+registeredConfirmed+` GROUP BY user_id`)
	if err != nil {
		return nil, fmt.Errorf("store: registrations: %w", err)
	}
	defer rows.Close()
	out := map[string]Registration{}
	for rows.Next() {
		var id string
		var r Registration
		if err := rows.Scan(&id, &r.Methods, &r.ConfirmedMS); err != nil {
			return nil, fmt.Errorf("store: registrations: %w", err)
		}
		out[id] = r
	}
	return out, rows.Err()
}

// RegistrationScope is the last enumeration of the people in scope.
type RegistrationScope struct {
	AsOfMS                               int64
	InScope, NotRegistered, ReconfirmDue int
}

// PutRegistrationScope replaces the last enumeration's counts.
func (tx *Tx) PutRegistrationScope(ctx context.Context, s RegistrationScope) error {
	if _, err := tx.tx.ExecContext(ctx, `INSERT INTO registration_scope (id, as_of_ms, in_scope, not_registered, reconfirm_due)
		VALUES (1, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET as_of_ms = excluded.as_of_ms, in_scope = excluded.in_scope,
		not_registered = excluded.not_registered, reconfirm_due = excluded.reconfirm_due`,
		s.AsOfMS, s.InScope, s.NotRegistered, s.ReconfirmDue); err != nil {
		return fmt.Errorf("store: save registration scope: %w", err)
	}
	return nil
}

// RegistrationScope reads the last enumeration's counts; ErrNotFound when
// there was none yet.
func (db *DB) RegistrationScope(ctx context.Context) (RegistrationScope, error) {
	var s RegistrationScope
	err := db.sql.QueryRowContext(ctx, `SELECT as_of_ms, in_scope, not_registered, reconfirm_due FROM registration_scope WHERE id = 1`).
		Scan(&s.AsOfMS, &s.InScope, &s.NotRegistered, &s.ReconfirmDue)
	if errors.Is(err, sql.ErrNoRows) {
		return s, ErrNotFound
	}
	if err != nil {
		return s, fmt.Errorf("store: registration scope: %w", err)
	}
	return s, nil
}
