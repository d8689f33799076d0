package handlers

import (
	"net/url"
	"strings"
	"testing"
)

// nextCases are sign-in next values and where they must lead. Each is also
// a fuzz seed.
var nextCases = []struct{ in, want string }{
	{"", "/admin"},
	{"/admin", "/admin"},
	{"/admin/", "/admin/"},
	{"/admin/password-reset/properties", "/admin/password-reset/properties"},
	{"/admin/audit?range=24h&q=a%20b", "/admin/audit?range=24h&q=a%20b"},
	{"/admin/users/alice%20smith", "/admin/users/alice%20smith"},
	{"/admin/users/j%C3%B6rg", "/admin/users/j%C3%B6rg"},
	{"/admin/audit?q=<x>", "/admin/audit?q=%3Cx%3E"},
	// Somewhere else on this portal, or not a path at all.
	{"/", "/admin"},
	{"/reset", "/admin"},
	{"/administrators", "/admin"},
	{"admin", "/admin"},
	{"/admin/../reset", "/admin"},
	{"/admin/./x", "/admin"},
	{"/admin//evil.example", "/admin"},
	// Other sites, however they are spelled.
	{"//evil.example", "/admin"},
	{"///evil.example", "/admin"},
	{"/\\evil.example", "/admin"},
	{"\\\\evil.example", "/admin"},
	{"https://evil.example/admin", "/admin"},
	{"http:evil.example", "/admin"},
	{"https:/admin", "/admin"},
	{"javascript:alert(1)", "/admin"},
	{"data:text/html,x", "/admin"},
	{"/%2F/evil.example", "/admin"},
	{"/%2f%2fevil.example", "/admin"},
	{"/admin/%2F%2Fevil.example", "/admin"},
	{"/%252F/evil.example", "/admin"},
	{"/admin/%252F%252Fevil.example", "/admin"},
	{"/admin/%25252e%25252e/reset", "/admin"},
	{"/%5Cevil.example", "/admin"},
	{"/admin/%5C%5Cevil.example", "/admin"},
	{"/admin/%255Cevil.example", "/admin"},
	{"/%09/evil.example", "/admin"},
	{"/admin/%09/evil.example", "/admin"},
	{"/\t/evil.example", "/admin"},
	{"/admin/\n/x", "/admin"},
	{"/admin/%0d%0aSet-Cookie:x=y", "/admin"},
	{"/admin/%00", "/admin"},
	{"/admin/%7f", "/admin"},
	{"/admin/%zz", "/admin"},
	{"/admin#//evil.example", "/admin"},
	{"/admin@evil.example", "/admin"},
	{"/admin/x?a=%zz", "/admin"},
	{"/admin/" + strings.Repeat("a", 3000), "/admin"},
}

func TestSafeNext(t *testing.T) {
	for _, tc := range nextCases {
		if got := safeNext(tc.in); got != tc.want {
			t.Errorf("safeNext(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestSafeNextTwiceDecoded follows a next value the way the sign-in form
// carries it: decoded from the query string, checked, written into the
// form, decoded again from the POST body, checked again.
func TestSafeNextTwiceDecoded(t *testing.T) {
	for _, raw := range []string{"%2F%2Fevil.example", "%2F%252F%252Fevil.example", "%2F%255Cevil.example", "%2F%2509%2Fevil.example",
		"%2Fadmin%2F%252F%252Fevil.example"} {
		q, err := url.ParseQuery("next=" + raw)
		if err != nil {
			t.Fatal(err)
		}
		first := safeNext(q.Get("next"))
		form, err := url.ParseQuery("next=" + url.QueryEscape(first))
		if err != nil {
			t.Fatal(err)
		}
		if got := safeNext(form.Get("next")); got != "/admin" {
			t.Errorf("%s leads to %q", raw, got)
		}
	}
}

// FuzzSafeNext: whatever safeNext returns is a path on this host however
// often it is decoded, and safeNext leaves its own output as it is (the
// sign-in form checks the value a second time).
func FuzzSafeNext(f *testing.F) {
	for _, tc := range nextCases {
		f.Add(tc.in)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got := safeNext(in)
		if !strings.HasPrefix(got, "/admin") || strings.HasPrefix(got, "//") || strings.ContainsAny(got, "\\\t\r\n\x00") {
			t.Fatalf("safeNext(%q) = %q", in, got)
		}
		if again := safeNext(got); again != got {
			t.Fatalf("safeNext(%q) = %q, but safeNext(%q) = %q", in, got, got, again)
		}
		for s, i := got, 0; i < 4; i++ {
			// What a browser does first: drop tabs and newlines, read "\" as "/".
			b := strings.NewReplacer("\t", "", "\n", "", "\r", "", "\\", "/").Replace(s)
			u, err := url.Parse("https://portal.example" + b)
			if err != nil || u.Host != "portal.example" || u.User != nil || !strings.HasPrefix(u.Path, "/admin") {
				t.Fatalf("safeNext(%q) = %q: decoded %d times it is %q, which leaves the portal", in, got, i, s)
			}
			next, err := url.PathUnescape(s)
			if err != nil || next == s {
				break
			}
			s = next
		}
	})
}
