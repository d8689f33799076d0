package handlers_test

import (
	"context"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/writeback/writeback/handlers"
	"github.com/writeback/writeback/services/admins"
	"github.com/writeback/writeback/testbed/browser"
)

// TestBrowserRateLimitFields: on the Properties page a Global
// Administrator sees the limits per network address with the server's
// default, types a limit that is refused next to its field, then one that
// is saved; the page shows it after the save and it is stored.
func TestBrowserRateLimitFields(t *testing.T) {
	h := newLimitHarness(t, handlers.Config{PublicPerMinute: 40})
	h.addAdmin("ada@example.com", admins.GlobalAdmin)
	ctx := browser.New(t)
	browser.Step(t, ctx, "sign in",
		chromedp.Navigate(h.srv.URL+"/admin"),
		chromedp.WaitVisible(chromedp.ID("email")),
		chromedp.SendKeys(chromedp.ID("email"), "ada@example.com"),
		chromedp.SendKeys(chromedp.ID("password"), testPassword),
		chromedp.Click(chromedp.CSS(`[data-testid=sign-in]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=service-panel]`)),
	)
	browser.Step(t, ctx, "open Properties", chromedp.Navigate(h.srv.URL+propertiesPath),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=rate-limits]`)))
	browser.Shot(t, ctx, "properties")
	if got := browser.Text(t, ctx, `#public_per_minute-help`); !strings.Contains(got, "the server's default, 40.") {
		t.Errorf("public limit help %q", got)
	}
	if got := browser.Text(t, ctx, `#signin_per_minute-help`); !strings.Contains(got, "the server's default, 30.") {
		t.Errorf("sign-in limit help %q", got)
	}
	if got := browser.Eval[string](t, ctx, `document.querySelector('label[for=public_per_minute]').textContent`); got != "Employee pages, per minute" {
		t.Errorf("label %q", got)
	}

	browser.Step(t, ctx, "type a limit too high and save",
		chromedp.SendKeys(chromedp.ID("public_per_minute"), "20000"),
		chromedp.Click(chromedp.CSS(`[data-testid=save]`)),
		chromedp.WaitVisible(chromedp.ID("public_per_minute-error")),
	)
	browser.Shot(t, ctx, "refused")
	if got := browser.Text(t, ctx, `#public_per_minute-error`); !strings.Contains(got, "Enter a whole number from 1 to 10,000") {
		t.Errorf("error %q", got)
	}
	if l, _ := h.ss.RateLimits(context.Background()); l.PublicPerMinute != 0 {
		t.Fatalf("a refused limit was saved: %+v", l)
	}

	browser.Step(t, ctx, "type 250 and save",
		chromedp.SetValue(chromedp.ID("public_per_minute"), ""),
		chromedp.SendKeys(chromedp.ID("public_per_minute"), "250"),
		chromedp.Click(chromedp.CSS(`[data-testid=save]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=flash]`)),
	)
	browser.Shot(t, ctx, "saved")
	if got := browser.Text(t, ctx, `[data-testid=flash]`); !strings.Contains(got, "Saved the Properties settings") {
		t.Errorf("banner %q", got)
	}
	if got := browser.Eval[string](t, ctx, `document.getElementById('public_per_minute').value`); got != "250" {
		t.Errorf("the page shows %q after the save", got)
	}
	if l, _ := h.ss.RateLimits(context.Background()); l.PublicPerMinute != 250 || l.SignInPerMinute != 0 {
		t.Errorf("stored limits %+v", l)
	}
}
