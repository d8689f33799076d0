package web

import (
	"go/ast"
	"go/parser"
	"go/token"
	"html"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	tparser "github.com/a-h/templ/parser/v2"
	"github.com/a-h/templ/parser/v2/visitor"
)

// textAttrs are the attributes whose value people read (or hear).
var textAttrs = map[string]bool{"aria-label": true, "title": true, "placeholder": true, "alt": true, "aria-description": true, "aria-valuetext": true}

var letters = regexp.MustCompile(`\pL{2,}`)

// TestNoTextOutsideTheCatalogue fails on a template that writes text of its
// own: every text goes through t(ctx, …), so that it is translated.
func TestNoTextOutsideTheCatalogue(t *testing.T) {
	files, err := filepath.Glob("*.templ")
	if err != nil || len(files) == 0 {
		t.Fatalf("no templates: %v", err)
	}
	for _, f := range files {
		tf, err := tparser.Parse(f)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		v := visitor.New()
		v.Text = func(n *tparser.Text) error {
			if s := strings.TrimSpace(html.UnescapeString(n.Value)); letters.MatchString(s) {
				t.Errorf("%s:%d: text %q is not in the catalogue: write { t(ctx, %q) }", f, n.Range.From.Line+1, s, s)
			}
			return nil
		}
		v.ConstantAttribute = func(n *tparser.ConstantAttribute) error {
			if textAttrs[n.Key.String()] && letters.MatchString(n.Value) {
				t.Errorf("%s:%d: %s=%q is not in the catalogue: write %s={ t(ctx, %q) }", f, n.Range.From.Line+1, n.Key, n.Value, n.Key, n.Value)
			}
			return nil
		}
		goExpr := func(line uint32, src string) {
			for _, lit := range textLiterals(src) {
				t.Errorf("%s:%d: %q is not in the catalogue: write t(ctx, %q)", f, line+1, lit, lit)
			}
		}
		v.CallTemplateExpression = func(n *tparser.CallTemplateExpression) error {
			goExpr(n.Expression.Range.From.Line, n.Expression.Value)
			return nil
		}
		v.TemplElementExpression = func(n *tparser.TemplElementExpression) error {
			goExpr(n.Expression.Range.From.Line, n.Expression.Value)
			for _, c := range n.Children {
				if err := c.Visit(v); err != nil {
					return err
				}
			}
			return nil
		}
		v.StringExpression = func(n *tparser.StringExpression) error {
			goExpr(n.Expression.Range.From.Line, n.Expression.Value)
			return nil
		}
		v.ExpressionAttribute = func(n *tparser.ExpressionAttribute) error {
			if textAttrs[n.Key.String()] {
				goExpr(n.Expression.Range.From.Line, n.Expression.Value)
			}
			return nil
		}
		if err := tf.Visit(v); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
	}
}

var wordy = regexp.MustCompile(`\pL+\s+\pL+|^\p{Lu}\p{Ll}+`)

// textLiterals are the string literals in a Go expression of a template that
// read as text (words with a space, or a capitalised word) and are not the
// key of a t(ctx, …) call: labels handed to a component, for instance.
func textLiterals(src string) []string {
	e, err := parser.ParseExpr(src)
	if err != nil {
		return nil
	}
	var out []string
	ast.Inspect(e, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.CallExpr:
			if id, ok := n.Fun.(*ast.Ident); ok && (id.Name == "t" || id.Name == "T") {
				return false
			}
		case *ast.BasicLit:
			if n.Kind == token.STRING {
				if s, err := strconv.Unquote(n.Value); err == nil && wordy.MatchString(s) {
					out = append(out, s)
				}
			}
		}
		return true
	})
	return out
}
