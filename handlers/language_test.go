package handlers_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/writeback/writeback/services/admins"
	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/selfservice"
	"github.com/writeback/writeback/store"
)

// langOf is the lang attribute of a page's <html>.
func langOf(body string) string {
	i := strings.Index(body, `<html lang="`)
	if i < 0 {
		return ""
	}
	rest := body[i+len(`<html lang="`):]
	return rest[:strings.IndexByte(rest, '"')]
}

func (c *client) getIn(path, acceptLanguage string) page {
	c.t.Helper()
	req := c.getRequest(path)
	if acceptLanguage != "" {
		req.Header.Set("Accept-Language", acceptLanguage)
	}
	return c.do(req)
}

// TestLanguageFollowsBrowserThenOrganisation: a page is in the browser's
// language when the portal speaks it, else in the organisation's default
// (Customization), else English.
func TestLanguageFollowsBrowserThenOrganisation(t *testing.T) {
	h := newHarness(t)
	c := h.client()
	check := func(accept, wantLang, wantText string) {
		t.Helper()
		p := c.getIn("/", accept)
		if got := langOf(p.Body); got != wantLang {
			t.Errorf("Accept-Language %q: lang %q, want %q", accept, got, wantLang)
		}
		if !strings.Contains(p.Body, wantText) {
			t.Errorf("Accept-Language %q: %q missing", accept, wantText)
		}
	}
	check("", "en", "Skip to content")
	check("de-DE,de;q=0.9,en;q=0.5", "de", "Zum Inhalt springen")
	check("fr-CA", "fr", "Aller au contenu")
	check("es-419,es;q=0.9", "es", "Ir al contenido")
	check("ja-JP,ja;q=0.9", "en", "Skip to content")
	if p := c.getIn("/no-such-page", "de"); p.Status != http.StatusNotFound || !strings.Contains(p.Body, "Seite nicht gefunden") {
		t.Errorf("a page that does not exist is not answered in German: %d", p.Status)
	}

	if _, err := h.ss.SavePolicy(context.Background(), audit.CommandLine, 0, "test", func(p *selfservice.Policy) { p.Language = "de" }); err != nil {
		t.Fatal(err)
	}
	check("ja-JP,ja;q=0.9", "de", "Zum Inhalt springen")
	check("", "de", "Zum Inhalt springen")
	check("en-GB,en;q=0.9", "en", "Skip to content")
	check("fr", "fr", "Aller au contenu")
}

// TestLanguageSwitcher: the switcher on the employee pages remembers the
// choice in a cookie, which wins over the browser's language, and goes back
// only to a page of this portal; a choice not offered, or a post without the
// form's token, changes nothing.
func TestLanguageSwitcher(t *testing.T) {
	h := newHarness(t)
	c := h.client()
	start := c.getIn("/", "de")
	if !strings.Contains(start.Body, `action="/language"`) || !strings.Contains(start.Body, `<option value="fr" lang="fr">Français</option>`) {
		t.Fatalf("no language switcher on the start page:\n%s", start.Body)
	}
	tok := c.csrf("/")
	p := c.post("/language", url.Values{"csrf_token": {tok}, "lang": {"es"}, "back": {"/reset"}})
	if p.Status != http.StatusSeeOther || p.Location != "/reset" {
		t.Fatalf("switch: %d to %q, want 303 to /reset", p.Status, p.Location)
	}
	if sc := p.Header.Get("Set-Cookie"); !strings.Contains(sc, "wb_lang=es") || !strings.Contains(sc, "HttpOnly") || !strings.Contains(sc, "SameSite=Lax") {
		t.Errorf("cookie %q", sc)
	}
	if got := langOf(c.getIn("/reset", "de-DE,de").Body); got != "es" {
		t.Errorf("after choosing Español, /reset with a German browser is in %q", got)
	}

	for _, back := range []string{"//evil.example/x", "https://evil.example/", "/\\evil.example", "/%2F%2Fevil.example", "/%252F%252Fevil.example",
		"/reset?next=//evil", "javascript:alert(1)", "", "/%0d%0aSet-Cookie:x=1"} {
		p := c.post("/language", url.Values{"csrf_token": {tok}, "lang": {"fr"}, "back": {back}})
		if p.Status != http.StatusSeeOther || p.Location != "/" {
			t.Errorf("back %q: %d to %q, want 303 to /", back, p.Status, p.Location)
		}
	}
	p = c.post("/language", url.Values{"csrf_token": {tok}, "lang": {"xx"}, "back": {"/"}})
	if p.Status != http.StatusUnprocessableEntity || p.Header.Get("Set-Cookie") != "" {
		t.Errorf("unknown language: %d, Set-Cookie %q", p.Status, p.Header.Get("Set-Cookie"))
	}
	if !strings.Contains(p.Body, "Choisissez l&#39;une des langues proposées.") {
		t.Errorf("the refusal is not in the reader's language (French):\n%s", p.Body)
	}
	p = c.post("/language", url.Values{"lang": {"de"}, "back": {"/"}})
	if p.Status != http.StatusForbidden || strings.Contains(p.Header.Get("Set-Cookie"), "wb_lang") {
		t.Errorf("without the token: %d, Set-Cookie %q", p.Status, p.Header.Get("Set-Cookie"))
	}
	if got := langOf(c.get("/").Body); got != "fr" {
		t.Errorf("the refused posts changed the language: %q", got)
	}
}

// TestDefaultLanguageSetting: a Global Administrator sets the
// organisation's default language on Customization; a language the portal
// does not speak is refused next to the field and nothing changes; the
// change is audited with the codes.
func TestDefaultLanguageSetting(t *testing.T) {
	h := newHarness(t)
	c := h.client().signedIn(admins.GlobalAdmin)
	const path = "/admin/password-reset/customization"
	save := func(lang string) page {
		return c.post(path, url.Values{"csrf_token": {c.csrf(path)}, "version": {versionOn(t, c, path)}, "helpdesk": {""}, "org_name": {""}, "language": {lang}})
	}
	if p := save("xx"); p.Status != http.StatusUnprocessableEntity || !strings.Contains(p.Body, `id="language-error"`) {
		t.Fatalf("unknown language: %d\n%s", p.Status, p.Body)
	}
	if pol, _, _ := h.ss.Policy(context.Background()); pol.Language != "" {
		t.Fatalf("refused language stored: %q", pol.Language)
	}
	if p := save("es"); p.Status != http.StatusSeeOther {
		t.Fatalf("save: %d\n%s", p.Status, p.Body)
	}
	if pol, _, _ := h.ss.Policy(context.Background()); pol.Language != "es" {
		t.Fatalf("stored %q, want es", pol.Language)
	}
	if got := langOf(h.client().get("/").Body); got != "es" {
		t.Errorf("a browser without a language sees %q, want es", got)
	}
	if !strings.Contains(c.getIn(path, "en").Body, `<option value="es" lang="es" selected>Español</option>`) {
		t.Error("the page does not show Español as chosen")
	}
	evs, _, err := h.db.QueryAudit(context.Background(), store.AuditFilter{}, store.Cursor{}, 10)
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, e := range evs {
		if strings.Contains(e.Details, `"language"`) && strings.Contains(e.Details, `"es"`) {
			found = true
		}
	}
	if !found {
		t.Errorf("no audit row records the language change: %+v", evs)
	}
}
