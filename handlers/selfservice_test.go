package handlers_test

import (
	"context"
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/directory"
	"github.com/writeback/writeback/services/mail"
	"github.com/writeback/writeback/services/mail/mailtest"
	"github.com/writeback/writeback/services/selfservice"
	"github.com/writeback/writeback/services/settings"
	"github.com/writeback/writeback/services/writeback"
	"github.com/writeback/writeback/testbed"
)

// sspr is a portal wired to a real directory and a real SMTP sink, with
// self-service on for everyone.
type sspr struct {
	*harness
	env  testbed.Env
	d    directoryCase
	sink *mailtest.Sink
}

func newSSPR(t *testing.T, env testbed.Env, d directoryCase, methods selfservice.Methods) *sspr {
	t.Helper()
	return newSSPRWith(t, env, d, methods, nil)
}

// newSSPRWith is newSSPR behind trusted proxies (so tests can send requests
// from many client addresses).
func newSSPRWith(t *testing.T, env testbed.Env, d directoryCase, methods selfservice.Methods, trusted []netip.Prefix) *sspr {
	t.Helper()
	return newSSPROn(t, env, d, methods, newHarnessWith(t, trusted))
}

// newSSPROn sets up self-service on the harness h.
func newSSPROn(t *testing.T, env testbed.Env, d directoryCase, methods selfservice.Methods, h *harness) *sspr {
	t.Helper()
	ctx := context.Background()
	attrs := []string{"sAMAccountName", "userPrincipalName", "mail"}
	if d.typ == "openldap" {
		attrs = []string{"uid", "mail"}
	}
	_, err := h.wb.SaveConnection(ctx, audit.CommandLine, 0, writeback.Input{Type: directory.Type(d.typ), URLs: []string{d.dir.URL},
		CAPEM: env.CAPEM(), BindDN: d.dir.BindDN, BindPassword: d.dir.BindPassword, BaseDNs: []string{d.dir.PeopleDN},
		LoginAttributes: attrs, RecoveryEmailAttribute: "mail", PasswordWriteback: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := h.settings.SaveOnPrem(ctx, audit.CommandLine, 0, settings.OnPrem{Writeback: true, Unlock: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.ss.SavePolicy(ctx, audit.CommandLine, 0, "test", func(p *selfservice.Policy) {
		p.Enabled, p.Methods, p.Required, p.NotifyUsers = selfservice.EnabledAll, methods, 1, true
		p.Helpdesk, p.OrgName = "help@example.com", "Example Corp"
		// The tests that are not about the proof-of-work check make more
		// attempts than its threshold; challenge_test.go turns it on.
		p.ChallengeOff = true
	}); err != nil {
		t.Fatal(err)
	}
	sink := mailtest.Start(t, mailtest.Options{})
	host, port := sink.Addr()
	if _, err := h.ss.SaveMail(ctx, audit.CommandLine, 0, selfservice.MailInput{Host: host, Port: port, TLS: mail.TLSNone, From: "portal@example.com"}); err != nil {
		t.Fatal(err)
	}
	return &sspr{harness: h, env: env, d: d, sink: sink}
}

var codeRE = regexp.MustCompile(`\b(\d{8})\b`)

// code waits for the next verification code mailed to an address,
// passing over notifications that may arrive first.
func (s *sspr) code(t *testing.T, to string) string {
	t.Helper()
	for i := 0; i < 5; i++ {
		m := s.sink.WaitFor(t, to, 10*time.Second)
		if c := codeRE.FindStringSubmatch(m.Text); c != nil && strings.Contains(strings.ToLower(m.Subject), "code") {
			return c[1]
		}
	}
	t.Fatalf("no code mailed to %s", to)
	return ""
}

// verifyByEmail chooses the email method on a flow, reads the code mailed
// to the address and verifies with it; the verify must redirect.
func (s *sspr) verifyByEmail(t *testing.T, c *client, flow, to string) {
	t.Helper()
	c.step(flow, "method", url.Values{"method": {"email"}})
	code := s.code(t, to)
	if p := c.step(flow, "verify", url.Values{"method": {"email"}, "code": {code}}); p.Status != http.StatusSeeOther {
		t.Fatalf("verify: %d\n%s", p.Status, between(p.Body, "<main", "</main>"))
	}
}

// begin starts a reset or unlock for login and returns the flow's path.
func (c *client) begin(kind, login string) string {
	c.t.Helper()
	p := c.post("/"+kind, url.Values{"csrf_token": {c.csrf("/")}, "login": {login}})
	if p.Status != http.StatusSeeOther || !strings.HasPrefix(p.Location, "/"+kind+"/") {
		c.t.Fatalf("start %s: %d %s\n%s", kind, p.Status, p.Location, between(p.Body, "<main", "</main>"))
	}
	return p.Location
}

func (c *client) step(path, action string, form url.Values) page {
	c.t.Helper()
	if form == nil {
		form = url.Values{}
	}
	form.Set("csrf_token", c.csrf("/"))
	return c.post(path+"/"+action, form)
}

func TestSelfServiceResetWithEmailCode(t *testing.T) {
	env := testbed.Load(t)
	for _, d := range directories(env) {
		t.Run(d.name, func(t *testing.T) {
			s := newSSPR(t, env, d, selfservice.Methods{Email: true})
			user := d.newUser(t, testbed.UserOptions{})
			d.lock(t, user)
			c := s.client()
			if p := c.get("/"); !strings.Contains(p.Body, `href="/reset"`) || !strings.Contains(p.Body, "help@example.com") {
				t.Fatalf("start page:\n%s", between(p.Body, "<main", "</main>"))
			}
			flow := c.begin("reset", user.Login)
			if p := c.step(flow, "method", url.Values{"method": {"email"}}); p.Status != http.StatusSeeOther {
				t.Fatalf("choose email: %d", p.Status)
			}
			code := s.code(t, user.Mail)
			p := c.get(flow)
			if !strings.Contains(p.Body, `data-testid="code-sent"`) {
				t.Fatalf("code page:\n%s", between(p.Body, "<main", "</main>"))
			}
			if p := c.step(flow, "verify", url.Values{"method": {"email"}, "code": {code}}); p.Status != http.StatusSeeOther {
				t.Fatalf("verify: %d\n%s", p.Status, between(p.Body, "<main", "</main>"))
			}
			p = c.get(flow)
			if !strings.Contains(p.Body, "Choose a new password") || !strings.Contains(p.Body, `data-min="7"`) {
				t.Fatalf("password step:\n%s", between(p.Body, "<main", "</main>"))
			}
			// A password the directory refuses: the rule in plain words.
			p = c.step(flow, "password", url.Values{"password": {"Ab1!"}, "confirm": {"Ab1!"}})
			if p.Status != http.StatusUnprocessableEntity || !strings.Contains(p.Body, "too short: at least 7 characters") {
				t.Errorf("short password: %d\n%s", p.Status, between(p.Body, "<main", "</main>"))
			}
			newPw := "Rst-" + testbed.RandomPassword()
			if p := c.step(flow, "password", url.Values{"password": {newPw}, "confirm": {newPw}}); p.Status != http.StatusSeeOther {
				t.Fatalf("set password: %d\n%s", p.Status, between(p.Body, "<main", "</main>"))
			}
			if p := c.get(flow); !strings.Contains(p.Body, `data-testid="done"`) || !strings.Contains(p.Body, "other devices") {
				t.Errorf("done page:\n%s", between(p.Body, "<main", "</main>"))
			}
			if err := env.BindAs(t, d.dir, user.DN, newPw); err != nil {
				t.Errorf("bind with the new password: %v", err)
			}
			if d.locked(t, user) {
				t.Error("the reset did not unlock the account")
			}
			// The notification arrives, without the password.
			n := s.sink.WaitFor(t, user.Mail, 10*time.Second)
			if !strings.Contains(strings.ToLower(n.Subject), "reset") || strings.Contains(n.Text+n.HTML, newPw) {
				t.Errorf("notification: %q", n.Subject)
			}
			// The finished flow cannot be used again.
			if p := c.step(flow, "password", url.Values{"password": {newPw + "x"}, "confirm": {newPw + "x"}}); p.Status != http.StatusNotFound {
				t.Errorf("reused finished flow: %d", p.Status)
			}
			s.ss.Wait()
			assertNoSecrets(t, s.harness, newPw, code, user.Password)
			assertActivities(t, s.harness, audit.ActivitySelfServiceProgress, audit.ActivityResetSelfService)
		})
	}
}

func TestSelfServiceUnlockKeepsPassword(t *testing.T) {
	env := testbed.Load(t)
	for _, d := range directories(env) {
		t.Run(d.name, func(t *testing.T) {
			s := newSSPR(t, env, d, selfservice.Methods{Email: true})
			user := d.newUser(t, testbed.UserOptions{})
			d.lock(t, user)
			c := s.client()
			flow := c.begin("unlock", user.Login)
			s.verifyByEmail(t, c, flow, user.Mail)
			if p := c.get(flow); !strings.Contains(p.Body, "Your account is unlocked") {
				t.Fatalf("done:\n%s", between(p.Body, "<main", "</main>"))
			}
			if d.locked(t, user) {
				t.Error("still locked")
			}
			if err := env.BindAs(t, d.dir, user.DN, user.Password); err != nil {
				t.Errorf("bind with the unchanged password: %v", err)
			}
			assertActivities(t, s.harness, audit.ActivityUnlockSelfService)
			// With the setting off, /unlock says so and offers reset instead.
			_, meta, _ := s.settings.OnPrem(context.Background())
			s.settings.SaveOnPrem(context.Background(), audit.CommandLine, meta.Version, settings.OnPrem{Writeback: true, Unlock: false})
			if p := c.get("/unlock"); !strings.Contains(p.Body, "Reset your password instead") {
				t.Error("/unlock does not say it is off")
			}
		})
	}
}

func TestSelfServiceChange(t *testing.T) {
	env := testbed.Load(t)
	for _, d := range directories(env) {
		t.Run(d.name, func(t *testing.T) {
			s := newSSPR(t, env, d, selfservice.Methods{Email: true})
			user := d.newUser(t, testbed.UserOptions{})
			c := s.client()
			newPw := "Chg-" + testbed.RandomPassword()
			p := c.post("/change", url.Values{"csrf_token": {c.csrf("/")}, "login": {user.Login}, "current": {"Wrong-Passw0rd"}, "password": {newPw}, "confirm": {newPw}})
			if p.Status != http.StatusUnprocessableEntity || !strings.Contains(p.Body, "current password don&#39;t match") {
				t.Errorf("wrong current: %d\n%s", p.Status, between(p.Body, "<main", "</main>"))
			}
			wrongAnswer := between(p.Body, `id="current-error"`, "</p>")
			// A locked, a disabled and an unknown account get the same answer.
			locked := d.newUser(t, testbed.UserOptions{})
			d.lock(t, locked)
			disabled := d.newUser(t, testbed.UserOptions{Disabled: true})
			for _, login := range []string{locked.Login, disabled.Login, "nobody-" + testbed.RandomLogin()} {
				other := s.client()
				p := other.post("/change", url.Values{"csrf_token": {other.csrf("/")}, "login": {login}, "current": {"Wrong-Passw0rd"}, "password": {newPw}, "confirm": {newPw}})
				if got := between(p.Body, `id="current-error"`, "</p>"); got != wrongAnswer {
					t.Errorf("%s: %q, want the same answer as a wrong password %q", login, got, wrongAnswer)
				}
			}
			p = c.post("/change", url.Values{"csrf_token": {c.csrf("/")}, "login": {user.Login}, "current": {user.Password}, "password": {newPw}, "confirm": {newPw}})
			if p.Status != http.StatusSeeOther {
				t.Fatalf("change: %d\n%s", p.Status, between(p.Body, "<main", "</main>"))
			}
			if err := env.BindAs(t, d.dir, user.DN, newPw); err != nil {
				t.Errorf("bind with the new password: %v", err)
			}
			assertActivities(t, s.harness, audit.ActivityChangeSelfService)
			assertNoSecrets(t, s.harness, newPw, user.Password)

			// Wrong current passwords count toward the directory's lockout
			// (threshold 3 here): the portal stops before it would lock.
			victim := d.newUser(t, testbed.UserOptions{})
			for i := 0; i < 2; i++ {
				c.post("/change", url.Values{"csrf_token": {c.csrf("/")}, "login": {victim.Login}, "current": {"Wrong-Passw0rd"}, "password": {newPw}, "confirm": {newPw}})
			}
			p = c.post("/change", url.Values{"csrf_token": {c.csrf("/")}, "login": {victim.Login}, "current": {"Wrong-Passw0rd"}, "password": {newPw}, "confirm": {newPw}})
			if p.Status != http.StatusTooManyRequests {
				t.Errorf("third wrong password: %d", p.Status)
			}
			if d.locked(t, victim) {
				t.Error("the portal let the directory lock the account")
			}
		})
	}
}

// TestSelfServiceSameAnswerWhoeverAsks: unknown, protected, method-less and
// real accounts get the same pages, in about the same time: in a fresh
// process, before the steps know what a real account costs, every one of
// them takes the Pacer's start value.
// registerQuestions signs user in on /register and registers answers to
// the first three questions of the default policy.
func (s *sspr) registerQuestions(t *testing.T, user testbed.TestUser) {
	t.Helper()
	c := s.client()
	p := c.post("/register", url.Values{"csrf_token": {c.csrf("/")}, "login": {user.Login}, "password": {user.Password}})
	if p.Status != http.StatusSeeOther {
		t.Fatalf("sign in to register: %d\n%s", p.Status, between(p.Body, "<main", "</main>"))
	}
	qs := selfservice.DefaultPolicy().Questions[:3]
	if p := c.post(p.Location+"/questions", url.Values{"csrf_token": {c.csrf("/")}, "question": qs, "answer": {"Paris", "Rex", "Volvo"}}); p.Status != http.StatusSeeOther {
		t.Fatalf("register questions: %d\n%s", p.Status, between(p.Body, "<main", "</main>"))
	}
}

// registerApp signs user in on /register and registers an authenticator
// app, confirmed with a code computed from the secret the page shows; it
// returns that secret.
func (s *sspr) registerApp(t *testing.T, user testbed.TestUser) string {
	t.Helper()
	c := s.client()
	p := c.post("/register", url.Values{"csrf_token": {c.csrf("/")}, "login": {user.Login}, "password": {user.Password}})
	if p.Status != http.StatusSeeOther {
		t.Fatalf("sign in to register: %d\n%s", p.Status, between(p.Body, "<main", "</main>"))
	}
	reg := p.Location
	c.post(reg+"/app", url.Values{"csrf_token": {c.csrf("/")}})
	m := regexp.MustCompile(`data-testid="app-secret">([A-Z2-7]+)<`).FindStringSubmatch(c.get(reg).Body)
	if m == nil {
		t.Fatal("no authenticator secret on the register page")
	}
	code, _ := totp.GenerateCode(m[1], time.Now())
	if p := c.post(reg+"/app/confirm", url.Values{"csrf_token": {c.csrf("/")}, "app_code": {code}}); p.Status != http.StatusSeeOther {
		t.Fatalf("confirm the app: %d", p.Status)
	}
	return m[1]
}

// beginStranger starts a flow of kind for a name that matches no account
// and whose choice (a decoy drawn from the name, see
// services/selfservice/offer.go) offers method.
func (c *client) beginStranger(t *testing.T, kind, method string) string {
	t.Helper()
	for range 40 {
		flow := c.begin(kind, "nobody-"+testbed.RandomLogin())
		if strings.Contains(c.get(flow).Body, `id="m-`+method+`"`) {
			return flow
		}
	}
	t.Fatalf("no stranger's choice offers %s", method)
	return ""
}

var (
	methodRadioRE = regexp.MustCompile(`<input type="radio" id="m-(\w+)"`)
	// The choice of methods and the "Use another method" button that
	// depends on it: what differs between two people, compared apart.
	choiceRE = regexp.MustCompile(`(?s)<legend>How do you want to prove it(?:'|&#39;)s you\?</legend>.*?</fieldset>`)
	otherRE  = regexp.MustCompile(`<form method="post" action="/reset/ID/method"><input type="hidden" ><input type="hidden" name="method" value=""> <button class="link" type="submit" name="other" value="yes">Use another method</button></form>`)
)

// TestSelfServiceSameAnswerWhoeverAsks: a real account, a protected one,
// one without any method and a name that matches none get the same pages
// in the same time. The choice of methods lists what the account can use
// (the real one: e-mail and its registered questions); for the others it
// is a decoy drawn from the name, which must look like a real choice (it
// holds e-mail, and is the same every time the name is typed). Every page
// is otherwise the same byte for byte, and choosing a method off the list
// gets the same refusal for everyone.
func TestSelfServiceSameAnswerWhoeverAsks(t *testing.T) {
	env := testbed.Load(t)
	d := directories(env)[0]
	s := newSSPR(t, env, d, selfservice.Methods{Email: true, Questions: true})
	// More requests from one address than the default limit allows.
	if _, err := s.ss.SavePolicy(context.Background(), audit.CommandLine, 1, "test", func(p *selfservice.Policy) { p.PublicPerMinute = 1000 }); err != nil {
		t.Fatal(err)
	}
	real := d.newUser(t, testbed.UserOptions{})
	s.registerQuestions(t, real)
	s.ss.Pacer = selfservice.NewPacer(300 * time.Millisecond)
	protected := d.newUser(t, testbed.UserOptions{AdminCount: true})
	noMail := d.newUser(t, testbed.UserOptions{NoMail: true})
	logins := []string{real.Login, protected.Login, noMail.Login, "nobody-" + testbed.RandomLogin(), "nobody-" + testbed.RandomLogin()}
	idRE := regexp.MustCompile(`/reset/[0-9a-f]{48}`)
	// Which questions are shown depends on what was typed (and is stable
	// for it), not on whether the account exists: compare without them.
	labelRE := regexp.MustCompile(`(<label for="answer-\d">)[^<]*(</label>)`)
	norm := func(body string) string {
		body = idRE.ReplaceAllString(body, "/reset/ID")
		body = labelRE.ReplaceAllString(body, "$1Q$2")
		body = csrfRE.ReplaceAllString(body, "")
		body = regexp.MustCompile(`name="csrf_token" value="[0-9a-f]+"`).ReplaceAllString(body, "")
		body = choiceRE.ReplaceAllString(body, "CHOICE")
		return otherRE.ReplaceAllString(body, "")
	}
	offerOf := func(body string) []string {
		var out []string
		for _, m := range methodRadioRE.FindAllStringSubmatch(body, -1) {
			out = append(out, m[1])
		}
		return out
	}
	var pages [][]string
	var withQuestions, refused []string // the questions page, or the refusal, by login
	for _, login := range logins {
		c := s.client()
		start := time.Now()
		flow := c.begin("reset", login)
		if el := time.Since(start); el < 300*time.Millisecond {
			t.Errorf("%s: answered in %v, under the start value", login, el)
		}
		body := c.get(flow).Body
		offer := offerOf(body)
		if len(offer) == 0 || offer[0] != "email" {
			t.Errorf("%s: the choice %v does not look like a real one (e-mail first)", login, offer)
		}
		if again := offerOf(c.get(c.begin("reset", strings.ToUpper(login))).Body); strings.Join(again, ",") != strings.Join(offer, ",") {
			t.Errorf("%s: the choice changed from %v to %v", login, offer, again)
		}
		if login == real.Login && strings.Join(offer, ",") != "email,questions" {
			t.Errorf("the real account's choice is %v, want its e-mail and registered questions", offer)
		}
		choose := norm(body)
		start = time.Now()
		c.step(flow, "method", url.Values{"method": {"email"}})
		if el := time.Since(start); el < 300*time.Millisecond {
			t.Errorf("%s: code step answered in %v", login, el)
		}
		code := norm(c.get(flow).Body)
		wrong := norm(c.step(flow, "verify", url.Values{"method": {"email"}, "code": {"12345678"}}).Body)
		c.step(flow, "method", url.Values{"method": {""}})
		p := c.step(flow, "method", url.Values{"method": {"questions"}})
		if slices.Contains(offer, "questions") {
			withQuestions = append(withQuestions, login)
			if p.Status != http.StatusSeeOther {
				t.Errorf("%s: choosing offered questions: %d", login, p.Status)
			}
			pages = append(pages, []string{choose, code, wrong, norm(c.get(flow).Body)})
		} else {
			refused = append(refused, login)
			if p.Status != http.StatusUnprocessableEntity || !strings.Contains(p.Body, "Choose one of the methods on the page.") {
				t.Errorf("%s: choosing questions off the list: %d", login, p.Status)
			}
			pages = append(pages, []string{choose, code, wrong, norm(p.Body)})
		}
	}
	t.Logf("offering questions: %v; not: %v", withQuestions, refused)
	for i := 1; i < len(pages); i++ {
		for j := range pages[0] {
			if j == 3 && slices.Contains(withQuestions, logins[i]) != slices.Contains(withQuestions, logins[0]) {
				continue // the questions page against a refusal: compared within each group below
			}
			if pages[i][j] != pages[0][j] {
				t.Errorf("page %d differs between %s and %s:\n%s\n----\n%s", j, logins[0], logins[i],
					between(pages[0][j], "<main", "</main>"), between(pages[i][j], "<main", "</main>"))
			}
		}
	}
	first := -1
	for i, login := range logins {
		if !slices.Contains(refused, login) {
			continue
		}
		if first < 0 {
			first = i
		} else if pages[i][3] != pages[first][3] {
			t.Errorf("the refusal differs between %s and %s", logins[first], login)
		}
	}
	// Only the real account got a code.
	s.sink.WaitFor(t, real.Mail, 10*time.Second)
	s.ss.Wait()
	for _, m := range s.sink.Messages() {
		for _, to := range m.To {
			if !strings.EqualFold(to, real.Mail) {
				t.Errorf("mail sent to %s", to)
			}
		}
	}
}

func TestSelfServiceCodeRules(t *testing.T) {
	env := testbed.Load(t)
	d := directories(env)[1]
	s := newSSPR(t, env, d, selfservice.Methods{Email: true})
	user := d.newUser(t, testbed.UserOptions{})
	c := s.client()
	flow := c.begin("reset", user.Login)

	// A new code voids the older one.
	c.step(flow, "method", url.Values{"method": {"email"}})
	first := s.code(t, user.Mail)
	c.step(flow, "method", url.Values{"method": {"email"}})
	second := s.code(t, user.Mail)
	if first == second {
		t.Fatal("the same code twice")
	}
	p := c.step(flow, "verify", url.Values{"method": {"email"}, "code": {first}})
	if p.Status == http.StatusSeeOther || !strings.Contains(p.Body, "not right") {
		t.Errorf("voided code accepted: %d", p.Status)
	}
	// Expired: ten minutes later the current code is refused.
	now := time.Now()
	s.ss.SetClock(func() time.Time { return now.Add(11 * time.Minute) })
	p = c.step(flow, "verify", url.Values{"method": {"email"}, "code": {second}})
	if !strings.Contains(p.Body, "That code has expired. Send a new one.") {
		t.Errorf("expired code: %d\n%s", p.Status, between(p.Body, "<main", "</main>"))
	}
	s.ss.SetClock(time.Now)

	// Another browser session cannot continue this flow.
	other := s.client()
	if p := other.get(flow); p.Status != http.StatusNotFound || !strings.Contains(p.Body, "another browser") {
		t.Errorf("other browser GET: %d", p.Status)
	}
	c.step(flow, "method", url.Values{"method": {"email"}})
	third := s.code(t, user.Mail)
	if p := other.step(flow, "verify", url.Values{"method": {"email"}, "code": {third}}); p.Status != http.StatusNotFound {
		t.Errorf("other browser verify: %d", p.Status)
	}
	// Single use: once verified, the code cannot verify again.
	if p := c.step(flow, "verify", url.Values{"method": {"email"}, "code": {third}}); p.Status != http.StatusSeeOther {
		t.Fatalf("verify: %d\n%s", p.Status, between(p.Body, "<main", "</main>"))
	}
	flow2 := c.begin("reset", user.Login)
	c.step(flow2, "method", url.Values{"method": {"email"}})
	s.code(t, user.Mail)
	if p := c.step(flow2, "verify", url.Values{"method": {"email"}, "code": {third}}); p.Status == http.StatusSeeOther {
		t.Error("a used code verified another flow")
	}
}

func TestSelfServiceBlockAfterFiveFailures(t *testing.T) {
	env := testbed.Load(t)
	d := directories(env)[1]
	s := newSSPR(t, env, d, selfservice.Methods{Email: true})
	user := d.newUser(t, testbed.UserOptions{})
	c := s.client()
	flow := c.begin("reset", user.Login)
	c.step(flow, "method", url.Values{"method": {"email"}})
	code := s.code(t, user.Mail)
	var p page
	for i := 0; i < 5; i++ {
		p = c.step(flow, "verify", url.Values{"method": {"email"}, "code": {"00000000"}})
	}
	if p.Status != http.StatusTooManyRequests || !strings.Contains(p.Body, "blocked for this account for 24 hours") {
		t.Fatalf("5th failure: %d\n%s", p.Status, between(p.Body, "<main", "</main>"))
	}
	// The blocked page says it once, not once as the error and again as the step.
	if n := strings.Count(p.Body, "blocked for this account for 24 hours"); n != 1 {
		t.Errorf("the blocked message shows %d times:\n%s", n, between(p.Body, "<main", "</main>"))
	}
	// Even the right code is refused now, and a new attempt starts blocked.
	if p := c.step(flow, "verify", url.Values{"method": {"email"}, "code": {code}}); p.Status == http.StatusSeeOther {
		t.Error("right code accepted while blocked")
	}
	flow2 := c.begin("reset", user.Login)
	if p := c.get(flow2); !strings.Contains(p.Body, `data-testid="blocked"`) {
		t.Error("new attempt not blocked")
	}
	assertActivities(t, s.harness, audit.ActivityBlockedSelfService)
	// The directory account itself was never locked by the portal.
	if d.locked(t, user) {
		t.Error("portal limits locked the directory account")
	}
	if err := env.BindAs(t, d.dir, user.DN, user.Password); err != nil {
		t.Errorf("bind: %v", err)
	}
}

// TestSelfServiceTriesLeft: a wrong code says how many tries it has left,
// in words that read right ("1 more try").
func TestSelfServiceTriesLeft(t *testing.T) {
	env := testbed.Load(t)
	d := directories(env)[1]
	s := newSSPR(t, env, d, selfservice.Methods{Email: true})
	user := d.newUser(t, testbed.UserOptions{})
	c := s.client()
	flow := c.begin("reset", user.Login)
	c.step(flow, "method", url.Values{"method": {"email"}})
	s.code(t, user.Mail)
	for _, want := range []string{"You have 4 more tries with it.", "You have 3 more tries with it.", "You have 2 more tries with it.", "You have 1 more try with it."} {
		p := c.step(flow, "verify", url.Values{"method": {"email"}, "code": {"00000000"}})
		if p.Status != http.StatusUnauthorized || !strings.Contains(p.Body, want) {
			t.Errorf("want %q: %d\n%s", want, p.Status, between(p.Body, `id="code-error"`, "</p>"))
		}
	}
}

func TestSelfServiceRegisterAppThenReset(t *testing.T) {
	env := testbed.Load(t)
	for _, d := range directories(env) {
		t.Run(d.name, func(t *testing.T) {
			s := newSSPR(t, env, d, selfservice.Methods{Email: true, App: true, Questions: true})
			user := d.newUser(t, testbed.UserOptions{NoMail: true})
			c := s.client()
			p := c.post("/register", url.Values{"csrf_token": {c.csrf("/")}, "login": {user.Login}, "password": {"Wrong-Passw0rd-1"}})
			if p.Status != http.StatusUnauthorized || !strings.Contains(p.Body, "don&#39;t match") {
				t.Errorf("wrong password: %d", p.Status)
			}
			p = c.post("/register", url.Values{"csrf_token": {c.csrf("/")}, "login": {user.Login}, "password": {user.Password}})
			if p.Status != http.StatusSeeOther {
				t.Fatalf("sign in: %d\n%s", p.Status, between(p.Body, "<main", "</main>"))
			}
			reg := p.Location
			c.post(reg+"/app", url.Values{"csrf_token": {c.csrf("/")}})
			p = c.get(reg)
			m := regexp.MustCompile(`data-testid="app-secret">([A-Z2-7]+)<`).FindStringSubmatch(p.Body)
			if m == nil || !strings.Contains(p.Body, `src="data:image/png;base64,`) {
				t.Fatalf("no secret or QR:\n%s", between(p.Body, "<main", "</main>"))
			}
			secret := m[1]
			if p := c.post(reg+"/app/confirm", url.Values{"csrf_token": {c.csrf("/")}, "app_code": {"000000"}}); p.Status != http.StatusUnprocessableEntity {
				t.Errorf("wrong app code: %d", p.Status)
			}
			code, _ := totp.GenerateCode(secret, time.Now())
			if p := c.post(reg+"/app/confirm", url.Values{"csrf_token": {c.csrf("/")}, "app_code": {code}}); p.Status != http.StatusSeeOther {
				t.Fatalf("confirm app: %d\n%s", p.Status, between(p.Body, "<main", "</main>"))
			}
			if p := c.get(reg); !strings.Contains(p.Body, `data-testid="app-registered"`) {
				t.Error("app not shown as registered")
			}
			// Questions: stored hashed; answers compare loosely.
			qs := selfservice.DefaultPolicy().Questions[:3]
			p = c.post(reg+"/questions", url.Values{"csrf_token": {c.csrf("/")}, "question": qs, "answer": {"Paris", "Rex the Dog", "Volvo"}})
			if p.Status != http.StatusSeeOther {
				t.Fatalf("questions: %d\n%s", p.Status, between(p.Body, "<main", "</main>"))
			}
			assertActivities(t, s.harness, audit.ActivityRegisterSecurity)

			// Reset with the app code, from a fresh browser.
			b := s.client()
			flow := b.begin("reset", user.Login)
			b.step(flow, "method", url.Values{"method": {"app"}})
			// The code that confirmed the app is used up (issue 8 item 8),
			// although its time step is still in the window.
			if p := b.step(flow, "verify", url.Values{"method": {"app"}, "code": {code}}); p.Status != http.StatusUnauthorized {
				t.Errorf("the registration code verified a reset: %d", p.Status)
			}
			code, _ = totp.GenerateCode(secret, time.Now().Add(30*time.Second))
			if p := b.step(flow, "verify", url.Values{"method": {"app"}, "code": {code}}); p.Status != http.StatusSeeOther {
				t.Fatalf("verify app: %d\n%s", p.Status, between(p.Body, "<main", "</main>"))
			}
			newPw := "App-" + testbed.RandomPassword()
			if p := b.step(flow, "password", url.Values{"password": {newPw}, "confirm": {newPw}}); p.Status != http.StatusSeeOther {
				t.Fatalf("set password: %d\n%s", p.Status, between(p.Body, "<main", "</main>"))
			}
			if err := env.BindAs(t, d.dir, user.DN, newPw); err != nil {
				t.Errorf("bind: %v", err)
			}
			// The same app code cannot be used again, even in another flow.
			b3 := s.client()
			again := b3.begin("reset", user.Login)
			b3.step(again, "method", url.Values{"method": {"app"}})
			if p := b3.step(again, "verify", url.Values{"method": {"app"}, "code": {code}}); p.Status == http.StatusSeeOther {
				t.Error("a used authenticator code verified again")
			}
			// And with the questions, answered in other case and spacing.
			b2 := s.client()
			flow = b2.begin("unlock", user.Login)
			b2.step(flow, "method", url.Values{"method": {"questions"}})
			p = b2.get(flow)
			var answers []string
			for _, q := range []string{qs[0], qs[1], qs[2]} {
				if !strings.Contains(p.Body, strings.ReplaceAll(q, "'", "&#39;")) {
					t.Fatalf("question %q not asked:\n%s", q, between(p.Body, "<main", "</main>"))
				}
			}
			// Questions are asked in sorted order.
			sorted := map[string]string{qs[0]: " paris ", qs[1]: "REX  the dog", qs[2]: "volvo"}
			for _, q := range sortedKeys(sorted) {
				answers = append(answers, sorted[q])
			}
			if p := b2.step(flow, "verify", url.Values{"method": {"questions"}, "answer": answers}); p.Status != http.StatusSeeOther {
				t.Errorf("questions verify: %d\n%s", p.Status, between(p.Body, "<main", "</main>"))
			}
			s.ss.Wait()
			assertNoSecrets(t, s.harness, newPw, user.Password, secret, "Rex the Dog", "Volvo")
		})
	}
}

func sortedKeys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

func TestSelfServiceOffSaysSo(t *testing.T) {
	env := testbed.Load(t)
	d := directories(env)[1]
	s := newSSPR(t, env, d, selfservice.Methods{Email: true})
	_, meta, _ := s.settings.OnPrem(context.Background())
	s.settings.SaveOnPrem(context.Background(), audit.CommandLine, meta.Version, settings.OnPrem{Writeback: false})
	c := s.client()
	for _, path := range []string{"/", "/reset"} {
		p := c.get(path)
		if !strings.Contains(p.Body, `data-testid="unavailable"`) || !strings.Contains(p.Body, "help@example.com") {
			t.Errorf("%s does not say self-service is off, with the helpdesk", path)
		}
	}
	p := c.post("/reset", url.Values{"csrf_token": {c.csrf("/")}, "login": {"anyone"}})
	if p.Status != http.StatusForbidden {
		t.Errorf("POST /reset with writeback off: %d", p.Status)
	}
}

// assertNoSecrets searches every audit row and log line for secrets.
func assertNoSecrets(t *testing.T, h *harness, secrets ...string) {
	t.Helper()
	rows, err := h.db.RecentAudit(context.Background(), "", 100000)
	if err != nil {
		t.Fatal(err)
	}
	logs := h.logs.String()
	for _, sec := range secrets {
		if sec == "" {
			continue
		}
		for _, r := range rows {
			all := strings.Join([]string{r.Details, r.Reason, r.ActorName, r.TargetName, r.UserAgent}, " ")
			if strings.Contains(all, sec) {
				t.Errorf("secret %q found in audit row %d (%s)", sec, r.ID, r.Activity)
			}
		}
		if strings.Contains(logs, sec) {
			t.Errorf("secret %q found in the log", sec)
		}
	}
}

func assertActivities(t *testing.T, h *harness, activities ...string) {
	t.Helper()
	for _, a := range activities {
		rows, err := h.db.RecentAudit(context.Background(), a, 1)
		if err != nil || len(rows) == 0 {
			t.Errorf("no audit row %q", a)
		}
	}
}
