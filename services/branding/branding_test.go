package branding

import (
	"bytes"
	"context"
	"image"
	"image/color"
	"image/png"
	"strings"
	"testing"

	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/errs"
	"github.com/writeback/writeback/store"
)

func TestCheckAccent(t *testing.T) {
	cases := []struct {
		in, want, err string
	}{
		{"", "", ""},
		{"  ", "", ""},
		{"#2563EB", "#2563eb", ""},
		{"#000", "#000000", ""},
		{"#0b5cad", "#0b5cad", ""},
		{"#ffcc00", "", "has a contrast of 1.5:1 against the white page"},
		{"#777777", "", "has a contrast of 4.4:1 against the white page"},             // 4.48:1
		{"#737373", "", "has a contrast of 4.4:1 against the page's grey background"}, // 4.74:1 on white
		{"#717171", "#717171", ""},
		{"2563eb", "", "Enter a colour as #"},
		{"#12345", "", "Enter a colour as #"},
		{"#gggggg", "", "Enter a colour as #"},
		{"red", "", "Enter a colour as #"},
	}
	for _, tc := range cases {
		got, err := CheckAccent(tc.in)
		if tc.err == "" {
			if err != nil || got != tc.want {
				t.Errorf("CheckAccent(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
			continue
		}
		if err == nil || !strings.Contains(errs.MessageOf(err), tc.err) {
			t.Errorf("CheckAccent(%q) = %q, %v; want an error with %q", tc.in, got, err, tc.err)
		}
	}
}

// TestThemeCSSKeepsContrast: whatever accepted colour, the stylesheet's
// colours reach AA where they are shown, in both schemes.
func TestThemeCSSKeepsContrast(t *testing.T) {
	if ThemeCSS("") != "" {
		t.Error("a theme without an accent")
	}
	for _, accent := range []string{"#2563eb", "#000000", "#0b5cad", "#7a1f1f", "#005a32", "#5b21b6"} {
		css := ThemeCSS(accent)
		var light, lightText, dark, darkText string
		for _, line := range strings.Split(css, "\n") {
			vals := map[string]*string{}
			if strings.Contains(line, "@media") {
				continue
			}
			if light == "" {
				vals = map[string]*string{"--accent: ": &light, "--accent-text: ": &lightText}
			} else {
				vals = map[string]*string{"--accent: ": &dark, "--accent-text: ": &darkText}
			}
			for k, p := range vals {
				if i := strings.Index(line, k); i >= 0 {
					*p = line[i+len(k) : i+len(k)+7]
				}
			}
		}
		c := func(s string) rgb {
			v, ok := parseHex(s)
			if !ok {
				t.Fatalf("%s: colour %q in\n%s", accent, s, css)
			}
			return v
		}
		if light != accent || contrast(c(lightText), c(light)) < minContrast {
			t.Errorf("%s light: %s on %s\n%s", accent, lightText, light, css)
		}
		if contrast(c(dark), darkPanel) < minContrast || contrast(c(darkText), c(dark)) < minContrast {
			t.Errorf("%s dark: accent %s (%.1f:1 on the panel), text %s\n%s", accent, dark, contrast(c(dark), darkPanel), darkText, css)
		}
	}
}

func pngOf(t *testing.T, w, h int) []byte {
	t.Helper()
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	img.Set(0, 0, color.NRGBA{R: 0x25, G: 0x63, B: 0xeb, A: 0xff})
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestCheckLogo(t *testing.T) {
	const plain = `<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 10 10"><defs><linearGradient id="g"/></defs><style>.a{fill:url(#g)}</style><rect class="a" width="10" height="10" style="fill:url('#g')"/><use href="#g"/></svg>`
	cases := []struct {
		name string
		in   []byte
		typ  string
		err  string
	}{
		{"png", pngOf(t, 64, 32), "image/png", ""},
		{"plain svg", []byte(plain), "image/svg+xml", ""},
		{"svg with a comment first", []byte("<!-- logo -->\n<svg xmlns='http://www.w3.org/2000/svg'><circle r='3'/></svg>"), "image/svg+xml", ""},
		{"empty", nil, "", "The file is empty"},
		{"too large", append([]byte(plain), bytes.Repeat([]byte(" "), MaxLogoBytes)...), "", "it can be at most 100 KB"},
		{"huge png", pngOf(t, 4000, 10), "", "4000 × 10 pixels"},
		{"broken png", pngOf(t, 10, 10)[:20], "", "This PNG file cannot be read"},
		{"text", []byte("hello, world"), "", "Choose a PNG or SVG image."},
		{"html", []byte("<html><script>alert(1)</script></html>"), "", "Choose a PNG or SVG image."},
		{"jpeg", []byte("\xff\xd8\xff\xe0\x00\x10JFIF"), "", "Choose a PNG or SVG image."},
		{"script", []byte(`<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>`), "", "a <script> element"},
		{"onload", []byte(`<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>`), "", "an event handler (onload)"},
		{"foreignObject", []byte(`<svg xmlns="http://www.w3.org/2000/svg"><foreignObject><div/></foreignObject></svg>`), "", "a <foreignObject> element"},
		{"external image", []byte(`<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink"><image xlink:href="https://evil.example/x.png"/></svg>`), "", "a link to another file"},
		{"javascript link", []byte(`<svg xmlns="http://www.w3.org/2000/svg"><a href="javascript:alert(1)"><rect/></a></svg>`), "", "a link to another file"},
		{"animate href", []byte(`<svg xmlns="http://www.w3.org/2000/svg"><a><animate attributeName="href" to="javascript:alert(1)"/></a></svg>`), "", "a <animate> element"},
		{"doctype", []byte(`<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY a "aaaa">]><svg xmlns="http://www.w3.org/2000/svg">&a;</svg>`), "", "declares a document type"},
		{"css import", []byte(`<svg xmlns="http://www.w3.org/2000/svg"><style>@import url(https://evil.example/x.css);</style></svg>`), "", "style that loads or runs something"},
		{"css url", []byte(`<svg xmlns="http://www.w3.org/2000/svg"><rect style="fill: url( 'https://evil.example/x')"/></svg>`), "", "style that loads another file"},
		{"two roots", []byte(`<svg xmlns="http://www.w3.org/2000/svg"/><svg xmlns="http://www.w3.org/2000/svg"/>`), "", "Choose a PNG or SVG image."},
		{"unclosed", []byte(`<svg xmlns="http://www.w3.org/2000/svg"><rect>`), "", "not well-formed"},
	}
	for _, tc := range cases {
		typ, err := CheckLogo(tc.in)
		if tc.err == "" {
			if err != nil || typ != tc.typ {
				t.Errorf("%s: %q, %v; want %q", tc.name, typ, err, tc.typ)
			}
			continue
		}
		if err == nil || !strings.Contains(errs.MessageOf(err), tc.err) || errs.KindOf(err) != errs.Invalid {
			t.Errorf("%s: %q, %v; want an error with %q", tc.name, typ, err, tc.err)
		}
	}
}

func newService(t *testing.T) (*Service, *store.DB) {
	t.Helper()
	ctx := context.Background()
	db, err := store.OpenDatabase(ctx, "", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return New(db, func(context.Context) (string, error) { return "Contoso", nil }), db
}

// TestSave: a save stores what it says, audits what changed (never the
// logo's bytes), refuses bad values and stale versions without changing
// anything, and Brand and Logo read what was saved.
func TestSave(t *testing.T) {
	s, db := newService(t)
	ctx := context.Background()
	logo := pngOf(t, 40, 40)
	if _, err := s.Save(ctx, audit.CommandLine, 0, Input{Accent: "#ffff00", Logo: []byte("nope")}); errs.FieldsOf(err)["accent"] == "" || errs.FieldsOf(err)["logo"] == "" {
		t.Fatalf("bad accent and logo: %v %v", err, errs.FieldsOf(err))
	}
	if _, meta, _ := s.Settings(ctx); meta.Version != 0 {
		t.Fatalf("a refused save was stored: version %d", meta.Version)
	}
	changed, err := s.Save(ctx, audit.CommandLine, 0, Input{Accent: "#0B5CAD", HideAdminLink: true, Logo: logo})
	if err != nil || !changed {
		t.Fatalf("save: %v %v", changed, err)
	}
	b, err := s.Brand(ctx)
	if err != nil || b.OrgName != "Contoso" || b.Accent != "#0b5cad" || !b.HideAdminLink || len(b.LogoSHA) != 64 {
		t.Fatalf("brand: %+v %v", b, err)
	}
	var got []byte
	var typ string
	if err := s.Logo(ctx, func(tp, sha string, data []byte) { typ, got = tp, bytes.Clone(data) }); err != nil || typ != "image/png" || !bytes.Equal(got, logo) {
		t.Errorf("logo: %q, %d bytes, %v", typ, len(got), err)
	}
	rows, err := db.RecentAudit(ctx, ActivityUpdate, 5)
	if err != nil || len(rows) != 1 || !strings.Contains(rows[0].Details, `"accent"`) || !strings.Contains(rows[0].Details, "image/png, ") {
		t.Fatalf("audit: %+v %v", rows, err)
	}
	if len(rows[0].Details) > 500 {
		t.Errorf("the audit row holds more than a summary of the logo (%d bytes)", len(rows[0].Details))
	}

	// A save without a new logo keeps it; a stale one changes nothing.
	if _, err := s.Save(ctx, audit.CommandLine, 0, Input{}); errs.KindOf(err) != errs.Conflict {
		t.Errorf("stale version: %v", err)
	}
	_, meta, _ := s.Settings(ctx)
	if changed, err := s.Save(ctx, audit.CommandLine, meta.Version, Input{Accent: "#0b5cad", HideAdminLink: false}); err != nil || !changed {
		t.Fatalf("save without a logo: %v %v", changed, err)
	}
	if b, _ := s.Brand(ctx); b.LogoSHA == "" || b.HideAdminLink {
		t.Errorf("after a save without a logo: %+v", b)
	}
	_, meta, _ = s.Settings(ctx)
	if _, err := s.Save(ctx, audit.CommandLine, meta.Version, Input{Accent: "#0b5cad", RemoveLogo: true, Logo: logo}); err != nil {
		t.Fatal(err)
	}
	if b, _ := s.Brand(ctx); b.LogoSHA != "" {
		t.Errorf("logo not removed: %+v", b)
	}
	called := false
	if err := s.Logo(ctx, func(string, string, []byte) { called = true }); err != nil || called {
		t.Errorf("a removed logo is still served (%v)", err)
	}
	rows, _ = db.RecentAudit(ctx, ActivityUpdate, 5)
	if len(rows) != 3 || !strings.Contains(rows[0].Details, `"logo":"removed"`) {
		t.Errorf("audit after removal: %+v", rows)
	}
}
