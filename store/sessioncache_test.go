package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/writeback/writeback/store"
)

// TestSessionAdminCache: a signed-in session read again while nothing was
// written is served without a read; every change to the session or its
// administrator through this DB, directly or in a transaction, is seen by
// the very next read however long the cache trusts what it holds; a change
// by another process on the same file (or any other connection) at the next
// recheck: at once with a recheck at every read, after the interval
// otherwise.
func TestSessionAdminCache(t *testing.T) {
	store.ForEachBackend(t, func(t *testing.T, bk store.Backend) {
		ctx := context.Background()
		path := bk.Where
		db := migrated(t, path)
		other := open(t, path) // another process on the same data folder
		t.Cleanup(func() { other.Close() })
		db.SetSessionRecheck(time.Hour) // this process's own writes need no recheck

		newSession := func(email, hash string) int64 {
			t.Helper()
			var id int64
			if err := db.InTx(ctx, func(tx *store.Tx) error {
				var err error
				id, err = tx.InsertAdmin(ctx, store.Admin{Email: email, Name: "Ada", Role: "global-admin", PasswordHash: "h1"})
				return err
			}); err != nil {
				t.Fatal(err)
			}
			if err := db.InsertSession(ctx, store.Session{IDHash: hash, AdminID: id, CreatedMS: 10, LastSeenMS: 20}); err != nil {
				t.Fatal(err)
			}
			return id
		}
		read := func(hash string) (store.Session, store.Admin, error) {
			t.Helper()
			return db.SessionAdmin(ctx, hash)
		}
		warm := func(hash string) {
			t.Helper()
			if _, _, err := read(hash); err != nil {
				t.Fatal(err)
			}
			n := db.SessionReads()
			for range 3 {
				if _, _, err := read(hash); err != nil {
					t.Fatal(err)
				}
			}
			if got := db.SessionReads() - n; got != 0 {
				t.Fatalf("unchanged session read the database %d times", got)
			}
		}

		id := newSession("a@example.com", "s1")
		warm("s1")
		if err := db.TouchSession(ctx, "s1", 99); err != nil {
			t.Fatal(err)
		}
		if s, _, err := read("s1"); err != nil || s.LastSeenMS != 99 {
			t.Errorf("after a touch: %+v %v", s, err)
		}

		warm("s1")
		if err := db.InTx(ctx, func(tx *store.Tx) error {
			a, err := tx.AdminByID(ctx, id)
			if err != nil {
				return err
			}
			a.Disabled, a.PasswordHash = true, "h2"
			return tx.UpdateAdmin(ctx, a)
		}); err != nil {
			t.Fatal(err)
		}
		if _, a, err := read("s1"); err != nil || !a.Disabled || a.PasswordHash != "h2" {
			t.Errorf("after disable and a new password: %+v %v", a, err)
		}

		warm("s1")
		if err := db.DeleteSession(ctx, "s1"); err != nil {
			t.Fatal(err)
		}
		if _, _, err := read("s1"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("after sign-out: %v", err)
		}

		id = newSession("b@example.com", "s2")
		warm("s2")
		if err := db.InTx(ctx, func(tx *store.Tx) error { return tx.DeleteSessionsOf(ctx, id) }); err != nil {
			t.Fatal(err)
		}
		if _, _, err := read("s2"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("after all sessions ended: %v", err)
		}

		db.SetSessionRecheck(0)
		id = newSession("c@example.com", "s3")
		warm("s3")
		if _, err := other.SQL().ExecContext(ctx, other.Rebind(`UPDATE admins SET disabled = 1 WHERE id = ?`), id); err != nil {
			t.Fatal(err)
		}
		if _, a, err := read("s3"); err != nil || !a.Disabled {
			t.Errorf("after another process disabled the administrator: %+v %v", a, err)
		}
		warm("s3")
		if _, err := other.SQL().ExecContext(ctx, other.Rebind(`DELETE FROM admins WHERE id = ?`), id); err != nil {
			t.Fatal(err)
		}
		if _, _, err := read("s3"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("after another process removed the administrator: %v", err)
		}

		newSession("d@example.com", "s4")
		warm("s4")
		if err := other.DeleteSession(ctx, "s4"); err != nil {
			t.Fatal(err)
		}
		if _, _, err := read("s4"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("after another process signed the session out: %v", err)
		}

		// With an interval, another process's change is seen once it passed.
		const interval = 50 * time.Millisecond
		db.SetSessionRecheck(interval)
		newSession("e@example.com", "s5")
		warm("s5")
		if _, err := db.SQL().ExecContext(ctx, db.Rebind(`DELETE FROM admin_sessions WHERE id_hash = 's5'`)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(interval + 10*time.Millisecond)
		if _, _, err := read("s5"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("a recheck interval after another connection's change: %v", err)
		}
	})
}
