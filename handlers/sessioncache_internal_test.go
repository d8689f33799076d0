package handlers

import (
	"encoding/base64"
	"fmt"
	"testing"
	"time"

	"github.com/gorilla/securecookie"
)

// TestCookieCache: a decoded cookie is served from memory only until the
// time the decoder would refuse it (its own timestamp plus the maximum
// age), and every hit is a copy a request may change.
func TestCookieCache(t *testing.T) {
	sc := securecookie.New(make([]byte, 32), make([]byte, 32))
	v, err := sc.Encode("wb_session", map[any]any{"csrf": "c"})
	if err != nil {
		t.Fatal(err)
	}
	written := time.Now()
	c := newCookieCache(time.Hour)
	if _, ok := c.get(v); ok {
		t.Fatal("hit before any put")
	}
	c.put(v, map[any]any{"csrf": "c", "_flash": []any{"a"}})
	for _, tc := range []struct {
		at  time.Duration
		hit bool
	}{{0, true}, {59 * time.Minute, true}, {61 * time.Minute, false}} {
		c.now = func() time.Time { return written.Add(tc.at) }
		got, ok := c.get(v)
		if ok != tc.hit {
			t.Errorf("%v after writing: hit %v, want %v", tc.at, ok, tc.hit)
		}
		if ok {
			got["csrf"] = "changed"
			got["_flash"] = append(got["_flash"].([]any), "b")
			got["_flash"].([]any)[0] = "changed"
		}
	}
	c.now = func() time.Time { return written }
	if got, _ := c.get(v); got["csrf"] != "c" || len(got["_flash"].([]any)) != 1 || got["_flash"].([]any)[0] != "a" {
		t.Errorf("a request's change reached the cache: %v", got)
	}
	c.put("not a securecookie value", map[any]any{"csrf": "x"})
	if _, ok := c.get("not a securecookie value"); ok {
		t.Error("a value without a timestamp was kept")
	}
	for i := range maxCachedCookies + 10 {
		c.put(base64.URLEncoding.EncodeToString(fmt.Appendf(nil, "%d|value|mac%d", written.Unix(), i)), nil)
	}
	if n := len(c.m); n > maxCachedCookies || n < maxCachedCookies/2 {
		t.Errorf("%d entries kept", n)
	}
}
