package store

import (
	"context"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ErrBadCursor is returned by ParseCursor for a string it did not make.
var ErrBadCursor = errors.New("store: invalid audit cursor")

// ErrBadFilter is returned when an AuditFilter holds a value no event can
// have, such as an unknown result.
var ErrBadFilter = errors.New("store: invalid audit filter")

// AuditFilter selects audit events. Zero fields select everything; the
// fields combine with AND, the values inside one list with OR.
type AuditFilter struct {
	SinceMS    int64    // time_ms >= SinceMS, when not zero
	UntilMS    int64    // time_ms < UntilMS, when not zero
	Categories []string // any of
	Activities []string // any of
	Result     string   // "success" or "failure"; "" for both
	// Actor matches the actor's ID or display name, case-insensitively as a
	// substring (ASCII letters only fold case, as in SQLite's LIKE).
	Actor string
	// Target matches the target's ID, DN or display name the same way.
	Target string
	// ActorID and TargetID match exactly, through an index: for links from
	// an event to everything by its actor or about its target.
	ActorID  string
	TargetID string
	// Text matches activity, actor, target, reason, client address,
	// correlation ID and details. It scans the selected time range.
	Text          string
	CorrelationID string // exact
}

// Cursor marks where the next page of QueryAudit starts. Its zero value
// means the first page. Besides the last event shown it carries the newest
// event ID that existed when the first page was read, so later pages never
// show an event appended after paging began: every page comes from the same
// set of events, without duplicates or gaps.
type Cursor struct {
	timeMS int64
	id     int64
	maxID  int64
}

// IsZero reports whether c is the cursor of the first page, or the "next"
// cursor after the last page.
func (c Cursor) IsZero() bool { return c == Cursor{} }

// String encodes c for a URL query parameter; "" for the zero cursor.
func (c Cursor) String() string {
	if c.IsZero() {
		return ""
	}
	raw := strconv.FormatInt(c.timeMS, 36) + "." + strconv.FormatInt(c.id, 36) + "." + strconv.FormatInt(c.maxID, 36)
	return base64.RawURLEncoding.EncodeToString([]byte(raw))
}

// ParseCursor decodes a string made by Cursor.String; "" is the zero cursor.
func ParseCursor(s string) (Cursor, error) {
	if s == "" {
		return Cursor{}, nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return Cursor{}, ErrBadCursor
	}
	parts := strings.Split(string(raw), ".")
	if len(parts) != 3 {
		return Cursor{}, ErrBadCursor
	}
	var v [3]int64
	for i, p := range parts {
		n, err := strconv.ParseInt(p, 36, 64)
		if err != nil || n < 0 {
			return Cursor{}, ErrBadCursor
		}
		v[i] = n
	}
	c := Cursor{timeMS: v[0], id: v[1], maxID: v[2]}
	if c.IsZero() || c.id > c.maxID {
		return Cursor{}, ErrBadCursor
	}
	return c, nil
}

// Page sizes of QueryAudit.
const (
	DefaultAuditPage = 50
	MaxAuditPage     = 1000
)

// QueryAudit returns one page of events matching f, newest first (by time,
// then ID), starting after the cursor, and the cursor of the next page (zero
// after the last page). limit is clamped to 1..MaxAuditPage; 0 means
// DefaultAuditPage.
func (db *DB) QueryAudit(ctx context.Context, f AuditFilter, after Cursor, limit int) ([]AuditEvent, Cursor, error) {
	switch {
	case limit <= 0:
		limit = DefaultAuditPage
	case limit > MaxAuditPage:
		limit = MaxAuditPage
	}
	if !after.IsZero() && f.UntilMS > 0 && after.timeMS < f.UntilMS {
		// The cursor is the tighter upper bound; with both, SQLite may start
		// the index range at UntilMS and step over every earlier page.
		f.UntilMS = 0
	}
	if _, err := f.where(db.engine); err != nil {
		return nil, Cursor{}, err
	}
	maxID := after.maxID
	if after.IsZero() {
		if err := db.sql.QueryRowContext(ctx, `SELECT coalesce(max(id), 0) FROM audit_events`).Scan(&maxID); err != nil {
			return nil, Cursor{}, fmt.Errorf("store: query audit: %w", err)
		}
		if maxID == 0 {
			return nil, Cursor{}, nil
		}
	}
	// where is f's clause with the page's bounds.
	where := func(f AuditFilter) *whereClause {
		w, _ := f.where(db.engine)
		if !after.IsZero() {
			// Row-value comparison: SQLite turns it into one range on the
			// (time_ms DESC, id DESC) part of whichever index it picks.
			w.add(`(time_ms, id) < (?, ?)`, after.timeMS, after.id)
		}
		w.add(`id <= ?`, maxID)
		return w
	}
	var page []AuditEvent
	var more bool
	var err error
	if db.engine == enginePostgres && strings.TrimSpace(f.Actor+f.Target+f.Text) != "" {
		// A search matches often (an administrator's name) or rarely (one
		// user). PostgreSQL's estimate of a substring match cannot tell
		// the two apart, and each wants the other plan: the newest events
		// of the range read in time order until a page is full, or the
		// trigram index. So the newest events are tried first, a bounded
		// read; when they hold a page, it is the page (any other match is
		// older), else the whole query runs.
		base := f
		base.Actor, base.Target, base.Text = "", "", ""
		bw := where(base)
		sw, _ := AuditFilter{Actor: f.Actor, Target: f.Target, Text: f.Text}.where(db.engine)
		q := `SELECT ` + auditCols + ` FROM (SELECT ` + auditCols + ` FROM audit_events` + bw.sql() +
			` ORDER BY time_ms DESC, id DESC LIMIT ?) AS newest` + sw.sql() + ` ORDER BY time_ms DESC, id DESC LIMIT ?`
		args := append(append(append(bw.args, searchProbe), sw.args...), limit+1)
		if page, more, err = db.auditPage(ctx, q, args, limit); err != nil || more {
			return page, nextCursor(page, more, maxID), err
		}
	}
	w := where(f)
	q := `SELECT ` + auditCols + ` FROM audit_events` + w.sql() + ` ORDER BY time_ms DESC, id DESC LIMIT ?`
	page, more, err = db.auditPage(ctx, q, append(w.args, limit+1), limit)
	return page, nextCursor(page, more, maxID), err
}

// searchProbe is how many of the newest events of the range QueryAudit
// reads first for a search on PostgreSQL: a term in one event of 80 of
// them fills a page from these. A variable for tests.
var searchProbe = 4000

// auditPage runs a page query (LIMIT limit+1) and reports whether there is
// more after the page.
func (db *DB) auditPage(ctx context.Context, q string, args []any, limit int) ([]AuditEvent, bool, error) {
	rows, err := db.sql.QueryContext(ctx, q, db.engine.planEach(args)...)
	if err != nil {
		return nil, false, fmt.Errorf("store: query audit: %w", err)
	}
	defer rows.Close()
	page := make([]AuditEvent, 0, limit)
	more := false
	for rows.Next() {
		if len(page) == limit {
			more = true
			break
		}
		e, err := scanAudit(rows)
		if err != nil {
			return nil, false, fmt.Errorf("store: query audit: %w", err)
		}
		page = append(page, e)
	}
	if err := rows.Err(); err != nil {
		return nil, false, fmt.Errorf("store: query audit: %w", err)
	}
	return page, more, nil
}

// nextCursor is the cursor after page.
func nextCursor(page []AuditEvent, more bool, maxID int64) Cursor {
	if !more {
		return Cursor{}
	}
	last := page[len(page)-1]
	return Cursor{timeMS: last.TimeMS, id: last.ID, maxID: maxID}
}

// AuditCountCap is where CountAudit stops counting.
const AuditCountCap = 100_000

// CountAudit counts the events matching f, stopping at AuditCountCap: when
// capped is true there are at least n = AuditCountCap of them ("100,000+").
func (db *DB) CountAudit(ctx context.Context, f AuditFilter) (n int, capped bool, err error) {
	return db.countAudit(ctx, f, AuditCountCap)
}

func (db *DB) countAudit(ctx context.Context, f AuditFilter, limit int) (n int, capped bool, err error) {
	w, err := f.where(db.engine)
	if err != nil {
		return 0, false, err
	}
	q := `SELECT count(*) FROM (SELECT 1 FROM audit_events` + w.sql() + ` LIMIT ?) AS matched`
	if err := db.sql.QueryRowContext(ctx, q, db.engine.planEach(append(w.args, limit+1))...).Scan(&n); err != nil {
		return 0, false, fmt.Errorf("store: count audit: %w", err)
	}
	if n > limit {
		return limit, true, nil
	}
	return n, false, nil
}

// AuditByID returns one event, or ErrNotFound.
func (db *DB) AuditByID(ctx context.Context, id int64) (AuditEvent, error) {
	e, err := scanAudit(db.sql.QueryRowContext(ctx, `SELECT `+auditCols+` FROM audit_events WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return e, ErrNotFound
	}
	if err != nil {
		return e, fmt.Errorf("store: audit event %d: %w", id, err)
	}
	return e, nil
}

// maxCorrelation bounds AuditByCorrelation: one attempt has a handful of
// steps, and a caller that reuses an ID must not make a page load everything.
const maxCorrelation = 1000

// AuditByCorrelation returns the events of one correlation ID, oldest first
// (at most 1,000); none for "".
func (db *DB) AuditByCorrelation(ctx context.Context, correlationID string) ([]AuditEvent, error) {
	if correlationID == "" {
		return nil, nil
	}
	// The second term lets SQLite use the partial index on correlation_id.
	rows, err := db.sql.QueryContext(ctx, `SELECT `+auditCols+` FROM audit_events
		WHERE correlation_id = ? AND correlation_id <> '' ORDER BY time_ms, id LIMIT ?`, correlationID, maxCorrelation)
	if err != nil {
		return nil, fmt.Errorf("store: audit correlation: %w", err)
	}
	defer rows.Close()
	var out []AuditEvent
	for rows.Next() {
		e, err := scanAudit(rows)
		if err != nil {
			return nil, fmt.Errorf("store: audit correlation: %w", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: audit correlation: %w", err)
	}
	return out, nil
}

// ExportAudit calls fn with every event matching f, oldest first by ID (the
// order of the hash chain, so an unfiltered export can be verified on its
// own), streaming: memory stays flat however many there are. The events come
// from one consistent snapshot; appends during the export are not included.
// An error from fn stops the export and is returned as is.
func (db *DB) ExportAudit(ctx context.Context, f AuditFilter, fn func(AuditEvent) error) error {
	w, err := f.where(db.engine)
	if err != nil {
		return err
	}
	if f.SinceMS > 0 || f.UntilMS > 0 {
		// Turn the time range into an ID range (one index-only pass) so that
		// SQLite reads the table in ID order over just that range, instead of
		// reading through the time index and sorting.
		tw := &whereClause{}
		if f.SinceMS > 0 {
			tw.add(`time_ms >= ?`, f.SinceMS)
		}
		if f.UntilMS > 0 {
			tw.add(`time_ms < ?`, f.UntilMS)
		}
		var lo, hi sql.NullInt64
		if err := db.sql.QueryRowContext(ctx, `SELECT min(id), max(id) FROM audit_events`+tw.sql(), tw.args...).Scan(&lo, &hi); err != nil {
			return fmt.Errorf("store: export audit: %w", err)
		}
		if !lo.Valid {
			return nil
		}
		w.add(`id >= ? AND id <= ?`, lo.Int64, hi.Int64)
	}
	q := `SELECT ` + auditCols + ` FROM audit_events` + w.sql() + ` ORDER BY id`
	if db.engine == enginePostgres {
		return db.exportPostgres(ctx, q, w.args, fn)
	}
	rows, err := db.sql.QueryContext(ctx, q, w.args...)
	if err != nil {
		return fmt.Errorf("store: export audit: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		e, err := scanAudit(rows)
		if err != nil {
			return fmt.Errorf("store: export audit: %w", err)
		}
		if err := fn(e); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("store: export audit: %w", err)
	}
	return nil
}

// DayCount is one day of AuditDaily.
type DayCount struct {
	Day      time.Time // midnight at the start of the day, in the requested zone
	Resets   int       // activities starting "Reset password"
	Unlocks  int       // activities starting "Unlock user account"
	Failures int       // result failure, any activity
}

// Prefixes of the activities AuditDaily counts; services/audit names them.
const (
	resetPrefix  = "Reset password"
	unlockPrefix = "Unlock user account"
)

// maxDays bounds AuditDaily's output (ten years).
const maxDays = 3660

// AuditDaily counts resets, unlocks and failures among the events matching
// f, per calendar day in tz (UTC when nil), for a chart. With both SinceMS and
// UntilMS set every day of the range is returned, zeros included; otherwise
// the days from the first to the last event found.
func (db *DB) AuditDaily(ctx context.Context, f AuditFilter, tz *time.Location) ([]DayCount, error) {
	if tz == nil {
		tz = time.UTC
	}
	w, err := f.where(db.engine)
	if err != nil {
		return nil, err
	}
	// Count per quarter hour in SQL and fold quarters into days here: every
	// zone in use is a whole number of quarter hours from UTC, so no quarter
	// straddles a midnight, and SQLite needs no zone database.
	const quarter = 15 * 60 * 1000
	// Three index-only counts: resets and unlocks through the activity index
	// (activity = ? AND time range, for each activity with the prefix, found
	// by a recursive skip over the index), failures through the partial
	// failure index. Reading every event of the range instead takes ten times
	// as long.
	qs := strconv.Itoa(quarter)
	q := `WITH RECURSIVE
		resets(a) AS (SELECT min(activity) FROM audit_events WHERE activity >= ? AND activity < ?
			UNION ALL SELECT (SELECT min(activity) FROM audit_events WHERE activity > resets.a AND activity < ?) FROM resets WHERE resets.a IS NOT NULL),
		unlocks(a) AS (SELECT min(activity) FROM audit_events WHERE activity >= ? AND activity < ?
			UNION ALL SELECT (SELECT min(activity) FROM audit_events WHERE activity > unlocks.a AND activity < ?) FROM unlocks WHERE unlocks.a IS NOT NULL)
		SELECT 0, time_ms / ` + qs + ` AS q, count(*) FROM audit_events` + w.sqlAnd(`activity IN (SELECT a FROM resets)`) + ` GROUP BY q
		UNION ALL
		SELECT 1, time_ms / ` + qs + ` AS q, count(*) FROM audit_events` + w.sqlAnd(`activity IN (SELECT a FROM unlocks)`) + ` GROUP BY q
		UNION ALL
		SELECT 2, time_ms / ` + qs + ` AS q, count(*) FROM audit_events` + w.sqlAnd(`result = 'failure'`) + ` GROUP BY q`
	// Positional parameters bind in the order they appear.
	args := []any{resetPrefix, prefixEnd(resetPrefix), prefixEnd(resetPrefix), unlockPrefix, prefixEnd(unlockPrefix), prefixEnd(unlockPrefix)}
	for range 3 {
		args = append(args, w.args...)
	}
	rows, err := db.sql.QueryContext(ctx, q, db.engine.planEach(args)...)
	if err != nil {
		return nil, fmt.Errorf("store: audit daily: %w", err)
	}
	defer rows.Close()
	byDay := map[time.Time]*DayCount{}
	var first, last time.Time
	for rows.Next() {
		var kind, qn int64
		var n int
		if err := rows.Scan(&kind, &qn, &n); err != nil {
			return nil, fmt.Errorf("store: audit daily: %w", err)
		}
		day := startOfDay(time.UnixMilli(qn * quarter).In(tz))
		if first.IsZero() || day.Before(first) {
			first = day
		}
		if day.After(last) {
			last = day
		}
		d := byDay[day]
		if d == nil {
			d = &DayCount{Day: day}
			byDay[day] = d
		}
		switch kind {
		case 0:
			d.Resets += n
		case 1:
			d.Unlocks += n
		default:
			d.Failures += n
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: audit daily: %w", err)
	}
	if f.SinceMS > 0 && f.UntilMS > f.SinceMS {
		first = startOfDay(time.UnixMilli(f.SinceMS).In(tz))
		last = startOfDay(time.UnixMilli(f.UntilMS - 1).In(tz))
	}
	if first.IsZero() {
		return nil, nil
	}
	var out []DayCount
	for d := first; !d.After(last) && len(out) < maxDays; d = time.Date(d.Year(), d.Month(), d.Day()+1, 0, 0, 0, 0, tz) {
		if c := byDay[d]; c != nil {
			out = append(out, *c)
		} else {
			out = append(out, DayCount{Day: d})
		}
	}
	return out, nil
}

func startOfDay(t time.Time) time.Time {
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, t.Location())
}

// prefixEnd returns the smallest string greater than every string starting
// with p (p is ASCII here), for an index range instead of LIKE, which SQLite
// only turns into a range on a NOCASE column.
func prefixEnd(p string) string {
	b := []byte(p)
	b[len(b)-1]++
	return string(b)
}

// whereClause collects SQL conditions and their arguments.
type whereClause struct {
	conds []string
	args  []any
}

func (w *whereClause) add(cond string, args ...any) {
	w.conds = append(w.conds, cond)
	w.args = append(w.args, args...)
}

func (w *whereClause) sql() string {
	if len(w.conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(w.conds, " AND ")
}

// sqlAnd is sql with one more condition that takes no arguments.
func (w *whereClause) sqlAnd(cond string) string {
	return " WHERE " + strings.Join(append(slices.Clone(w.conds), cond), " AND ")
}

// where turns f into SQL. Every value is a parameter except the result, which
// is checked against the two possible values and written as a literal so that
// SQLite can use the partial index on failures.
func (f AuditFilter) where(e engine) (*whereClause, error) {
	w := &whereClause{}
	like := e.like()
	if f.SinceMS > 0 {
		w.add(`time_ms >= ?`, f.SinceMS)
	}
	if f.UntilMS > 0 {
		w.add(`time_ms < ?`, f.UntilMS)
	}
	if len(f.Categories) > 0 {
		w.add(`category IN (`+placeholders(len(f.Categories))+`)`, anys(f.Categories)...)
	}
	if len(f.Activities) > 0 {
		w.add(`activity IN (`+placeholders(len(f.Activities))+`)`, anys(f.Activities)...)
	}
	switch f.Result {
	case "":
	case "success", "failure":
		w.add(`result = '` + f.Result + `'`)
	default:
		return nil, fmt.Errorf("%w: result %q", ErrBadFilter, f.Result)
	}
	// The fields of a substring search are joined by a unit separator,
	// which a search can never contain (likePattern drops control
	// characters), so a match never spans two fields. The separator is
	// written into the literal itself: both engines take it there, where
	// they spell the function that makes it differently (char, chr).
	sep := " || '" + unitSeparator + "' || "
	text := `(activity` + sep + `actor_id` + sep + `actor_name` + sep + `target_id` + sep + `target_dn` + sep + `target_name` + sep +
		`reason` + sep + `client_ip` + sep + `correlation_id` + sep + `details)`
	if s := strings.TrimSpace(f.Actor); s != "" {
		p := likePattern(s)
		if e == enginePostgres {
			// The fields are among text's, whose trigram index
			// (audit_text_trgm) finds the few events a rare name is in.
			w.add(text+` `+like+` ? ESCAPE '\' AND (actor_id`+sep+`actor_name) `+like+` ? ESCAPE '\'`, p, p)
		} else {
			// SQLite matches each field from the covering index audit_time_who.
			w.add(`(actor_id `+like+` ? ESCAPE '\' OR actor_name `+like+` ? ESCAPE '\')`, p, p)
		}
	}
	if s := strings.TrimSpace(f.Target); s != "" {
		p := likePattern(s)
		if e == enginePostgres {
			w.add(text+` `+like+` ? ESCAPE '\' AND (target_id`+sep+`target_dn`+sep+`target_name) `+like+` ? ESCAPE '\'`, p, p)
		} else {
			w.add(`(target_id `+like+` ? ESCAPE '\' OR target_dn `+like+` ? ESCAPE '\' OR target_name `+like+` ? ESCAPE '\')`, p, p, p)
		}
	}
	if f.ActorID != "" {
		// The second term lets SQLite use the partial index.
		w.add(`actor_id = ? AND actor_id <> ''`, f.ActorID)
	}
	if f.TargetID != "" {
		w.add(`target_id = ? AND target_id <> ''`, f.TargetID)
	}
	if s := strings.TrimSpace(f.Text); s != "" {
		// One LIKE over the fields joined (on PostgreSQL the expression of
		// the trigram index audit_text_trgm).
		w.add(text+` `+like+` ? ESCAPE '\'`, likePattern(s))
	}
	if f.CorrelationID != "" {
		w.add(`correlation_id = ? AND correlation_id <> ''`, f.CorrelationID)
	}
	return w, nil
}

// unitSeparator (U+001F) joins the fields of a Text search.
const unitSeparator = "\x1f"

// likePattern makes a LIKE pattern matching s anywhere, with LIKE's wildcards
// in s taken literally.
func likePattern(s string) string {
	var sb strings.Builder
	sb.WriteByte('%')
	for _, r := range s {
		switch {
		case r < 0x20 || r == 0x7f:
			continue
		case r == '%' || r == '_' || r == '\\':
			sb.WriteByte('\\')
		}
		sb.WriteRune(r)
	}
	sb.WriteByte('%')
	return sb.String()
}

func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}

func anys(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}
