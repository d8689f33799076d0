package metrics

import (
	"context"
	"log/slog"
	"time"

	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/store"
)

// commandLineSlack is how far before the newest event seen the command
// line's events are read again: another machine's clock may be that much
// behind (events are counted by their IDs, each once).
const commandLineSlack = 5 * time.Minute

// CountCommandLine counts, until ctx ends, the resets and unlocks that
// `writeback user reset` and `user unlock` record: those commands are
// processes of their own that nobody scrapes, so every interval this reads
// the audit log for the ones appended since it last looked (those from
// before it started are not counted). Run it on one replica, the leader,
// so that each counts once.
func (m *Metrics) CountCommandLine(ctx context.Context, db *store.DB, every time.Duration, log *slog.Logger) {
	f := store.AuditFilter{ActorID: audit.CommandLine.ID, Activities: []string{audit.ActivityResetByAdmin, audit.ActivityUnlockByAdmin}}
	lastID, lastMS := int64(-1), time.Now().UnixMilli() // -1: the first look only finds where to start
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		f.SinceMS = lastMS - commandLineSlack.Milliseconds()
		id, ms, err := m.countAfter(ctx, db, f, lastID)
		switch {
		case err != nil && ctx.Err() == nil:
			log.Warn("metrics: read the command line's audit events", "err", err)
		case err == nil:
			lastID, lastMS = max(id, 0), max(ms, lastMS)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// countAfter counts the events matching f whose ID is above lastID (none
// when lastID is -1) and returns the newest ID and time it saw.
func (m *Metrics) countAfter(ctx context.Context, db *store.DB, f store.AuditFilter, lastID int64) (newID, newMS int64, err error) {
	newID = lastID
	var after store.Cursor
	for {
		page, next, err := db.QueryAudit(ctx, f, after, store.MaxAuditPage)
		if err != nil {
			return 0, 0, err
		}
		for _, e := range page {
			if lastID >= 0 && e.ID > lastID { // the filter's actor ID is the command line's
				m.Audit(e)
			}
			newID, newMS = max(newID, e.ID), max(newMS, e.TimeMS)
		}
		if next.IsZero() {
			return newID, newMS, nil
		}
		after = next
	}
}
