package handlers

import (
	"net/url"
	"path"
	"strings"
)

// defaultNext is where a sign-in goes when it has no usable next page.
const defaultNext = "/admin"

// maxNext bounds a next value: audit pages carry their paging cursors in
// the query string, so this is larger than a bare path needs.
const maxNext = 2048

// safeNext keeps a post-sign-in redirect on this portal's administrator
// pages, and returns it in one canonical, already-escaped form that the
// sign-in form can carry through its hidden field and send back unchanged.
//
// The value is decoded once when the query string or form is parsed, and
// browsers decode or rewrite it again when they follow the redirect (they
// drop tabs and newlines and read "\" as "/"), so every decoding of it is
// checked, not only the first: "/%2F%2Fevil.example", "/%252F…", "/%5C…",
// "/%09/…" all fall back to the default page.
func safeNext(next string) string {
	if next == "" || len(next) > maxNext {
		return defaultNext
	}
	// url.Parse refuses control characters; a user part needs "//", and an
	// opaque part a scheme.
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.Fragment != "" ||
		strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\#") {
		return defaultNext
	}
	// The path as decoded once is what this server routes on; every further
	// decoding is what a browser or a proxy might make of it.
	if !everyDecoding(u.Path, adminPath) {
		return defaultNext
	}
	out := u.EscapedPath()
	if u.RawQuery != "" {
		// Nothing this portal reads from its query needs a control character.
		q, err := url.ParseQuery(u.RawQuery)
		if err != nil || !everyDecoding(u.RawQuery, func(s string) bool { return !hasCTL(s) }) {
			return defaultNext
		}
		if safeQuery(u.RawQuery) {
			out += "?" + u.RawQuery
		} else if enc := q.Encode(); enc != "" {
			out += "?" + enc
		}
	}
	return out
}

// everyDecoding reports whether ok holds for s and for every further
// percent-decoding of it, until decoding changes nothing. A decoding that
// fails, or a value still changing after five decodings (nobody needs
// that), does not pass.
func everyDecoding(s string, ok func(string) bool) bool {
	for range 5 {
		if !ok(s) {
			return false
		}
		next, err := url.PathUnescape(s)
		if err != nil {
			return false
		}
		if next == s {
			return true
		}
		s = next
	}
	return false
}

// adminPath reports whether p is a clean absolute path on this portal's
// administrator pages: no "//", "." or ".." segments, no backslash, no
// control characters.
func adminPath(p string) bool {
	if p != defaultNext && !strings.HasPrefix(p, defaultNext+"/") {
		return false
	}
	if strings.ContainsRune(p, '\\') || hasCTL(p) {
		return false
	}
	clean := path.Clean(p)
	return clean == p || clean+"/" == p
}

// safeQuery reports whether a raw query string can be sent back as it is:
// only characters that need no escaping in a Location header.
func safeQuery(q string) bool {
	for i := 0; i < len(q); i++ {
		c := q[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("-._~%&=+,;:@/!$'()*", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// hasCTL reports whether s holds an ASCII control character or DEL
// (browsers silently drop tabs and newlines from URLs, which turns "/\t/x"
// into "//x").
func hasCTL(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return true
		}
	}
	return false
}
