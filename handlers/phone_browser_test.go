package handlers_test

import (
	"fmt"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/writeback/writeback/services/admins"
	"github.com/writeback/writeback/testbed/browser"
)

// TestBrowserAdminOnPhone: on a phone-sized screen (390 × 844 CSS pixels)
// every administrator page fits the width — no sideways scrolling of the
// page; a wide table scrolls inside itself — and its navigation can be
// reached and used; each page passes the accessibility check (Step).
func TestBrowserAdminOnPhone(t *testing.T) {
	h := newHarness(t)
	h.addAdmin("ada@example.com", admins.GlobalAdmin)
	h.connectDirectory(t, true)
	ctx := browser.New(t)
	browser.Step(t, ctx, "phone screen", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile))
	browserPassword(t, ctx, h.srv.URL, "ada@example.com")
	browser.Step(t, ctx, "signed in", chromedp.WaitVisible(chromedp.CSS(`[data-testid=viewer]`)))
	pages := []string{
		"/admin/password-reset/on-premises-integration", "/admin/password-reset/properties",
		"/admin/password-reset/authentication-methods", "/admin/password-reset/customization",
		"/admin/password-reset/company-branding", "/admin/password-reset/password-protection",
		"/admin/password-reset/mail-server", "/admin/audit", "/admin/directory", "/admin/users",
		"/admin/reports", "/admin/password-reset/registration-campaign", "/admin/password-reset/expiry-reminders",
		"/admin/password-reset/text-messages", "/admin/agents", "/admin/administrators", "/admin/api-tokens", "/admin/security",
	}
	for _, path := range pages {
		browser.Step(t, ctx, path, chromedp.Navigate(h.srv.URL+path), chromedp.WaitVisible(chromedp.CSS(`main h1`)))
		if over := browser.Eval[int](t, ctx, `document.documentElement.scrollWidth - window.innerWidth`); over > 0 {
			browser.Shot(t, ctx, "too-wide"+path)
			t.Errorf("%s is %d pixels wider than the phone's screen", path, over)
		}
		// Every navigation entry can be tapped: shown, on screen sideways,
		// at least 24 pixels high (WCAG 2.2's minimum target size).
		bad := browser.Eval[[]string](t, ctx, `Array.from(document.querySelectorAll('nav.side a')).filter(a => {
			const r = a.getBoundingClientRect();
			return r.width === 0 || r.height < 24 || r.left < 0 || r.right > window.innerWidth;
		}).map(a => a.textContent)`)
		if len(bad) > 0 {
			t.Errorf("%s: navigation entries that cannot be tapped on a phone: %v", path, bad)
		}
	}
	// The navigation takes a person to another page.
	browser.Step(t, ctx, "navigate by the menu",
		chromedp.Click(chromedp.CSS(`nav.side a[href="/admin/audit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`main h1`)),
	)
	if got := browser.Eval[string](t, ctx, `location.pathname`); got != "/admin/audit" {
		t.Errorf("after tapping Audit logs: %s", got)
	}
	browser.Shot(t, ctx, fmt.Sprintf("phone-%s", "audit"))
}
