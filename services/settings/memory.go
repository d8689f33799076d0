package settings

import (
	"context"
	"reflect"
	"sync"

	"github.com/writeback/writeback/store"
)

// decoded is what the store's settings cache keeps for one document of type T.
type decoded[T any] struct {
	v    T
	meta Meta
}

// Get is Load served from memory: the document is decoded once per version
// (starting from def, as Load starts from what v holds) and kept, and every
// caller gets a deep copy of its own, so that changing a slice or map of the
// value changes nothing for another caller. A save through Update or
// PutReading is seen by the next Get as soon as its transaction has
// committed; a save by another process on the same database (a command, a
// replica) within store.DefaultConfigRecheck (see store.DB.CachedConfig).
//
// Every reader of one document must use the same T and the same def: the
// cache keeps one decoded value per document name.
func Get[T any](ctx context.Context, db *store.DB, name string, def T) (T, Meta, error) {
	d, shared, err := cached(ctx, db, name, def)
	if err != nil || !shared {
		return d.v, d.meta, err
	}
	return deepCopy(d.v), d.meta, nil
}

// Peek is Get without the copy, for the hottest reads of a field or two
// (whether writeback is on): f is called with the value every reader
// shares and must only read it, keeping no slice, map or pointer of it
// after it returns.
func Peek[T any](ctx context.Context, db *store.DB, name string, def T, f func(v *T)) (Meta, error) {
	d, _, err := cached(ctx, db, name, def)
	if err != nil {
		return d.meta, err
	}
	f(&d.v)
	return d.meta, nil
}

// cached is the document's decoded value; shared tells whether it is the
// cache's own (to be copied before it is handed out) rather than one
// decoded for this caller. On an error it is a copy of def.
func cached[T any](ctx context.Context, db *store.DB, name string, def T) (d decoded[T], shared bool, err error) {
	v, c, err := db.CachedConfig(ctx, name, func(c store.Config) (any, error) { return decode(c, def) })
	if err != nil {
		return decoded[T]{v: deepCopy(def)}, false, err
	}
	d, ok := v.(decoded[T])
	if !ok {
		// Another reader keeps this document as another type (a mistake
		// the rule above forbids): still right, only without the cache.
		d, err := decode(c, def)
		return d, false, err
	}
	return d, true, nil
}

// decode decodes the document c into a copy of def.
func decode[T any](c store.Config, def T) (decoded[T], error) {
	x := deepCopy(def)
	m, err := Decode(c, &x)
	return decoded[T]{v: x, meta: m}, err
}

// Cloner is a document type that copies itself: its Clone returns a value
// that shares no slice, map or pointer target with the original. Get uses
// it instead of copying by reflection, which costs more than the rest of a
// read; a test checks every document type's Clone against the reflection.
type Cloner[T any] interface {
	Clone() T
}

// deepCopy copies v so that the copy shares no slice, map or pointer
// target with v (through exported fields; unexported ones, such as a
// time.Time's location, are copied as they are: they are never changed).
func deepCopy[T any](v T) T {
	if c, ok := any(v).(Cloner[T]); ok {
		return c.Clone()
	}
	return reflectCopy(v)
}

// reflectCopy is deepCopy for types without a Clone method.
func reflectCopy[T any](v T) T {
	rv := reflect.ValueOf(&v).Elem()
	if !hasRefs(rv.Type()) {
		return v
	}
	var out T
	reflect.ValueOf(&out).Elem().Set(copyValue(rv))
	return out
}

// refTypes remembers hasRefs per type: walking a struct's fields by
// reflection on every read was most of a read's cost.
var refTypes sync.Map // reflect.Type → bool

// hasRefs tells whether a value of type t can share memory with a copy of it
// made by assignment.
func hasRefs(t reflect.Type) bool {
	if v, ok := refTypes.Load(t); ok {
		return v.(bool)
	}
	r := typeHasRefs(t)
	refTypes.Store(t, r)
	return r
}

func typeHasRefs(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Slice, reflect.Map, reflect.Pointer, reflect.Interface:
		return true
	case reflect.Array:
		return hasRefs(t.Elem())
	case reflect.Struct:
		for i := range t.NumField() {
			if f := t.Field(i); f.IsExported() && hasRefs(f.Type) {
				return true
			}
		}
	}
	return false
}

func copyValue(v reflect.Value) reflect.Value {
	t := v.Type()
	if !hasRefs(t) {
		return v
	}
	switch v.Kind() {
	case reflect.Slice:
		if v.IsNil() {
			return v
		}
		out := reflect.MakeSlice(t, v.Len(), v.Len())
		if !hasRefs(t.Elem()) {
			reflect.Copy(out, v)
			return out
		}
		for i := range v.Len() {
			out.Index(i).Set(copyValue(v.Index(i)))
		}
		return out
	case reflect.Map:
		if v.IsNil() {
			return v
		}
		out := reflect.MakeMapWithSize(t, v.Len())
		for it := v.MapRange(); it.Next(); {
			out.SetMapIndex(copyValue(it.Key()), copyValue(it.Value()))
		}
		return out
	case reflect.Pointer:
		if v.IsNil() {
			return v
		}
		out := reflect.New(t.Elem())
		out.Elem().Set(copyValue(v.Elem()))
		return out
	case reflect.Interface:
		if v.IsNil() {
			return v
		}
		out := reflect.New(t).Elem()
		out.Set(copyValue(v.Elem()))
		return out
	case reflect.Array:
		out := reflect.New(t).Elem()
		for i := range v.Len() {
			out.Index(i).Set(copyValue(v.Index(i)))
		}
		return out
	case reflect.Struct:
		out := reflect.New(t).Elem()
		out.Set(v) // unexported fields as they are
		for i := range v.NumField() {
			if f := t.Field(i); f.IsExported() && hasRefs(f.Type) {
				out.Field(i).Set(copyValue(v.Field(i)))
			}
		}
		return out
	}
	return v
}
