package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// AuditCheckpoint is where the last successful verification of the audit
// chain ended: an incremental check starts after EventID instead of at the
// anchor.
type AuditCheckpoint struct {
	EventID    int64  // the newest event that check found intact
	Hash       string // its hash then
	AnchorID   int64  // the prune anchor the chain was verified from
	AnchorHash string
	VerifiedMS int64 // when the check ended
	FullMS     int64 // when the last full check ended; 0: never
}

func readCheckpoint(ctx context.Context, q rowQuerier) (AuditCheckpoint, bool, error) {
	var c AuditCheckpoint
	err := q.QueryRowContext(ctx, `SELECT event_id, hash, anchor_id, anchor_hash, verified_ms, full_ms FROM audit_checkpoint WHERE one = 1`).
		Scan(&c.EventID, &c.Hash, &c.AnchorID, &c.AnchorHash, &c.VerifiedMS, &c.FullMS)
	if errors.Is(err, sql.ErrNoRows) {
		return c, false, nil
	}
	if err != nil {
		return c, false, fmt.Errorf("read audit checkpoint: %w", err)
	}
	return c, true, nil
}

// AuditCheckpoint returns the checkpoint; false when no verification has
// succeeded yet (or the log was empty every time).
func (db *DB) AuditCheckpoint(ctx context.Context) (AuditCheckpoint, bool, error) {
	c, ok, err := readCheckpoint(ctx, db.sql)
	if err != nil {
		return c, false, fmt.Errorf("store: %w", err)
	}
	return c, ok, nil
}

// VerifyAuditIncremental verifies what was appended since the checkpoint:
// the events after it, chained to its hash. Before it walks, it makes sure
// the checkpoint still stands, at a cost that does not grow with the
// events' content: the checkpoint event still has the hash it had (and that
// hash is still its content's), no event between the anchor and it is
// missing (a count; a binary search of counts names the first gap), the
// first event still chains to the anchor, and an anchor newer than the one
// the checkpoint was verified from is vouched for by a prune event after
// the checkpoint. Events before the checkpoint that were altered in place
// are found only by a full check (VerifyAuditFull).
//
// Without a usable checkpoint (never verified, or everything up to it was
// pruned since) it runs VerifyAuditFull with pace p. When the chain is
// intact it moves the checkpoint to the newest event.
func (db *DB) VerifyAuditIncremental(ctx context.Context, p Pace) (VerifyResult, error) {
	var v *chainVerifier
	_, err := db.readChunk(ctx, 0, func(ctx context.Context, q auditReader) (int64, error) {
		anchor, err := latestAnchor(ctx, q)
		if err != nil {
			return 0, err
		}
		cp, ok, err := readCheckpoint(ctx, q)
		if err != nil {
			return 0, err
		}
		if !ok || cp.EventID <= anchor.ID {
			return 0, errNeedFull
		}
		v = newChainVerifier(anchor)
		v.res.FromID = cp.EventID
		if err := checkCheckpoint(ctx, db.engine, q, anchor, cp, v); err != nil {
			return 0, err
		}
		return cp.EventID, nil
	}, func(e *AuditEvent) bool { return v.push(e) })
	switch {
	case errors.Is(err, errNeedFull):
		return db.VerifyAuditFull(ctx, p)
	case errors.Is(err, errBroken):
		return v.res, nil
	case err != nil:
		return VerifyResult{}, fmt.Errorf("store: verify audit: %w", err)
	}
	if v.res.Problem != "" {
		return v.res, nil
	}
	v.finish()
	if v.res.OK {
		if err := db.saveCheckpoint(ctx, v.res, false); err != nil {
			return v.res, err
		}
	}
	return v.res, nil
}

var (
	errNeedFull = errors.New("no usable checkpoint")
	errBroken   = errors.New("the checkpoint does not stand") // v.res says why
)

// checkCheckpoint confirms that the chain up to cp is still what was
// verified, as far as that can be told without reading it, and sets v up to
// continue after cp. errBroken means it is not, and v.res says why.
func checkCheckpoint(ctx context.Context, e engine, q auditReader, anchor AuditAnchor, cp AuditCheckpoint, v *chainVerifier) error {
	fail := func(broken, lastGood int64, problem string) error {
		v.fail(broken, lastGood, problem)
		return errBroken
	}
	// The first event must follow the anchor and chain to it: this catches
	// a removed or rewritten anchor and deleted oldest events.
	first, err := scanAudit(q.QueryRowContext(ctx, `SELECT `+auditCols+` FROM audit_events ORDER BY id LIMIT 1`))
	if errors.Is(err, sql.ErrNoRows) {
		return fail(anchor.ID+1, anchor.ID, fmt.Sprintf("events %d–%d were deleted (the log is empty)", anchor.ID+1, cp.EventID))
	}
	if err != nil {
		return err
	}
	want := anchor.ID + 1
	switch {
	case first.ID > want && first.ID == want+1:
		return fail(want, anchor.ID, fmt.Sprintf("event %d was deleted (chain jumps from %d to %d)", want, anchor.ID, first.ID))
	case first.ID > want:
		return fail(want, anchor.ID, fmt.Sprintf("events %d–%d were deleted (chain jumps from %d to %d)", want, first.ID-1, anchor.ID, first.ID))
	case first.ID < want:
		return fail(first.ID, anchor.ID, fmt.Sprintf("event %d was inserted before the prune anchor at event %d", first.ID, anchor.ID))
	case first.PrevHash != anchor.Hash && anchor.ID == 0, ContentHash(first) != first.Hash:
		return fail(first.ID, anchor.ID, fmt.Sprintf("event %d was altered", first.ID))
	case first.PrevHash != anchor.Hash:
		return fail(first.ID, anchor.ID, fmt.Sprintf("event %d does not chain to the prune anchor at event %d: the event or the anchor was altered", first.ID, anchor.ID))
	}
	// Prunes only move the anchor forwards, and the prune event that made a
	// newer anchor is appended after the checkpoint: the walk must meet it.
	switch {
	case anchor.ID < cp.AnchorID || (anchor.ID == cp.AnchorID && anchor.Hash != cp.AnchorHash):
		return fail(anchor.ID+1, anchor.ID, fmt.Sprintf("the prune anchor changed since the last verification (from event %d to event %d): events may have been deleted", cp.AnchorID, anchor.ID))
	case anchor.ID == cp.AnchorID:
		v.confirmed = true
	default:
		v.confirmed = false
	}
	// The checkpoint event is still what was verified.
	at, err := scanAudit(q.QueryRowContext(ctx, `SELECT `+auditCols+` FROM audit_events WHERE id = ?`, cp.EventID))
	if errors.Is(err, sql.ErrNoRows) {
		return fail(cp.EventID, anchor.ID, fmt.Sprintf("event %d was deleted after it was verified", cp.EventID))
	}
	if err != nil {
		return err
	}
	if at.Hash != cp.Hash || ContentHash(at) != at.Hash {
		return fail(cp.EventID, anchor.ID, fmt.Sprintf("event %d was altered after it was verified", cp.EventID))
	}
	// Nothing between the anchor and the checkpoint is missing. IDs are
	// unique, so the count is short only if some were deleted. The oldest
	// event follows the anchor (above), so that count is every event less
	// those after the checkpoint: SQLite counts a whole table by counting
	// the cells of its smallest index, the index of IDs alone (migration
	// 0007): about 5 ms for a million events, where stepping through an ID
	// range takes 75 ms in that index and 300 ms in the table. The events
	// after the checkpoint are few.
	var total, newer int64
	if err := q.QueryRowContext(ctx, `SELECT count(*) FROM audit_events`).Scan(&total); err != nil {
		return err
	}
	if err := q.QueryRowContext(ctx, `SELECT count(*) FROM audit_events WHERE id > ?`, cp.EventID).Scan(&newer); err != nil {
		return err
	}
	if total-newer < cp.EventID-anchor.ID {
		count := func(upTo int64) (int64, error) {
			var n int64
			err := q.QueryRowContext(ctx, `SELECT count(*) FROM audit_events`+e.indexedBy("audit_ids")+` WHERE id > ? AND id <= ?`, anchor.ID, upTo).Scan(&n)
			return n, err
		}
		// Find the first gap: the smallest m with fewer than m-anchor events
		// up to it (log(n) counts, only on failure).
		lo, hi := anchor.ID+1, cp.EventID // the answer lies in [lo, hi]
		for lo < hi {
			mid := lo + (hi-lo)/2
			c, err := count(mid)
			if err != nil {
				return err
			}
			if c < mid-anchor.ID {
				hi = mid
			} else {
				lo = mid + 1
			}
		}
		var next int64
		if err := q.QueryRowContext(ctx, `SELECT min(id) FROM audit_events WHERE id > ?`, lo).Scan(&next); err != nil {
			return err
		}
		if next == lo+1 {
			return fail(lo, lo-1, fmt.Sprintf("event %d was deleted after it was verified (chain jumps from %d to %d)", lo, lo-1, next))
		}
		return fail(lo, lo-1, fmt.Sprintf("events %d–%d were deleted after they were verified (chain jumps from %d to %d)", lo, next-1, lo-1, next))
	}
	// Continue as if the walk had just checked the checkpoint event.
	v.prevPrevID, v.prevPrevHash = cp.EventID-1, at.PrevHash
	v.prevID, v.prevHash = cp.EventID, cp.Hash
	v.trustPrev = true
	v.res.LastGoodID, v.res.lastGoodHash = cp.EventID, cp.Hash
	return nil
}

// saveCheckpoint moves the checkpoint to the newest event res found intact,
// unless a check that ran meanwhile moved it further already (a full check
// still records that it ran). A verification is a read; this is the only
// write it makes, and it makes it only for an event that still has the hash
// it was verified with.
func (db *DB) saveCheckpoint(ctx context.Context, res VerifyResult, full bool) error {
	if res.LastGoodID <= res.AnchorID || res.lastGoodHash == "" {
		return nil // an empty log: nothing to remember
	}
	now := db.nowMS()
	err := db.InTx(ctx, func(tx *Tx) error {
		cur, ok, err := readCheckpoint(ctx, tx.tx)
		if err != nil {
			return err
		}
		if ok && cur.EventID > res.LastGoodID && cur.AnchorID >= res.AnchorID {
			if full {
				_, err = tx.tx.ExecContext(ctx, `UPDATE audit_checkpoint SET full_ms = ? WHERE one = 1`, now)
			}
			return err
		}
		var hash string
		err = tx.tx.QueryRowContext(ctx, `SELECT hash FROM audit_events WHERE id = ?`, res.LastGoodID).Scan(&hash)
		if errors.Is(err, sql.ErrNoRows) || (err == nil && hash != res.lastGoodHash) {
			return nil // pruned meanwhile (or changed, which the next check reports)
		}
		if err != nil {
			return err
		}
		anchor, err := latestAnchor(ctx, tx.tx)
		if err != nil {
			return err
		}
		if anchor.ID != res.AnchorID {
			return nil // pruned meanwhile: the next check starts from the new anchor
		}
		fullMS := cur.FullMS
		if full {
			fullMS = now
		}
		_, err = tx.tx.ExecContext(ctx, `INSERT INTO audit_checkpoint (one, event_id, hash, anchor_id, anchor_hash, verified_ms, full_ms)
			VALUES (1, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (one) DO UPDATE SET event_id = excluded.event_id, hash = excluded.hash, anchor_id = excluded.anchor_id,
				anchor_hash = excluded.anchor_hash, verified_ms = excluded.verified_ms, full_ms = excluded.full_ms`,
			res.LastGoodID, res.lastGoodHash, res.AnchorID, anchor.Hash, now, fullMS)
		return err
	})
	if err != nil {
		return fmt.Errorf("store: save audit checkpoint: %w", err)
	}
	return nil
}
