package branding

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// minContrast is WCAG 2.1 AA's contrast for normal text.
const minContrast = 4.5

type rgb struct{ r, g, b uint8 }

// The pages' own colours the accent is shown on (static/app.css).
var (
	white     = rgb{0xff, 0xff, 0xff}
	lightBG   = rgb{0xf6, 0xf7, 0xf9}
	darkPanel = rgb{0x1c, 0x20, 0x27}
	darkBG    = rgb{0x14, 0x17, 0x1c}
	nearBlack = rgb{0x0b, 0x12, 0x20}
)

func parseHex(s string) (rgb, bool) {
	s, ok := strings.CutPrefix(s, "#")
	if !ok {
		return rgb{}, false
	}
	if len(s) == 3 {
		s = string([]byte{s[0], s[0], s[1], s[1], s[2], s[2]})
	}
	if len(s) != 6 {
		return rgb{}, false
	}
	v, err := strconv.ParseUint(s, 16, 32)
	if err != nil {
		return rgb{}, false
	}
	return rgb{uint8(v >> 16), uint8(v >> 8), uint8(v)}, true
}

func (c rgb) hex() string { return fmt.Sprintf("#%02x%02x%02x", c.r, c.g, c.b) }

// luminance is WCAG 2.1's relative luminance.
func (c rgb) luminance() float64 {
	ch := func(v uint8) float64 {
		s := float64(v) / 255
		if s <= 0.04045 {
			return s / 12.92
		}
		return math.Pow((s+0.055)/1.055, 2.4)
	}
	return 0.2126*ch(c.r) + 0.7152*ch(c.g) + 0.0722*ch(c.b)
}

// contrast is WCAG 2.1's contrast ratio of two colours (1 to 21).
func contrast(a, b rgb) float64 {
	la, lb := a.luminance(), b.luminance()
	if la < lb {
		la, lb = lb, la
	}
	return (la + 0.05) / (lb + 0.05)
}

// mix is c moved towards to by t (0: c, 1: to).
func mix(c, to rgb, t float64) rgb {
	m := func(a, b uint8) uint8 { return uint8(math.Round(float64(a) + (float64(b)-float64(a))*t)) }
	return rgb{m(c.r, to.r), m(c.g, to.g), m(c.b, to.b)}
}

// textOn is the text colour for a button of colour c: white, or the
// darkest ink when white does not reach AA on it.
func textOn(c rgb) rgb {
	if contrast(c, white) >= minContrast {
		return white
	}
	return nearBlack
}

// ThemeCSS is the stylesheet that gives the pages the accent colour (a
// checked one, CheckAccent): as it is in the light scheme, and lightened
// until it reaches AA on the dark scheme's panels. "" for none.
func ThemeCSS(accent string) string {
	c, ok := parseHex(accent)
	if !ok {
		return ""
	}
	dark := c
	for i := 1; i <= 20 && (contrast(dark, darkPanel) < minContrast || contrast(dark, darkBG) < minContrast); i++ {
		dark = mix(c, white, float64(i)/20)
	}
	return fmt.Sprintf(":root {\n  --accent: %s; --accent-text: %s; --accent-soft: %s;\n}\n"+
		"@media (prefers-color-scheme: dark) {\n  :root { --accent: %s; --accent-text: %s; --accent-soft: %s; }\n}\n",
		c.hex(), textOn(c).hex(), mix(c, white, 0.9).hex(), dark.hex(), textOn(dark).hex(), mix(dark, darkPanel, 0.8).hex())
}
