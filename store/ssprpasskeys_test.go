package store_test

import (
	"context"
	"errors"
	"testing"

	"github.com/writeback/writeback/store"
)

// TestSSPRPasskeys: employees' passkeys on both engines — listed per
// directory ID, found by credential ID whoever's they are, a credential
// stored once, a use recorded, and removed only by their owner.
func TestSSPRPasskeys(t *testing.T) {
	store.ForEachBackend(t, func(t *testing.T, bk store.Backend) {
		ctx := context.Background()
		db := bk.Migrated(t)
		add := func(p store.Passkey) error {
			return db.InTx(ctx, func(tx *store.Tx) error { return tx.AddPasskey(ctx, p) })
		}
		for _, p := range []store.Passkey{
			{CredentialID: "cred-a", UserID: "u-alice", Name: "Phone", Secret: "sealed-a", CreatedMS: 1000},
			{CredentialID: "cred-b", UserID: "u-alice", Name: "Key", Secret: "sealed-b", CreatedMS: 2000},
			{CredentialID: "cred-c", UserID: "u-bob", Name: "Laptop", Secret: "sealed-c", CreatedMS: 1500},
		} {
			if err := add(p); err != nil {
				t.Fatal(err)
			}
		}
		if err := add(store.Passkey{CredentialID: "cred-a", UserID: "u-bob", Name: "Stolen", Secret: "x", CreatedMS: 3000}); err == nil {
			t.Error("a credential ID was stored twice")
		}
		got, err := db.Passkeys(ctx, "u-alice")
		if err != nil || len(got) != 2 || got[0].Name != "Phone" || got[1].Name != "Key" {
			t.Fatalf("alice's passkeys %+v %v", got, err)
		}
		if p, err := db.PasskeyByCredential(ctx, "cred-c"); err != nil || p.UserID != "u-bob" {
			t.Errorf("by credential: %+v %v", p, err)
		}
		if _, err := db.PasskeyByCredential(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("unknown credential: %v", err)
		}
		if err := db.InTx(ctx, func(tx *store.Tx) error { return tx.UsePasskey(ctx, "u-alice", "cred-a", "sealed-a2", 5000) }); err != nil {
			t.Fatal(err)
		}
		if p, _ := db.PasskeyByCredential(ctx, "cred-a"); p.Secret != "sealed-a2" || p.LastUsedMS != 5000 {
			t.Errorf("after a use: %+v", p)
		}
		err = db.InTx(ctx, func(tx *store.Tx) error { _, err := tx.DeletePasskey(ctx, "u-alice", "cred-c"); return err })
		if !errors.Is(err, store.ErrNotFound) {
			t.Errorf("alice removed bob's passkey: %v", err)
		}
		err = db.InTx(ctx, func(tx *store.Tx) error {
			p, err := tx.DeletePasskey(ctx, "u-alice", "cred-b")
			if err == nil && p.Name != "Key" {
				t.Errorf("removed %+v", p)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := db.Passkeys(ctx, "u-alice"); len(got) != 1 {
			t.Errorf("after removal: %+v", got)
		}
	})
}
