package handlers_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/writeback/writeback/services/admins"
	"github.com/writeback/writeback/services/audit"
)

// fuzzAdminPassword is the password of the fuzz portal's administrator.
const fuzzAdminPassword = "correct-horse-battery"

// signInEndpoints are the public POSTs that take a password: administrator
// sign-in, first-run set-up, sign-out, and the directory-password pages.
var signInEndpoints = []string{"/login", "/setup", "/logout", "/change", "/register"}

// signInSnapshot is everything those POSTs may change.
func (p *fuzzPortal) signInSnapshot(tb testing.TB) string {
	tb.Helper()
	p.ss.Wait()
	var b strings.Builder
	for _, q := range []string{
		`SELECT coalesce(group_concat(id || email || role || disabled, '|'), '') FROM admins`,
		`SELECT count(*) FROM admin_sessions`,
		`SELECT count(*) FROM sspr_flows`,
	} {
		var s string
		if err := p.db.SQL().QueryRow(q).Scan(&s); err != nil {
			tb.Fatal(err)
		}
		b.WriteString(s + "\n")
	}
	return b.String()
}

// FuzzSignInPosts drives the public POSTs that take a password with
// arbitrary form bodies (issue 8 item 17): no panic, no 5xx but the honest
// "not available" of a portal without a directory, no internal error text,
// and a refusal changes no administrator, session or flow.
func FuzzSignInPosts(f *testing.F) {
	seeds := []struct {
		endpoint uint8
		body     string
	}{
		{0, "email=ada%40example.com&password=wrong"},
		{0, "email=ada%40example.com&password=" + fuzzAdminPassword + "&next=%2F%2Fevil.example"},
		{0, "email=%00&password=%ff&next=/%252F%252Fevil.example"},
		{0, "email=" + strings.Repeat("a", 5000) + "&password=x"},
		{1, "token=nope&email=eve%40example.com&name=Eve&password=Passw0rd-long&confirm=Passw0rd-long"},
		{1, "token=&email=&password=&confirm="},
		{2, ""},
		{3, "login=alice&current=x&password=Passw0rd!x&confirm=Passw0rd!x"},
		{3, "login=alice%00junk&current=x&password=a&confirm=b"},
		{4, "login=alice&password=x"},
		{4, "login=%E2%80%8Balice&password="},
		{4, "%%%&&&==="},
	}
	for _, s := range seeds {
		f.Add(s.endpoint, s.body)
	}
	p := newFuzzPortal(f)
	if _, err := p.admins.Create(context.Background(), audit.CommandLine, admins.NewAdmin{Email: "ada@example.com", Name: "Ada",
		Password: fuzzAdminPassword, Role: admins.GlobalAdmin}); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, endpoint uint8, body string) {
		path := signInEndpoints[int(endpoint)%len(signInEndpoints)]
		// Nothing carried over between inputs: no spent sign-in budgets.
		if _, err := p.db.SQL().Exec(`DELETE FROM signin_attempts`); err != nil {
			t.Fatal(err)
		}
		before := p.signInSnapshot(t)
		rec := p.post(path, body+"&csrf_token="+p.csrf)
		page := rec.Body.String()
		switch rec.Code {
		case http.StatusOK, http.StatusSeeOther:
			// Signed in or out, or a form shown again.
		case http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound,
			http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity, http.StatusTooManyRequests,
			http.StatusServiceUnavailable:
			// 503: /change and /register on a portal whose directory is not
			// connected say so, the same for every input.
			if after := p.signInSnapshot(t); after != before {
				t.Errorf("%s %q answered %d but changed what is stored:\n%s\n----\n%s", path, body, rec.Code, before, after)
			}
		default:
			t.Errorf("%s %q: status %d\n%s", path, body, rec.Code, between(page, "<main", "</main>"))
		}
		for _, bad := range []string{"store:", "selfservice:", "directory:", "admins:", "sqlite", "goroutine", "panic"} {
			if strings.Contains(page, bad) {
				t.Errorf("%s %q: the page shows %q", path, body, bad)
			}
		}
		if loc := rec.Header().Get("Location"); strings.HasPrefix(loc, "//") || strings.Contains(loc, "://") {
			t.Errorf("%s %q: redirect to %q", path, body, loc)
		}
		if strings.Contains(p.logs.String(), "msg=panic") {
			t.Fatalf("%s %q panicked:\n%s", path, body, p.logs.String())
		}
		// The portal's answer cookies are not kept: every input starts from
		// the same anonymous session.
	})
}
