package handlers

import (
	"encoding/base64"
	"maps"
	"net/http"
	"net/textproto"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/sessions"
)

// maxCachedCookies bounds the decoded-cookie cache (a few hundred bytes
// each); when it is full, half of it is dropped.
const maxCachedCookies = 10000

// cookieCache remembers what a session cookie decoded to. A cookie's value
// is authenticated (HMAC) and encrypted: the same value always decodes to
// the same session values, so verifying and decrypting it again on every
// request of a browser is work with a known result. An entry is kept only
// after securecookie has accepted the value, and only until the moment
// securecookie would refuse it as too old (the cookie's own timestamp plus
// the maximum age), so that nothing is accepted that the decoder would
// refuse. Values are copied out: a request changes its own copy.
type cookieCache struct {
	mu     sync.RWMutex
	m      map[string]cookieEntry
	maxAge time.Duration
	now    func() time.Time
}

type cookieEntry struct {
	values  map[any]any
	expires time.Time
}

func newCookieCache(maxAge time.Duration) *cookieCache {
	return &cookieCache{m: map[string]cookieEntry{}, maxAge: maxAge, now: time.Now}
}

// get returns a copy of the values value decoded to, if it is known and
// not too old.
func (c *cookieCache) get(value string) (map[any]any, bool) {
	c.mu.RLock()
	e, ok := c.m[value]
	c.mu.RUnlock()
	if !ok || !c.now().Before(e.expires) {
		return nil, false
	}
	return copyValues(e.values), true
}

// put remembers values for a value securecookie accepted.
func (c *cookieCache) put(value string, values map[any]any) {
	ts, ok := cookieTimestamp(value)
	if !ok {
		return
	}
	e := cookieEntry{values: copyValues(values), expires: ts.Add(c.maxAge)}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= maxCachedCookies {
		n := 0
		for k := range c.m { // map order is random: drops an arbitrary half
			delete(c.m, k)
			if n++; n >= maxCachedCookies/2 {
				break
			}
		}
	}
	c.m[value] = e
}

// cookieTimestamp reads the time securecookie wrote into an encoded value
// (base64 of "time|value|mac", the time in Unix seconds).
func cookieTimestamp(value string) (time.Time, bool) {
	b, err := base64.URLEncoding.DecodeString(value)
	if err != nil {
		return time.Time{}, false
	}
	ts, _, ok := strings.Cut(string(b), "|")
	if !ok {
		return time.Time{}, false
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	return time.Unix(sec, 0), true
}

// copyValues copies session values: strings, and lists of strings
// (flashes), which a request may append to.
func copyValues(v map[any]any) map[any]any {
	out := maps.Clone(v)
	if out == nil {
		out = map[any]any{}
	}
	for k, x := range out {
		if l, ok := x.([]any); ok {
			out[k] = append([]any(nil), l...)
		}
	}
	return out
}

// loadSession is the session of the request's cookie, as
// sessions.CookieStore.Get makes it, but through the cache. A cookie that
// does not decode gives a new session and the error, as Get does.
func (s *Server) loadSession(r *http.Request) (*sessions.Session, error) {
	value, ok := requestCookie(r, s.cookieName)
	if !ok {
		return s.cookies.New(r, s.cookieName)
	}
	if vals, ok := s.cookieCache.get(value); ok {
		sess := sessions.NewSession(s.cookies, s.cookieName)
		opts := *s.cookies.Options
		sess.Options, sess.Values, sess.IsNew = &opts, vals, false
		return sess, nil
	}
	sess, err := s.cookies.New(r, s.cookieName)
	if err == nil {
		s.cookieCache.put(value, sess.Values)
	}
	return sess, err
}

// fastCookies: the request's cookie is looked up in place (requestCookie)
// unless the operator changed net/http's cookie limit, which only r.Cookie
// knows how to apply.
var fastCookies = !strings.Contains(os.Getenv("GODEBUG"), "httpcookiemaxnum")

// cookieFastMax is the most cookies requestCookie looks through itself
// (net/http's default limit is 3,000); beyond it r.Cookie decides.
const cookieFastMax = 100

// requestCookie returns the value of the first valid cookie called name, as
// r.Cookie(name) does, without parsing every cookie into a *http.Cookie
// (two allocations and most of the session lookup's time). name must be a
// valid cookie name.
func requestCookie(r *http.Request, name string) (string, bool) {
	lines := r.Header["Cookie"]
	n := 0
	for _, line := range lines {
		n += strings.Count(line, ";") + 1
	}
	if !fastCookies || n > cookieFastMax {
		c, err := r.Cookie(name)
		if err != nil {
			return "", false
		}
		return c.Value, true
	}
	for _, line := range lines {
		line = textproto.TrimString(line)
		var part string
		for len(line) > 0 {
			part, line, _ = strings.Cut(line, ";")
			part = textproto.TrimString(part)
			if part == "" {
				continue
			}
			k, v, _ := strings.Cut(part, "=")
			if textproto.TrimString(k) != name {
				continue
			}
			if len(v) > 1 && v[0] == '"' && v[len(v)-1] == '"' {
				v = v[1 : len(v)-1]
			}
			if validCookieValue(v) {
				return v, true
			}
		}
	}
	return "", false
}

// validCookieValue is net/http's rule for the bytes of a cookie value.
func validCookieValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if b := v[i]; b < 0x20 || b >= 0x7f || b == '"' || b == ';' || b == '\\' {
			return false
		}
	}
	return true
}
