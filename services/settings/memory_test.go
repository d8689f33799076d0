package settings_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/selfservice"
	"github.com/writeback/writeback/services/settings"
	"github.com/writeback/writeback/services/writeback"
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

// TestDocumentClonesShareNothing: every settings document type either has
// nothing a copy could share (no slice, map or pointer) or a Clone method
// whose copy equals the original and shares none of them, with every field
// filled in: a field added to a document without a line in its Clone fails
// here.
func TestDocumentClonesShareNothing(t *testing.T) {
	for _, doc := range []any{writeback.Connection{}, selfservice.Policy{}, selfservice.MailSettings{}, selfservice.MailStatus{},
		settings.OnPrem{}, settings.ServiceStatus{}, settings.Retention{}} {
		v := reflect.New(reflect.TypeOf(doc)).Elem()
		fill(v)
		name := v.Type().String()
		clone := v.Addr().MethodByName("Clone")
		if !clone.IsValid() {
			if p := refPath(v, name); p != "" {
				t.Errorf("%s holds %s but has no Clone method: every read copies it by reflection", name, p)
			}
			continue
		}
		c := clone.Call(nil)[0]
		if !reflect.DeepEqual(c.Interface(), v.Interface()) {
			t.Errorf("%s.Clone() differs from the original:\n got %+v\nwant %+v", name, c, v)
		}
		if p := sharedPath(v, c, name); p != "" {
			t.Errorf("%s.Clone() shares %s with the original", name, p)
		}
	}
}

// fill sets every exported field of v to a non-zero value, slices and maps
// with two elements.
func fill(v reflect.Value) {
	switch v.Kind() {
	case reflect.String:
		v.SetString("x")
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(1)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(1)
	case reflect.Float32, reflect.Float64:
		v.SetFloat(1)
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 2, 2)
		for i := range 2 {
			fill(s.Index(i))
		}
		v.Set(s)
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
		fill(k)
		fill(e)
		m.SetMapIndex(k, e)
		v.Set(m)
	case reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		fill(p.Elem())
		v.Set(p)
	case reflect.Struct:
		if v.Type() == reflect.TypeFor[time.Time]() {
			v.Set(reflect.ValueOf(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)))
			return
		}
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fill(v.Field(i))
			}
		}
	}
}

// refPath names the first slice, map or pointer reachable from v.
func refPath(v reflect.Value, path string) string {
	switch v.Kind() {
	case reflect.Slice, reflect.Map, reflect.Pointer, reflect.Interface:
		return path
	case reflect.Struct:
		for i := range v.NumField() {
			if f := v.Type().Field(i); f.IsExported() {
				if p := refPath(v.Field(i), path+"."+f.Name); p != "" {
					return p
				}
			}
		}
	}
	return ""
}

// sharedPath names the first slice, map or pointer target a and b share.
func sharedPath(a, b reflect.Value, path string) string {
	switch a.Kind() {
	case reflect.Slice:
		if a.Len() > 0 && a.Pointer() == b.Pointer() {
			return path
		}
		for i := range min(a.Len(), b.Len()) {
			if p := sharedPath(a.Index(i), b.Index(i), fmt.Sprintf("%s[%d]", path, i)); p != "" {
				return p
			}
		}
	case reflect.Map, reflect.Pointer:
		if !a.IsNil() && a.Pointer() == b.Pointer() {
			return path
		}
		if a.Kind() == reflect.Pointer && !a.IsNil() && !b.IsNil() {
			return sharedPath(a.Elem(), b.Elem(), "*"+path)
		}
	case reflect.Struct:
		for i := range a.NumField() {
			if f := a.Type().Field(i); f.IsExported() {
				if p := sharedPath(a.Field(i), b.Field(i), path+"."+f.Name); p != "" {
					return p
				}
			}
		}
	}
	return ""
}

// TestPeek: Peek reads the same value as Get, fresh after a save, without
// reading the database again.
func TestPeek(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	db.SetConfigRecheck(time.Hour)
	for i, name := range []string{"first", "second"} {
		if _, _, err := settings.Update(ctx, db, "doc", int64(i), audit.CommandLine, doc{}, func(doc) (doc, []audit.Entry, error) {
			return doc{Name: name, List: []string{name}}, []audit.Entry{{Category: audit.CategoryPolicy, Activity: "test"}}, nil
		}); err != nil {
			t.Fatal(err)
		}
		var seen string
		m, err := settings.Peek(ctx, db, "doc", doc{}, func(d *doc) { seen = d.Name + "/" + d.List[0] })
		if err != nil || seen != name+"/"+name || m.Version != int64(i+1) {
			t.Errorf("after save %d: %q v%d %v", i+1, seen, m.Version, err)
		}
	}
	reads := db.ConfigReads()
	for range 5 {
		settings.Peek(ctx, db, "doc", doc{}, func(*doc) {})
	}
	if n := db.ConfigReads() - reads; n != 0 {
		t.Errorf("%d database reads", n)
	}
}
