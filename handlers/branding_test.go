package handlers_test

import (
	"bytes"
	"context"
	"image"
	"image/png"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/writeback/writeback/services/admins"
	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/branding"
	"github.com/writeback/writeback/services/selfservice"
	"github.com/writeback/writeback/testbed/browser"
)

// postBranding posts the Company branding form, with logo as its file
// when not nil.
func (c *client) postBranding(fields url.Values, logoName string, logo []byte) page {
	c.t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	fields.Set("csrf_token", c.csrf("/admin/password-reset/company-branding"))
	if !fields.Has("version") {
		fields.Set("version", versionRE.FindStringSubmatch(c.get("/admin/password-reset/company-branding").Body)[1])
	}
	for k, vs := range fields {
		for _, v := range vs {
			mw.WriteField(k, v)
		}
	}
	if logo != nil {
		fw, _ := mw.CreateFormFile("logo", logoName)
		fw.Write(logo)
	}
	mw.Close()
	req := c.postRequest("/admin/password-reset/company-branding", nil)
	req.Body = io.NopCloser(&body)
	req.ContentLength = int64(body.Len())
	req.Header.Set("Content-Type", mw.FormDataContentType())
	return c.do(req)
}

func testPNG(t *testing.T) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, image.NewGray(image.Rect(0, 0, 48, 24))); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

var (
	logoSrcRE   = regexp.MustCompile(`<a class="brand" href="/" data-testid="brand"><img src="(/branding/logo\?v=[0-9a-f]{16})" alt=""> Contoso</a>`)
	themeHrefRE = regexp.MustCompile(`<link rel="stylesheet" href="(/branding/theme\.css\?v=0b5cad)" data-testid="brand-theme">`)
)

// TestCompanyBranding: a Global Administrator gives the portal the
// organisation's logo and colour and hides the administrator link; every
// page then shows them (the name from Customization), the logo and the
// stylesheet are served safely and cached by version; bad values are
// refused with the reason and change nothing; others only read the page.
func TestCompanyBranding(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	ga := h.client().signedIn(admins.GlobalAdmin)
	anon := h.client()

	// Writeback's own look before anything is set.
	start := anon.get("/")
	if !strings.Contains(start.Body, `<img src="/static/logo.svg" alt=""> Writeback</a>`) || strings.Contains(start.Body, "brand-theme") ||
		!strings.Contains(start.Body, `data-testid="admin-link"`) {
		t.Fatalf("start page before branding:\n%s", between(start.Body, "<head>", "</header>"))
	}
	if p := ga.get("/admin/password-reset/company-branding"); p.Status != http.StatusOK || !strings.Contains(p.Body, `data-testid="no-logo"`) {
		t.Fatalf("branding page: %d", p.Status)
	}
	if _, err := h.ss.SavePolicy(ctx, audit.CommandLine, 0, "Customization", func(p *selfservice.Policy) { p.OrgName = "Contoso" }); err != nil {
		t.Fatal(err)
	}

	// Refused: too light a colour, an SVG with a script, a JPEG; nothing
	// is saved.
	for _, tc := range []struct {
		name, accent, file string
		logo               []byte
		field, want        string
	}{
		{"light accent", "#ffcc00", "", nil, "accent", "#ffcc00 has a contrast of 1.5:1 against the white page"},
		{"bad colour", "blue", "", nil, "accent", "Enter a colour as #"},
		{"script", "", "logo.svg", []byte(`<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>`), "logo", "This SVG holds a &lt;script&gt; element"},
		{"jpeg", "", "logo.jpg", []byte("\xff\xd8\xff\xe0\x00\x10JFIF"), "logo", "Choose a PNG or SVG image."},
		{"too large", "", "logo.png", bytes.Repeat([]byte("x"), 200<<10), "logo", "The logo is 200 KB; it can be at most 100 KB."},
	} {
		p := ga.postBranding(url.Values{"accent": {tc.accent}, "show_admin_link": {"yes"}}, tc.file, tc.logo)
		if p.Status != http.StatusUnprocessableEntity || !strings.Contains(p.Body, `id="`+tc.field+`-error">`+tc.want) {
			t.Errorf("%s: %d\n%s", tc.name, p.Status, between(p.Body, `data-testid="errors"`, "</form>"))
		}
		if tc.accent != "" && !strings.Contains(p.Body, `value="`+tc.accent+`"`) {
			t.Errorf("%s: the typed colour is not kept", tc.name)
		}
	}
	if st, meta, _ := h.brand.Settings(ctx); meta.Version != 0 || st.Accent != "" || st.LogoSHA != "" {
		t.Fatalf("a refused save was stored: %+v", meta)
	}

	logo := testPNG(t)
	p := ga.postBranding(url.Values{"accent": {"#0B5CAD"}, "show_admin_link": {"no"}}, "logo.png", logo)
	if p.Status != http.StatusSeeOther {
		t.Fatalf("save: %d\n%s", p.Status, between(p.Body, `data-testid="errors"`, "</form>"))
	}
	if p := ga.get("/admin/password-reset/company-branding"); !strings.Contains(p.Body, "Saved company branding.") ||
		!strings.Contains(p.Body, `data-testid="logo-preview"`) || !strings.Contains(p.Body, `value="#0b5cad"`) ||
		!strings.Contains(p.Body, `id="show_admin_link-no" name="show_admin_link" value="no" checked`) {
		t.Errorf("page after the save:\n%s", between(p.Body, "<main", "</main>"))
	}

	// Every page: the employee start page and the sign-in page.
	for _, path := range []string{"/", "/login", "/reset"} {
		p := anon.get(path)
		if !logoSrcRE.MatchString(p.Body) || !themeHrefRE.MatchString(p.Body) || !strings.Contains(p.Body, " · Contoso</title>") {
			t.Errorf("%s does not carry the brand:\n%s", path, between(p.Body, "<head>", "</header>"))
		}
		if strings.Contains(p.Body, `data-testid="admin-link"`) {
			t.Errorf("%s shows the administrator link although it is hidden", path)
		}
	}
	start = anon.get("/")
	logoURL, themeURL := logoSrcRE.FindStringSubmatch(start.Body)[1], themeHrefRE.FindStringSubmatch(start.Body)[1]

	get := func(path string) *http.Response {
		resp, err := http.Get(h.srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	resp := get(logoURL)
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "image/png" || !bytes.Equal(body, logo) ||
		!strings.Contains(resp.Header.Get("Content-Security-Policy"), "sandbox") || resp.Header.Get("X-Content-Type-Options") != "nosniff" ||
		resp.Header.Get("Cache-Control") != "public, max-age=31536000, immutable" {
		t.Errorf("logo: %d %v (%d bytes)", resp.StatusCode, resp.Header, len(body))
	}
	if resp := get("/branding/logo?v=0000000000000000"); resp.Header.Get("Cache-Control") != "no-cache" {
		t.Errorf("an old version of the logo is cached: %q", resp.Header.Get("Cache-Control"))
	}
	resp = get(themeURL)
	css, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/css") || !strings.Contains(string(css), "--accent: #0b5cad;") {
		t.Errorf("theme: %d %q\n%s", resp.StatusCode, resp.Header.Get("Content-Type"), css)
	}

	rows, err := h.db.RecentAudit(ctx, branding.ActivityUpdate, 5)
	if err != nil || len(rows) != 1 || rows[0].ActorType != "admin" || !strings.Contains(rows[0].Details, "image/png") || len(rows[0].Details) > 500 {
		t.Errorf("audit: %+v %v", rows, err)
	}

	// A Reports Reader sees the page read-only and cannot save.
	rr := h.client().signedIn(admins.ReportsReader)
	if p := rr.get("/admin/password-reset/company-branding"); !strings.Contains(p.Body, `data-testid="read-only"`) {
		t.Error("the page is not read-only for a Reports Reader")
	}
	if p := rr.post("/admin/password-reset/company-branding", url.Values{"csrf_token": {rr.csrf("/admin/security")}, "version": {"1"}}); p.Status != http.StatusForbidden {
		t.Errorf("a Reports Reader's save: %d", p.Status)
	}

	// Removing the logo and the colour brings Writeback's look back; the
	// logo's address answers 404.
	if p := ga.postBranding(url.Values{"accent": {""}, "show_admin_link": {"yes"}, "remove_logo": {"yes"}}, "", nil); p.Status != http.StatusSeeOther {
		t.Fatalf("remove: %d", p.Status)
	}
	start = anon.get("/")
	if !strings.Contains(start.Body, `<img src="/static/logo.svg" alt=""> Contoso</a>`) || strings.Contains(start.Body, "brand-theme") ||
		!strings.Contains(start.Body, `data-testid="admin-link"`) {
		t.Errorf("start page after removal:\n%s", between(start.Body, "<head>", "</header>"))
	}
	if resp := get(logoURL); resp.StatusCode != http.StatusNotFound {
		t.Errorf("removed logo: %d", resp.StatusCode)
	}
}

// TestBrowserCompanyBranding: in Chromium a Global Administrator uploads a
// logo and sets a colour; the employee start page then shows the logo
// (loaded under the portal's Content-Security-Policy) and the colour,
// without the administrator link.
func TestBrowserCompanyBranding(t *testing.T) {
	h := newHarness(t)
	h.addAdmin("ada@example.com", admins.GlobalAdmin)
	if _, err := h.ss.SavePolicy(context.Background(), audit.CommandLine, 0, "Customization", func(p *selfservice.Policy) { p.OrgName = "Contoso" }); err != nil {
		t.Fatal(err)
	}
	logo := filepath.Join(t.TempDir(), "contoso.svg")
	if err := os.WriteFile(logo, []byte(`<svg xmlns="http://www.w3.org/2000/svg" width="64" height="32" viewBox="0 0 64 32"><rect width="64" height="32" fill="#0b5cad"/></svg>`), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := browser.New(t)
	browserPassword(t, ctx, h.srv.URL, "ada@example.com")
	browser.Step(t, ctx, "signed in", chromedp.WaitVisible(chromedp.CSS(`[data-testid=viewer]`)))
	browser.Step(t, ctx, "company branding",
		chromedp.Navigate(h.srv.URL+"/admin/password-reset/company-branding"),
		chromedp.WaitVisible(chromedp.ID("accent")),
		chromedp.SetUploadFiles(`#logo`, []string{logo}),
		chromedp.SendKeys(chromedp.ID("accent"), "#7a1f1f"),
		chromedp.Click(chromedp.CSS(`label[for=show_admin_link-no]`)),
		chromedp.Click(chromedp.CSS(`[data-testid=save]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=flash]`)),
	)
	browser.Shot(t, ctx, "company-branding")
	if !browser.Eval[bool](t, ctx, `document.querySelector('[data-testid=logo-preview]').naturalWidth > 0`) {
		t.Error("the preview of the uploaded logo does not load")
	}
	if got := browser.Eval[string](t, ctx, `getComputedStyle(document.querySelector('[data-testid=save]')).backgroundColor`); got != "rgb(122, 31, 31)" {
		t.Errorf("primary button colour %q, want the accent rgb(122, 31, 31)", got)
	}
	browser.Step(t, ctx, "start page", chromedp.Navigate(h.srv.URL+"/"), chromedp.WaitVisible(chromedp.CSS(`[data-testid=brand]`)))
	browser.Shot(t, ctx, "start-branded")
	if !browser.Eval[bool](t, ctx, `document.querySelector('[data-testid=brand] img').naturalWidth === 64`) {
		t.Error("the header's logo does not load on the start page")
	}
	if got := browser.Text(t, ctx, `[data-testid=brand]`); strings.TrimSpace(got) != "Contoso" {
		t.Errorf("header name %q", got)
	}
	if got := browser.Eval[string](t, ctx, `getComputedStyle(document.querySelector('a')).color`); got != "rgb(122, 31, 31)" {
		t.Errorf("link colour %q, want the accent rgb(122, 31, 31)", got)
	}
	if browser.Eval[bool](t, ctx, `document.querySelector('[data-testid=admin-link]') !== null`) {
		t.Error("the administrator link shows although it is hidden")
	}
}
