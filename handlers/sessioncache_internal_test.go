package handlers

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
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

// cookieCases are Cookie header lines requestCookie must read as r.Cookie
// does: quotes, spaces, bad bytes, repeats, empty values, several lines.
var cookieCases = [][]string{
	nil,
	{""},
	{"wb_session=abc"},
	{"a=1; wb_session=abc; b=2"},
	{" wb_session = abc "},
	{"wb_session=\"abc\""},
	{"wb_session=\"abc"},
	{"wb_session=\""},
	{"wb_session=a\\b; wb_session=good"},
	{"wb_session=a b"},
	{"wb_session=a\"b"},
	{"wb_session="},
	{"wb_session"},
	{"wb_sessionx=1; xwb_session=2"},
	{";;wb_session=1;;"},
	{"x=1", "wb_session=second-line"},
	{"wb_session=first", "wb_session=second"},
	{"wb_session=\x7f; wb_session=ok"},
	{"\twb_session=tab\t"},
	{"WB_SESSION=upper"},
	{"wb_session=a=b=c"},
}

// TestRequestCookie: the cookie looked up in place is the one r.Cookie
// returns, for every case and for more cookies than it looks through.
func TestRequestCookie(t *testing.T) {
	many := strings.Repeat("x=1; ", cookieFastMax) + "wb_session=late"
	for _, lines := range append(cookieCases, []string{many}) {
		checkRequestCookie(t, lines)
	}
}

func checkRequestCookie(t *testing.T, lines []string) {
	t.Helper()
	r := &http.Request{Header: http.Header{}}
	if lines != nil {
		r.Header["Cookie"] = lines
	}
	want, err := r.Cookie("wb_session")
	got, ok := requestCookie(r, "wb_session")
	if ok != (err == nil) || (ok && got != want.Value) {
		t.Errorf("%q: got %q %v, r.Cookie %v %v", lines, got, ok, want, err)
	}
}

// FuzzRequestCookie compares requestCookie with r.Cookie on any header.
func FuzzRequestCookie(f *testing.F) {
	for _, c := range cookieCases {
		f.Add(strings.Join(c, "\n"))
	}
	f.Fuzz(func(t *testing.T, s string) {
		checkRequestCookie(t, strings.Split(s, "\n"))
	})
}
