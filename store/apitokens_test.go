package store_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/writeback/writeback/store"
)

func insertToken(db *store.DB, t store.APIToken) (int64, error) {
	var id int64
	err := db.InTx(context.Background(), func(tx *store.Tx) error {
		var err error
		id, err = tx.InsertAPIToken(context.Background(), t)
		return err
	})
	return id, err
}

// TestAPITokens: tokens are found by hash, listed active first, unique by
// name among those not revoked (case-insensitive), revoked once, and their
// last use recorded; on both engines.
func TestAPITokens(t *testing.T) {
	store.ForEachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		hash := func(i int) string { return fmt.Sprintf("%064x", i) }
		a := store.APIToken{Hash: hash(1), Name: "Deploy", Role: "global-admin", CreatedBy: "Ada", CreatedMS: 1000, ExpiresMS: 5000}
		id, err := insertToken(db, a)
		if err != nil || id == 0 {
			t.Fatalf("insert: %d %v", id, err)
		}
		if _, err := insertToken(db, store.APIToken{Hash: hash(2), Name: "deploy", Role: "reports-reader", CreatedMS: 1000, ExpiresMS: 5000}); !errors.Is(err, store.ErrDuplicate) {
			t.Errorf("a second active token called deploy: %v, want ErrDuplicate", err)
		}
		if _, err := insertToken(db, store.APIToken{Hash: hash(3), Name: "x", Role: "owner", CreatedMS: 1000, ExpiresMS: 5000}); err == nil {
			t.Error("a token with an unknown role was stored")
		}
		got, err := db.APITokenByHash(ctx, hash(1))
		if err != nil || got.ID != id || got.Name != "Deploy" || got.Role != "global-admin" || got.CreatedBy != "Ada" ||
			got.ExpiresMS != 5000 || got.LastUsedMS != 0 || got.RevokedMS != 0 {
			t.Fatalf("by hash: %+v %v", got, err)
		}
		if _, err := db.APITokenByHash(ctx, hash(9)); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("unknown hash: %v", err)
		}
		err = db.InTx(ctx, func(tx *store.Tx) error { return tx.TouchAPIToken(ctx, id, "192.0.2.7", 2000) })
		if got, _ := db.APITokenByHash(ctx, hash(1)); err != nil || got.LastUsedMS != 2000 || got.LastUsedIP != "192.0.2.7" {
			t.Errorf("touch: %+v %v", got, err)
		}

		err = db.InTx(ctx, func(tx *store.Tx) error {
			tok, err := tx.ActiveAPIToken(ctx, 0, "DEPLOY")
			if err != nil || tok.ID != id {
				return fmt.Errorf("active by name: %+v %w", tok, err)
			}
			return tx.RevokeAPIToken(ctx, id, "Bob", 3000)
		})
		if err != nil {
			t.Fatal(err)
		}
		err = db.InTx(ctx, func(tx *store.Tx) error { return tx.RevokeAPIToken(ctx, id, "Bob", 3000) })
		if !errors.Is(err, store.ErrNotFound) {
			t.Errorf("second revoke: %v", err)
		}
		err = db.InTx(ctx, func(tx *store.Tx) error { _, err := tx.ActiveAPIToken(ctx, id, ""); return err })
		if !errors.Is(err, store.ErrNotFound) {
			t.Errorf("a revoked token is active: %v", err)
		}
		// Its name is free again.
		id2, err := insertToken(db, store.APIToken{Hash: hash(4), Name: "deploy", Role: "helpdesk-admin", CreatedMS: 1500, ExpiresMS: 5000})
		if err != nil {
			t.Fatal(err)
		}
		list, err := db.ListAPITokens(ctx)
		if err != nil || len(list) != 2 || list[0].ID != id2 || list[1].ID != id || list[1].RevokedMS != 3000 || list[1].RevokedBy != "Bob" {
			t.Errorf("list: %+v %v", list, err)
		}
	})
}
