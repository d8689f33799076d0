package handlers_test

import (
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/writeback/writeback/testbed"
	"github.com/writeback/writeback/testbed/browser"
)

// TestBrowserPageScriptSpeaksGerman: after a person chooses Deutsch with
// the switcher, what the page's scripts write — the automatic check's
// status, the show-password button, the strength meter's words and the
// banned-password rule — is German too (the page carries the texts; the
// scripts stay static files), and zxcvbn's English tips are not shown.
func TestBrowserPageScriptSpeaksGerman(t *testing.T) {
	env := testbed.Load(t)
	d := directories(env)[1]
	s := newMeterPortal(t, env, d)
	user := d.newUser(t, testbed.UserOptions{})
	b := browser.New(t)
	browser.Step(t, b, "open /reset", chromedp.Navigate(s.srv.URL+"/reset"), chromedp.WaitVisible(chromedp.ID("lang")))
	browser.Eval[bool](t, b, `(function () { var el = document.getElementById('lang'); el.value = 'de'; el.dispatchEvent(new Event('change')); return true; })()`)
	browser.Step(t, b, "choose Deutsch and start a reset",
		chromedp.WaitVisible(`//h1[contains(., "Wieder Zugriff")]`),
		chromedp.SendKeys(chromedp.ID("login"), user.Login),
		chromedp.Submit(chromedp.ID("login")),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=choose]`)),
		chromedp.Click(chromedp.CSS(`[data-testid=choose]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=code-sent]`)),
	)
	code := s.code(t, user.Mail)
	browser.Step(t, b, "the check solves itself", chromedp.WaitVisible(chromedp.CSS(`[data-pow][data-pow-done="true"]`)))
	if got := browser.Text(t, b, `[data-pow-status]`); got != "Prüfung abgeschlossen. Sie können fortfahren." {
		t.Errorf("check status %q, want it in German", got)
	}
	browser.Step(t, b, "verify with the code",
		chromedp.SendKeys(chromedp.ID("code"), code),
		chromedp.Click(chromedp.CSS(`[data-testid=verify]`)),
		chromedp.WaitVisible(chromedp.ID("password")),
	)
	if got := browser.Text(t, b, "button.reveal"); got != "Anzeigen" {
		t.Errorf("show-password button %q, want Anzeigen", got)
	}
	browser.Step(t, b, "type a common password",
		chromedp.SendKeys(chromedp.ID("password"), "Winter2026!"),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=rule-banned][data-rule=common]`)),
	)
	browser.Shot(t, b, "meter-german")
	if got := browser.Text(t, b, `[data-testid=rule-banned]`); !strings.HasPrefix(got, "Zu leicht zu erraten") {
		t.Errorf("banned rule %q, want it in German", got)
	}
	got := browser.Text(t, b, `[data-testid=strength]`)
	word := strings.TrimPrefix(got, "Stärke: ")
	if word == got || !strings.Contains(" Sehr schwach Schwach Mittel Gut Stark ", " "+word+" ") {
		t.Errorf("strength %q, want \"Stärke: \" and a German word, no English tip", got)
	}
}
