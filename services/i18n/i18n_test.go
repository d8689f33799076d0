package i18n

import (
	"context"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

func TestChoose(t *testing.T) {
	org := func(code string) func() string { return func() string { return code } }
	for _, tc := range []struct {
		name, cookie, accept string
		org                  func() string
		want                 language.Tag
	}{
		{"nothing: English", "", "", nil, English},
		{"browser German", "", "de-DE,de;q=0.9,en;q=0.8", org("fr"), German},
		{"browser Swiss French", "", "fr-CH, fr;q=0.9", nil, French},
		{"browser Mexican Spanish", "", "es-MX", nil, Spanish},
		{"browser English beats the organisation's default", "", "en-GB,en;q=0.9", org("de"), English},
		{"browser speaks nothing we do: organisation's default", "", "ja-JP,ja;q=0.9", org("es"), Spanish},
		{"no browser language: organisation's default", "", "", org("de"), German},
		{"cookie beats the browser", "fr", "de-DE", org("es"), French},
		{"unknown cookie is ignored", "xx", "de", nil, German},
		{"malformed Accept-Language", "", ";;;q=abc", org("fr"), French},
		{"unknown organisation default", "", "", org("klingon"), English},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Choose(tc.cookie, tc.accept, tc.org); got != tc.want {
				t.Errorf("Choose(%q, %q) = %v, want %v", tc.cookie, tc.accept, got, tc.want)
			}
		})
	}
}

func TestFormatsForTheLanguage(t *testing.T) {
	at := time.Date(2026, time.March, 2, 14, 5, 0, 0, time.UTC)
	for _, tc := range []struct {
		tag              language.Tag
		date, when, many string
	}{
		{English, "2 Mar 2026", "2 Mar 2026, 14:05 UTC", "1,234,567"},
		{German, "2. März 2026", "2. März 2026, 14:05 UTC", "1.234.567"},
		{French, "2 mars 2026", "2 mars 2026, 14:05 UTC", "1\u00a0234\u00a0567"},
		{Spanish, "2 mar 2026", "2 mar 2026, 14:05 UTC", "1.234.567"},
	} {
		ctx := WithLang(context.Background(), tc.tag)
		if got := Date(ctx, at); got != tc.date {
			t.Errorf("%v: Date = %q, want %q", tc.tag, got, tc.date)
		}
		if got := DateTime(ctx, at); got != tc.when {
			t.Errorf("%v: DateTime = %q, want %q", tc.tag, got, tc.when)
		}
		if got := Number(ctx, 1234567); got != tc.many {
			t.Errorf("%v: Number = %q, want %q", tc.tag, got, tc.many)
		}
	}
}

// used is a key the code looks up, and where.
type used struct {
	key, at string
}

// extract finds every key the portal's code (not its tests) hands the
// catalogue: T/t/In's key, Key's argument, and the messages of
// errs.E/Ef/Invalidf/Textf/FieldErrors, where they are literals.
func extract(t *testing.T, root string) []used {
	t.Helper()
	var out []used
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case ".git", "testdata", "testbed", "node_modules":
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		// The command line and the REST API speak English (their messages
		// are read by scripts and searched for in logs), so their errors
		// need no translation.
		if rel, _ := filepath.Rel(root, path); strings.HasPrefix(rel, "cmd"+string(filepath.Separator)) ||
			strings.HasPrefix(rel, filepath.Join("handlers", "api")) {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		add := func(e ast.Expr) {
			if s, ok := literal(e); ok && s != "" {
				out = append(out, used{s, fset.Position(e.Pos()).String()})
			}
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			pkg, name := callee(call)
			arg := func(i int) {
				if i < len(call.Args) {
					add(call.Args[i])
				}
			}
			switch {
			case name == "T" || name == "t" && pkg == "" || name == "In" && (pkg == "i18n" || pkg == ""):
				arg(1)
			case name == "Key" && (pkg == "i18n" || pkg == ""):
				arg(0)
			case pkg == "errs" && name == "E":
				arg(1)
			case pkg == "errs" && name == "Ef":
				arg(2)
			case pkg == "errs" && (name == "Invalidf" || name == "Textf"):
				arg(0)
			case pkg == "errs" && name == "FieldErrors":
				if len(call.Args) == 1 {
					if m, ok := call.Args[0].(*ast.CompositeLit); ok {
						for _, el := range m.Elts {
							if kv, ok := el.(*ast.KeyValueExpr); ok {
								add(kv.Value)
							}
						}
					}
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func callee(c *ast.CallExpr) (pkg, name string) {
	switch f := c.Fun.(type) {
	case *ast.Ident:
		return "", f.Name
	case *ast.SelectorExpr:
		if x, ok := f.X.(*ast.Ident); ok {
			return x.Name, f.Sel.Name
		}
		return "?", f.Sel.Name
	}
	return "?", ""
}

// literal is the value of a string literal, or of literals joined with +.
func literal(e ast.Expr) (string, bool) {
	switch e := e.(type) {
	case *ast.BasicLit:
		if e.Kind != token.STRING {
			return "", false
		}
		s, err := strconv.Unquote(e.Value)
		return s, err == nil
	case *ast.BinaryExpr:
		if e.Op != token.ADD {
			return "", false
		}
		a, ok1 := literal(e.X)
		b, ok2 := literal(e.Y)
		return a + b, ok1 && ok2
	case *ast.ParenExpr:
		return literal(e.X)
	}
	return "", false
}

// TestCatalogueComplete fails when a key the code uses lacks a translation
// in any language, when the languages' keys differ, when a translation
// takes other values than its key, or when a counted message has no
// English plural forms.
func TestCatalogueComplete(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("repository root not found: %v", err)
	}
	uses := extract(t, root)
	if len(uses) < 50 {
		t.Fatalf("only %d keys found in the code: the extraction is broken", len(uses))
	}
	for _, tag := range Supported[1:] {
		var missing []string
		seen := map[string]bool{}
		for _, u := range uses {
			if _, ok := Translation(tag, u.key); !ok && !seen[u.key] {
				seen[u.key] = true
				missing = append(missing, strings.TrimPrefix(u.at, root+"/")+": "+strconv.Quote(u.key))
			}
		}
		sort.Strings(missing)
		for _, m := range missing {
			t.Errorf("%s: no translation: %s", Code(tag), m)
		}
	}
	// The same keys in every language other than English.
	ref := Keys(German)
	for _, tag := range Supported[2:] {
		ks := Keys(tag)
		for _, k := range ref {
			if _, ok := slices.BinarySearch(ks, k); !ok {
				t.Errorf("%s: %q is translated into German but not into %s", Code(tag), k, Name(tag))
			}
		}
		for _, k := range ks {
			if _, ok := slices.BinarySearch(ref, k); !ok {
				t.Errorf("de: %q is translated into %s but not into German", k, Name(tag))
			}
		}
	}
	for _, tag := range Supported {
		for _, k := range Keys(tag) {
			e, _ := Translation(tag, k)
			want := sortedVerbs(k)
			forms := []string{e.Text}
			if e.Plural != nil {
				forms = forms[:0]
				for _, f := range e.Plural {
					forms = append(forms, f)
				}
				if _, ok := Translation(English, k); !ok {
					t.Errorf("%s: %q has plural forms but no English ones (locales/en)", Code(tag), k)
				}
			}
			for _, f := range forms {
				if got := sortedVerbs(f); !slices.Equal(got, want) && (e.Plural == nil || len(got) != 0 || len(want) != 1) {
					t.Errorf("%s: %q takes %v, its translation %q takes %v", Code(tag), k, want, f, got)
				}
			}
		}
	}
}

// sortedVerbs are a format's verbs without their argument indexes, sorted:
// a translation may reorder the values but must take the same ones.
func sortedVerbs(format string) []string {
	vs := verbs(format)
	for i, v := range vs {
		if j := strings.IndexByte(v, ']'); j >= 0 {
			vs[i] = "%" + v[j+1:]
		}
	}
	sort.Strings(vs)
	return vs
}

func TestPluralForms(t *testing.T) {
	forms := func(one, other string) Entry { return Entry{Plural: map[string]string{"one": one, "other": other}} }
	b, err := build(map[language.Tag]Messages{
		English: {"%d files": forms("%d file", "%d files")},
		French:  {"%d files": forms("%d fichier", "%d fichiers")},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		tag  language.Tag
		n    int
		want string
	}{
		{English, 0, "0 files"}, {English, 1, "1 file"}, {English, 2, "2 files"}, {English, 1200, "1,200 files"},
		{French, 0, "0 fichier"}, {French, 1, "1 fichier"}, {French, 2, "2 fichiers"},
	} {
		if got := message.NewPrinter(tc.tag, message.Catalog(b)).Sprintf("%d files", tc.n); got != tc.want {
			t.Errorf("%v, %d: %q, want %q", tc.tag, tc.n, got, tc.want)
		}
	}
}

func BenchmarkT(b *testing.B) {
	de := WithLang(context.Background(), German)
	b.Run("text", func(b *testing.B) {
		for b.Loop() {
			_ = T(de, "Skip to content")
		}
	})
	b.Run("untranslated", func(b *testing.B) {
		for b.Loop() {
			_ = T(de, "No such key here")
		}
	})
	b.Run("with a value", func(b *testing.B) {
		for b.Loop() {
			_ = T(de, "Last changed by %s on", "Ada")
		}
	})
}

// TestTextsWithoutValues: the fast path for texts that take no value gives
// what the printer gives, "%%" included.
func TestTextsWithoutValues(t *testing.T) {
	ctx := WithLang(context.Background(), German)
	if got := T(ctx, "Skip to content"); got != "Zum Inhalt springen" {
		t.Errorf("got %q", got)
	}
	if got := T(ctx, "100%% sure"); got != "100% sure" {
		t.Errorf("untranslated with %%%%: %q", got)
	}
	if got := T(ctx, "Last changed by %s on", "Ada"); got != "Zuletzt geändert von Ada am" {
		t.Errorf("with a value: %q", got)
	}
}

func BenchmarkChoose(b *testing.B) {
	for b.Loop() {
		_ = Choose("", "de-DE,de;q=0.9,en-US;q=0.8,en;q=0.7", nil)
	}
}
