package store

import (
	"context"
	"fmt"
	"time"
)

// ActivityDay counts the events of one activity and result on one day.
type ActivityDay struct {
	Day      time.Time // midnight at the start of the day, in the requested zone
	Activity string
	Result   string
	Count    int
}

// ActivityByDay counts the events of activities in [sinceMS, untilMS) per
// activity, result and calendar day in tz (UTC when nil), through the
// activity index. Days without events are left out.
func (db *DB) ActivityByDay(ctx context.Context, activities []string, sinceMS, untilMS int64, tz *time.Location) ([]ActivityDay, error) {
	if len(activities) == 0 {
		return nil, nil
	}
	if tz == nil {
		tz = time.UTC
	}
	// Per quarter hour in SQL, folded into days here (as AuditDaily does).
	const quarter = 15 * 60 * 1000
	q := `SELECT activity, result, time_ms / 900000 AS q, count(*) FROM audit_events
		WHERE activity IN (` + placeholders(len(activities)) + `) AND time_ms >= ? AND time_ms < ?
		GROUP BY activity, result, q`
	args := append(anys(activities), sinceMS, untilMS)
	rows, err := db.sql.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("store: activity by day: %w", err)
	}
	defer rows.Close()
	type key struct {
		day              time.Time
		activity, result string
	}
	counts := map[key]int{}
	var order []key
	for rows.Next() {
		var a, r string
		var qn int64
		var n int
		if err := rows.Scan(&a, &r, &qn, &n); err != nil {
			return nil, fmt.Errorf("store: activity by day: %w", err)
		}
		k := key{startOfDay(time.UnixMilli(qn * quarter).In(tz)), a, r}
		if _, ok := counts[k]; !ok {
			order = append(order, k)
		}
		counts[k] += n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: activity by day: %w", err)
	}
	out := make([]ActivityDay, 0, len(order))
	for _, k := range order {
		out = append(out, ActivityDay{Day: k.day, Activity: k.activity, Result: k.result, Count: counts[k]})
	}
	return out, nil
}

// ReasonCount is how often one reason ended an activity in failure.
type ReasonCount struct {
	Activity, Reason string
	Count            int
}

// FailureReasons lists the most frequent reasons of the failed events of
// activities in [sinceMS, untilMS), at most limit, most frequent first.
func (db *DB) FailureReasons(ctx context.Context, activities []string, sinceMS, untilMS int64, limit int) ([]ReasonCount, error) {
	if len(activities) == 0 {
		return nil, nil
	}
	q := `SELECT activity, reason, count(*) AS n FROM audit_events
		WHERE activity IN (` + placeholders(len(activities)) + `) AND time_ms >= ? AND time_ms < ? AND result = 'failure'
		GROUP BY activity, reason ORDER BY n DESC, activity, reason LIMIT ?`
	args := append(anys(activities), sinceMS, untilMS, limit)
	rows, err := db.sql.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("store: failure reasons: %w", err)
	}
	defer rows.Close()
	var out []ReasonCount
	for rows.Next() {
		var r ReasonCount
		if err := rows.Scan(&r.Activity, &r.Reason, &r.Count); err != nil {
			return nil, fmt.Errorf("store: failure reasons: %w", err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// Registrations counts the people with registered methods: per method,
// in all, and with at least enough methods.
type Registrations struct {
	ByMethod map[string]int
	People   int
	Enough   int
}

// CountRegistrations reads Registrations from the methods table and the
// registered mobile numbers; enough is the number of methods a reset
// needs.
func (db *DB) CountRegistrations(ctx context.Context, enough int) (Registrations, error) {
	r := Registrations{ByMethod: map[string]int{}}
	// A registered mobile number (sspr_phones) is the "sms" method, and one
	// or more passkeys (sspr_passkeys) the "passkey" method.
	const registered = `(SELECT user_id, method FROM sspr_methods UNION ALL SELECT user_id, 'sms' FROM sspr_phones
		UNION ALL SELECT DISTINCT user_id, 'passkey' FROM sspr_passkeys) AS registered`
	rows, err := db.sql.QueryContext(ctx, `SELECT method, count(*) FROM `+registered+` GROUP BY method`)
	if err != nil {
		return r, fmt.Errorf("store: count registrations: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var m string
		var n int
		if err := rows.Scan(&m, &n); err != nil {
			return r, fmt.Errorf("store: count registrations: %w", err)
		}
		r.ByMethod[m] = n
	}
	if err := rows.Err(); err != nil {
		return r, fmt.Errorf("store: count registrations: %w", err)
	}
	err = db.sql.QueryRowContext(ctx, `SELECT count(*), coalesce(sum(CASE WHEN n >= ? THEN 1 ELSE 0 END), 0)
		FROM (SELECT user_id, count(*) AS n FROM `+registered+` GROUP BY user_id) AS people`, enough).Scan(&r.People, &r.Enough)
	if err != nil {
		return r, fmt.Errorf("store: count registrations: %w", err)
	}
	return r, nil
}

// BlockedUser is a self-service block still running.
type BlockedUser struct {
	UserID  string
	UntilMS int64
}

// BlockedUsers lists the blocks still running at nowMS, the longest first,
// at most limit, and how many there are in all.
func (db *DB) BlockedUsers(ctx context.Context, nowMS int64, limit int) ([]BlockedUser, int, error) {
	var total int
	if err := db.sql.QueryRowContext(ctx, `SELECT count(*) FROM sspr_blocks WHERE until_ms > ?`, nowMS).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("store: blocked users: %w", err)
	}
	rows, err := db.sql.QueryContext(ctx, `SELECT user_id, until_ms FROM sspr_blocks WHERE until_ms > ? ORDER BY until_ms DESC, user_id LIMIT ?`, nowMS, limit)
	if err != nil {
		return nil, 0, fmt.Errorf("store: blocked users: %w", err)
	}
	defer rows.Close()
	var out []BlockedUser
	for rows.Next() {
		var b BlockedUser
		if err := rows.Scan(&b.UserID, &b.UntilMS); err != nil {
			return nil, 0, fmt.Errorf("store: blocked users: %w", err)
		}
		out = append(out, b)
	}
	return out, total, rows.Err()
}
