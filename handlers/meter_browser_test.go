package handlers_test

import (
	"context"
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
	s := newSSPR(t, env, d, selfservice.Methods{Email: true})
	ctx := context.Background()
	if _, err := s.ss.SavePolicy(ctx, audit.CommandLine, 1, "test", func(p *selfservice.Policy) { p.ChallengeOff, p.ChallengeAfter = false, 1 }); err != nil {
		t.Fatal(err)
	}
	if _, err := s.banned.Save(ctx, audit.CommandLine, 0, banned.Settings{Common: true, Personal: true, Custom: []string{"Contoso"}}); err != nil {
		t.Fatal(err)
	}
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

// clearPassword empties the new-password field as a person deleting it
// would (the meter hears the input event).
func clearPassword(t *testing.T, b context.Context) {
	t.Helper()
	browser.Eval[bool](t, b, `(function () { var el = document.getElementById('password'); el.value = ''; el.dispatchEvent(new Event('input')); return true; })()`)
}
