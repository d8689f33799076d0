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

	mu        sync.Mutex
	integrity Integrity
}

// Integrity is the result of the last chain verification.
type Integrity struct {
	Checked bool
	At      time.Time
	Result  store.VerifyResult
	Err     string
}

// NewLog builds the audit log service.
func NewLog(db *store.DB, log *slog.Logger) *Log { return &Log{db: db, log: log, now: time.Now} }

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

// Verify checks the whole chain now and keeps the result for Integrity.
func (l *Log) Verify(ctx context.Context) (store.VerifyResult, error) {
	res, err := l.db.VerifyAudit(ctx)
	in := Integrity{Checked: true, At: l.now().UTC(), Result: res}
	if err != nil {
		in.Err = err.Error()
	}
	l.mu.Lock()
	l.integrity = in
	l.mu.Unlock()
	if err == nil && !res.OK {
		l.log.Error("audit log integrity check failed", "problem", res.Problem, "broken_id", res.BrokenID)
	}
	return res, err
}

// Integrity returns the last verification (verifying a million events takes
// seconds, so pages show the last result rather than running one).
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
// at start and then every interval, until ctx ends.
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
		if _, err := l.Verify(ctx); err != nil && ctx.Err() == nil {
			l.log.Error("verify audit log", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// ActivityUpdateRetention is recorded when the retention period changes.
const ActivityUpdateRetention = "Update audit log retention"
