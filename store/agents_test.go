package store_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/writeback/writeback/store"
)

func key(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }

func addToken(t *testing.T, db *store.DB, hash, name string, createdMS, expiresMS int64) {
	t.Helper()
	err := db.InTx(context.Background(), func(tx *store.Tx) error {
		return tx.InsertAgentToken(context.Background(), store.AgentToken{Hash: hash, Name: name, CreatedBy: "Ada", CreatedMS: createdMS, ExpiresMS: expiresMS})
	})
	if err != nil {
		t.Fatal(err)
	}
}

func enroll(db *store.DB, hash, id string, nowMS int64) (store.Agent, error) {
	var a store.Agent
	err := db.InTx(context.Background(), func(tx *store.Tx) error {
		var err error
		a, err = tx.EnrollAgent(context.Background(), hash, store.Agent{ID: id, SignKey: key(1), SealKey: key(2), Host: "dc-side", Version: "v1"}, nowMS)
		return err
	})
	return a, err
}

var hashA = fmt.Sprintf("%064x", 1)

// TestEnrollAgentTokenOnceUnderConcurrency: many enrolments with one token
// at the same time, through two handles on the file (as two processes
// would, so that only SQLite's own lock keeps them apart), create exactly
// one agent and mark the token used by it.
func TestEnrollAgentTokenOnceUnderConcurrency(t *testing.T) {
	store.ForEachBackend(t, func(t *testing.T, bk store.Backend) {
		path := bk.Where
		db1 := migrated(t, path)
		db2 := open(t, path)
		t.Cleanup(func() { db2.Close() })
		addToken(t, db1, hashA, "Branch office", 1000, 1000+3600_000)

		const n = 16
		var wg sync.WaitGroup
		var mu sync.Mutex
		var won []string
		var other []error
		for i := range n {
			wg.Go(func() {
				db := db1
				if i%2 == 1 {
					db = db2
				}
				id := fmt.Sprintf("agent-id-%08d", i)
				_, err := enroll(db, hashA, id, 2000)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					won = append(won, id)
				case !errors.Is(err, store.ErrNotFound):
					other = append(other, err)
				}
			})
		}
		wg.Wait()
		if len(won) != 1 || len(other) != 0 {
			t.Fatalf("%d enrolments succeeded (%v), unexpected errors %v; want exactly one", len(won), won, other)
		}
		list, err := db1.ListAgents(context.Background(), 0)
		if err != nil || len(list) != 1 || list[0].ID != won[0] || list[0].Name != "Branch office" || list[0].EnrolledBy != "Ada" {
			t.Fatalf("agents %+v, %v", list, err)
		}
		var used int64
		var agentID string
		if err := db1.SQL().QueryRow(db1.Rebind(`SELECT used_ms, agent_id FROM agent_tokens WHERE token_hash = ?`), hashA).Scan(&used, &agentID); err != nil || used != 2000 || agentID != won[0] {
			t.Errorf("token used %d by %q, %v", used, agentID, err)
		}
	})
}

func TestEnrollAgentRefusesExpiredUsedUnknown(t *testing.T) {
	store.ForEachBackend(t, func(t *testing.T, bk store.Backend) {
		db := migrated(t, bk.Where)
		addToken(t, db, hashA, "one", 1000, 5000)
		if _, err := enroll(db, hashA, "agent-id-expired0", 5000); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("expired token: %v", err)
		}
		if _, err := enroll(db, fmt.Sprintf("%064x", 9), "agent-id-unknown0", 2000); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("unknown token: %v", err)
		}
		if _, err := enroll(db, hashA, "agent-id-first000", 4999); err != nil {
			t.Fatal(err)
		}
		if _, err := enroll(db, hashA, "agent-id-second00", 4999); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("used token: %v", err)
		}
		if list, _ := db.ListAgents(context.Background(), 0); len(list) != 1 {
			t.Errorf("%d agents, want 1", len(list))
		}
	})
}

// TestAgentNamesAndLifecycle: a name is unique among agents that are not
// revoked (and tokens still usable), case-insensitive; revoking frees it;
// connection state, status, errors and operation counts are kept.
func TestAgentNamesAndLifecycle(t *testing.T) {
	store.ForEachBackend(t, func(t *testing.T, bk store.Backend) {
		ctx := context.Background()
		db := migrated(t, bk.Where)
		taken := func(name string, now int64) bool {
			var ok bool
			if err := db.InTx(ctx, func(tx *store.Tx) (err error) { ok, err = tx.AgentNameTaken(ctx, name, now); return }); err != nil {
				t.Fatal(err)
			}
			return ok
		}
		addToken(t, db, hashA, "Paris", 1000, 10_000)
		if !taken("paris", 2000) || taken("paris", 10_000) || taken("Lyon", 2000) {
			t.Error("a usable token reserves its name, an expired one does not")
		}
		a, err := enroll(db, hashA, "agent-id-paris000", 2000)
		if err != nil {
			t.Fatal(err)
		}
		if !taken("PARIS", 20_000) {
			t.Error("an enrolled agent's name is taken")
		}
		// A second token for the same name (made when the first expired, say)
		// cannot enrol a second "Paris" while the first is not revoked.
		hashB := fmt.Sprintf("%064x", 2)
		addToken(t, db, hashB, "paris", 3000, 3600_000)
		if _, err := enroll(db, hashB, "agent-id-paris001", 4000); !errors.Is(err, store.ErrDuplicate) {
			t.Errorf("duplicate name: %v", err)
		}

		st := store.AgentStatus{Version: "1.2", Host: "srv1", Directory: "ad ldaps://dc1", Configured: true, PasswordWriteback: true}
		err = db.InTx(ctx, func(tx *store.Tx) error {
			if err := tx.AgentConnected(ctx, a.ID, st, "192.0.2.7", 5000); err != nil {
				return err
			}
			if err := tx.AgentHeartbeat(ctx, a.ID, st, 6000); err != nil {
				return err
			}
			if err := tx.SetAgentError(ctx, a.ID, "ldap: timeout", 6500); err != nil {
				return err
			}
			for _, m := range []int64{0, 60_000, 60_000, 120_000} {
				if err := tx.AddAgentOps(ctx, a.ID, m, 2); err != nil {
					return err
				}
			}
			return tx.PruneAgentOps(ctx, 60_000)
		})
		if err != nil {
			t.Fatal(err)
		}
		got, err := db.AgentByID(ctx, a.ID)
		if err != nil || got.ConnectedMS != 5000 || got.HeartbeatMS != 6000 || got.Host != "srv1" || !got.PasswordWriteback ||
			got.RemoteAddr != "192.0.2.7" || got.LastError != "ldap: timeout" || got.LastErrorMS != 6500 || !bytes.Equal(got.SignKey, key(1)) {
			t.Errorf("agent %+v, %v", got, err)
		}
		list, _ := db.ListAgents(ctx, 100_000)
		if len(list) != 1 || list[0].OpsLastHour != 2 {
			t.Errorf("ops since 100000: %+v", list)
		}
		list, _ = db.ListAgents(ctx, 0)
		if list[0].OpsLastHour != 6 {
			t.Errorf("ops after prune: %d, want 6 (the minute-0 bucket pruned)", list[0].OpsLastHour)
		}

		err = db.InTx(ctx, func(tx *store.Tx) error { return tx.RevokeAgent(ctx, a.ID, "Ada", 7000) })
		if err != nil {
			t.Fatal(err)
		}
		err = db.InTx(ctx, func(tx *store.Tx) error { return tx.RevokeAgent(ctx, a.ID, "Ada", 7000) })
		if !errors.Is(err, store.ErrNotFound) {
			t.Errorf("second revoke: %v", err)
		}
		got, _ = db.AgentByID(ctx, a.ID)
		if got.RevokedMS != 7000 || got.RevokedBy != "Ada" || got.ConnectedMS != 0 {
			t.Errorf("revoked agent %+v", got)
		}
		if !taken("Paris", 7000) || taken("Paris", 3600_000) {
			t.Error("a revoked agent's name is free again (the second token, usable until 3600000, still holds it)")
		}
		// Now the second token enrols its "paris".
		if _, err := enroll(db, hashB, "agent-id-paris001", 8000); err != nil {
			t.Errorf("after revoking: %v", err)
		}
		if _, err := db.AgentByID(ctx, "nope-nope-nope-nope"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("unknown id: %v", err)
		}
		err = db.InTx(ctx, func(tx *store.Tx) error { return tx.AgentHeartbeat(ctx, "nope-nope-nope-nope", st, 1) })
		if !errors.Is(err, store.ErrNotFound) {
			t.Errorf("heartbeat of unknown id: %v", err)
		}
	})
}
