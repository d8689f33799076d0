package handlers_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/writeback/writeback/services/admins"
	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/banned"
	"github.com/writeback/writeback/services/challenge"
	"github.com/writeback/writeback/services/selfservice"
	"github.com/writeback/writeback/services/sms/smstest"
	"github.com/writeback/writeback/testbed"
)

var powRE = regexp.MustCompile(`data-pow="([^"]+)"`)

// powOf reads the challenge a step page asks to be solved; ok is false when
// it asks none.
func powOf(t *testing.T, body string) (challenge.Challenge, bool) {
	t.Helper()
	m := powRE.FindStringSubmatch(body)
	if m == nil {
		return challenge.Challenge{}, false
	}
	var c challenge.Challenge
	if err := json.Unmarshal([]byte(html.UnescapeString(m[1])), &c); err != nil {
		t.Fatalf("challenge on the page: %v", err)
	}
	return c, true
}

func solve(t *testing.T, c challenge.Challenge) string {
	t.Helper()
	p, err := challenge.Solve(c)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// mailsTo counts the mails the sink received for an address.
func (s *sspr) mailsTo(to string) int {
	n := 0
	for _, m := range s.sink.Messages() {
		for _, r := range m.To {
			if strings.EqualFold(r, to) {
				n++
			}
		}
	}
	return n
}

// TestSelfServiceChallenge is issue 13 item 6: below the threshold no
// challenge is asked; above it a step without a valid solution sends no
// code and counts no attempt, a forged, replayed, expired or another flow's
// solution is refused, and a right one lets the step go on. The address
// counter asks it of a second account from the same address too, and the
// Properties switch turns it off.
func TestSelfServiceChallenge(t *testing.T) {
	env := testbed.Load(t)
	d := directories(env)[1]
	s := newSSPR(t, env, d, selfservice.Methods{Email: true})
	ctx := context.Background()
	if _, err := s.ss.SavePolicy(ctx, audit.CommandLine, 1, "test", func(p *selfservice.Policy) { p.ChallengeOff, p.ChallengeAfter = false, 2 }); err != nil {
		t.Fatal(err)
	}
	user := d.newUser(t, testbed.UserOptions{})
	c := s.client()
	flow := c.begin("reset", user.Login)

	// Below the threshold: no challenge on the page, none needed.
	if _, asked := powOf(t, c.get(flow).Body); asked {
		t.Fatal("a challenge is asked of a fresh flow")
	}
	if p := c.step(flow, "method", url.Values{"method": {"email"}}); p.Status != http.StatusSeeOther {
		t.Fatalf("choose email: %d\n%s", p.Status, between(p.Body, "<main", "</main>"))
	}
	code := s.code(t, user.Mail)
	if _, asked := powOf(t, c.get(flow).Body); asked {
		t.Fatal("a challenge is asked after one code (threshold 2)")
	}
	if p := c.step(flow, "verify", url.Values{"method": {"email"}, "code": {"00000000"}}); p.Status != http.StatusUnauthorized {
		t.Fatalf("wrong code below the threshold: %d", p.Status)
	}

	// At the threshold (a code and a wrong guess): every protected step
	// needs a solution, and without one nothing is sent or counted.
	pg := c.get(flow)
	ch, asked := powOf(t, pg.Body)
	if !asked || !strings.Contains(pg.Body, "needs JavaScript") || !strings.Contains(pg.Body, `aria-live="polite"`) {
		t.Fatalf("no challenge at the threshold:\n%s", between(pg.Body, "<main", "</main>"))
	}
	if ch.MaxNumber < challenge.MinMaxNumber || ch.MaxNumber > challenge.MaxMaxNumber {
		t.Errorf("difficulty %d out of bounds", ch.MaxNumber)
	}
	mails, failures := s.mailsTo(user.Mail), failedVerifications(t, s.harness)
	forged := func() string {
		raw, _ := base64.StdEncoding.DecodeString(solve(t, ch))
		var m map[string]any
		_ = json.Unmarshal(raw, &m)
		m["signature"] = strings.Repeat("0", 64)
		b, _ := json.Marshal(m)
		return base64.StdEncoding.EncodeToString(b)
	}()
	flowID := strings.TrimPrefix(flow, "/reset/")
	s.ss.Challenges().SetClock(func() time.Time { return time.Now().Add(-challenge.TTL - time.Minute) })
	old, err := s.ss.Challenges().Issue(flowID, 0)
	s.ss.Challenges().SetClock(time.Now)
	if err != nil {
		t.Fatal(err)
	}
	other := c.begin("reset", user.Login)
	otherCh, err := s.ss.Challenges().Issue(strings.TrimPrefix(other, "/reset/"), 0)
	if err != nil {
		t.Fatal(err)
	}
	refused := []struct {
		name, pow, want string
	}{
		{"none", "", "has not finished its automatic check"},
		{"garbage", "bm90IGpzb24=", "did not pass"},
		{"forged signature", forged, "did not pass"},
		{"expired", solve(t, old), "expired"},
		{"another flow's", solve(t, otherCh), "did not pass"},
	}
	for _, tc := range refused {
		for _, action := range []url.Values{
			{"method": {"email"}, "code": {code}, "pow": {tc.pow}},
			{"method": {"email"}, "pow": {tc.pow}},
		} {
			path := "verify"
			if action.Get("code") == "" {
				path = "method"
			}
			p := c.step(flow, path, action)
			if p.Status != http.StatusUnprocessableEntity || !strings.Contains(p.Body, tc.want) {
				t.Errorf("%s solution, %s: %d\n%s", tc.name, path, p.Status, between(p.Body, "<main", "</main>"))
			}
			if _, asked := powOf(t, p.Body); !asked {
				t.Errorf("%s solution, %s: the page asks no new challenge", tc.name, path)
			}
		}
	}
	time.Sleep(200 * time.Millisecond) // a code that went out would be in the sink by now
	if n := s.mailsTo(user.Mail); n != mails {
		t.Errorf("%d mails sent without a valid solution", n-mails)
	}
	if n := failedVerifications(t, s.harness); n != failures {
		t.Errorf("%d attempts counted without a valid solution", n-failures)
	}

	// A right solution lets the step go on, once.
	sol := solve(t, ch)
	if p := c.step(flow, "verify", url.Values{"method": {"email"}, "code": {"11111111"}, "pow": {sol}}); p.Status != http.StatusUnauthorized {
		t.Fatalf("wrong code with a solution: %d\n%s", p.Status, between(p.Body, "<main", "</main>"))
	}
	if n := failedVerifications(t, s.harness); n != failures+1 {
		t.Errorf("the guess with a solution was not counted: %d", n-failures)
	}
	if p := c.step(flow, "verify", url.Values{"method": {"email"}, "code": {code}, "pow": {sol}}); p.Status != http.StatusUnprocessableEntity || !strings.Contains(p.Body, "did not pass") {
		t.Errorf("replayed solution: %d\n%s", p.Status, between(p.Body, "<main", "</main>"))
	}
	first := ch
	ch, _ = powOf(t, c.get(flow).Body)
	if ch.MaxNumber != min(2*first.MaxNumber, challenge.MaxMaxNumber) {
		t.Errorf("one more attempt: the work went from %d to %d, want it doubled", first.MaxNumber, ch.MaxNumber)
	}
	if p := c.step(flow, "verify", url.Values{"method": {"email"}, "code": {code}, "pow": {solve(t, ch)}}); p.Status != http.StatusSeeOther {
		t.Fatalf("right code with a solution: %d\n%s", p.Status, between(p.Body, "<main", "</main>"))
	}
	if p := c.get(flow); !strings.Contains(p.Body, "Choose a new password") {
		t.Errorf("the reset did not go on:\n%s", between(p.Body, "<main", "</main>"))
	}

	// The client address has taken its steps: a flow of another account
	// from it is asked too.
	other2 := d.newUser(t, testbed.UserOptions{})
	f2 := c.begin("reset", other2.Login)
	if _, asked := powOf(t, c.get(f2).Body); !asked {
		t.Error("the address counter asks no challenge")
	}
	if p := c.step(f2, "method", url.Values{"method": {"email"}}); p.Status != http.StatusUnprocessableEntity {
		t.Errorf("code without a solution from a busy address: %d", p.Status)
	}

	// Off on the Properties page: no challenge at all.
	_, meta, err := s.ss.Policy(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.ss.SavePolicy(ctx, audit.CommandLine, meta.Version, "test", func(p *selfservice.Policy) { p.ChallengeOff = true }); err != nil {
		t.Fatal(err)
	}
	if _, asked := powOf(t, c.get(f2).Body); asked {
		t.Error("a challenge is asked while it is off")
	}
	if p := c.step(f2, "method", url.Values{"method": {"email"}}); p.Status != http.StatusSeeOther {
		t.Errorf("code with the challenge off: %d", p.Status)
	}
}

// TestChallengeSettingsOnProperties: the Properties page shows the switch
// (on by default) and the threshold (empty: the default), saves both, is
// audited, and refuses a threshold out of bounds, changing nothing.
func TestChallengeSettingsOnProperties(t *testing.T) {
	h := newHarness(t)
	admin := h.client().signedIn(admins.GlobalAdmin)
	body := admin.get(propertiesPath).Body
	for _, want := range []string{`id="challenge-yes" name="challenge" value="yes" checked`, `id="challenge_after"`, "the default, 3."} {
		if !strings.Contains(body, want) {
			t.Errorf("Properties page lacks %s", want)
		}
	}
	for _, bad := range []string{"0", "101", "three"} {
		p := saveProperties(admin, map[string]string{"challenge": "no", "challenge_after": bad})
		if p.Status != http.StatusUnprocessableEntity || !strings.Contains(p.Body, "from 1 to 100") || !strings.Contains(p.Body, `value="`+bad+`"`) {
			t.Errorf("threshold %q: %d", bad, p.Status)
		}
	}
	if p, _, _ := h.ss.Policy(context.Background()); p.ChallengeOff || p.ChallengeAfter != 0 {
		t.Fatalf("a refused save changed the policy: %+v", p)
	}
	if p := saveProperties(admin, map[string]string{"challenge": "no", "challenge_after": "4"}); p.Status != http.StatusSeeOther {
		t.Fatalf("save: %d\n%s", p.Status, between(p.Body, "<main", "</main>"))
	}
	p, _, _ := h.ss.Policy(context.Background())
	if !p.ChallengeOff || p.ChallengeThreshold() != 4 {
		t.Errorf("saved policy: off %v, after %d", p.ChallengeOff, p.ChallengeThreshold())
	}
	if body := admin.get(propertiesPath).Body; !strings.Contains(body, `id="challenge-no" name="challenge" value="no" checked`) || !strings.Contains(body, `id="challenge_after" name="challenge_after" type="number" value="4"`) {
		t.Errorf("the page does not show what was saved:\n%s", between(body, "<main", "</main>"))
	}
	rows, err := h.db.RecentAudit(context.Background(), audit.ActivityUpdateSSPRPolicy, 10)
	if err != nil || len(rows) == 0 || !strings.Contains(rows[0].Details, "challenge_after") {
		t.Errorf("audit: %v %+v", err, rows)
	}
}

// TestMeterCarriesNoBannedTermsInClear: the /change page's meter gets the
// organisation's banned terms as salted hashes only (a new salt per page),
// the common rule as a switch, and no one's personal data but the
// organisation's name.
func TestMeterCarriesNoBannedTermsInClear(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	if _, err := h.ss.SavePolicy(ctx, audit.CommandLine, 0, "test", func(p *selfservice.Policy) { p.OrgName = "Example Corp" }); err != nil {
		t.Fatal(err)
	}
	if _, err := h.banned.Save(ctx, audit.CommandLine, 0, banned.Settings{Common: true, Personal: true, Custom: []string{"Contoso", "Fabrikam"}}); err != nil {
		t.Fatal(err)
	}
	saltRE := regexp.MustCompile(`data-salt="([0-9a-f]{32})"`)
	c := h.client()
	var salts []string
	for range 2 {
		body := c.get("/change").Body
		if strings.Contains(strings.ToLower(body), "ontoso") || strings.Contains(strings.ToLower(body), "fabrikam") {
			t.Fatal("a banned term is on the page in clear")
		}
		m := saltRE.FindStringSubmatch(body)
		if m == nil {
			t.Fatalf("no salt on the page:\n%s", between(body, "<main", "</main>"))
		}
		salts = append(salts, m[1])
		for _, term := range []string{"contoso", "fabrlkam"} { // normalised: i → l
			if !strings.Contains(body, banned.HashTerm(m[1], term)) {
				t.Errorf("the hash of %s is not on the page", term)
			}
		}
		for _, want := range []string{`data-meter="password"`, "data-common", `data-personal="[&#34;Example Corp&#34;]"`, `data-personal-field="login"`} {
			if !strings.Contains(body, want) {
				t.Errorf("the meter lacks %s", want)
			}
		}
	}
	if salts[0] == salts[1] {
		t.Error("two pages got the same salt")
	}
}

// TestChallengeSpentOnEveryReplica: a solution accepted by one replica is
// refused by the other (the spent challenge is in the shared database), and
// the counters behind the threshold are the database's too.
func TestChallengeSpentOnEveryReplica(t *testing.T) {
	env := testbed.Load(t)
	d := directories(env)[1]
	r := newReplicas(t, env, d, selfservice.Methods{Email: true})
	ctx := context.Background()
	_, meta, err := r.ss.Policy(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.ss.SavePolicy(ctx, audit.CommandLine, meta.Version, "test", func(p *selfservice.Policy) { p.ChallengeOff, p.ChallengeAfter = false, 1 }); err != nil {
		t.Fatal(err)
	}
	user := d.newUser(t, testbed.UserOptions{})
	c := r.client()
	r.lb.route.Store(0)
	flow := c.begin("reset", user.Login)
	if p := c.step(flow, "method", url.Values{"method": {"email"}}); p.Status != http.StatusSeeOther {
		t.Fatalf("choose email: %d", p.Status)
	}
	code := r.code(t, user.Mail)
	r.lb.route.Store(1) // B sees the code A sent, and asks
	ch, asked := powOf(t, c.get(flow).Body)
	if !asked {
		t.Fatal("replica B asks no challenge after a code sent by A")
	}
	sol := solve(t, ch)
	r.lb.route.Store(0)
	if p := c.step(flow, "verify", url.Values{"method": {"email"}, "code": {"11111111"}, "pow": {sol}}); p.Status != http.StatusUnauthorized {
		t.Fatalf("wrong code with a solution on A: %d\n%s", p.Status, between(p.Body, "<main", "</main>"))
	}
	r.lb.route.Store(1)
	if p := c.step(flow, "verify", url.Values{"method": {"email"}, "code": {code}, "pow": {sol}}); p.Status != http.StatusUnprocessableEntity || !strings.Contains(p.Body, "did not pass") {
		t.Fatalf("the same solution on B: %d\n%s", p.Status, between(p.Body, "<main", "</main>"))
	}
	ch, _ = powOf(t, c.get(flow).Body)
	if p := c.step(flow, "verify", url.Values{"method": {"email"}, "code": {code}, "pow": {solve(t, ch)}}); p.Status != http.StatusSeeOther {
		t.Fatalf("a fresh solution on B: %d\n%s", p.Status, between(p.Body, "<main", "</main>"))
	}
}

// TestChallengeBeforeATextMessage: text message codes (issue 13 item 1) are
// guarded like e-mailed ones — past the threshold a new code without a
// solution reaches no gateway, a guess without one is not counted, and with
// one the reset goes on.
func TestChallengeBeforeATextMessage(t *testing.T) {
	env := testbed.Load(t)
	d := directories(env)[1]
	s := newSSPR(t, env, d, selfservice.Methods{SMS: true})
	g := smstest.Start(t)
	useGateway(t, s.harness, g)
	ctx := context.Background()
	_, meta, err := s.ss.Policy(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.ss.SavePolicy(ctx, audit.CommandLine, meta.Version, "test", func(p *selfservice.Policy) { p.ChallengeOff, p.ChallengeAfter = false, 1 }); err != nil {
		t.Fatal(err)
	}
	user := d.newUser(t, testbed.UserOptions{Mobile: "+44 7400 123457", NoMail: true})
	c := s.client()
	flow := c.begin("reset", user.Login)
	if p := c.step(flow, "method", url.Values{"method": {"sms"}}); p.Status != http.StatusSeeOther {
		t.Fatalf("choose sms below the threshold: %d\n%s", p.Status, between(p.Body, "<main", "</main>"))
	}
	code := smstest.Code(g.Wait(t, 1).Form.Get("Body"))
	ch, asked := powOf(t, c.get(flow).Body)
	if !asked {
		t.Fatal("no challenge on the text message code step at the threshold")
	}
	failures := failedVerifications(t, s.harness)
	if p := c.step(flow, "method", url.Values{"method": {"sms"}}); p.Status != http.StatusUnprocessableEntity {
		t.Errorf("a new text without a solution: %d", p.Status)
	}
	if p := c.step(flow, "verify", url.Values{"method": {"sms"}, "code": {"00000000"}}); p.Status != http.StatusUnprocessableEntity {
		t.Errorf("a guess without a solution: %d", p.Status)
	}
	time.Sleep(200 * time.Millisecond)
	if n := len(g.Requests()); n != 1 {
		t.Errorf("the gateway got %d requests, want 1", n)
	}
	if n := failedVerifications(t, s.harness); n != failures {
		t.Errorf("%d guesses counted without a solution", n-failures)
	}
	if p := c.step(flow, "verify", url.Values{"method": {"sms"}, "code": {code}, "pow": {solve(t, ch)}}); p.Status != http.StatusSeeOther {
		t.Fatalf("the right code with a solution: %d\n%s", p.Status, between(p.Body, "<main", "</main>"))
	}
}

// TestNoChallengeOnAChoiceThatSendsNothing: past the threshold the choice of
// a method asks for the check only when a method offered sends a code.
func TestNoChallengeOnAChoiceThatSendsNothing(t *testing.T) {
	env := testbed.Load(t)
	d := directories(env)[1]
	s := newSSPR(t, env, d, selfservice.Methods{Questions: true, App: true})
	ctx := context.Background()
	_, meta, err := s.ss.Policy(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.ss.SavePolicy(ctx, audit.CommandLine, meta.Version, "test", func(p *selfservice.Policy) { p.ChallengeOff, p.ChallengeAfter = false, 1 }); err != nil {
		t.Fatal(err)
	}
	user := d.newUser(t, testbed.UserOptions{})
	// Only what the person registered is offered (services/selfservice's
	// offer): both methods.
	s.registerQuestions(t, user)
	s.registerApp(t, user)
	c := s.client()
	flow := c.begin("reset", user.Login)
	if p := c.step(flow, "method", url.Values{"method": {"questions"}}); p.Status != http.StatusSeeOther {
		t.Fatalf("choose questions: %d", p.Status)
	}
	if p := c.step(flow, "verify", url.Values{"method": {"questions"}, "answer": {"a", "b", "c"}}); p.Status != http.StatusUnauthorized {
		t.Fatalf("wrong answers below the threshold: %d", p.Status)
	}
	if _, asked := powOf(t, c.get(flow).Body); !asked {
		t.Error("no challenge before the next answers are checked")
	}
	if p := c.step(flow, "method", url.Values{"method": {""}}); p.Status != http.StatusSeeOther {
		t.Fatalf("back to the choice: %d", p.Status)
	}
	if pg := c.get(flow); !strings.Contains(pg.Body, `value="app"`) {
		t.Fatalf("not the choice:\n%s", between(pg.Body, "<main", "</main>"))
	} else if _, asked := powOf(t, pg.Body); asked {
		t.Error("the choice of methods that send nothing asks for the check")
	}
}
