package handlers_test

import (
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/writeback/writeback/services/admins"
	"github.com/writeback/writeback/services/selfservice"
	"github.com/writeback/writeback/testbed"
	"github.com/writeback/writeback/testbed/browser"
)

// TestBrowserCampaignDryRunAndStart: a Global Administrator opens
// Password reset › Registration campaign from the navigation in Chromium,
// runs the dry run (the count and the two people, masked; nothing sent),
// then starts a run, which shows as under way with both queued.
func TestBrowserCampaignDryRunAndStart(t *testing.T) {
	env := testbed.Load(t)
	s, users := newCampaignPortal(t, env)
	s.addAdmin("ada@example.com", admins.GlobalAdmin)
	b := browser.New(t)
	browser.Step(t, b, "sign in",
		chromedp.Navigate(s.srv.URL+"/admin"),
		chromedp.WaitVisible(chromedp.ID("email")),
		chromedp.SendKeys(chromedp.ID("email"), "ada@example.com"),
		chromedp.SendKeys(chromedp.ID("password"), testPassword),
		chromedp.Click(chromedp.CSS(`[data-testid=sign-in]`)),
		chromedp.WaitVisible(chromedp.CSS(`nav a[href$="/registration-campaign"]`)),
	)
	browser.Step(t, b, "open the campaign page",
		chromedp.Click(chromedp.CSS(`nav a[href$="/registration-campaign"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=no-run]`)),
	)
	browser.Step(t, b, "dry run",
		chromedp.Click(chromedp.CSS(`[data-testid=dry-run]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=dry-run-count]`)),
	)
	browser.Shot(t, b, "campaign-dry-run")
	if got := browser.Text(t, b, `[data-testid=dry-run-count]`); got != "A run now would mail 2 people." {
		t.Fatalf("dry run count %q", got)
	}
	table := browser.Text(t, b, `[data-testid=dry-run-sample]`)
	for _, u := range users {
		if !strings.Contains(table, u.Login) || !strings.Contains(table, selfservice.Mask(u.Mail)) || strings.Contains(table, u.Mail) {
			t.Errorf("the sample lacks %s (masked): %q", u.Login, table)
		}
	}
	if n := len(s.sink.Messages()); n != 0 {
		t.Fatalf("the dry run sent %d mails", n)
	}
	browser.Step(t, b, "start",
		chromedp.Click(chromedp.CSS(`[data-testid=start]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=stop]`)),
	)
	browser.Shot(t, b, "campaign-started")
	if got := browser.Text(t, b, `[data-testid=count-queued]`); got != "2" {
		t.Errorf("queued %q", got)
	}
	if got := browser.Text(t, b, `[data-testid=run-state]`); !strings.Contains(got, "A run is under way") {
		t.Errorf("run state %q", got)
	}
}
