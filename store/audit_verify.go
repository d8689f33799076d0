package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"
)

// The event PruneAudit appends; services/audit exports the same names as
// CategoryAuditLog and ActivityPruneAudit.
const (
	AuditLogCategory = "AuditLog"
	PruneActivity    = "Prune audit log"
)

// AuditAnchor is where the chain starts after a prune: the ID and hash of the
// last removed event. Before any prune it is ID 0 and GenesisHash.
type AuditAnchor struct {
	ID       int64
	Hash     string
	PrunedMS int64 // when the prune ran; 0 before any
	BeforeMS int64 // the cut-off it was given
	Removed  int64 // how many events it removed
}

// AuditActor is who asked for an operation the store audits itself.
type AuditActor struct {
	Type      string // admin, user, system, cli, anonymous
	ID        string
	Name      string
	ClientIP  string
	UserAgent string
}

type rowQuerier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func latestAnchor(ctx context.Context, q rowQuerier) (AuditAnchor, error) {
	var a AuditAnchor
	err := q.QueryRowContext(ctx, `SELECT id, hash, pruned_ms, before_ms, removed FROM audit_anchor ORDER BY id DESC LIMIT 1`).
		Scan(&a.ID, &a.Hash, &a.PrunedMS, &a.BeforeMS, &a.Removed)
	if errors.Is(err, sql.ErrNoRows) {
		return AuditAnchor{Hash: GenesisHash}, nil
	}
	if err != nil {
		return a, fmt.Errorf("read audit anchor: %w", err)
	}
	return a, nil
}

// AuditAnchor returns the newest prune anchor (ID 0 and GenesisHash when the
// log was never pruned).
func (db *DB) AuditAnchor(ctx context.Context) (AuditAnchor, error) {
	a, err := latestAnchor(ctx, db.sql)
	if err != nil {
		return a, fmt.Errorf("store: %w", err)
	}
	return a, nil
}

// pruneDetails is the details object of a prune event. VerifyAudit reads it
// back: the newest anchor must be vouched for by the prune event that made it,
// which sits in the chain, so a row slipped into audit_anchor to hide deleted
// events is caught.
type pruneDetails struct {
	BeforeMS   int64  `json:"before_ms"`
	Before     string `json:"before"`
	Removed    int64  `json:"removed"`
	AnchorID   int64  `json:"anchor_id"`
	AnchorHash string `json:"anchor_hash"`
}

// PruneAudit removes the events older than beforeMS in one transaction,
// records an anchor so that the rest of the chain still verifies, and appends
// a "Prune audit log" event by actor in the same transaction. It removes the
// oldest events by ID up to the first one at or after the cut-off, so the
// chain always loses a prefix: an older-dated event appended after a newer
// one stays until everything before it goes. Nothing removed means no anchor
// and no event.
func (db *DB) PruneAudit(ctx context.Context, beforeMS int64, actor AuditActor) (removed int64, err error) {
	err = db.InTx(ctx, func(tx *Tx) error {
		// Walk IDs upwards to the first event to keep: proportional to what
		// is removed, and O(1) on the days there is nothing to do.
		var keepFrom sql.NullInt64
		err := tx.tx.QueryRowContext(ctx, `SELECT id FROM audit_events`+db.engine.indexedBy("")+` WHERE time_ms >= ? ORDER BY id LIMIT 1`, beforeMS).Scan(&keepFrom)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("store: prune audit: %w", err)
		}
		var last AuditAnchor
		q := `SELECT id, hash FROM audit_events ORDER BY id DESC LIMIT 1`
		args := []any{}
		if keepFrom.Valid {
			q = `SELECT id, hash FROM audit_events WHERE id < ? ORDER BY id DESC LIMIT 1`
			args = append(args, keepFrom.Int64)
		}
		err = tx.tx.QueryRowContext(ctx, q, args...).Scan(&last.ID, &last.Hash)
		if errors.Is(err, sql.ErrNoRows) {
			return nil // nothing old enough
		}
		if err != nil {
			return fmt.Errorf("store: prune audit: %w", err)
		}
		res, err := tx.tx.ExecContext(ctx, `DELETE FROM audit_events WHERE id <= ?`, last.ID)
		if err != nil {
			return fmt.Errorf("store: prune audit: %w", err)
		}
		if tx.head != nil {
			tx.head.known = false // read it again
		}
		if removed, err = res.RowsAffected(); err != nil {
			return fmt.Errorf("store: prune audit: %w", err)
		}
		now := db.nowMS()
		if _, err := tx.tx.ExecContext(ctx, `INSERT INTO audit_anchor (id, hash, pruned_ms, before_ms, removed) VALUES (?, ?, ?, ?, ?)`,
			last.ID, last.Hash, now, beforeMS, removed); err != nil {
			return fmt.Errorf("store: prune audit: record anchor: %w", err)
		}
		details, err := json.Marshal(pruneDetails{
			BeforeMS: beforeMS, Before: time.UnixMilli(beforeMS).UTC().Format(time.RFC3339),
			Removed: removed, AnchorID: last.ID, AnchorHash: last.Hash,
		})
		if err != nil {
			return fmt.Errorf("store: prune audit: %w", err)
		}
		ev := AuditEvent{
			TimeMS: now, Category: AuditLogCategory, Activity: PruneActivity,
			ActorType: actor.Type, ActorID: actor.ID, ActorName: actor.Name,
			TargetType: "AuditLog", TargetName: "Audit log", Result: "success",
			ClientIP: actor.ClientIP, UserAgent: actor.UserAgent, Details: string(details),
		}
		return tx.AppendAudit(ctx, &ev)
	})
	if err != nil {
		return 0, err
	}
	return removed, nil
}

// VerifyResult is the outcome of a verification.
type VerifyResult struct {
	Checked    int64  // events read
	AnchorID   int64  // the chain starts after this event ID (0: never pruned)
	FromID     int64  // the walk started after this event: AnchorID for a full check, the checkpoint for an incremental one
	Full       bool   // the whole chain was read (false: only what followed the checkpoint)
	LastGoodID int64  // the newest event up to which the chain is intact
	OK         bool   // the whole chain is intact
	BrokenID   int64  // the first event altered, inserted or deleted
	Problem    string // e.g. "event 42 was altered"; "" when OK

	lastGoodHash string // the hash of LastGoodID, for the checkpoint
}

// Pace spreads a full verification over time so that it does not take a
// core from the pages while it runs: after every Chunk events it rests for
// Rest times as long as reading them took, so it uses at most 1/(1+Rest) of
// one core. Each chunk is read in its own snapshot, so no read transaction
// stays open for the whole walk (a long one would keep SQLite's write-ahead
// log from being checkpointed). The zero Pace reads everything in one go
// from one snapshot.
type Pace struct {
	Chunk int
	Rest  float64
}

// VerifyAudit is VerifyAuditFull at full speed: the whole chain from the
// anchor, in one snapshot.
func (db *DB) VerifyAudit(ctx context.Context) (VerifyResult, error) {
	return db.VerifyAuditFull(ctx, Pace{})
}

// VerifyAuditFull walks the whole hash chain in ID order from the anchor,
// streaming, and reports the first event that was altered, inserted or
// deleted. Appends while it runs are not checked and do not disturb it. When
// the chain is intact it moves the checkpoint (AuditCheckpoint) to the
// newest event checked, so the next incremental check starts there. An
// error is returned only when the check itself could not run.
func (db *DB) VerifyAuditFull(ctx context.Context, p Pace) (VerifyResult, error) {
	// A prune between two chunks removes events the walk may already have
	// passed and moves the anchor: start again from the new anchor. Prunes
	// run at most daily, so a second restart means something is wrong.
	for range 3 {
		res, err := db.walkFull(ctx, p)
		if errors.Is(err, errAnchorMoved) {
			continue
		}
		if err != nil {
			return VerifyResult{}, fmt.Errorf("store: verify audit: %w", err)
		}
		if res.OK {
			if err := db.saveCheckpoint(ctx, res, true); err != nil {
				return res, err
			}
		}
		return res, nil
	}
	return VerifyResult{}, fmt.Errorf("store: verify audit: the log was pruned three times while it was being verified")
}

var errAnchorMoved = errors.New("the prune anchor moved during the walk")

func (db *DB) walkFull(ctx context.Context, p Pace) (VerifyResult, error) {
	var v *chainVerifier
	var after int64 // the newest event pushed
	for {
		t0 := time.Now()
		n, err := db.readChunk(ctx, p.Chunk, func(ctx context.Context, q auditReader) (int64, error) {
			anchor, err := latestAnchor(ctx, q)
			if err != nil {
				return 0, err
			}
			if v == nil {
				v = newChainVerifier(anchor)
				v.res.Full = true
				// Read every row, even one with an ID at or below the
				// anchor's (which should not exist), so that it is reported.
				after = math.MinInt64
			} else if anchor != v.anchor {
				return 0, errAnchorMoved
			}
			return after, nil
		}, func(e *AuditEvent) bool {
			after = e.ID
			return v.push(e)
		})
		if err != nil {
			return VerifyResult{}, err
		}
		if v.res.Problem != "" {
			return v.res, nil
		}
		if p.Chunk <= 0 || n < int64(p.Chunk) {
			v.finish()
			return v.res, nil
		}
		if err := rest(ctx, time.Duration(float64(time.Since(t0))*p.Rest)); err != nil {
			return VerifyResult{}, err
		}
		if db.afterChunk != nil {
			db.afterChunk()
		}
	}
}

// auditReader is what a chunk reads with: a read transaction.
type auditReader interface {
	rowQuerier
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// readChunk opens one read snapshot, asks start for the ID to read after
// (start may refuse with an error), and passes up to limit events after it
// (all when limit <= 0) to push in ID order until push returns false. It
// returns how many it read.
func (db *DB) readChunk(ctx context.Context, limit int, start func(context.Context, auditReader) (int64, error), push func(*AuditEvent) bool) (int64, error) {
	// A read transaction (on SQLite a plain BEGIN, even with
	// _txlock=immediate) gives the anchor and the events from one snapshot
	// without blocking writers.
	stx, err := db.sql.BeginTx(ctx, db.engine.snapshot())
	if err != nil {
		return 0, err
	}
	defer stx.Rollback()
	after, err := start(ctx, stx)
	if err != nil {
		return 0, err
	}
	if limit <= 0 {
		limit = math.MaxInt64 // no limit, in words both engines read
	}
	rows, err := stx.QueryContext(ctx, `SELECT `+auditCols+` FROM audit_events WHERE id > ? ORDER BY id LIMIT ?`, after, limit)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	var n int64
	for rows.Next() {
		e, err := scanAudit(rows)
		if err != nil {
			return n, err
		}
		n++
		if !push(&e) {
			return n, nil
		}
	}
	return n, rows.Err()
}

// rest waits d or until ctx ends.
func rest(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// chainVerifier checks events one at a time, holding one back so that a
// broken event can be judged with its successor in view (an inserted event is
// followed by one that links past it).
type chainVerifier struct {
	anchor    AuditAnchor
	confirmed bool // the anchor is vouched for by its prune event

	prevID, prevPrevID     int64
	prevHash, prevPrevHash string
	pending                *AuditEvent
	// trustPrev: prev is the checkpoint, verified before and confirmed
	// unchanged, so a mismatch with the next event is that event's fault.
	trustPrev bool

	res VerifyResult
}

func newChainVerifier(a AuditAnchor) *chainVerifier {
	return &chainVerifier{
		anchor: a, confirmed: a.ID == 0,
		prevID: a.ID, prevHash: a.Hash, prevPrevID: -1,
		res: VerifyResult{AnchorID: a.ID, FromID: a.ID, LastGoodID: a.ID},
	}
}

// push takes the next event in ID order; false means a break was found and
// res holds it.
func (v *chainVerifier) push(e *AuditEvent) bool {
	v.res.Checked++
	if v.pending == nil {
		v.pending = e
		return true
	}
	ok := v.check(v.pending, e)
	v.pending = e
	return ok
}

// finish checks the held-back event and the anchor.
func (v *chainVerifier) finish() {
	if v.pending != nil && !v.check(v.pending, nil) {
		return
	}
	if !v.confirmed {
		v.fail(v.anchor.ID+1, v.anchor.ID, fmt.Sprintf(
			"the prune anchor at event %d is not confirmed by a %q event, so events up to %d may have been deleted",
			v.anchor.ID, PruneActivity, v.anchor.ID))
		return
	}
	v.res.OK = true
}

func (v *chainVerifier) fail(broken, lastGood int64, problem string) {
	v.res.BrokenID, v.res.Problem = broken, problem
	v.res.LastGoodID = max(lastGood, 0)
}

// check judges e given the chain so far and its successor next (nil at the
// end), and advances the chain when e is sound.
func (v *chainVerifier) check(e, next *AuditEvent) bool {
	want := v.prevID + 1
	contentOK := ContentHash(*e) == e.Hash
	linked := e.PrevHash == v.prevHash
	switch {
	case e.ID != want && !linked:
		// The event that e links to is missing: a deletion.
		if e.ID == want+1 {
			v.fail(want, v.prevID, fmt.Sprintf("event %d was deleted (chain jumps from %d to %d)", want, v.prevID, e.ID))
		} else {
			v.fail(want, v.prevID, fmt.Sprintf("events %d–%d were deleted (chain jumps from %d to %d)", want, e.ID-1, v.prevID, e.ID))
		}
		return false
	case e.ID != want:
		// Links correctly but its ID does not follow: written with a new ID.
		v.fail(e.ID, v.prevID, fmt.Sprintf("an event was inserted after %d (event %d does not follow it)", v.prevID, e.ID))
		return false
	case !linked && v.trustPrev:
		v.fail(e.ID, v.prevID, fmt.Sprintf("event %d was altered", e.ID))
		return false
	case !linked && v.prevPrevHash != "" && e.PrevHash == v.prevPrevHash:
		// e links past its predecessor, which therefore does not belong.
		v.fail(v.prevID, v.prevPrevID, fmt.Sprintf("an event was inserted before %d", e.ID))
		return false
	case !linked && v.prevPrevID < 0:
		// The first event does not chain to the anchor (or genesis).
		if v.anchor.ID == 0 {
			v.fail(e.ID, 0, fmt.Sprintf("event %d was altered", e.ID))
		} else {
			v.fail(e.ID, v.anchor.ID, fmt.Sprintf("event %d does not chain to the prune anchor at event %d: the event or the anchor was altered", e.ID, v.anchor.ID))
		}
		return false
	case !linked && contentOK:
		// e is intact but its predecessor is not what e was chained to: the
		// predecessor was rewritten together with its own hash.
		v.fail(v.prevID, v.prevPrevID, fmt.Sprintf("event %d was altered", v.prevID))
		return false
	case !contentOK && next != nil && next.ID == e.ID+1 && next.PrevHash == e.PrevHash && e.PrevHash == v.prevHash:
		// e and its successor both claim the same predecessor: e is extra.
		v.fail(e.ID, v.prevID, fmt.Sprintf("an event was inserted before %d", next.ID))
		return false
	case !linked || !contentOK:
		v.fail(e.ID, v.prevID, fmt.Sprintf("event %d was altered", e.ID))
		return false
	}
	if !v.confirmed && e.Category == AuditLogCategory && e.Activity == PruneActivity {
		var d pruneDetails
		if json.Unmarshal([]byte(e.Details), &d) == nil && d.AnchorID == v.anchor.ID && d.AnchorHash == v.anchor.Hash {
			v.confirmed = true
		}
	}
	v.prevPrevID, v.prevPrevHash = v.prevID, v.prevHash
	v.prevID, v.prevHash = e.ID, e.Hash
	v.trustPrev = false
	v.res.LastGoodID, v.res.lastGoodHash = e.ID, e.Hash
	return true
}
