package store

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

// chainDB returns a database holding n chained events with IDs 1..n, one a
// millisecond apart from base.
func chainDB(t *testing.T, b Backend, n int) *DB {
	t.Helper()
	db := newAuditDB(t, b)
	if err := GenerateAudit(context.Background(), db, n, 1_000_000, 1_000_000+int64(n), 11); err != nil {
		t.Fatal(err)
	}
	return db
}

func verify(t *testing.T, db *DB) VerifyResult {
	t.Helper()
	res, err := db.VerifyAudit(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func mustExec(t *testing.T, db *DB, q string, args ...any) {
	t.Helper()
	if _, err := db.sql.Exec(q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// forge inserts e as a row, computing its hash as the real code would when
// rehash is set, or with a made-up hash.
func forge(t *testing.T, db *DB, e AuditEvent, rehash bool) {
	t.Helper()
	e.Hash = strings.Repeat("ab", 32)
	if rehash {
		e.Hash = ContentHash(e)
	}
	mustExec(t, db, `INSERT INTO audit_events (`+auditCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		e.ID, e.TimeMS, e.Category, e.Activity, e.ActorType, e.ActorID, e.ActorName,
		e.TargetType, e.TargetID, e.TargetDN, e.TargetName, e.Result, e.Reason,
		e.ClientIP, e.UserAgent, e.CorrelationID, e.Details, e.PrevHash, e.Hash)
}

// shiftUp renumbers events from id on by one, making room before id, as an
// attacker inserting an event would have to.
func shiftUp(t *testing.T, db *DB, from int64) {
	t.Helper()
	mustExec(t, db, `UPDATE audit_events SET id = -id WHERE id >= ?`, from)
	mustExec(t, db, `UPDATE audit_events SET id = 1 - id WHERE id < 0`)
}

func TestVerifyAudit(t *testing.T) {
	ForEachBackend(t, func(t *testing.T, bk Backend) {
		const n = 20
		cases := []struct {
			name     string
			tamper   func(t *testing.T, db *DB)
			broken   int64
			lastGood int64
			problem  string
		}{
			{"intact", func(*testing.T, *DB) {}, 0, n, ""},
			{"field edited", func(t *testing.T, db *DB) {
				mustExec(t, db, `UPDATE audit_events SET reason = 'x' WHERE id = 7`)
			}, 7, 6, "event 7 was altered"},
			{"details edited", func(t *testing.T, db *DB) {
				mustExec(t, db, `UPDATE audit_events SET details = '{"ldap_result":0}' WHERE id = 12`)
			}, 12, 11, "event 12 was altered"},
			{"time edited", func(t *testing.T, db *DB) {
				mustExec(t, db, `UPDATE audit_events SET time_ms = time_ms - 5000 WHERE id = 1`)
			}, 1, 0, "event 1 was altered"},
			{"last event edited", func(t *testing.T, db *DB) {
				mustExec(t, db, `UPDATE audit_events SET actor_name = 'nobody' WHERE id = ?`, n)
			}, n, n - 1, "event 20 was altered"},
			{"edited and hash recomputed", func(t *testing.T, db *DB) {
				e, err := db.AuditByID(context.Background(), 9)
				if err != nil {
					t.Fatal(err)
				}
				e.ActorName = "someone else"
				mustExec(t, db, `UPDATE audit_events SET actor_name = ?, hash = ? WHERE id = 9`, e.ActorName, ContentHash(e))
			}, 9, 8, "event 9 was altered"},
			{"deleted", func(t *testing.T, db *DB) {
				mustExec(t, db, `DELETE FROM audit_events WHERE id = 8`)
			}, 8, 7, "event 8 was deleted (chain jumps from 7 to 9)"},
			{"several deleted", func(t *testing.T, db *DB) {
				mustExec(t, db, `DELETE FROM audit_events WHERE id BETWEEN 3 AND 5`)
			}, 3, 2, "events 3–5 were deleted (chain jumps from 2 to 6)"},
			{"first deleted", func(t *testing.T, db *DB) {
				mustExec(t, db, `DELETE FROM audit_events WHERE id = 1`)
			}, 1, 0, "event 1 was deleted (chain jumps from 0 to 2)"},
			{"deleted and renumbered", func(t *testing.T, db *DB) {
				mustExec(t, db, `DELETE FROM audit_events WHERE id = 8`)
				mustExec(t, db, `UPDATE audit_events SET id = -id WHERE id > 8`)
				mustExec(t, db, `UPDATE audit_events SET id = -id - 1 WHERE id < 0`)
			}, 8, 7, "event 8 was altered"},
			{"inserted, hash forged", func(t *testing.T, db *DB) {
				prev, _ := db.AuditByID(context.Background(), 4)
				shiftUp(t, db, 5)
				forge(t, db, AuditEvent{ID: 5, TimeMS: prev.TimeMS, Category: "Policy", Activity: "Update self-service password reset policy",
					ActorType: "admin", ActorID: "1", Result: "success", Details: "{}", PrevHash: prev.Hash}, true)
			}, 5, 4, "an event was inserted before 6"},
			{"inserted, made-up hash", func(t *testing.T, db *DB) {
				prev, _ := db.AuditByID(context.Background(), 4)
				shiftUp(t, db, 5)
				forge(t, db, AuditEvent{ID: 5, TimeMS: prev.TimeMS, Category: "Policy", Activity: "Update self-service password reset policy",
					ActorType: "admin", Result: "success", Details: "{}", PrevHash: prev.Hash}, false)
			}, 5, 4, "an event was inserted before 6"},
			{"inserted with a fresh ID", func(t *testing.T, db *DB) {
				last, _ := db.AuditByID(context.Background(), n)
				forge(t, db, AuditEvent{ID: n + 5, TimeMS: last.TimeMS, Category: "Policy", Activity: "x",
					ActorType: "admin", Result: "success", Details: "{}", PrevHash: last.Hash}, true)
			}, n + 5, n, "an event was inserted after 20 (event 25 does not follow it)"},
			{"appended with a made-up hash", func(t *testing.T, db *DB) {
				last, _ := db.AuditByID(context.Background(), n)
				forge(t, db, AuditEvent{ID: n + 1, TimeMS: last.TimeMS, Category: "Policy", Activity: "x",
					ActorType: "admin", Result: "success", Details: "{}", PrevHash: last.Hash}, false)
			}, n + 1, n, "event 21 was altered"},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				db := chainDB(t, bk, n)
				c.tamper(t, db)
				res := verify(t, db)
				if res.OK != (c.problem == "") || res.BrokenID != c.broken || res.LastGoodID != c.lastGood || res.Problem != c.problem {
					t.Fatalf("got %+v\nwant broken %d, last good %d, problem %q", res, c.broken, c.lastGood, c.problem)
				}
			})
		}
	})
}

func TestVerifyEmpty(t *testing.T) {
	ForEachBackend(t, func(t *testing.T, bk Backend) {
		res := verify(t, newAuditDB(t, bk))
		if !res.OK || res.Checked != 0 || res.LastGoodID != 0 {
			t.Fatalf("empty log: %+v", res)
		}
	})
}

func TestPruneAudit(t *testing.T) {
	ForEachBackend(t, func(t *testing.T, bk Backend) {
		ctx := context.Background()
		db := chainDB(t, bk, 30) // times 1_000_000 .. 1_000_029
		db.SetClock(func() time.Time { return time.UnixMilli(2_000_000) })
		actor := AuditActor{Type: "system", ID: "system", Name: "Writeback"}

		removed, err := db.PruneAudit(ctx, 1_000_010, actor)
		if err != nil || removed != 10 {
			t.Fatalf("prune = %d, %v; want 10", removed, err)
		}
		anchor, err := db.AuditAnchor(ctx)
		if err != nil || anchor.ID != 10 || anchor.Removed != 10 || anchor.BeforeMS != 1_000_010 {
			t.Fatalf("anchor = %+v, %v", anchor, err)
		}
		evs := allEvents(t, db)
		if evs[0].ID != 11 || evs[0].PrevHash != anchor.Hash {
			t.Fatalf("first kept event %d chains to %s, anchor %+v", evs[0].ID, evs[0].PrevHash, anchor)
		}
		last := evs[len(evs)-1]
		if last.ID != 31 || last.Activity != PruneActivity || last.Category != AuditLogCategory || last.ActorID != "system" {
			t.Fatalf("prune event = %+v", last)
		}
		var d pruneDetails
		if err := json.Unmarshal([]byte(last.Details), &d); err != nil || d.Removed != 10 || d.AnchorID != 10 || d.AnchorHash != anchor.Hash {
			t.Fatalf("prune details = %s (%v)", last.Details, err)
		}
		if res := verify(t, db); !res.OK || res.AnchorID != 10 || res.LastGoodID != 31 || res.Checked != 21 {
			t.Fatalf("after prune: %+v", res)
		}

		// Nothing old enough: no anchor, no event.
		if removed, err := db.PruneAudit(ctx, 1_000_010, actor); err != nil || removed != 0 {
			t.Fatalf("second prune = %d, %v", removed, err)
		}
		if n := len(allEvents(t, db)); n != 21 {
			t.Fatalf("events after no-op prune = %d", n)
		}

		// Pruning everything, the previous prune event included, leaves only the
		// new prune event, which chains to the new anchor; appends carry on.
		removed, err = db.PruneAudit(ctx, 3_000_000, actor)
		if err != nil || removed != 21 {
			t.Fatalf("prune all = %d, %v", removed, err)
		}
		evs = allEvents(t, db)
		if len(evs) != 1 || evs[0].ID != 32 || evs[0].Activity != PruneActivity {
			t.Fatalf("after pruning everything: %v", ids(evs))
		}
		appendEvents(t, db, AuditEvent{TimeMS: 2_000_001, Category: "Policy", Activity: "x", Result: "success"})
		if res := verify(t, db); !res.OK || res.AnchorID != 31 || res.LastGoodID != 33 {
			t.Fatalf("after pruning everything and appending: %+v", res)
		}

		// An emptied table (the prune event removed by hand too) still continues
		// from the anchor.
		mustExec(t, db, `DELETE FROM audit_events`)
		got := appendEvents(t, db, AuditEvent{TimeMS: 2_000_002, Category: "Policy", Activity: "x", Result: "success"})[0]
		if a, _ := db.AuditAnchor(ctx); got.ID != a.ID+1 || got.PrevHash != a.Hash {
			t.Fatalf("append to empty pruned table: %+v, anchor %+v", got, a)
		}
	})
}

func TestPruneTampering(t *testing.T) {
	ForEachBackend(t, func(t *testing.T, bk Backend) {
		ctx := context.Background()
		prune := func(t *testing.T) *DB {
			db := chainDB(t, bk, 30)
			if _, err := db.PruneAudit(ctx, 1_000_010, AuditActor{Type: "cli", ID: "cli"}); err != nil {
				t.Fatal(err)
			}
			return db
		}
		t.Run("anchor removed", func(t *testing.T) {
			db := prune(t)
			mustExec(t, db, `DELETE FROM audit_anchor`)
			if res := verify(t, db); res.OK || res.BrokenID != 1 || !strings.Contains(res.Problem, "events 1–10 were deleted") {
				t.Fatalf("%+v", res)
			}
		})
		t.Run("anchor hash altered", func(t *testing.T) {
			db := prune(t)
			mustExec(t, db, `UPDATE audit_anchor SET hash = ?`, strings.Repeat("0", 64))
			if res := verify(t, db); res.OK || res.BrokenID != 11 || !strings.Contains(res.Problem, "does not chain to the prune anchor") {
				t.Fatalf("%+v", res)
			}
		})
		t.Run("events deleted behind a forged anchor", func(t *testing.T) {
			db := prune(t)
			e, _ := db.AuditByID(ctx, 15)
			mustExec(t, db, `DELETE FROM audit_events WHERE id <= 15`)
			mustExec(t, db, `INSERT INTO audit_anchor (id, hash, pruned_ms, before_ms, removed) VALUES (15, ?, 0, 0, 5)`, e.Hash)
			res := verify(t, db)
			if res.OK || res.BrokenID != 16 || !strings.Contains(res.Problem, "not confirmed") {
				t.Fatalf("%+v", res)
			}
		})
	})
}

func TestOnAudit(t *testing.T) {
	ForEachBackend(t, func(t *testing.T, bk Backend) {
		ctx := context.Background()
		db := newAuditDB(t, bk)
		var got []int64
		remove := db.OnAudit(func(e AuditEvent) { got = append(got, e.ID) })
		err := db.InTx(ctx, func(tx *Tx) error {
			for range 3 {
				e := AuditEvent{Category: "Policy", Activity: "x", Result: "success"}
				if err := tx.AppendAudit(ctx, &e); err != nil {
					return err
				}
			}
			if len(got) != 0 {
				t.Error("hook ran before commit")
			}
			return nil
		})
		if err != nil || len(got) != 3 || got[0] != 1 || got[2] != 3 {
			t.Fatalf("after commit: %v, %v", got, err)
		}
		boom := errors.New("boom")
		err = db.InTx(ctx, func(tx *Tx) error {
			e := AuditEvent{Category: "Policy", Activity: "x", Result: "success"}
			if err := tx.AppendAudit(ctx, &e); err != nil {
				return err
			}
			return boom
		})
		if !errors.Is(err, boom) || len(got) != 3 {
			t.Fatalf("rolled back: %v, %v", got, err)
		}
		remove()
		appendEvents(t, db, AuditEvent{Category: "Policy", Activity: "x", Result: "success"})
		if len(got) != 3 {
			t.Fatalf("after remove: %v", got)
		}
	})
}
