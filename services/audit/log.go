package audit

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/writeback/writeback/services/errs"
	"github.com/writeback/writeback/store"
)

// Log is the audit log as administrators use it: search, export, the
// integrity check and retention.
type Log struct {
	db  *store.DB
	log *slog.Logger
	now func() time.Time

	// pace spreads the background checks (Maintain) over time; fullEvery
	// is how often Maintain also reads the whole chain.
	pace      store.Pace
	fullEvery time.Duration
	// roundDone, when set (tests), is called after each round of Maintain.
	roundDone func()
	// onVerified, set by OnVerified, hears each of Maintain's checks.
	onVerified func(context.Context, Integrity)

	mu        sync.Mutex
	integrity Integrity
}

// Integrity is the result of the last chain verification.
type Integrity struct {
	Checked bool
	At      time.Time
	Result  store.VerifyResult // Result.Full tells a full check from an incremental one
	Err     string
	// LastFull is when the last full check that found the chain intact
	// ended (zero: none yet), from the checkpoint in the database.
	LastFull time.Time
}

// BackgroundPace is how Maintain reads the chain in full: 1,000 events at a
// time (a few milliseconds of work), resting four times as long as each
// chunk took, so the check takes at most a fifth of one core from the pages
// (a million events: under a minute instead of 5 to 10 s at full speed).
var BackgroundPace = store.Pace{Chunk: 1000, Rest: 4}

// FullCheckEvery is how often Maintain reads the whole chain, besides the
// incremental checks at start and daily: the only check that finds an old
// event altered in place.
const FullCheckEvery = 7 * 24 * time.Hour

// NewLog builds the audit log service.
func NewLog(db *store.DB, log *slog.Logger) *Log {
	return &Log{db: db, log: log, now: time.Now, pace: BackgroundPace, fullEvery: FullCheckEvery}
}

// Query returns one page of events, newest first.
func (l *Log) Query(ctx context.Context, f store.AuditFilter, after store.Cursor, limit int) ([]store.AuditEvent, store.Cursor, error) {
	return l.db.QueryAudit(ctx, f, after, limit)
}

// Count counts events (capped; capped reports it).
func (l *Log) Count(ctx context.Context, f store.AuditFilter) (int, bool, error) {
	return l.db.CountAudit(ctx, f)
}

// Event returns one event.
func (l *Log) Event(ctx context.Context, id int64) (store.AuditEvent, error) {
	e, err := l.db.AuditByID(ctx, id)
	if err == store.ErrNotFound {
		return e, errs.E(errs.NotFound, "There is no audit event with that number (it may have been pruned).", err)
	}
	return e, err
}

// Correlation returns every step of one attempt, oldest first.
func (l *Log) Correlation(ctx context.Context, id string) ([]store.AuditEvent, error) {
	return l.db.AuditByCorrelation(ctx, id)
}

// Daily counts resets, unlocks and failures per day.
func (l *Log) Daily(ctx context.Context, f store.AuditFilter, tz *time.Location) ([]store.DayCount, error) {
	return l.db.AuditDaily(ctx, f, tz)
}

// Export formats.
const (
	FormatCSV   = "csv"
	FormatJSONL = "jsonl"
)

// Export streams the filtered events to w and records "Export audit log"
// with the filter, the format and the number of rows.
func (l *Log) Export(ctx context.Context, w io.Writer, format string, f store.AuditFilter, actor Actor) (int64, error) {
	var n int64
	var err error
	switch format {
	case FormatCSV:
		n, err = WriteCSV(ctx, w, l.db, f)
	case FormatJSONL:
		n, err = WriteJSONL(ctx, w, l.db, f)
	default:
		return 0, errs.Invalidf("Choose csv or jsonl.")
	}
	details := FilterDetails(f)
	details["format"], details["rows"] = format, n
	e := Entry{Category: CategoryAuditLog, Activity: ActivityExportAudit, Actor: actor, Target: Target{Type: "AuditLog", ID: "audit-log"},
		Result: Success, Details: details}
	if err != nil {
		e.Result, e.Reason = Failure, "export stopped: "+err.Error()
	}
	if rerr := l.db.InTx(context.WithoutCancel(ctx), func(tx *store.Tx) error { _, err := Record(ctx, tx, e); return err }); rerr != nil {
		l.log.Error("record audit export", "err", rerr)
	}
	return n, err
}

// Verify checks the whole chain now, at full speed (the Verify now button,
// audit verify --full), and keeps the result for Integrity.
func (l *Log) Verify(ctx context.Context) (store.VerifyResult, error) {
	return l.keep(ctx, func() (store.VerifyResult, error) { return l.db.VerifyAudit(ctx) })
}

// VerifyIncremental checks the events appended since the last check that
// found the chain intact, after confirming that that check's checkpoint
// still stands (store.DB.VerifyAuditIncremental); with no checkpoint yet it
// checks everything. It keeps the result for Integrity.
func (l *Log) VerifyIncremental(ctx context.Context) (store.VerifyResult, error) {
	return l.keep(ctx, func() (store.VerifyResult, error) { return l.db.VerifyAuditIncremental(ctx, store.Pace{}) })
}

func (l *Log) keep(ctx context.Context, verify func() (store.VerifyResult, error)) (store.VerifyResult, error) {
	res, err := verify()
	in := Integrity{Checked: true, At: l.now().UTC(), Result: res}
	if err != nil {
		in.Err = err.Error()
	}
	if cp, ok, cerr := l.db.AuditCheckpoint(ctx); cerr == nil && ok && cp.FullMS > 0 {
		in.LastFull = time.UnixMilli(cp.FullMS).UTC()
	}
	l.mu.Lock()
	l.integrity = in
	l.mu.Unlock()
	if err == nil && !res.OK {
		l.log.Error("audit log integrity check failed", "problem", res.Problem, "broken_id", res.BrokenID, "full", res.Full)
	}
	return res, err
}

// Integrity returns the last verification (verifying a million events in
// full takes seconds, so pages show the last result rather than running one).
func (l *Log) Integrity() Integrity {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.integrity
}

// PruneOlderThan removes events older than days days.
func (l *Log) PruneOlderThan(ctx context.Context, days int) (int64, error) {
	return Prune(ctx, l.db, l.now().Add(-time.Duration(days)*24*time.Hour), System)
}

// Maintain prunes events older than retentionDays() and verifies the chain,
// at start and then every interval, until ctx ends. Each verification is
// incremental: it reads only what was appended since the last one, so a
// start or the daily check costs next to nothing however long the log is.
// When the last full check is older than FullCheckEvery (or there has been
// none) it then reads the whole chain too, paced (BackgroundPace) so that
// the pages keep their speed while it runs.
func (l *Log) Maintain(ctx context.Context, every time.Duration, retentionDays func(context.Context) (int, error)) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		days, err := retentionDays(ctx)
		var n int64
		if err == nil {
			n, err = l.PruneOlderThan(ctx, days)
		}
		if err != nil && ctx.Err() == nil {
			l.log.Error("prune audit log", "err", err)
		} else if n > 0 {
			l.log.Info("pruned audit log", "removed", n)
		}
		res, err := l.keep(ctx, func() (store.VerifyResult, error) { return l.db.VerifyAuditIncremental(ctx, l.pace) })
		if err != nil && ctx.Err() == nil {
			l.log.Error("verify audit log", "err", err)
		}
		if err == nil && res.OK && !res.Full && l.fullDue(ctx) {
			if _, err := l.keep(ctx, func() (store.VerifyResult, error) { return l.db.VerifyAuditFull(ctx, l.pace) }); err != nil && ctx.Err() == nil {
				l.log.Error("verify audit log in full", "err", err)
			}
		}
		if l.onVerified != nil && ctx.Err() == nil {
			l.onVerified(ctx, l.Integrity())
		}
		if l.roundDone != nil {
			l.roundDone()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// OnVerified makes Maintain call f with the result of each of its rounds
// of checks (after the full check, when one ran), on Maintain's goroutine:
// on the replica that runs it, the leader. Call it before Maintain starts.
// The checks of Verify now and of the command line do not call it.
func (l *Log) OnVerified(f func(context.Context, Integrity)) { l.onVerified = f }

// fullDue reports whether the last full check is older than fullEvery.
func (l *Log) fullDue(ctx context.Context) bool {
	cp, ok, err := l.db.AuditCheckpoint(ctx)
	if err != nil || !ok {
		return false // nothing verified yet, or an empty log: the incremental check read it all
	}
	return l.now().Sub(time.UnixMilli(cp.FullMS)) >= l.fullEvery
}

// ActivityUpdateRetention is recorded when the retention period changes.
const ActivityUpdateRetention = "Update audit log retention"
