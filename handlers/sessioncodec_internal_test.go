package handlers

import (
	"reflect"
	"testing"

	"github.com/gorilla/securecookie"
)

// TestSessionSerializer: the values the portal keeps come back as they
// went in (flashes too), from JSON and from the gob of older cookies;
// values of any other type are refused rather than dropped.
func TestSessionSerializer(t *testing.T) {
	in := map[any]any{"csrf": "c", "bid": "b", "sid": "s", "_flash": []any{"Saved.", "Again."}}
	var sz sessionSerializer
	b, err := sz.Serialize(in)
	if err != nil {
		t.Fatal(err)
	}
	var out map[any]any
	if err := sz.Deserialize(b, &out); err != nil || !reflect.DeepEqual(out, in) {
		t.Errorf("round trip: %v %v", out, err)
	}
	g, err := securecookie.GobEncoder{}.Serialize(in)
	if err != nil {
		t.Fatal(err)
	}
	out = nil
	if err := sz.Deserialize(g, &out); err != nil || !reflect.DeepEqual(out, in) {
		t.Errorf("gob: %v %v", out, err)
	}
	for _, bad := range []map[any]any{{1: "x"}, {"n": 1}, {"_flash": []any{1}}} {
		if _, err := sz.Serialize(bad); err == nil {
			t.Errorf("%v serialized", bad)
		}
	}
	for _, bad := range [][]byte{[]byte("not ours nor gob"), append([]byte(sessionFormat), 's', 9, 'a'), append([]byte(sessionFormat), 'x', 1, 'a', 1, 'b'),
		append([]byte(sessionFormat), 'l', 1, 'a', 200, 1), append([]byte(sessionFormat), 's', 1, 'a')} {
		if err := sz.Deserialize(bad, &out); err == nil {
			t.Errorf("%q decoded", bad)
		}
	}
}

// FuzzSessionSerializer: no input makes Deserialize panic, and whatever it
// accepts survives a round trip.
func FuzzSessionSerializer(f *testing.F) {
	var sz sessionSerializer
	seed, _ := sz.Serialize(map[any]any{"csrf": "c", "_flash": []any{"a", "b"}})
	f.Add(seed)
	g, _ := securecookie.GobEncoder{}.Serialize(map[any]any{"csrf": "c"})
	f.Add(g)
	f.Fuzz(func(t *testing.T, b []byte) {
		var out map[any]any
		if err := sz.Deserialize(b, &out); err != nil {
			return
		}
		enc, err := sz.Serialize(out)
		if err != nil {
			return // gob can carry other types; those are refused when saved
		}
		var again map[any]any
		if err := sz.Deserialize(enc, &again); err != nil || !reflect.DeepEqual(again, out) {
			t.Fatalf("round trip of %v: %v %v", out, again, err)
		}
	})
}
