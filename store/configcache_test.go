package store_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/writeback/writeback/store"
)

// docReader reads one document through the cache and counts its decodes.
type docReader struct {
	db      *store.DB
	name    string
	decodes atomic.Int64
	// during, when set, runs inside the decode (once): what happens while a
	// reader is between reading the row and keeping its value.
	during func(c store.Config)
}

func (r *docReader) read(t *testing.T) (string, int64) {
	t.Helper()
	v, c, err := r.db.CachedConfig(context.Background(), r.name, func(c store.Config) (any, error) {
		r.decodes.Add(1)
		if f := r.during; f != nil {
			r.during = nil
			f(c)
		}
		return "decoded " + c.Value, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return v.(string), c.Version
}

func put(t *testing.T, db *store.DB, name, value string) {
	t.Helper()
	ctx := context.Background()
	if err := db.InTx(ctx, func(tx *store.Tx) error {
		cur, err := tx.Config(ctx, name)
		if err != nil {
			return err
		}
		_, err = tx.PutConfig(ctx, name, cur.Version, value, "test")
		return err
	}); err != nil {
		t.Fatal(err)
	}
}

// TestCachedConfigDecodesOncePerVersion: reads of an unchanged document
// neither touch the database nor decode again; a save is seen by the very
// next read.
func TestCachedConfigDecodesOncePerVersion(t *testing.T) {
	store.ForEachBackend(t, func(t *testing.T, bk store.Backend) {
		db := migrated(t, bk.Where)
		r := &docReader{db: db, name: "doc"}
		if v, ver := r.read(t); v != "decoded " || ver != 0 {
			t.Fatalf("never saved: %q v%d", v, ver)
		}
		put(t, db, "doc", `{"a":1}`)
		reads := db.ConfigReads()
		for range 20 {
			if v, ver := r.read(t); v != `decoded {"a":1}` || ver != 1 {
				t.Fatalf("after the save: %q v%d", v, ver)
			}
		}
		if n := r.decodes.Load(); n != 2 {
			t.Errorf("%d decodes for two versions", n)
		}
		if n := db.ConfigReads() - reads; n != 1 {
			t.Errorf("20 reads of one version read the database %d times", n)
		}
		put(t, db, "doc", `{"a":2}`)
		if v, ver := r.read(t); v != `decoded {"a":2}` || ver != 2 {
			t.Errorf("right after the second save: %q v%d", v, ver)
		}
	})
}

// TestCachedConfigLearnsOfSaveOnCommitOnly: while the saving transaction is
// open the old value is served; a rolled-back save changes nothing; a
// committed one is served at once.
func TestCachedConfigLearnsOfSaveOnCommitOnly(t *testing.T) {
	store.ForEachBackend(t, func(t *testing.T, bk store.Backend) {
		ctx := context.Background()
		db := migrated(t, bk.Where)
		// Only saves through this DB: no recheck may hide what the commit does.
		db.SetConfigRecheck(time.Hour)
		put(t, db, "doc", `{"a":1}`)
		r := &docReader{db: db, name: "doc"}
		r.read(t)
		boom := errors.New("boom")
		err := db.InTx(ctx, func(tx *store.Tx) error {
			if _, err := tx.PutConfig(ctx, "doc", 1, `{"a":2}`, "test"); err != nil {
				return err
			}
			if v, ver := r.read(t); v != `decoded {"a":1}` || ver != 1 {
				t.Errorf("before commit: %q v%d", v, ver)
			}
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatal(err)
		}
		if v, ver := r.read(t); v != `decoded {"a":1}` || ver != 1 || r.decodes.Load() != 1 {
			t.Errorf("after a rollback: %q v%d, %d decodes", v, ver, r.decodes.Load())
		}
		err = db.InTx(ctx, func(tx *store.Tx) error {
			if _, err := tx.PutConfig(ctx, "doc", 1, `{"a":3}`, "test"); err != nil {
				return err
			}
			if v, _ := r.read(t); v != `decoded {"a":1}` {
				t.Errorf("before commit: %q", v)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if v, ver := r.read(t); v != `decoded {"a":3}` || ver != 2 {
			t.Errorf("after the commit: %q v%d", v, ver)
		}
	})
}

// TestCachedConfigKeepsNoRowOlderThanACommit: a reader that read the row
// just before another save committed gets that row, but does not keep it
// for everyone after.
func TestCachedConfigKeepsNoRowOlderThanACommit(t *testing.T) {
	store.ForEachBackend(t, func(t *testing.T, bk store.Backend) {
		db := migrated(t, bk.Where)
		db.SetConfigRecheck(time.Hour)
		put(t, db, "doc", `{"a":1}`)
		r := &docReader{db: db, name: "doc"}
		r.during = func(store.Config) { put(t, db, "doc", `{"a":2}`) }
		if v, _ := r.read(t); v != `decoded {"a":1}` {
			t.Fatalf("the racing read: %q", v)
		}
		if v, ver := r.read(t); v != `decoded {"a":2}` || ver != 2 {
			t.Errorf("after the racing save: %q v%d", v, ver)
		}
	})
}

// TestCachedConfigSeesAnotherProcessSave: a save through another DB on the
// same file (a command while the server runs; later a replica) is seen by
// the recheck of the documents' versions, or at once when the cache is told
// the version (NoteConfigVersion).
func TestCachedConfigSeesAnotherProcessSave(t *testing.T) {
	store.ForEachBackend(t, func(t *testing.T, bk store.Backend) {
		path := bk.Where
		server, command := migrated(t, path), migrated(t, path)
		put(t, server, "doc", `{"a":1}`)
		r := &docReader{db: server, name: "doc"}

		server.SetConfigRecheck(time.Hour)
		r.read(t)
		put(t, command, "doc", `{"a":2}`)
		if v, _ := r.read(t); v != `decoded {"a":1}` {
			t.Fatalf("within the recheck interval the cache was asked nothing, yet read %q", v)
		}
		server.NoteConfigVersion("doc", 2)
		if v, ver := r.read(t); v != `decoded {"a":2}` || ver != 2 {
			t.Errorf("after NoteConfigVersion: %q v%d", v, ver)
		}

		server.SetConfigRecheck(0)
		put(t, command, "doc", `{"a":3}`)
		put(t, command, "other", `{}`)
		if v, ver := r.read(t); v != `decoded {"a":3}` || ver != 3 {
			t.Errorf("with a recheck at every read: %q v%d", v, ver)
		}
		vs, err := server.ConfigVersions(context.Background())
		if err != nil || vs["doc"] != 3 || vs["other"] != 1 {
			t.Errorf("versions %v, %v", vs, err)
		}

		server.SetConfigRecheck(20 * time.Millisecond)
		r.read(t)
		put(t, command, "doc", `{"a":4}`)
		time.Sleep(30 * time.Millisecond)
		if v, _ := r.read(t); v != `decoded {"a":4}` {
			t.Errorf("after the recheck interval: %q", v)
		}
	})
}

// TestCachedConfigDecodeErrorKeepsNothing: a document that does not decode
// is an error every time, not a cached empty value.
func TestCachedConfigDecodeErrorKeepsNothing(t *testing.T) {
	store.ForEachBackend(t, func(t *testing.T, bk store.Backend) {
		db := migrated(t, bk.Where)
		put(t, db, "doc", `{"a":1}`)
		bad := errors.New("bad document")
		for range 2 {
			if _, _, err := db.CachedConfig(context.Background(), "doc", func(store.Config) (any, error) { return nil, bad }); !errors.Is(err, bad) {
				t.Errorf("err %v", err)
			}
		}
	})
}
