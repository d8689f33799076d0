package handlers_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/writeback/writeback/services/admins"
	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/selfservice"
	"github.com/writeback/writeback/services/sms"
	"github.com/writeback/writeback/services/sms/smstest"
	"github.com/writeback/writeback/testbed"
)

const gatewaySecret = "tok-Sekr3t-gateway-0042"

// useGateway points the portal's text messages at g with the Twilio-style
// preset (form POST, basic authentication).
func useGateway(t *testing.T, h *harness, g *smstest.Gateway) {
	t.Helper()
	p, _ := sms.PresetByKey("twilio")
	c := p.Config
	c.URL = g.URL() + "/2010-04-01/Accounts/AC42/Messages.json"
	c.Username, c.From = "AC42", "+15005550006"
	_, meta, err := h.ss.SMSSettings(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.ss.SaveSMS(context.Background(), audit.CommandLine, meta.Version, selfservice.SMSInput{Config: c, Secret: gatewaySecret}); err != nil {
		t.Fatal(err)
	}
}

// TestSelfServiceResetWithTextMessage: a person whose directory entry holds
// a mobile number (as people write it) resets with a code the gateway
// received, and the new password binds against the real directory.
func TestSelfServiceResetWithTextMessage(t *testing.T) {
	env := testbed.Load(t)
	for _, d := range directories(env) {
		t.Run(d.name, func(t *testing.T) {
			s := newSSPR(t, env, d, selfservice.Methods{SMS: true})
			g := smstest.Start(t)
			useGateway(t, s.harness, g)
			user := d.newUser(t, testbed.UserOptions{Mobile: "+44 (0)7400 123456", NoMail: true})
			c := s.client()
			flow := c.begin("reset", user.Login)
			if p := c.get(flow); !strings.Contains(p.Body, `value="sms"`) || !strings.Contains(p.Body, "Text message code") {
				t.Fatalf("choice:\n%s", between(p.Body, "<main", "</main>"))
			}
			if p := c.step(flow, "method", url.Values{"method": {"sms"}}); p.Status != http.StatusSeeOther {
				t.Fatalf("choose sms: %d\n%s", p.Status, between(p.Body, "<main", "</main>"))
			}
			req := g.Wait(t, 1)
			if req.Method != http.MethodPost || req.Path != "/2010-04-01/Accounts/AC42/Messages.json" || req.User != "AC42" || req.Password != gatewaySecret {
				t.Errorf("gateway request: %s %s user %q", req.Method, req.Path, req.User)
			}
			if req.Form.Get("To") != "+447400123456" || req.Form.Get("From") != "+15005550006" {
				t.Errorf("gateway form: To %q From %q", req.Form.Get("To"), req.Form.Get("From"))
			}
			code := smstest.Code(req.Form.Get("Body"))
			if code == "" || !strings.Contains(req.Form.Get("Body"), "@portal.test #"+code) {
				t.Fatalf("no code in %q", req.Form.Get("Body"))
			}
			p := c.get(flow)
			if !strings.Contains(p.Body, `data-testid="code-sent"`) || !strings.Contains(p.Body, `autocomplete="one-time-code"`) || !strings.Contains(p.Body, `inputmode="numeric"`) {
				t.Fatalf("code page:\n%s", between(p.Body, "<main", "</main>"))
			}
			// A wrong code counts a try and says so; the right one verifies.
			if p := c.step(flow, "verify", url.Values{"method": {"sms"}, "code": {"00000000"}}); p.Status != http.StatusUnauthorized || !strings.Contains(p.Body, "4 more tries") {
				t.Errorf("wrong code: %d\n%s", p.Status, between(p.Body, "<main", "</main>"))
			}
			if p := c.step(flow, "verify", url.Values{"method": {"sms"}, "code": {code}}); p.Status != http.StatusSeeOther {
				t.Fatalf("verify: %d\n%s", p.Status, between(p.Body, "<main", "</main>"))
			}
			newPw := "Sms-" + testbed.RandomPassword()
			if p := c.step(flow, "password", url.Values{"password": {newPw}, "confirm": {newPw}}); p.Status != http.StatusSeeOther {
				t.Fatalf("set password: %d\n%s", p.Status, between(p.Body, "<main", "</main>"))
			}
			if err := env.BindAs(t, d.dir, user.DN, newPw); err != nil {
				t.Errorf("bind with the new password: %v", err)
			}
			s.ss.Wait()
			assertNoSecrets(t, s.harness, code, gatewaySecret, "+447400123456", "7400123456", newPw)
			assertActivities(t, s.harness, audit.ActivityResetSelfService)
		})
	}
}

// TestTextMessageLimits: the cooldown, the number's hourly limit and the
// portal's daily cap, counted in the database; an unknown name gets the same
// answers as a real account.
func TestTextMessageLimits(t *testing.T) {
	env := testbed.Load(t)
	d := directories(env)[0]
	s := newSSPR(t, env, d, selfservice.Methods{SMS: true, Email: true})
	g := smstest.Start(t)
	useGateway(t, s.harness, g)
	user := d.newUser(t, testbed.UserOptions{Mobile: "+447400123457"})
	c := s.client()
	flow := c.begin("reset", user.Login)
	if p := c.step(flow, "method", url.Values{"method": {"sms"}}); p.Status != http.StatusSeeOther {
		t.Fatalf("first code: %d", p.Status)
	}
	g.Wait(t, 1)
	// Asking again at once: the cooldown, in plain words.
	p := c.step(flow, "method", url.Values{"method": {"sms"}})
	if p.Status != http.StatusTooManyRequests || !strings.Contains(p.Body, "Wait a minute") {
		t.Errorf("second code at once: %d\n%s", p.Status, between(p.Body, "<main", "</main>"))
	}
	// An unknown name: the same cooldown answer (its asks count too).
	other := s.client()
	ghost := other.begin("reset", "nobody-"+testbed.RandomLogin())
	if p := other.step(ghost, "method", url.Values{"method": {"sms"}}); p.Status != http.StatusSeeOther {
		t.Errorf("unknown name, first code: %d", p.Status)
	}
	if p := other.step(ghost, "method", url.Values{"method": {"sms"}}); p.Status != http.StatusTooManyRequests || !strings.Contains(p.Body, "Wait a minute") {
		t.Errorf("unknown name, second code: %d", p.Status)
	}
	// The daily cap for the whole portal: 1 reached, so nobody gets a text.
	_, meta, _ := s.ss.SMSSettings(context.Background())
	m, _, _ := s.ss.SMSSettings(context.Background())
	if _, err := s.ss.SaveSMS(context.Background(), audit.CommandLine, meta.Version, selfservice.SMSInput{Config: m.Config, DailyCap: 1}); err != nil {
		t.Fatal(err)
	}
	second := d.newUser(t, testbed.UserOptions{Mobile: "+447400123458"})
	c2 := s.client()
	f2 := c2.begin("reset", second.Login)
	p = c2.step(f2, "method", url.Values{"method": {"sms"}})
	if p.Status != http.StatusServiceUnavailable || !strings.Contains(p.Body, "Choose another method, or try again later") {
		t.Errorf("over the daily cap: %d\n%s", p.Status, between(p.Body, "<main", "</main>"))
	}
	c3 := s.client()
	f3 := c3.begin("reset", "nobody-"+testbed.RandomLogin())
	if p := c3.step(f3, "method", url.Values{"method": {"sms"}}); p.Status != http.StatusServiceUnavailable {
		t.Errorf("unknown name over the daily cap: %d", p.Status)
	}
	s.ss.Wait()
	if n := len(g.Requests()); n != 1 {
		t.Errorf("the gateway received %d requests, want 1", n)
	}
}

// TestTextMessageGatewayPage: presets fill the form, the secret is stored
// encrypted and never shown, bad input changes nothing, and the test message
// reaches the gateway; a gateway failure is told to the administrator.
func TestTextMessageGatewayPage(t *testing.T) {
	h := newHarness(t)
	c := h.client().signedIn(admins.GlobalAdmin)
	g := smstest.Start(t)
	csrf := c.csrf("/admin" + "/password-reset/text-messages")
	p := c.post("/admin/password-reset/text-messages/preset", url.Values{"csrf_token": {csrf}, "preset": {"json"}})
	if p.Status != http.StatusOK || !strings.Contains(p.Body, "Bearer {{secret}}") || !strings.Contains(p.Body, `data-testid="preset-help"`) {
		t.Fatalf("preset: %d\n%s", p.Status, between(p.Body, "<main", "</main>"))
	}
	form := url.Values{"csrf_token": {csrf}, "version": {"0"}, "preset": {"json"}, "method": {"POST"}, "url": {g.URL() + "/api/v1/messages"},
		"headers": {"Authorization: Bearer {{secret}}"}, "encoding": {"json"}, "body": {`{"to": "{{to}}", "text": "{{message}}"}`},
		"auth": {"none"}, "secret": {gatewaySecret}, "default_region": {"gb"}}
	bad := []struct {
		name, field, value, want string
	}{
		{"plain http elsewhere", "url", "http://sms.example.com/send", "https://"},
		{"no placeholders", "body", `{"to": "x"}`, "{{to}}"},
		{"not JSON", "body", `{"to": {{to}}, "text": "{{message}}"`, "not JSON"},
		{"header line break", "headers", "X-A b: c", "not a header name"},
		{"bad country", "default_region", "XX", "two-letter"},
		{"bad cap", "daily_cap", "-3", "whole number"},
	}
	for _, b := range bad {
		f := url.Values{}
		for k, v := range form {
			f[k] = v
		}
		f.Set(b.field, b.value)
		p := c.post("/admin/password-reset/text-messages", f)
		if p.Status != http.StatusUnprocessableEntity || !strings.Contains(p.Body, b.want) || strings.Contains(p.Body, gatewaySecret) {
			t.Errorf("%s: %d\n%s", b.name, p.Status, between(p.Body, "<main", "</main>"))
		}
		if _, meta, _ := h.ss.SMSSettings(context.Background()); meta.Version != 0 {
			t.Fatalf("%s: saved (version %d)", b.name, meta.Version)
		}
	}
	if p := c.post("/admin/password-reset/text-messages", form); p.Status != http.StatusSeeOther {
		t.Fatalf("save: %d\n%s", p.Status, between(p.Body, "<main", "</main>"))
	}
	// Encrypted at rest: the secret is nowhere in the stored document, and
	// the page says only that one is stored.
	var raw string
	if err := h.db.SQL().QueryRowContext(context.Background(), `SELECT value FROM config WHERE name = 'sms'`).Scan(&raw); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(raw, gatewaySecret) || !strings.Contains(raw, "secret_sealed") {
		t.Errorf("stored gateway document holds the secret in clear:\n%s", raw)
	}
	if p := c.get("/admin/password-reset/text-messages"); strings.Contains(p.Body, gatewaySecret) || !strings.Contains(p.Body, "A secret is stored (encrypted)") {
		t.Errorf("page:\n%s", between(p.Body, "<main", "</main>"))
	}
	// Send test message: a national number read with the default country.
	p = c.post("/admin/password-reset/text-messages/test", url.Values{"csrf_token": {csrf}, "to": {"07400 123459"}})
	if p.Status != http.StatusSeeOther {
		t.Fatalf("test message: %d\n%s", p.Status, between(p.Body, "<main", "</main>"))
	}
	req := g.Wait(t, 1)
	if req.Header.Get("Authorization") != "Bearer "+gatewaySecret || req.ContentType != "application/json" || !strings.Contains(req.Body, `"to": "+447400123459"`) {
		t.Errorf("gateway request: %q %q %s", req.Header.Get("Authorization"), req.ContentType, req.Body)
	}
	// A landline is refused before anything is sent.
	if p := c.post("/admin/password-reset/text-messages/test", url.Values{"csrf_token": {csrf}, "to": {"+44 20 7946 0018"}}); p.Status != http.StatusUnprocessableEntity || !strings.Contains(p.Body, "not a mobile number") {
		t.Errorf("landline: %d\n%s", p.Status, between(p.Body, "<main", "</main>"))
	}
	// The gateway refuses: the administrator reads why, the audit row keeps
	// the gateway's answer without the secret.
	g.Fail(http.StatusUnauthorized, `{"error":"invalid token `+gatewaySecret+`"}`)
	p = c.post("/admin/password-reset/text-messages/test", url.Values{"csrf_token": {csrf}, "to": {"+447400123459"}})
	if p.Status != http.StatusUnprocessableEntity || !strings.Contains(p.Body, "refused the credentials") {
		t.Errorf("refused: %d\n%s", p.Status, between(p.Body, "<main", "</main>"))
	}
	rows, err := h.db.RecentAudit(context.Background(), selfservice.ActivitySendTestSMS, 1)
	if err != nil || len(rows) != 1 || !strings.Contains(rows[0].Details, "invalid token [secret]") {
		t.Errorf("audit of the failed test: %v %+v", err, rows)
	}
	if p := c.get("/admin/password-reset/text-messages"); !strings.Contains(p.Body, `data-testid="sms-status"`) || !strings.Contains(p.Body, "could not be sent") {
		t.Errorf("status panel:\n%s", between(p.Body, "<main", "</main>"))
	}
	assertNoSecrets(t, h, gatewaySecret, "+447400123459", "7400123459")
}

// TestRegisterMobileThenReset: a person without a mobile number in the
// directory registers one on /register (confirmed with the code texted to
// it), and a reset then texts that number; a bad number and a gateway
// failure are told in plain words.
func TestRegisterMobileThenReset(t *testing.T) {
	env := testbed.Load(t)
	d := directories(env)[0]
	s := newSSPR(t, env, d, selfservice.Methods{SMS: true})
	g := smstest.Start(t)
	useGateway(t, s.harness, g)
	user := d.newUser(t, testbed.UserOptions{NoMail: true})
	c := s.client()
	p := c.post("/register", url.Values{"csrf_token": {c.csrf("/")}, "login": {user.Login}, "password": {user.Password}})
	if p.Status != http.StatusSeeOther {
		t.Fatalf("sign in: %d\n%s", p.Status, between(p.Body, "<main", "</main>"))
	}
	reg := p.Location
	if p := c.get(reg); !strings.Contains(p.Body, `data-testid="reg-sms"`) {
		t.Fatalf("register page:\n%s", between(p.Body, "<main", "</main>"))
	}
	if p := c.post(reg+"/phone", url.Values{"csrf_token": {c.csrf("/")}, "phone": {"+44 20 7946 0018"}}); p.Status != http.StatusUnprocessableEntity ||
		!strings.Contains(p.Body, "not a mobile number") || !strings.Contains(p.Body, `value="+44 20 7946 0018"`) {
		t.Errorf("landline: %d\n%s", p.Status, between(p.Body, "<main", "</main>"))
	}
	g.Fail(http.StatusInternalServerError, "gateway down")
	if p := c.post(reg+"/phone", url.Values{"csrf_token": {c.csrf("/")}, "phone": {"+447400123460"}}); p.Status != http.StatusServiceUnavailable ||
		!strings.Contains(p.Body, "couldn&#39;t send a text message") {
		t.Errorf("gateway down: %d\n%s", p.Status, between(p.Body, "<main", "</main>"))
	}
	g.Fail(http.StatusCreated, "{}")
	s.ss.SetClock(func() time.Time { return time.Now().Add(2 * time.Minute) }) // past the cooldown of the failed send
	if p := c.post(reg+"/phone", url.Values{"csrf_token": {c.csrf("/")}, "phone": {"+447400123460"}}); p.Status != http.StatusSeeOther {
		t.Fatalf("send a code: %d\n%s", p.Status, between(p.Body, "<main", "</main>"))
	}
	code := smstest.Code(g.Wait(t, 2).Form.Get("Body"))
	if p := c.post(reg+"/phone/confirm", url.Values{"csrf_token": {c.csrf("/")}, "phone_code": {code}}); p.Status != http.StatusSeeOther {
		t.Fatalf("confirm: %d\n%s", p.Status, between(p.Body, "<main", "</main>"))
	}
	if p := c.get(reg); !strings.Contains(p.Body, `data-testid="phone-registered"`) || !strings.Contains(p.Body, "+44 •••• ••34 60") {
		t.Errorf("registered:\n%s", between(p.Body, "<main", "</main>"))
	}
	s.ss.SetClock(func() time.Time { return time.Now().Add(4 * time.Minute) })
	r := s.client()
	flow := r.begin("reset", user.Login)
	r.step(flow, "method", url.Values{"method": {"sms"}})
	req := g.Wait(t, 3)
	if req.Form.Get("To") != "+447400123460" {
		t.Fatalf("reset texted %q", req.Form.Get("To"))
	}
	if p := r.step(flow, "verify", url.Values{"method": {"sms"}, "code": {smstest.Code(req.Form.Get("Body"))}}); p.Status != http.StatusSeeOther {
		t.Fatalf("verify: %d\n%s", p.Status, between(p.Body, "<main", "</main>"))
	}
	s.ss.Wait()
	assertNoSecrets(t, s.harness, code, "+447400123460", "7400123460")
}

// TestSetupChecklistNamesTheGateway: with text message codes a method and
// no gateway, the checklist says so; once saved, it says where texts go.
func TestSetupChecklistNamesTheGateway(t *testing.T) {
	h := newHarness(t)
	c := h.client().signedIn(admins.GlobalAdmin)
	if p := c.get("/admin/password-reset/on-premises-integration"); strings.Contains(p.Body, "SMS gateway") {
		t.Errorf("a gateway line while text messages are not a method:\n%s", between(p.Body, "<main", "</main>"))
	}
	if _, err := h.ss.SavePolicy(context.Background(), audit.CommandLine, 0, "test", func(p *selfservice.Policy) { p.Methods.SMS = true }); err != nil {
		t.Fatal(err)
	}
	if p := c.get("/admin/password-reset/on-premises-integration"); !strings.Contains(p.Body, "no SMS gateway is set") {
		t.Errorf("checklist without a gateway:\n%s", between(p.Body, "<main", "</main>"))
	}
	useGateway(t, h, smstest.Start(t))
	if p := c.get("/admin/password-reset/on-premises-integration"); !strings.Contains(p.Body, "Text messages go through http://127.0.0.1") {
		t.Errorf("checklist with a gateway:\n%s", between(p.Body, "<main", "</main>"))
	}
}
