package handlers_test

import (
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/writeback/writeback/services/admins"
	"github.com/writeback/writeback/testbed/browser"
)

// TestBrowserLanguageSwitcher: in Chromium, choosing Deutsch in the
// switcher is enough (the page's script sends the form), the page comes
// back in German, and the next page is German too although the browser
// asks for English.
func TestBrowserLanguageSwitcher(t *testing.T) {
	h := newHarness(t)
	b := browser.New(t)
	browser.Step(t, b, "the start page, in the browser's English",
		chromedp.Navigate(h.srv.URL+"/reset"),
		chromedp.WaitVisible(chromedp.ID("lang")),
	)
	if got := browser.Eval[string](t, b, `document.documentElement.lang`); got != "en" {
		t.Fatalf("lang %q before choosing", got)
	}
	// What choosing in the list does: the value changes, "change" fires.
	browser.Eval[bool](t, b, `(() => { const s = document.getElementById('lang'); s.value = 'de'; s.dispatchEvent(new Event('change', {bubbles: true})); return true; })()`)
	browser.Step(t, b, "the page comes back in German", chromedp.WaitVisible(chromedp.CSS(`html[lang=de] #lang`)))
	if got := browser.Eval[string](t, b, `location.pathname`); got != "/reset" {
		t.Errorf("after choosing, the browser is on %q, want /reset", got)
	}
	if got := browser.Text(t, b, `a.skip`); got != "Zum Inhalt springen" {
		t.Errorf("skip link %q", got)
	}
	browser.Step(t, b, "another page", chromedp.Navigate(h.srv.URL+"/"), chromedp.WaitVisible(chromedp.ID("lang")))
	if got := browser.Eval[string](t, b, `document.documentElement.lang + " " + document.getElementById('lang').value`); got != "de de" {
		t.Errorf("the next page: %q, want German remembered", got)
	}

	// The administrator pages follow the choice too; their longer words
	// (French here) must not break them: a table that scrolls sideways
	// stays reachable from the keyboard (axe checks every step).
	browser.Eval[bool](t, b, `(() => { const s = document.getElementById('lang'); s.value = 'fr'; s.dispatchEvent(new Event('change', {bubbles: true})); return true; })()`)
	browser.Step(t, b, "Français", chromedp.WaitVisible(chromedp.CSS(`html[lang=fr] #lang`)))
	h.addAdmin("ada@example.com", admins.GlobalAdmin)
	browserPassword(t, b, h.srv.URL, "ada@example.com")
	browser.Step(t, b, "Usage & insights in French", chromedp.Navigate(h.srv.URL+"/admin/reports"), chromedp.WaitVisible(chromedp.CSS(`html[lang=fr] [data-testid=days]`)))
	if got := browser.Text(t, b, "main h1"); got != "Réinitialisation du mot de passe | Utilisation et insights" {
		t.Errorf("heading %q", got)
	}
}
