package settings_test

import (
	"context"
	"errors"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/settings"
	"github.com/writeback/writeback/store"
)

func newDB(t *testing.T) *store.DB {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, filepath.Join(t.TempDir(), store.FileName))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return db
}

// doc has every kind of field a settings document could share with a copy.
type doc struct {
	Name    string            `json:"name"`
	List    []string          `json:"list"`
	Nested  []inner           `json:"nested"`
	Map     map[string][]int  `json:"map"`
	Ptr     *inner            `json:"ptr"`
	Any     any               `json:"any"`
	Arr     [2][]string       `json:"arr"`
	At      time.Time         `json:"at"`
	Labels  map[string]string `json:"labels"`
	private []string
}

type inner struct {
	Tags []string `json:"tags"`
}

func full() doc {
	return doc{Name: "n", List: []string{"a", "b"}, Nested: []inner{{Tags: []string{"x"}}}, Map: map[string][]int{"k": {1}},
		Ptr: &inner{Tags: []string{"p"}}, Any: []any{"i"}, Arr: [2][]string{{"a0"}, {"a1"}}, At: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC),
		Labels: map[string]string{"l": "v"}}
}

// mutate changes every slice element, map and pointer target reachable
// from d.
func mutate(d *doc) {
	d.Name = "changed"
	d.List[0] = "changed"
	d.Nested[0].Tags[0] = "changed"
	d.Map["k"][0] = 99
	d.Map["new"] = nil
	d.Ptr.Tags[0] = "changed"
	d.Any.([]any)[0] = "changed"
	d.Arr[1][0] = "changed"
	d.Labels["l"] = "changed"
}

// TestGetHandsOutCopies: a caller that changes what Get returned changes
// nothing for the next caller, whatever kind of field it changed.
func TestGetHandsOutCopies(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	if _, _, err := settings.Update(ctx, db, "doc", 0, audit.CommandLine, doc{}, func(doc) (doc, []audit.Entry, error) {
		d := full()
		d.Any = []string{"i"} // what JSON gives back is []any
		return d, []audit.Entry{{Category: audit.CategoryPolicy, Activity: "test"}}, nil
	}); err != nil {
		t.Fatal(err)
	}
	first, _, err := settings.Get(ctx, db, "doc", doc{})
	if err != nil {
		t.Fatal(err)
	}
	want := full()
	want.Any = []any{"i"}
	if !reflect.DeepEqual(first, want) {
		t.Fatalf("read back\n got %+v\nwant %+v", first, want)
	}
	mutate(&first)
	again, _, err := settings.Get(ctx, db, "doc", doc{})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(again, want) {
		t.Errorf("a caller's change reached the next caller:\n got %+v\nwant %+v", again, want)
	}
}

// TestGetDefaultIsNotShared: the default passed in is decoded into a copy,
// so a default with a slice (the policy's questions) is never changed by a
// document that overrides it.
func TestGetDefaultIsNotShared(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	def := doc{List: []string{"default 1", "default 2"}}
	if _, _, err := settings.Update(ctx, db, "doc", 0, audit.CommandLine, def, func(doc) (doc, []audit.Entry, error) {
		return doc{List: []string{"saved"}}, []audit.Entry{{Category: audit.CategoryPolicy, Activity: "test"}}, nil
	}); err != nil {
		t.Fatal(err)
	}
	got, _, err := settings.Get(ctx, db, "doc", def)
	if err != nil || !reflect.DeepEqual(got.List, []string{"saved"}) {
		t.Fatalf("got %v, %v", got.List, err)
	}
	if def.List[0] != "default 1" {
		t.Errorf("the default was decoded into: %v", def.List)
	}
}

// TestGetFreshAfterUpdate: a document saved through Update is read back
// by Get at once, with its new version; a save that fails (rolled back)
// leaves what Get serves as it was, without reading the database again.
func TestGetFreshAfterUpdate(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	db.SetConfigRecheck(time.Hour) // what this process saves needs no recheck
	type onoff struct {
		On bool `json:"on"`
	}
	save := func(expect int64, on bool, fail error) error {
		_, _, err := settings.Update(ctx, db, "onoff", expect, audit.CommandLine, onoff{}, func(onoff) (onoff, []audit.Entry, error) {
			return onoff{On: on}, []audit.Entry{{Category: audit.CategoryPolicy, Activity: "test"}}, fail
		})
		return err
	}
	for i, on := range []bool{true, false, true} {
		if err := save(int64(i), on, nil); err != nil {
			t.Fatal(err)
		}
		got, m, err := settings.Get(ctx, db, "onoff", onoff{})
		if err != nil || got.On != on || m.Version != int64(i+1) || m.UpdatedBy != "command line" {
			t.Errorf("right after save %d: %+v %+v %v", i+1, got, m, err)
		}
	}
	reads := db.ConfigReads()
	boom := errors.New("boom")
	if err := save(3, false, boom); !errors.Is(err, boom) {
		t.Fatal(err)
	}
	for range 5 {
		if got, m, _ := settings.Get(ctx, db, "onoff", onoff{}); !got.On || m.Version != 3 {
			t.Errorf("after a failed save: %+v %+v", got, m)
		}
	}
	if n := db.ConfigReads() - reads; n != 0 {
		t.Errorf("5 reads of an unchanged document read the database %d times", n)
	}
}

// TestPutReadingSeenAtOnce: health readings (the writeback status) are
// served from memory too and change as soon as they are written.
func TestPutReadingSeenAtOnce(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	db.SetConfigRecheck(time.Hour)
	set := settings.New(db)
	if st, _ := set.Status(ctx); st.State != settings.StateNotConfigured {
		t.Fatalf("before: %+v", st)
	}
	for _, state := range []settings.ServiceState{settings.StateConnected, settings.StateError} {
		if err := set.SetStatus(ctx, settings.ServiceStatus{State: state, Details: []string{string(state)}}); err != nil {
			t.Fatal(err)
		}
		st, err := set.Status(ctx)
		if err != nil || st.State != state || len(st.Details) != 1 {
			t.Errorf("after writing %s: %+v %v", state, st, err)
		}
	}
}
