package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// SMSSend is one code asked for by text message (see migration 0016).
type SMSSend struct {
	UserKey string // keyed hash of the account
	Number  string // keyed hash of the E.164 number; "" when nothing was sent
	Client  string // keyed hash of the client address
	Sent    bool
	TimeMS  int64
}

// SMSQuery names what SMSCounts counts: the sends of one account, number
// and client address since SinceMS, and the portal's real sends since DayMS.
type SMSQuery struct {
	UserKey, Number, Client string
	SinceMS, DayMS          int64
	// NumberDayMS starts the number's daily window.
	NumberDayMS int64
}

// SMSCounts are the counts behind the text message limits.
type SMSCounts struct {
	User, Number, NumberDay, Client, Day int
	// LastUser and LastNumber are the times of the account's and the
	// number's latest sends (0: none), for the cooldown.
	LastUser, LastNumber int64
}

// SMSCounts counts, inside the transaction that may then record a send, so
// that concurrent requests on any replica cannot both pass a limit.
func (tx *Tx) SMSCounts(ctx context.Context, q SMSQuery) (SMSCounts, error) {
	var c SMSCounts
	row := tx.tx.QueryRowContext(ctx, `SELECT count(*), coalesce(max(time_ms), 0) FROM sms_sends WHERE user_key = ? AND time_ms >= ?`, q.UserKey, q.SinceMS)
	if err := row.Scan(&c.User, &c.LastUser); err != nil {
		return c, fmt.Errorf("store: count text messages of an account: %w", err)
	}
	if q.Number != "" {
		row = tx.tx.QueryRowContext(ctx, `SELECT coalesce(sum(CASE WHEN time_ms >= ? THEN 1 ELSE 0 END), 0), count(*), coalesce(max(time_ms), 0)
			FROM sms_sends WHERE number = ? AND time_ms >= ?`, q.SinceMS, q.Number, min(q.NumberDayMS, q.SinceMS))
		if err := row.Scan(&c.Number, &c.NumberDay, &c.LastNumber); err != nil {
			return c, fmt.Errorf("store: count text messages to a number: %w", err)
		}
	}
	if q.Client != "" {
		if err := tx.tx.QueryRowContext(ctx, `SELECT count(*) FROM sms_sends WHERE client = ? AND time_ms >= ?`, q.Client, q.SinceMS).Scan(&c.Client); err != nil {
			return c, fmt.Errorf("store: count text messages from an address: %w", err)
		}
	}
	if err := tx.tx.QueryRowContext(ctx, `SELECT count(*) FROM sms_sends WHERE time_ms >= ? AND sent = 1`, q.DayMS).Scan(&c.Day); err != nil {
		return c, fmt.Errorf("store: count text messages of the day: %w", err)
	}
	return c, nil
}

// InsertSMSSend records a send; rows older than two days go with it.
func (tx *Tx) InsertSMSSend(ctx context.Context, s SMSSend) error {
	if _, err := tx.tx.ExecContext(ctx, `DELETE FROM sms_sends WHERE time_ms < ?`, s.TimeMS-2*24*60*60*1000); err != nil {
		return fmt.Errorf("store: prune text message sends: %w", err)
	}
	_, err := tx.tx.ExecContext(ctx, `INSERT INTO sms_sends (user_key, number, client, sent, time_ms) VALUES (?, ?, ?, ?, ?)`,
		s.UserKey, s.Number, s.Client, boolInt(s.Sent), s.TimeMS)
	if err != nil {
		return fmt.Errorf("store: record a text message send: %w", err)
	}
	return nil
}

// Phone is a mobile number a directory user registered.
type Phone struct {
	UserID      string
	Number      string // sealed
	ConfirmedMS int64
}

// PutPhone registers (or replaces) a user's mobile number.
func (tx *Tx) PutPhone(ctx context.Context, p Phone) error {
	_, err := tx.tx.ExecContext(ctx, `INSERT INTO sspr_phones (user_id, number, confirmed_ms) VALUES (?, ?, ?)
		ON CONFLICT (user_id) DO UPDATE SET number = excluded.number, confirmed_ms = excluded.confirmed_ms`, p.UserID, p.Number, p.ConfirmedMS)
	if err != nil {
		return fmt.Errorf("store: put phone: %w", err)
	}
	return nil
}

// DeletePhone removes a user's registered mobile number.
func (tx *Tx) DeletePhone(ctx context.Context, userID string) error {
	if _, err := tx.tx.ExecContext(ctx, `DELETE FROM sspr_phones WHERE user_id = ?`, userID); err != nil {
		return fmt.Errorf("store: delete phone: %w", err)
	}
	return nil
}

// Phone reads a user's registered mobile number; ErrNotFound when none.
func (db *DB) Phone(ctx context.Context, userID string) (Phone, error) {
	p := Phone{UserID: userID}
	err := db.sql.QueryRowContext(ctx, `SELECT number, confirmed_ms FROM sspr_phones WHERE user_id = ?`, userID).Scan(&p.Number, &p.ConfirmedMS)
	if errors.Is(err, sql.ErrNoRows) {
		return p, ErrNotFound
	}
	if err != nil {
		return p, fmt.Errorf("store: phone: %w", err)
	}
	return p, nil
}
