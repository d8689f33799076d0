package store

import (
	"context"
	"strings"
	"testing"
)

func verifyInc(t *testing.T, db *DB) VerifyResult {
	t.Helper()
	res, err := db.VerifyAuditIncremental(context.Background(), Pace{})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// checkpointed returns a database whose events 1..30 were verified in full
// (the checkpoint is at 30) and that has 5 more events, 31..35, since.
func checkpointed(t *testing.T, b Backend) *DB {
	t.Helper()
	db := chainDB(t, b, 30)
	if res := verify(t, db); !res.OK || !res.Full || res.Checked != 30 {
		t.Fatalf("full check: %+v", res)
	}
	if cp, ok, err := db.AuditCheckpoint(context.Background()); err != nil || !ok || cp.EventID != 30 || cp.FullMS == 0 {
		t.Fatalf("checkpoint after a full check: %+v %v %v", cp, ok, err)
	}
	for i := range 5 {
		appendEvents(t, db, AuditEvent{TimeMS: 1_000_100 + int64(i), Category: "Policy", Activity: "x", ActorType: "admin", Result: "success"})
	}
	return db
}

// TestVerifyIncrementalReadsOnlyNewEvents: a check after a verified one
// reads what was appended since, not the whole log, and moves the
// checkpoint.
func TestVerifyIncrementalReadsOnlyNewEvents(t *testing.T) {
	ForEachBackend(t, func(t *testing.T, bk Backend) {
		ctx := context.Background()
		db := checkpointed(t, bk)
		res := verifyInc(t, db)
		if !res.OK || res.Full || res.Checked != 5 || res.FromID != 30 || res.LastGoodID != 35 {
			t.Fatalf("incremental check: %+v", res)
		}
		cp, _, _ := db.AuditCheckpoint(ctx)
		if cp.EventID != 35 || cp.FullMS == 0 {
			t.Fatalf("checkpoint after the incremental check: %+v", cp)
		}
		if res := verifyInc(t, db); !res.OK || res.Checked != 0 || res.LastGoodID != 35 {
			t.Fatalf("nothing new: %+v", res)
		}
		// Without a checkpoint (a log never verified) it falls back to a full
		// check, which sets one.
		fresh := chainDB(t, bk, 12)
		if res := verifyInc(t, fresh); !res.OK || !res.Full || res.Checked != 12 {
			t.Fatalf("first check: %+v", res)
		}
		if cp, ok, _ := fresh.AuditCheckpoint(ctx); !ok || cp.EventID != 12 {
			t.Fatalf("checkpoint after the first check: %+v", cp)
		}
		// An empty log verifies and leaves no checkpoint.
		empty := newAuditDB(t, bk)
		if res := verifyInc(t, empty); !res.OK || res.Checked != 0 {
			t.Fatalf("empty: %+v", res)
		}
		if _, ok, _ := empty.AuditCheckpoint(ctx); ok {
			t.Fatal("an empty log got a checkpoint")
		}
	})
}

func TestVerifyIncrementalTampering(t *testing.T) {
	ForEachBackend(t, func(t *testing.T, bk Backend) {
		ctx := context.Background()
		cases := []struct {
			name     string
			tamper   func(t *testing.T, db *DB)
			broken   int64
			lastGood int64
			problem  string
			// full is what a full check says, when it differs
			fullProblem string
		}{
			{"new event edited", func(t *testing.T, db *DB) {
				mustExec(t, db, `UPDATE audit_events SET reason = 'x' WHERE id = 33`)
			}, 33, 32, "event 33 was altered", ""},
			{"first new event rewritten to skip the checkpoint", func(t *testing.T, db *DB) {
				e, _ := db.AuditByID(ctx, 31)
				e.PrevHash = strings.Repeat("cd", 32)
				mustExec(t, db, `UPDATE audit_events SET prev_hash = ?, hash = ? WHERE id = 31`, e.PrevHash, ContentHash(e))
				// A full check cannot tell which of the two was rewritten; the
				// incremental one knows event 30 is as verified.
			}, 31, 30, "event 31 was altered", "event 30 was altered"},
			{"checkpoint event edited", func(t *testing.T, db *DB) {
				mustExec(t, db, `UPDATE audit_events SET actor_name = 'nobody' WHERE id = 30`)
			}, 30, 0, "event 30 was altered after it was verified", "event 30 was altered"},
			{"checkpoint event edited, hash recomputed", func(t *testing.T, db *DB) {
				e, _ := db.AuditByID(ctx, 30)
				e.ActorName = "nobody"
				mustExec(t, db, `UPDATE audit_events SET actor_name = ?, hash = ? WHERE id = 30`, e.ActorName, ContentHash(e))
			}, 30, 0, "event 30 was altered after it was verified", "event 30 was altered"},
			{"checkpoint event deleted", func(t *testing.T, db *DB) {
				mustExec(t, db, `DELETE FROM audit_events WHERE id = 30`)
			}, 30, 0, "event 30 was deleted after it was verified", "event 30 was deleted (chain jumps from 29 to 31)"},
			{"old event deleted", func(t *testing.T, db *DB) {
				mustExec(t, db, `DELETE FROM audit_events WHERE id = 12`)
			}, 12, 11, "event 12 was deleted after it was verified (chain jumps from 11 to 13)", "event 12 was deleted (chain jumps from 11 to 13)"},
			{"old events deleted", func(t *testing.T, db *DB) {
				mustExec(t, db, `DELETE FROM audit_events WHERE id BETWEEN 20 AND 24`)
			}, 20, 19, "events 20–24 were deleted after they were verified (chain jumps from 19 to 25)", "events 20–24 were deleted (chain jumps from 19 to 25)"},
			{"oldest events deleted", func(t *testing.T, db *DB) {
				mustExec(t, db, `DELETE FROM audit_events WHERE id <= 3`)
			}, 1, 0, "events 1–3 were deleted (chain jumps from 0 to 4)", ""},
			{"first event edited", func(t *testing.T, db *DB) {
				mustExec(t, db, `UPDATE audit_events SET reason = 'x' WHERE id = 1`)
			}, 1, 0, "event 1 was altered", ""},
			{"inserted after the checkpoint", func(t *testing.T, db *DB) {
				prev, _ := db.AuditByID(ctx, 32)
				shiftUp(t, db, 33)
				forge(t, db, AuditEvent{ID: 33, TimeMS: prev.TimeMS, Category: "Policy", Activity: "x",
					ActorType: "admin", Result: "success", Details: "{}", PrevHash: prev.Hash}, true)
			}, 33, 32, "an event was inserted before 34", ""},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				db := checkpointed(t, bk)
				c.tamper(t, db)
				res := verifyInc(t, db)
				if res.OK || res.Full || res.BrokenID != c.broken || res.LastGoodID != c.lastGood || res.Problem != c.problem {
					t.Fatalf("incremental: got %+v\nwant broken %d, last good %d, problem %q", res, c.broken, c.lastGood, c.problem)
				}
				want := c.fullProblem
				if want == "" {
					want = c.problem
				}
				if full := verify(t, db); full.OK || full.Problem != want {
					t.Fatalf("full: got %+v, want %q", full, want)
				}
				// A failed check does not move the checkpoint past the break.
				if cp, _, _ := db.AuditCheckpoint(ctx); cp.EventID != 30 {
					t.Fatalf("checkpoint moved to %d", cp.EventID)
				}
			})
		}
	})
}

// TestVerifyIncrementalLeavesOldEditsToFull: an event before the checkpoint
// altered in place is not read again by an incremental check; the full
// check finds it.
func TestVerifyIncrementalLeavesOldEditsToFull(t *testing.T) {
	ForEachBackend(t, func(t *testing.T, bk Backend) {
		db := checkpointed(t, bk)
		mustExec(t, db, `UPDATE audit_events SET reason = 'x' WHERE id = 12`)
		if res := verifyInc(t, db); !res.OK || res.Checked != 5 {
			t.Fatalf("incremental: %+v", res)
		}
		if res := verify(t, db); res.OK || res.BrokenID != 12 || res.Problem != "event 12 was altered" {
			t.Fatalf("full: %+v", res)
		}
	})
}

func TestVerifyIncrementalAndPruning(t *testing.T) {
	ForEachBackend(t, func(t *testing.T, bk Backend) {
		ctx := context.Background()
		actor := AuditActor{Type: "system", ID: "system", Name: "Writeback"}
		t.Run("prune after the checkpoint", func(t *testing.T) {
			db := checkpointed(t, bk)
			if n, err := db.PruneAudit(ctx, 1_000_010, actor); err != nil || n != 10 {
				t.Fatalf("prune = %d, %v", n, err)
			}
			// Events 31..35 and the prune event 36, which vouches for the anchor.
			res := verifyInc(t, db)
			if !res.OK || res.Full || res.Checked != 6 || res.AnchorID != 10 || res.LastGoodID != 36 {
				t.Fatalf("after prune: %+v", res)
			}
			if cp, _, _ := db.AuditCheckpoint(ctx); cp.EventID != 36 || cp.AnchorID != 10 {
				t.Fatalf("checkpoint: %+v", cp)
			}
			appendEvents(t, db, AuditEvent{TimeMS: 1_000_200, Category: "Policy", Activity: "x", Result: "success"})
			if res := verifyInc(t, db); !res.OK || res.Checked != 1 {
				t.Fatalf("after append: %+v", res)
			}
			if res := verify(t, db); !res.OK || res.Checked != 27 {
				t.Fatalf("full after prune: %+v", res)
			}
		})
		t.Run("prune past the checkpoint", func(t *testing.T) {
			db := checkpointed(t, bk)
			if n, err := db.PruneAudit(ctx, 3_000_000, actor); err != nil || n != 35 {
				t.Fatalf("prune = %d, %v", n, err)
			}
			res := verifyInc(t, db)
			if !res.OK || !res.Full || res.Checked != 1 || res.AnchorID != 35 {
				t.Fatalf("after pruning past the checkpoint: %+v", res)
			}
		})
		pruned := func(t *testing.T) *DB {
			db := chainDB(t, bk, 30)
			if _, err := db.PruneAudit(ctx, 1_000_010, actor); err != nil {
				t.Fatal(err)
			}
			if res := verify(t, db); !res.OK {
				t.Fatal(res)
			}
			appendEvents(t, db, AuditEvent{TimeMS: 1_000_200, Category: "Policy", Activity: "x", Result: "success"})
			return db
		}
		t.Run("anchor removed", func(t *testing.T) {
			db := pruned(t)
			mustExec(t, db, `DELETE FROM audit_anchor`)
			if res := verifyInc(t, db); res.OK || res.BrokenID != 1 || res.Problem != "events 1–10 were deleted (chain jumps from 0 to 11)" {
				t.Fatalf("%+v", res)
			}
		})
		t.Run("anchor hash altered", func(t *testing.T) {
			db := pruned(t)
			mustExec(t, db, `UPDATE audit_anchor SET hash = ?`, strings.Repeat("0", 64))
			if res := verifyInc(t, db); res.OK || res.BrokenID != 11 || !strings.Contains(res.Problem, "does not chain to the prune anchor") {
				t.Fatalf("%+v", res)
			}
		})
		t.Run("events deleted behind a forged anchor", func(t *testing.T) {
			db := pruned(t)
			e, _ := db.AuditByID(ctx, 15)
			mustExec(t, db, `DELETE FROM audit_events WHERE id <= 15`)
			mustExec(t, db, `INSERT INTO audit_anchor (id, hash, pruned_ms, before_ms, removed) VALUES (15, ?, 0, 0, 5)`, e.Hash)
			res := verifyInc(t, db)
			if res.OK || res.Full || !strings.Contains(res.Problem, "not confirmed") {
				t.Fatalf("%+v", res)
			}
		})
		t.Run("newest anchor removed, older one left", func(t *testing.T) {
			db := pruned(t)
			if _, err := db.PruneAudit(ctx, 1_000_020, actor); err != nil {
				t.Fatal(err)
			}
			if res := verifyInc(t, db); !res.OK {
				t.Fatal(res)
			}
			mustExec(t, db, `DELETE FROM audit_anchor WHERE id = 20`)
			if res := verifyInc(t, db); res.OK || !strings.Contains(res.Problem, "events 11–20 were deleted") {
				t.Fatalf("%+v", res)
			}
		})
	})
}

// TestVerifyPacedMatchesOneGo: a full check read in small chunks with rests
// finds the same as one read in one go, for every kind of tampering.
func TestVerifyPacedMatchesOneGo(t *testing.T) {
	ForEachBackend(t, func(t *testing.T, bk Backend) {
		ctx := context.Background()
		for _, chunk := range []int{1, 2, 3, 7} {
			for _, tamper := range []string{
				``,
				`UPDATE audit_events SET reason = 'x' WHERE id = 7`,
				`DELETE FROM audit_events WHERE id = 8`,
				`DELETE FROM audit_events WHERE id = 20`,
				`DELETE FROM audit_events WHERE id = 1`,
			} {
				db := chainDB(t, bk, 20)
				if tamper != "" {
					mustExec(t, db, tamper)
				}
				want := verify(t, db)
				got, err := db.VerifyAuditFull(ctx, Pace{Chunk: chunk, Rest: 0.01})
				if err != nil || got != want {
					t.Fatalf("chunk %d, %q:\n got %+v, %v\nwant %+v", chunk, tamper, got, err, want)
				}
			}
		}
	})
}

// TestVerifyPacedAcrossAPrune: a prune between two chunks of a paced full
// check (the events it passed are gone, the anchor moved) makes it start
// again from the new anchor, and it still finds the chain intact.
func TestVerifyPacedAcrossAPrune(t *testing.T) {
	ForEachBackend(t, func(t *testing.T, bk Backend) {
		ctx := context.Background()
		db := chainDB(t, bk, 30)
		chunks := 0
		db.afterChunk = func() {
			if chunks++; chunks == 2 {
				if _, err := db.PruneAudit(ctx, 1_000_010, AuditActor{Type: "system", ID: "system"}); err != nil {
					t.Error(err)
				}
			}
		}
		res, err := db.VerifyAuditFull(ctx, Pace{Chunk: 4})
		if err != nil || !res.OK || !res.Full || res.AnchorID != 10 || res.Checked != 21 || res.LastGoodID != 31 {
			t.Fatalf("%+v, %v", res, err)
		}
		if cp, _, _ := db.AuditCheckpoint(ctx); cp.EventID != 31 || cp.AnchorID != 10 {
			t.Fatalf("checkpoint %+v", cp)
		}
	})
}
