package handlers

import (
	"mime"
	"testing"
	"testing/fstest"
)

// TestLoadAssetsServesOnlySmallerVariants: a variant that is not smaller
// than its asset is never chosen, whatever the client accepts, and a
// variant file is not an asset of its own.
func TestLoadAssetsServesOnlySmallerVariants(t *testing.T) {
	fsys := fstest.MapFS{
		"a.css":    {Data: []byte("0123456789")},
		"a.css.gz": {Data: []byte("01234")},        // smaller: served
		"a.css.br": {Data: []byte("0123456789AB")}, // larger: never served
	}
	assets, err := loadAssets(fsys)
	if err != nil {
		t.Fatal(err)
	}
	if len(assets) != 1 || assets["a.css"] == nil {
		t.Fatalf("assets %v", assets)
	}
	a := assets["a.css"]
	for accept, want := range map[string]string{"br": "", "br, gzip": "gzip", "gzip": "gzip", "": ""} {
		rep, ok := a.choose([]string{accept})
		if !ok || rep.coding != want {
			t.Errorf("Accept-Encoding %q: %q %v, want %q", accept, rep.coding, ok, want)
		}
	}
	if rep, ok := a.choose([]string{"br, identity;q=0"}); ok {
		t.Errorf("br only: chose %q", rep.coding)
	}
}

// TestAssetTypes: the built-in content types of the portal's own assets are
// the ones the mime package gives (which start-up no longer asks).
func TestAssetTypes(t *testing.T) {
	for _, ext := range []string{".css", ".js", ".svg"} {
		if got, want := assetTypes[ext], mime.TypeByExtension(ext); got != want {
			t.Errorf("%s: %q, mime says %q", ext, got, want)
		}
	}
}
