package branding

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"image/png"
	"io"
	"strings"

	"github.com/writeback/writeback/services/errs"
)

// Limits of a logo.
const (
	MaxLogoBytes = 100 << 10
	maxLogoSide  = 2048
)

var pngMagic = []byte("\x89PNG\r\n\x1a\n")

// CheckLogo accepts a PNG or an SVG image and returns its content type. An
// SVG must be a plain drawing: no script, no event handler, no document
// type, nothing fetched from elsewhere. (It is also only ever shown as an
// image and served with a sandboxing Content-Security-Policy, so a drawing
// that slipped past this could not run anything either.)
func CheckLogo(b []byte) (string, error) {
	switch {
	case len(b) == 0:
		return "", errs.Invalidf("The file is empty. Choose a PNG or SVG image.")
	case len(b) > MaxLogoBytes:
		return "", errs.Invalidf("The logo is %d KB; it can be at most %d KB. Save it smaller and upload it again.", (len(b)+1023)>>10, MaxLogoBytes>>10)
	case bytes.HasPrefix(b, pngMagic):
		cfg, err := png.DecodeConfig(bytes.NewReader(b))
		if err != nil {
			return "", errs.E(errs.Invalid, "This PNG file cannot be read. Save it again and upload it.", err)
		}
		if cfg.Width > maxLogoSide || cfg.Height > maxLogoSide || cfg.Width == 0 || cfg.Height == 0 {
			return "", errs.Invalidf("The logo is %d × %d pixels; it can be at most %d × %d.", cfg.Width, cfg.Height, maxLogoSide, maxLogoSide)
		}
		return "image/png", nil
	}
	if err := checkSVG(b); err != nil {
		return "", err
	}
	return "image/svg+xml", nil
}

var errNotImage = errs.Invalidf("Choose a PNG or SVG image.")

// Elements an SVG logo may not hold: they run code, embed other documents
// or make the drawing fetch or change what it links to.
var refusedElements = map[string]bool{
	"script": true, "foreignobject": true, "iframe": true, "object": true, "embed": true,
	"handler": true, "listener": true, "set": true, "animate": true, "animatemotion": true, "animatetransform": true,
}

func checkSVG(b []byte) error {
	d := xml.NewDecoder(bytes.NewReader(b))
	d.Strict = true
	depth := 0
	sawRoot := false
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if !sawRoot {
				return errNotImage
			}
			return errs.E(errs.Invalid, "This SVG file is not well-formed. Save it again and upload it.", err)
		}
		switch t := tok.(type) {
		case xml.Directive:
			return errs.Invalidf("This SVG declares a document type; save it as a plain SVG, without <!DOCTYPE …>, and upload it again.")
		case xml.ProcInst:
			if t.Target != "xml" {
				return errs.Invalidf("This SVG holds a processing instruction. A logo must be a plain drawing: remove it (or save the logo as PNG) and upload it again.")
			}
		case xml.CharData:
			if !sawRoot && len(bytes.TrimSpace(t)) > 0 {
				return errNotImage
			}
		case xml.StartElement:
			name := strings.ToLower(t.Name.Local)
			if !sawRoot {
				if name != "svg" {
					return errNotImage
				}
				sawRoot = true
			} else if depth == 0 {
				return errNotImage
			}
			if refusedElements[name] {
				return errs.Invalidf("This SVG holds a <%s> element. A logo must be a plain drawing: remove it (or save the logo as PNG) and upload it again.", t.Name.Local)
			}
			for _, a := range t.Attr {
				if err := checkSVGAttr(a); err != nil {
					return err
				}
			}
			if name == "style" {
				var css string
				if err := d.DecodeElement(&css, &t); err != nil {
					return errs.E(errs.Invalid, "This SVG file is not well-formed. Save it again and upload it.", err)
				}
				if err := checkCSS(css); err != nil {
					return err
				}
				continue
			}
			depth++
		case xml.EndElement:
			depth--
		}
	}
	if !sawRoot {
		return errNotImage
	}
	return nil
}

func checkSVGAttr(a xml.Attr) error {
	name := strings.ToLower(a.Name.Local)
	v := strings.TrimSpace(a.Value)
	switch {
	case strings.HasPrefix(name, "on"):
		return errs.Invalidf("This SVG holds an event handler (%s). A logo must be a plain drawing: remove it (or save the logo as PNG) and upload it again.", a.Name.Local)
	case name == "href" || name == "src":
		if !strings.HasPrefix(v, "#") && !strings.HasPrefix(strings.ToLower(v), "data:image/png;") {
			return errs.Invalidf("This SVG holds a link to another file (%s). A logo must be a plain drawing: remove it (or save the logo as PNG) and upload it again.", truncate(v, 40))
		}
	case name == "style":
		return checkCSS(v)
	}
	return nil
}

// checkCSS refuses style that fetches (url() other than a fragment,
// @import) or runs something (expression(), javascript:).
func checkCSS(css string) error {
	l := strings.ToLower(css)
	if strings.Contains(l, "@import") || strings.Contains(l, "expression(") || strings.Contains(l, "javascript:") {
		return errs.Invalidf("This SVG holds style that loads or runs something. A logo must be a plain drawing: remove it (or save the logo as PNG) and upload it again.")
	}
	for rest := l; ; {
		i := strings.Index(rest, "url(")
		if i < 0 {
			return nil
		}
		rest = strings.TrimLeft(rest[i+4:], " \t\"'")
		if !strings.HasPrefix(rest, "#") {
			return errs.Invalidf("This SVG holds style that loads another file. A logo must be a plain drawing: remove it (or save the logo as PNG) and upload it again.")
		}
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return fmt.Sprintf("%.*s…", n, s)
}
