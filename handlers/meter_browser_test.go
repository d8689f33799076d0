package handlers_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/banned"
	"github.com/writeback/writeback/services/selfservice"
	"github.com/writeback/writeback/testbed"
	"github.com/writeback/writeback/testbed/browser"
)

// TestBrowserChallengeAndStrengthMeter is issue 13 items 5 and 6 as a
// person meets them in Chromium: past the threshold the code page asks for
// the proof-of-work check, the page's script solves it by itself and the
// reset goes on; on the password step the meter shows the banned-password
// rules failing while the person types (a common password, a term of the
// organisation's list, their own user name), before anything is sent, then
// ticks them and the strength for a good password, which sets.
func TestBrowserChallengeAndStrengthMeter(t *testing.T) {
	env := testbed.Load(t)
	d := directories(env)[1]
	s := newMeterPortal(t, env, d, "Contoso")
	user := d.newUser(t, testbed.UserOptions{})
	b := browser.New(t)
	browser.Step(t, b, "start a reset",
		chromedp.Navigate(s.srv.URL+"/reset"),
		chromedp.WaitVisible(chromedp.ID("login")),
		chromedp.SendKeys(chromedp.ID("login"), user.Login),
		chromedp.Submit(chromedp.ID("login")),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=choose]`)),
	)
	if n := browser.Eval[int](t, b, `document.querySelectorAll('[data-pow]').length`); n != 0 {
		t.Fatal("a challenge is asked of a fresh flow")
	}
	browser.Step(t, b, "choose the e-mail code", chromedp.Click(chromedp.CSS(`[data-testid=choose]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=code-sent]`)))
	code := s.code(t, user.Mail)

	// One code sent: the next step needs the check, which the page solves.
	browser.Step(t, b, "the check solves itself", chromedp.WaitVisible(chromedp.CSS(`[data-pow][data-pow-done="true"]`)))
	t.Logf("the page solved the challenge (up to %s) in %s ms", browser.Eval[string](t, b, `JSON.parse(document.querySelector('[data-pow]').getAttribute('data-pow')).maxnumber.toString()`),
		browser.Eval[string](t, b, `document.querySelector('[data-pow]').getAttribute('data-pow-ms')`))
	browser.Shot(t, b, "challenge-done")
	if got := browser.Text(t, b, `[data-pow-status]`); !strings.Contains(got, "Check done") {
		t.Errorf("status %q", got)
	}
	browser.Step(t, b, "verify with the code",
		chromedp.SendKeys(chromedp.ID("code"), code),
		chromedp.Click(chromedp.CSS(`[data-testid=verify]`)),
		chromedp.WaitVisible(chromedp.ID("password")),
	)
	if got := browser.Text(t, b, "h1"); got != "Choose a new password" {
		t.Fatalf("after verifying: %q", got)
	}
	browser.Step(t, b, "the meter is there", chromedp.WaitVisible(chromedp.CSS(`[data-testid=rule-banned]`)))

	meterMatchesServer(t, b)

	before := allAuditCount(t, s.harness)
	for _, tc := range []struct{ typed, rule, says string }{
		{"Winter2026!", "common", "a password many people use"},
		{"C0ntoso-2026", "custom", "a word your organisation does not allow"},
		{user.Login + "2026!", "personal", "your name, your user name"},
	} {
		clearPassword(t, b)
		browser.Step(t, b, "type "+tc.typed,
			chromedp.SendKeys(chromedp.ID("password"), tc.typed),
			chromedp.WaitVisible(chromedp.CSS(`[data-testid=rule-banned][data-rule=`+tc.rule+`]`)),
		)
		if got := browser.Text(t, b, `[data-testid=rule-banned]`); !strings.Contains(got, tc.says) {
			t.Errorf("%s: the rule says %q", tc.typed, got)
		}
		if tc.rule == "common" {
			browser.Shot(t, b, "banned-common")
			if got := browser.Text(t, b, `[data-testid=strength]`); !strings.HasPrefix(got, "Strength: ") {
				t.Errorf("strength %q", got)
			}
		}
	}
	if n := allAuditCount(t, s.harness); n != before {
		t.Errorf("typing sent something: %d audit events", n-before)
	}

	good := "Kettle-orbit-" + testbed.RandomPassword()
	clearPassword(t, b)
	browser.Step(t, b, "type a good password",
		chromedp.SendKeys(chromedp.ID("password"), good),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=rule-banned].met`)),
	)
	if got := browser.Text(t, b, `[data-testid=strength]`); !strings.Contains(got, "Strong") && !strings.Contains(got, "Good") {
		t.Errorf("strength of a good password: %q", got)
	}
	browser.Shot(t, b, "good-password")
	browser.Step(t, b, "set it",
		chromedp.SendKeys(chromedp.ID("confirm"), good),
		chromedp.Click(chromedp.CSS(`[data-testid=set-password]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=done]`)),
	)
	if err := env.BindAs(t, d.dir, user.DN, good); err != nil {
		t.Errorf("bind with the new password: %v", err)
	}
}

// newMeterPortal is self-service by e-mail code on d with the proof-of-work
// check from the first code on and the banned-password rules (common,
// personal, and the organisation's terms custom) on.
func newMeterPortal(t *testing.T, env testbed.Env, d directoryCase, custom ...string) *sspr {
	t.Helper()
	s := newSSPR(t, env, d, selfservice.Methods{Email: true})
	ctx := context.Background()
	if _, err := s.ss.SavePolicy(ctx, audit.CommandLine, 1, "test", func(p *selfservice.Policy) { p.ChallengeOff, p.ChallengeAfter = false, 1 }); err != nil {
		t.Fatal(err)
	}
	if _, err := s.banned.Save(ctx, audit.CommandLine, 0, banned.Settings{Common: true, Personal: true, Custom: custom}); err != nil {
		t.Fatal(err)
	}
	return s
}

// clearPassword empties the new-password field as a person deleting it
// would (the meter hears the input event).
func clearPassword(t *testing.T, b context.Context) {
	t.Helper()
	browser.Eval[bool](t, b, `(function () { var el = document.getElementById('password'); el.value = ''; el.dispatchEvent(new Event('input')); return true; })()`)
}

// meterMatchesServer holds the page's banned-password check (static/meter.js)
// against services/banned's on a table of passwords: the same rule, or
// none, for each. The organisation's one-typo variants are the server's
// alone (the page has only hashes), so the table has none.
func meterMatchesServer(t *testing.T, b context.Context) {
	t.Helper()
	custom := []string{"Contoso", "Fabrikam", "Northwind"}
	personal := []string{"alice.smith@example.com", "Alice Smith", "Example Corp"}
	salt := "00112233445566778899aabbccddeeff"
	var hashes []string
	for _, c := range custom {
		hashes = append(hashes, banned.HashTerm(salt, banned.Normalize(c)))
	}
	checker := banned.Checker{Common: banned.Common(), Custom: banned.NewList(custom)}
	rules := map[string]int{}
	defer func() {
		if rules["common"] == 0 || rules["custom"] == 0 || rules["personal"] == 0 || rules[""] == 0 {
			t.Errorf("the table does not try every rule: %v", rules)
		}
		t.Logf("the page and the server agree on every password (rules %v)", rules)
	}()
	for _, pw := range []string{
		"Winter2026!", "P@ssw0rd1", "password", "Passw0rd!!!", "123456", "qwerty123", "dragon",
		"Winter-kettle-orbit-91", "correct horse battery staple", "Tr0ub4dor&3",
		"C0ntoso2026!", "contoso", "Contoso-Kettle-Orbit-7", "MyFabrikam1!", "xNorthwind99",
		"Alice2026!", "asmith!!", "smith-1984", "ExampleCorp1", "Example-Corp-2026",
		"alicesmith", "Al1ce$mith", "kettle", "zz", "", "Ünïcødé-Wörter-2026",
		"1234567890123", "!!!winter!!!", "summer", "Summer2026", "Summer-2026-Blue-Lake",
	} {
		want := ""
		if r, ok := checker.Check(pw, personal); !ok {
			want = string(r.Rule)
		}
		args, _ := json.Marshal([]any{pw, personal, true, salt, hashes})
		got := browser.Eval[string](t, b, `WritebackBannedCheck.apply(null, `+string(args)+`)`, chromedp.EvalAwaitPromise)
		rules[want]++
		if got != want {
			t.Errorf("%q: the page says %q, the server %q", pw, got, want)
		}
	}
}
