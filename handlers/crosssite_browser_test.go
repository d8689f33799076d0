package handlers_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/writeback/writeback/services/admins"
	"github.com/writeback/writeback/testbed/browser"
)

// TestBrowserCrossSiteFormsChangeNothing: a Global Administrator signs in,
// then opens pages on another site (localhost instead of 127.0.0.1, so
// another site for the browser's SameSite rules) that post forms to the
// portal — sign out, and switch writeback on. Back on the portal the
// administrator is still signed in with the same session, and neither the
// settings nor the audit log changed.
func TestBrowserCrossSiteFormsChangeNothing(t *testing.T) {
	h := newHarness(t)
	h.addAdmin("ada@example.com", admins.GlobalAdmin)
	portal := h.srv.URL // http://127.0.0.1:port
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fields := ""
		action := portal + "/logout"
		if r.URL.Path == "/settings" {
			action = portal + onPremPath
			fields = fmt.Sprintf(`<input name="version" value="%s"><input name="writeback" value="yes"><input name="unlock" value="yes">`, currentVersion(t, h))
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!DOCTYPE html><html><body><h1 id="evil">Win a prize</h1>
<form method="post" action="%s">%s</form>
<script>document.forms[0].submit();</script></body></html>`, action, fields)
	}))
	t.Cleanup(evil.Close)
	u, _ := url.Parse(evil.URL)
	evilURL := "http://localhost:" + u.Port()

	ctx := browser.New(t)
	browser.Step(t, ctx, "sign in",
		chromedp.Navigate(portal+"/admin"),
		chromedp.WaitVisible(chromedp.ID("email")),
		chromedp.SendKeys(chromedp.ID("email"), "ada@example.com"),
		chromedp.SendKeys(chromedp.ID("password"), testPassword),
		chromedp.Click(chromedp.CSS(`[data-testid=sign-in]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=service-panel]`)),
	)
	csrfToken := `document.querySelector('meta[name=csrf-token]').content`
	tokenBefore := browser.Eval[string](t, ctx, csrfToken)
	eventsBefore := allAuditCount(t, h)
	versionBefore := currentVersion(t, h)

	for _, attack := range []string{"/logout", "/settings"} {
		// The page posts its form as soon as it is shown; the portal
		// answers with its refusal page.
		browser.Step(t, ctx, "visit another site "+attack, chromedp.Navigate(evilURL+attack),
			chromedp.WaitVisible(chromedp.CSS(`[data-testid=error-message]`)))
		browser.Shot(t, ctx, "refused"+strings.ReplaceAll(attack, "/", "-"))
		if got := browser.Eval[string](t, ctx, `location.href`); !strings.HasPrefix(got, portal) {
			t.Fatalf("after %s the browser is at %s", attack, got)
		}
		if got := browser.Text(t, ctx, `[data-testid=error-message]`); !strings.Contains(got, "did not come from this portal") {
			t.Errorf("refusal page says %q", got)
		}
	}

	browser.Step(t, ctx, "back to the portal", chromedp.Navigate(portal+onPremPath), chromedp.WaitReady(chromedp.CSS(`body`)))
	browser.Shot(t, ctx, "back-on-the-portal")
	if !browser.Eval[bool](t, ctx, `!!document.querySelector('[data-testid=service-panel]')`) {
		t.Fatalf("the administrator was signed out by another site's page (now at %s)", browser.Eval[string](t, ctx, `location.href`))
	}
	if got := browser.Text(t, ctx, `[data-testid=viewer]`); !strings.Contains(got, "ada") {
		t.Errorf("viewer %q", got)
	}
	if got := browser.Eval[string](t, ctx, csrfToken); got != tokenBefore {
		t.Error("the session was replaced")
	}
	if got := currentVersion(t, h); got != versionBefore {
		t.Errorf("settings version %s, was %s", got, versionBefore)
	}
	if o, _, _ := h.settings.OnPrem(context.Background()); o.Writeback || o.Unlock {
		t.Errorf("settings changed: %+v", o)
	}
	if got := allAuditCount(t, h); got != eventsBefore {
		t.Errorf("%d audit events, was %d", got, eventsBefore)
	}
}

// allAuditCount counts every audit event, sign-ins and sign-outs included.
func allAuditCount(t *testing.T, h *harness) int {
	t.Helper()
	var n int
	if err := h.db.SQL().QueryRow(`SELECT count(*) FROM audit_events`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}
