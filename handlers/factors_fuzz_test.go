package handlers_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/writeback/writeback/services/admins"
	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/store"
)

// secondStepEndpoints are the POSTs of the sign-in's second step.
var secondStepEndpoints = []string{"/login/factor/app", "/login/factor/recovery", "/login/factor/passkey"}

// FuzzSecondStep posts arbitrary form bodies to the second step of a
// half-signed-in Global Administrator who has an authenticator app: no
// panic, no 5xx, no internal error text, and no input signs in (no session
// appears, the half-signed-in state stays).
func FuzzSecondStep(f *testing.F) {
	for _, s := range []struct {
		endpoint uint8
		body     string
	}{
		{0, "code=123456"},
		{0, "code=%00%ff&next=%2F%2Fevil.example"},
		{0, "code=" + strings.Repeat("9", 5000)},
		{1, "recovery=abcde-fghjk"},
		{1, "recovery=%E2%80%8B"},
		{2, "credential=%7B%7D"},
		{2, `credential={"id":"AAAA","rawId":"AAAA","type":"public-key","response":{"clientDataJSON":"e30","authenticatorData":"","signature":""}}`},
		{2, "credential="},
		{0, "%%%&&&==="},
	} {
		f.Add(s.endpoint, s.body)
	}
	p := newFuzzPortal(f)
	ctx := context.Background()
	_, meta, _ := p.admins.Policy(ctx)
	if _, err := p.admins.SavePolicy(ctx, audit.CommandLine, meta.Version, admins.DefaultPolicy); err != nil {
		f.Fatal(err)
	}
	a, err := p.admins.Create(ctx, audit.CommandLine, admins.NewAdmin{Email: "ada@example.com", Name: "Ada", Password: fuzzAdminPassword, Role: admins.GlobalAdmin})
	if err != nil {
		f.Fatal(err)
	}
	setup, err := p.admins.BeginTOTP(a, "fuzz", "")
	if err != nil {
		f.Fatal(err)
	}
	code, _ := totp.GenerateCode(setup.Secret, time.Now())
	if _, err := p.admins.ConfirmTOTP(ctx, audit.CommandLine, a, "fuzz", setup.Sealed, "Phone", code); err != nil {
		f.Fatal(err)
	}
	rec := p.post("/login", url.Values{"csrf_token": {p.csrf}, "email": {"ada@example.com"}, "password": {fuzzAdminPassword}}.Encode())
	if rec.Code != http.StatusSeeOther || !strings.HasPrefix(rec.Header().Get("Location"), "/login/factor") {
		f.Fatalf("password step: %d %s", rec.Code, rec.Header().Get("Location"))
	}
	for _, c := range rec.Result().Cookies() {
		p.cookie = c.Name + "=" + c.Value
	}
	page := p.serve(httptest.NewRequest(http.MethodGet, "/login/factor", nil))
	m := csrfRE.FindStringSubmatch(page.Body.String())
	if page.Code != http.StatusOK || m == nil {
		f.Fatalf("second step page: %d", page.Code)
	}
	for _, c := range page.Result().Cookies() { // with the passkey challenge, when there is one
		p.cookie = c.Name + "=" + c.Value
	}
	p.csrf = m[1]
	count := func(tb testing.TB, q string) int {
		var n int
		if err := p.db.SQL().QueryRow(q).Scan(&n); err != nil {
			tb.Fatal(err)
		}
		return n
	}
	f.Fuzz(func(t *testing.T, endpoint uint8, body string) {
		path := secondStepEndpoints[int(endpoint)%len(secondStepEndpoints)]
		if _, err := p.db.SQL().Exec(`DELETE FROM signin_attempts`); err != nil {
			t.Fatal(err)
		}
		rec := p.post(path, body+"&csrf_token="+p.csrf)
		switch rec.Code {
		case http.StatusUnauthorized, http.StatusUnprocessableEntity, http.StatusTooManyRequests, http.StatusRequestEntityTooLarge, http.StatusBadRequest:
		default:
			t.Errorf("%s %q: status %d %s", path, body, rec.Code, rec.Header().Get("Location"))
		}
		if n := count(t, `SELECT count(*) FROM admin_sessions`); n != 0 {
			t.Fatalf("%s %q signed in", path, body)
		}
		if n := count(t, `SELECT count(*) FROM admin_signins WHERE stage = '`+store.StageFactor+`'`); n != 1 {
			t.Fatalf("%s %q: %d half-signed-in states", path, body, n)
		}
		out := rec.Body.String()
		for _, bad := range []string{"store:", "admins:", "passkeys:", "sqlite", "goroutine", "panic"} {
			if strings.Contains(out, bad) {
				t.Errorf("%s %q: the page shows %q", path, body, bad)
			}
		}
		if strings.Contains(p.logs.String(), "msg=panic") {
			t.Fatalf("%s %q panicked:\n%s", path, body, p.logs.String())
		}
	})
}
