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
	if b[0] != '{' {
		t.Errorf("not JSON: %q", b)
	}
	var out map[any]any
	if err := sz.Deserialize(b, &out); err != nil || !reflect.DeepEqual(out, in) {
		t.Errorf("JSON round trip: %v %v", out, err)
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
	if err := sz.Deserialize([]byte("{not json nor gob"), &out); err == nil {
		t.Error("garbage decoded")
	}
}
