package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCommittedVariantsAreFresh is what `make lint` checks: every asset in
// static/ has its committed variants, and each still holds the asset.
func TestCommittedVariantsAreFresh(t *testing.T) {
	dir := filepath.Join("..", "..")
	if err := checkDir(os.DirFS(dir), dir); err != nil {
		t.Error(err)
	}
}

// TestWriteThenCheck: what the generator writes passes the check; an asset
// edited without generating again, a deleted variant and a variant without
// its asset each fail it, naming the file; a file that does not shrink gets
// no variant at all.
func TestWriteThenCheck(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("a.css", strings.Repeat("body { color: black; }\n", 50))
	write("b.js", strings.Repeat("console.log('x');\n", 40))
	write("tiny.svg", "<svg/>")
	if err := writeDir(dir); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"a.css.gz", "a.css.br", "b.js.gz", "b.js.br"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("%s not written: %v", name, err)
		}
	}
	for _, name := range []string{"tiny.svg.gz", "tiny.svg.br"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			t.Errorf("%s written although it is not smaller", name)
		}
	}
	if err := checkDir(os.DirFS(dir), dir); err != nil {
		t.Fatalf("fresh output fails the check: %v", err)
	}
	// The same input gives the same bytes (committed files do not churn).
	before, _ := os.ReadFile(filepath.Join(dir, "a.css.gz"))
	if err := writeDir(dir); err != nil {
		t.Fatal(err)
	}
	if after, _ := os.ReadFile(filepath.Join(dir, "a.css.gz")); !bytes.Equal(before, after) {
		t.Error("a second run wrote other bytes")
	}

	write("a.css", strings.Repeat("body { color: red; }\n", 50))
	os.Remove(filepath.Join(dir, "b.js.br"))
	write("gone.js.gz", "x")
	err := checkDir(os.DirFS(dir), dir)
	for _, want := range []string{"a.css.gz is stale", "a.css.br is stale", "b.js.br is missing", "gone.js.gz has no asset", "make generate"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("check error %v, want %q in it", err, want)
		}
	}
	if err := writeDir(dir); err != nil {
		t.Fatal(err)
	}
	if err := checkDir(os.DirFS(dir), dir); err != nil {
		t.Errorf("after generating again: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "gone.js.gz")); err == nil {
		t.Error("the orphan variant was not removed")
	}
}
