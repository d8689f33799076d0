package handlers

import (
	"encoding/json"
	"fmt"

	"github.com/gorilla/securecookie"
)

// sessionSerializer writes the session cookie's values as JSON instead of
// gorilla's default gob. Decoding a gob cookie builds a new gob decoder and
// compiles the map's type on every request: it was the largest part of a
// page view's cost that the page did not need. The values the portal keeps
// (csrf, bid, sid: strings; flashes: a list of strings) are exactly what
// JSON carries. Cookies written by an older version (gob) still decode, so
// an upgrade signs nobody out. The serializer only ever sees bytes whose MAC
// securecookie has verified.
type sessionSerializer struct{}

// Serialize encodes a session's values; a key or value of another type is
// refused (nothing sets one).
func (sessionSerializer) Serialize(src any) ([]byte, error) {
	m, ok := src.(map[any]any)
	if !ok {
		return nil, fmt.Errorf("session values: %T is not a map", src)
	}
	out := make(map[string]any, len(m))
	for k, v := range m {
		ks, ok := k.(string)
		if !ok {
			return nil, fmt.Errorf("session values: key %v is a %T, not a string", k, k)
		}
		switch v := v.(type) {
		case string:
		case []any: // flashes
			for _, x := range v {
				if _, ok := x.(string); !ok {
					return nil, fmt.Errorf("session values: %s holds a %T", ks, x)
				}
			}
		default:
			return nil, fmt.Errorf("session values: %s is a %T", ks, v)
		}
		out[ks] = v
	}
	return json.Marshal(out)
}

// Deserialize decodes JSON values, or gob ones from before.
func (sessionSerializer) Deserialize(src []byte, dst any) error {
	p, ok := dst.(*map[any]any)
	if !ok {
		return fmt.Errorf("session values: %T is not a map", dst)
	}
	if len(src) > 0 && src[0] == '{' {
		var m map[string]any
		if err := json.Unmarshal(src, &m); err == nil {
			if *p == nil {
				*p = make(map[any]any, len(m))
			}
			for k, v := range m {
				(*p)[k] = v
			}
			return nil
		}
		// Not JSON after all: a gob message can start with this byte too.
	}
	return securecookie.GobEncoder{}.Deserialize(src, dst)
}
