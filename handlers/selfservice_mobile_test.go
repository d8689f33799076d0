package handlers_test

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/writeback/writeback/services/selfservice"
	"github.com/writeback/writeback/testbed"
)

var codeInputRE = regexp.MustCompile(`<input[^>]*name="(?:code|app_code)"[^>]*>`)

// assertCodeFields checks that a page has a code field and that every one
// brings up the digit keyboard on a phone and takes the phone's own code
// suggestion (a code from a text message or a mail app).
func assertCodeFields(t *testing.T, what, body string) {
	t.Helper()
	fields := codeInputRE.FindAllString(body, -1)
	if len(fields) == 0 {
		t.Errorf("%s: no code field:\n%s", what, between(body, "<main", "</main>"))
	}
	for _, f := range fields {
		if !strings.Contains(f, `inputmode="numeric"`) || !strings.Contains(f, `autocomplete="one-time-code"`) {
			t.Errorf("%s: code field %s", what, f)
		}
	}
}

// TestSelfServiceCodeFieldsForPhones: every field an employee types a code
// into — the e-mailed code of a reset, the authenticator app's code of a
// reset, the code confirming an alternate address and the app's first
// code at registration — is made for phones, and the app's set-up page
// has an otpauth:// link beside its QR code, for an authenticator app on
// the same phone.
func TestSelfServiceCodeFieldsForPhones(t *testing.T) {
	env := testbed.Load(t)
	d := directories(env)[0]
	s := newSSPR(t, env, d, selfservice.Methods{Email: true, App: true})
	user := d.newUser(t, testbed.UserOptions{})
	c := s.client()
	p := c.post("/register", url.Values{"csrf_token": {c.csrf("/")}, "login": {user.Login}, "password": {user.Password}})
	if p.Status != http.StatusSeeOther {
		t.Fatalf("sign in: %d\n%s", p.Status, between(p.Body, "<main", "</main>"))
	}
	reg := p.Location
	if p := c.post(reg+"/email", url.Values{"csrf_token": {c.csrf("/")}, "email": {"alt-" + user.Login + "@example.org"}}); p.Status != http.StatusSeeOther {
		t.Fatalf("alternate address: %d\n%s", p.Status, between(p.Body, "<main", "</main>"))
	}
	c.post(reg+"/app", url.Values{"csrf_token": {c.csrf("/")}})
	p = c.get(reg)
	assertCodeFields(t, "registration", p.Body)
	if n := len(codeInputRE.FindAllString(p.Body, -1)); n != 2 {
		t.Errorf("registration shows %d code fields, want the address's and the app's", n)
	}
	link := regexp.MustCompile(`<a href="(otpauth://[^"]+)" data-testid="otpauth-link">`).FindStringSubmatch(p.Body)
	secret := regexp.MustCompile(`data-testid="app-secret">([A-Z2-7]+)<`).FindStringSubmatch(p.Body)
	if link == nil || secret == nil || !strings.HasPrefix(link[1], "otpauth://totp/") || !strings.Contains(link[1], "secret="+secret[1]) {
		t.Fatalf("no otpauth:// link with the key beside the QR code:\n%s", between(p.Body, "<main", "</main>"))
	}
	code := codeAt(t, secret[1], time.Now())
	if p := c.post(reg+"/app/confirm", url.Values{"csrf_token": {c.csrf("/")}, "app_code": {code}}); p.Status != http.StatusSeeOther {
		t.Fatalf("confirm app: %d\n%s", p.Status, between(p.Body, "<main", "</main>"))
	}

	b := s.client()
	flow := b.begin("reset", user.Login)
	b.step(flow, "method", url.Values{"method": {"email"}})
	assertCodeFields(t, "e-mail code step", b.get(flow).Body)
	b.step(flow, "method", url.Values{"method": {""}})
	b.step(flow, "method", url.Values{"method": {"app"}})
	p = b.get(flow)
	if !strings.Contains(p.Body, "Code from your authenticator app") {
		t.Fatalf("app step:\n%s", between(p.Body, "<main", "</main>"))
	}
	assertCodeFields(t, "app code step", p.Body)
	s.ss.Wait()
}
