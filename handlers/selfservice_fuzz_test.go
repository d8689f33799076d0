package handlers_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/directory"
	"github.com/writeback/writeback/services/errs"
	"github.com/writeback/writeback/services/mail"
	"github.com/writeback/writeback/services/mail/mailtest"
	"github.com/writeback/writeback/services/passkeys"
	"github.com/writeback/writeback/services/selfservice"
	"github.com/writeback/writeback/services/writeback"
)

// fakeDirectory is a healthy directory holding one user, alice.
type fakeDirectory struct{}

var fuzzAlice = directory.User{ID: "S-1-5-21-alice", DN: "CN=Alice,OU=People,DC=example,DC=test", Login: "alice", DisplayName: "Alice",
	Email: "alice@example.com", Locked: true}

func (fakeDirectory) State(context.Context) (writeback.State, error) {
	return writeback.State{Configured: true, Writeback: true, Unlock: true}, nil
}

func (fakeDirectory) Lookup(_ context.Context, login string) (directory.User, error) {
	if strings.EqualFold(login, "alice") {
		return fuzzAlice, nil
	}
	return directory.User{}, errs.E(errs.NotFound, "No account matches that name.", &directory.OpError{Op: "find", Code: directory.CodeNotFound})
}

func (d fakeDirectory) Get(ctx context.Context, dn string) (directory.User, error) {
	if dn == fuzzAlice.DN {
		return fuzzAlice, nil
	}
	return directory.User{}, errs.E(errs.NotFound, "No account matches that name.", &directory.OpError{Op: "get", Code: directory.CodeNotFound})
}

func (fakeDirectory) MemberOf(context.Context, directory.User, string) (bool, error) {
	return true, nil
}

func (fakeDirectory) Policy(context.Context, directory.User) (directory.Policy, error) {
	return directory.Policy{MinLength: 7}, nil
}

func (d fakeDirectory) Reset(ctx context.Context, u directory.User, _ string, _ directory.ResetOptions) (directory.User, directory.Result, error) {
	cur, err := d.Get(ctx, u.DN)
	return cur, directory.Result{Server: "ldaps://fake"}, err
}

func (fakeDirectory) Unlock(context.Context, directory.User) (directory.Result, error) {
	return directory.Result{Server: "ldaps://fake"}, nil
}

// fuzzPortal is the portal with a real store, a fake directory and an
// in-process SMTP sink, driven without a network: fast enough to fuzz.
type fuzzPortal struct {
	*portal
	h      http.Handler
	cookie string
	csrf   string
	ip     atomic.Uint32
}

func newFuzzPortal(tb testing.TB) *fuzzPortal {
	tb.Helper()
	ctx := context.Background()
	p := &fuzzPortal{portal: newPortal(tb)}
	p.ss.SetDirectory(fakeDirectory{})
	pk, err := passkeys.New("http://localhost:8080", "Writeback")
	if err != nil {
		tb.Fatal(err)
	}
	p.ss.UsePasskeys(pk)
	if _, err := p.ss.SavePolicy(ctx, audit.CommandLine, 0, "test", func(p *selfservice.Policy) {
		p.ChallengeOff = true // more attempts than the proof-of-work threshold; challenge_test.go tests it
		p.Enabled, p.Methods, p.Required, p.NotifyUsers = selfservice.EnabledAll, selfservice.Methods{Email: true, App: true, Questions: true, Passkey: true}, 1, true
	}); err != nil {
		tb.Fatal(err)
	}
	sink := mailtest.Start(tb, mailtest.Options{})
	host, port := sink.Addr()
	if _, err := p.ss.SaveMail(ctx, audit.CommandLine, 0, selfservice.MailInput{Host: host, Port: port, TLS: mail.TLSNone, From: "portal@example.com"}); err != nil {
		tb.Fatal(err)
	}
	p.h = p.handler(nil)
	rec := p.serve(httptest.NewRequest(http.MethodGet, "/", nil))
	for _, c := range rec.Result().Cookies() {
		p.cookie = c.Name + "=" + c.Value
	}
	m := csrfRE.FindStringSubmatch(rec.Body.String())
	if p.cookie == "" || m == nil {
		tb.Fatal("no session")
	}
	p.csrf = m[1]
	return p
}

func (p *fuzzPortal) serve(r *http.Request) *httptest.ResponseRecorder {
	// A new client address each time: the per-address rate limit is not
	// what is being fuzzed.
	n := p.ip.Add(1)
	r.RemoteAddr = fmt.Sprintf("10.%d.%d.%d:1234", n>>16&255, n>>8&255, n&255)
	if p.cookie != "" {
		r.Header.Set("Cookie", p.cookie)
	}
	rec := httptest.NewRecorder()
	p.h.ServeHTTP(rec, r)
	return rec
}

func (p *fuzzPortal) post(path, body string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.Header.Set("Sec-Fetch-Site", "same-origin")
	return p.serve(r)
}

// snapshot is everything a self-service POST may change.
func (p *fuzzPortal) snapshot(tb testing.TB) string {
	tb.Helper()
	p.ss.Wait()
	var b strings.Builder
	for _, q := range []string{
		`SELECT coalesce(group_concat(id || kind || eligible || verified || state || coalesce(done_ms, 0) || expires_ms, '|'), '') FROM sspr_flows`,
		`SELECT coalesce(max(id), 0) FROM audit_events`,
		`SELECT count(*) || '/' || coalesce(sum(pending), 0) FROM sspr_failures`,
		`SELECT coalesce(group_concat(user_id || until_ms, '|'), '') FROM sspr_blocks`,
		`SELECT coalesce(group_concat(id || tries || coalesce(used_ms, 0) || voided, '|'), '') FROM sspr_codes`,
		`SELECT coalesce(group_concat(user_id || method || secret || last_step, '|'), '') FROM sspr_methods`,
		`SELECT coalesce(group_concat(credential_id || user_id || secret || last_used_ms, '|'), '') FROM sspr_passkeys`,
	} {
		var s string
		if err := p.db.SQL().QueryRow(q).Scan(&s); err != nil {
			tb.Fatal(err)
		}
		b.WriteString(s + "\n")
	}
	return b.String()
}

// fuzzEndpoints are the public self-service POSTs of the reset, unlock and
// registration flows; {flow} is replaced by a live flow of the family.
var fuzzEndpoints = []struct{ family, path string }{
	{"reset", "/reset"},
	{"unlock", "/unlock"},
	{"reset", "/reset/{flow}/method"},
	{"reset", "/reset/{flow}/verify"},
	{"reset", "/reset/{flow}/password"},
	{"unlock", "/unlock/{flow}/method"},
	{"unlock", "/unlock/{flow}/verify"},
	{"unlock", "/unlock/{flow}/unlock"},
	{"register", "/register/{flow}/email"},
	{"register", "/register/{flow}/email/confirm"},
	{"register", "/register/{flow}/app"},
	{"register", "/register/{flow}/app/confirm"},
	{"register", "/register/{flow}/questions"},
	{"register", "/register/{flow}/passkey"},
	{"register", "/register/{flow}/passkeys/Y3JlZA/remove"},
	{"reset", "/reset/{flow}/method"},
}

// Flow states to start from: what the person did before this POST.
var fuzzStates = []struct{ verified, state string }{
	{`[]`, `{}`},
	{`[]`, `{"pending":"email"}`},
	{`[]`, `{"pending":"app"}`},
	{`[]`, `{"pending":"questions","questions":["In what city were you born?","What was the make of your first car?","What was the name of your first pet?"]}`},
	{`["app"]`, `{}`},
	{`[]`, `{"pending":"passkey"}`},
}

// FuzzSelfServicePosts drives every public POST of the reset, unlock and
// registration flows with arbitrary form bodies (issue 8 item 17): no panic,
// no 5xx, no internal error text in the page, and an answer that refuses the
// input (400, 403, 404, 413, 422, 429) changes nothing stored.
func FuzzSelfServicePosts(f *testing.F) {
	seeds := []struct {
		endpoint, state uint8
		flow, body      string
	}{
		{0, 0, "", "login=alice"},
		{0, 0, "", "login=alice%00junk"},
		{1, 0, "", "login=%E2%80%AEecila"},
		{0, 0, "", "login=" + strings.Repeat("a", 300)},
		{2, 0, "", "method=email"},
		{2, 0, "", "method=nope"},
		{2, 1, "", "method="},
		{3, 1, "", "method=email&code=00000000"},
		{3, 2, "", "method=app&code=123456"},
		{3, 3, "", "method=questions&answer=a&answer=b&answer=c&answer=d"},
		{3, 0, "", "method=questions&answer=%ff"},
		{4, 4, "", "password=Passw0rd!x&confirm=Passw0rd!x"},
		{4, 4, "", "password=a&confirm=b"},
		{4, 0, "", "password=Passw0rd!x&confirm=Passw0rd!x"},
		{7, 4, "", ""},
		{6, 2, "", "method=app&code=%00"},
		{8, 0, "", "email=bob%40example.com"},
		{8, 0, "", "email=%22a%20b%22%40example.com%0d%0aBcc:%20x%40y.z"},
		{9, 0, "", "code=12345678"},
		{10, 0, "", ""},
		{11, 0, "", "app_code=000000"},
		{12, 0, "", "question=In+what+city+were+you+born%3F&answer=Paris&question=What+was+the+make+of+your+first+car%3F&answer=Volvo&question=What+was+the+name+of+your+first+pet%3F&answer=Rex"},
		{12, 0, "", "question=x&answer=y&question=&answer="},
		{3, 1, "../../admin", "method=email&code=1"},
		{2, 0, "%zz", "method=email"},
		{3, 1, "", "%%%&&&==="},
		{3, 1, "", "csrf_token=forged&method=email&code=00000000"},
		{13, 0, "", "passkey-name=Phone&credential=%7B%22id%22%3A%22x%22%7D"},
		{13, 0, "", "passkey-name=%00&credential="},
		{14, 0, "", ""},
		{15, 0, "", "method=passkey"},
		{3, 5, "", "method=passkey&credential=%7B%7D"},
		{3, 5, "", "method=passkey"},
	}
	for _, s := range seeds {
		f.Add(s.endpoint, s.state, s.flow, s.body)
	}
	p := newFuzzPortal(f)
	f.Fuzz(func(t *testing.T, endpoint, stateIdx uint8, flowOverride, body string) {
		p.try(t, endpoint, stateIdx, flowOverride, body)
	})
}

// try posts one fuzzed form to one endpoint from a flow in one state, and
// checks the answer.
func (p *fuzzPortal) try(t *testing.T, endpoint, stateIdx uint8, flowOverride, body string) {
	ep := fuzzEndpoints[int(endpoint)%len(fuzzEndpoints)]
	st := fuzzStates[int(stateIdx)%len(fuzzStates)]
	// Nothing carried over between inputs: no block, a fresh flow.
	if _, err := p.db.SQL().Exec(`DELETE FROM sspr_failures; DELETE FROM sspr_blocks; DELETE FROM sspr_flows`); err != nil {
		t.Fatal(err)
	}
	rec := p.post("/reset", "login=alice&csrf_token="+p.csrf)
	loc := rec.Header().Get("Location")
	if rec.Code != http.StatusSeeOther || !strings.HasPrefix(loc, "/reset/") {
		t.Fatalf("start: %d", rec.Code)
	}
	id := strings.TrimPrefix(loc, "/reset/")
	if _, err := p.db.SQL().Exec(`UPDATE sspr_flows SET kind = ?, verified = ?, state = ? WHERE id = ?`, ep.family, st.verified, st.state, id); err != nil {
		t.Fatal(err)
	}
	if flowOverride != "" {
		id = url.PathEscape(flowOverride)
	}
	before := p.snapshot(t)
	rec = p.post(strings.ReplaceAll(ep.path, "{flow}", id), body+"&csrf_token="+p.csrf)
	page := rec.Body.String()
	switch rec.Code {
	case http.StatusSeeOther, http.StatusUnauthorized:
		// Accepted, or a wrong answer (which counts, by design).
	case http.StatusBadRequest, http.StatusForbidden, http.StatusNotFound, http.StatusRequestEntityTooLarge,
		http.StatusUnprocessableEntity, http.StatusTooManyRequests:
		if after := p.snapshot(t); after != before {
			t.Errorf("%s %q answered %d but changed what is stored:\n%s\n----\n%s", ep.path, body, rec.Code, before, after)
		}
	default:
		t.Errorf("%s %q: status %d\n%s", ep.path, body, rec.Code, between(page, "<main", "</main>"))
	}
	for _, bad := range []string{"store:", "selfservice:", "directory:", "sqlite", "goroutine", "panic"} {
		if strings.Contains(page, bad) {
			t.Errorf("%s %q: the page shows %q", ep.path, body, bad)
		}
	}
	if strings.Contains(p.logs.String(), "msg=panic") {
		t.Fatalf("%s %q panicked:\n%s", ep.path, body, p.logs.String())
	}
}
