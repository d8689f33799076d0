package e2e

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/writeback/writeback/services/mail/mailtest"
	"github.com/writeback/writeback/testbed/browser"
)

// startEmailReset is an employee's "forgot my password" up to the code
// page: the login typed at portalURL/reset and the e-mail method chosen. It
// returns the code mailed to the person.
func startEmailReset(t *testing.T, ctx context.Context, what, portalURL, login string, sink *mailtest.Sink, mail string) string {
	t.Helper()
	browser.Step(t, ctx, what,
		chromedp.Navigate(portalURL+"/reset"),
		chromedp.WaitVisible(chromedp.ID("login")),
		chromedp.SendKeys(chromedp.ID("login"), login),
		chromedp.Click(chromedp.CSS(`[data-testid=next]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=choose]`)),
		chromedp.Click(chromedp.CSS(`[data-testid=choose]`)),
		chromedp.WaitVisible(chromedp.ID("code")),
	)
	m := sink.WaitFor(t, mail, 20*time.Second)
	code := regexp.MustCompile(`\b\d{8}\b`).FindString(m.Text)
	if code == "" {
		t.Fatalf("no code in the mail:\n%s", m.Text)
	}
	return code
}

// finishEmailReset types the code and a new password on the code page and
// fails the test unless the portal says the password was reset.
func finishEmailReset(t *testing.T, ctx context.Context, what, code, password string) {
	t.Helper()
	browser.Step(t, ctx, what,
		chromedp.SendKeys(chromedp.ID("code"), code),
		chromedp.Click(chromedp.CSS(`[data-testid=verify]`)),
		chromedp.WaitVisible(chromedp.ID("password")),
		chromedp.SendKeys(chromedp.ID("password"), password),
		chromedp.SendKeys(chromedp.ID("confirm"), password),
		chromedp.Click(chromedp.CSS(`[data-testid=set-password]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=done], [data-testid=errors]`)),
	)
	if got := browser.Text(t, ctx, "main"); !strings.Contains(got, "Your password has been reset") {
		browser.Shot(t, ctx, "failed-self-service-reset")
		t.Fatalf("%s: the page says %q", what, got)
	}
}
