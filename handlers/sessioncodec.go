package handlers

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/gorilla/securecookie"
)

// sessionSerializer writes the session cookie's values in a small binary
// form instead of gorilla's default gob. Decoding a gob cookie builds a new
// gob decoder and compiles the map's type on every request, and JSON into a
// map[string]any still cost a tenth of a page view; this costs a few string
// copies. The values the portal keeps are strings (csrf, bid, sid) and
// lists of strings (flashes); anything else is refused when saving. Cookies
// written by an older version (gob) still decode, so an upgrade signs
// nobody out. The serializer only ever sees bytes whose MAC securecookie
// has verified.
//
// The form: 0x00 0x01, then per value a kind ('s' string, 'l' list), the
// key and the string, or the count and each string; every string is its
// length (uvarint) and bytes. A gob stream never starts with 0x00 (its
// first message's length).
type sessionSerializer struct{}

const sessionFormat = "\x00\x01"

// Serialize encodes a session's values.
func (sessionSerializer) Serialize(src any) ([]byte, error) {
	m, ok := src.(map[any]any)
	if !ok {
		return nil, fmt.Errorf("session values: %T is not a map", src)
	}
	b := make([]byte, 0, 256)
	b = append(b, sessionFormat...)
	str := func(s string) { b = append(binary.AppendUvarint(b, uint64(len(s))), s...) }
	for k, v := range m {
		ks, ok := k.(string)
		if !ok {
			return nil, fmt.Errorf("session values: key %v is a %T, not a string", k, k)
		}
		switch v := v.(type) {
		case string:
			b = append(b, 's')
			str(ks)
			str(v)
		case []any: // flashes
			b = append(b, 'l')
			str(ks)
			b = binary.AppendUvarint(b, uint64(len(v)))
			for _, x := range v {
				xs, ok := x.(string)
				if !ok {
					return nil, fmt.Errorf("session values: %s holds a %T", ks, x)
				}
				str(xs)
			}
		default:
			return nil, fmt.Errorf("session values: %s is a %T", ks, v)
		}
	}
	return b, nil
}

var errSessionFormat = errors.New("session values: malformed")

// Deserialize decodes the values, or gob ones from before.
func (sessionSerializer) Deserialize(src []byte, dst any) error {
	p, ok := dst.(*map[any]any)
	if !ok {
		return fmt.Errorf("session values: %T is not a map", dst)
	}
	if len(src) < len(sessionFormat) || string(src[:len(sessionFormat)]) != sessionFormat {
		return securecookie.GobEncoder{}.Deserialize(src, dst)
	}
	b := src[len(sessionFormat):]
	num := func() (uint64, bool) {
		n, k := binary.Uvarint(b)
		if k <= 0 || n > uint64(len(b)-k) { // a count or length never exceeds the bytes left
			return 0, false
		}
		b = b[k:]
		return n, true
	}
	str := func() (string, bool) {
		n, ok := num()
		if !ok {
			return "", false
		}
		s := string(b[:n])
		b = b[n:]
		return s, true
	}
	vals := map[any]any{}
	for len(b) > 0 {
		kind := b[0]
		b = b[1:]
		key, ok := str()
		if !ok {
			return errSessionFormat
		}
		switch kind {
		case 's':
			v, ok := str()
			if !ok {
				return errSessionFormat
			}
			vals[key] = v
		case 'l':
			n, ok := num()
			if !ok {
				return errSessionFormat
			}
			list := make([]any, 0, n)
			for range n {
				v, ok := str()
				if !ok {
					return errSessionFormat
				}
				list = append(list, v)
			}
			vals[key] = list
		default:
			return errSessionFormat
		}
	}
	if *p == nil {
		*p = vals
		return nil
	}
	for k, v := range vals {
		(*p)[k] = v
	}
	return nil
}
