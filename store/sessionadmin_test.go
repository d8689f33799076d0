package store_test

import (
	"context"
	"errors"
	"testing"

	"github.com/writeback/writeback/store"
)

// TestSessionAdmin: the one read of a signed-in request returns the session
// and its administrator as the two separate reads did; an unknown session,
// and one whose administrator was deleted, is ErrNotFound.
func TestSessionAdmin(t *testing.T) {
	store.ForEachBackend(t, func(t *testing.T, bk store.Backend) {
		ctx := context.Background()
		db := migrated(t, bk.Where)
		// The raw delete below is another connection's write: seen at the next
		// recheck, here at every read.
		db.SetSessionRecheck(0)
		var id int64
		if err := db.InTx(ctx, func(tx *store.Tx) error {
			var err error
			id, err = tx.InsertAdmin(ctx, store.Admin{Email: "ada@example.com", Name: "Ada", Role: "global-admin", PasswordHash: "h", CreatedMS: 1, UpdatedMS: 2})
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if err := db.InsertSession(ctx, store.Session{IDHash: "s1", AdminID: id, CreatedMS: 10, LastSeenMS: 20, ClientIP: "192.0.2.1", UserAgent: "ua"}); err != nil {
			t.Fatal(err)
		}
		s, a, err := db.SessionAdmin(ctx, "s1")
		if err != nil {
			t.Fatal(err)
		}
		wantA, _ := db.AdminByID(ctx, id)
		if s.AdminID != id || s.CreatedMS != 10 || s.LastSeenMS != 20 || a != wantA {
			t.Errorf("got %+v %+v, want admin %+v", s, a, wantA)
		}
		if _, _, err := db.SessionAdmin(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("unknown session: %v", err)
		}
		if _, err := db.SQL().ExecContext(ctx, db.Rebind(`DELETE FROM admins WHERE id = ?`), id); err != nil {
			t.Fatal(err)
		}
		if _, _, err := db.SessionAdmin(ctx, "s1"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("session of a deleted admin: %v", err)
		}
	})
}
