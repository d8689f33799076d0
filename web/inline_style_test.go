package web

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"
)

// TestTemplatesHaveNoInlineStyles: the Content-Security-Policy has no
// 'unsafe-inline' for styles, so a style attribute or <style> element in any
// template (or its generated code) would be ignored by the browser. Styles
// belong in static/app.css.
func TestTemplatesHaveNoInlineStyles(t *testing.T) {
	re := regexp.MustCompile(`(?i)\sstyle\s*=|<style[\s>]`)
	files, err := filepath.Glob("*.templ")
	if err != nil || len(files) == 0 {
		t.Fatalf("no templates found: %v", err)
	}
	gen, _ := filepath.Glob("*_templ.go")
	for _, f := range append(files, gen...) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range re.FindAllIndex(b, -1) {
			t.Errorf("%s: inline style at byte %d: %q", f, m[0], b[m[0]:min(len(b), m[1]+40)])
		}
	}
}
