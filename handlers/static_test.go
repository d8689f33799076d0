package handlers_test

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/andybalholm/brotli"

	"github.com/writeback/writeback/static"
)

// staticGet fetches an asset with the given request headers, without the
// transport's own gzip handling.
func staticGet(t *testing.T, h *harness, method, path string, header map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, h.srv.URL+path, nil)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	tr := &http.Transport{DisableCompression: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func decode(t *testing.T, coding string, b []byte) []byte {
	t.Helper()
	var r io.Reader
	switch coding {
	case "":
		return b
	case "gzip":
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		r = zr
	case "br":
		r = brotli.NewReader(bytes.NewReader(b))
	default:
		t.Fatalf("coding %q", coding)
	}
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestStaticContentNegotiation: an asset comes in the best encoding the
// client accepts by its q-values — brotli, gzip or identity — decodes to
// the file itself, and every answer says that it varies by Accept-Encoding.
func TestStaticContentNegotiation(t *testing.T) {
	h := newHarness(t)
	want, err := static.FS.ReadFile("app.css")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		accept string // "-" for no header at all
		coding string // "" identity
		status int
	}{
		{"-", "", 200},
		{"", "", 200}, // an empty field: no coding wanted
		{"gzip", "gzip", 200},
		{"br", "br", 200},
		{"gzip, deflate, br, zstd", "br", 200}, // a browser: br wins the tie
		{"br;q=0.5, gzip;q=0.8", "gzip", 200},
		{"GZIP;Q=1", "gzip", 200},
		{"x-gzip", "gzip", 200},
		{"br;q=0", "", 200},
		{"br;q=0, gzip;q=0", "", 200},
		{"gzip;q=0.4, identity", "", 200},
		{"identity", "", 200},
		{"deflate, zstd", "", 200}, // nothing the server has: identity
		{"*", "br", 200},
		{"*;q=0.5, gzip", "gzip", 200},
		{"identity;q=0, *", "br", 200},
		{"gzip;q=nonsense, br;q=0.1", "br", 200},
		{"identity;q=0, br;q=0, gzip;q=0", "", http.StatusNotAcceptable},
		{"*;q=0", "", http.StatusNotAcceptable},
	} {
		hdr := map[string]string{}
		if tc.accept != "-" {
			hdr["Accept-Encoding"] = tc.accept
		}
		resp, body := staticGet(t, h, http.MethodGet, "/static/app.css", hdr)
		if resp.StatusCode != tc.status {
			t.Errorf("Accept-Encoding %q: status %d, want %d", tc.accept, resp.StatusCode, tc.status)
			continue
		}
		if v := resp.Header.Get("Vary"); v != "Accept-Encoding" {
			t.Errorf("Accept-Encoding %q: Vary %q", tc.accept, v)
		}
		if tc.status != 200 {
			continue
		}
		if got := resp.Header.Get("Content-Encoding"); got != tc.coding {
			t.Errorf("Accept-Encoding %q: Content-Encoding %q, want %q", tc.accept, got, tc.coding)
			continue
		}
		if got := decode(t, tc.coding, body); !bytes.Equal(got, want) {
			t.Errorf("Accept-Encoding %q: the body is not app.css", tc.accept)
		}
		if tc.coding != "" && len(body) >= len(want) {
			t.Errorf("Accept-Encoding %q: %d bytes %s for a %d-byte file", tc.accept, len(body), tc.coding, len(want))
		}
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/css") {
			t.Errorf("Content-Type %q", ct)
		}
		if cc := resp.Header.Get("Cache-Control"); cc != "public, max-age=3600" {
			t.Errorf("Cache-Control %q", cc)
		}
		if resp.Header.Get("Content-Security-Policy") == "" || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("Accept-Encoding %q: security headers missing", tc.accept)
		}
	}
}

// TestStaticETag: each representation has its own strong ETag; naming it in
// If-None-Match gets 304 with no body (and the headers a cache needs), while
// another representation's tag gets the file.
func TestStaticETag(t *testing.T) {
	h := newHarness(t)
	tags := map[string]string{}
	for _, coding := range []string{"identity", "gzip", "br"} {
		resp, _ := staticGet(t, h, http.MethodGet, "/static/app.js", map[string]string{"Accept-Encoding": coding})
		tag := resp.Header.Get("ETag")
		if !strings.HasPrefix(tag, `"`) || !strings.HasSuffix(tag, `"`) || len(tag) < 10 {
			t.Errorf("%s: ETag %q is not a strong tag", coding, tag)
		}
		tags[coding] = tag
	}
	if tags["identity"] == tags["gzip"] || tags["gzip"] == tags["br"] || tags["identity"] == tags["br"] {
		t.Errorf("representations share a tag: %v", tags)
	}
	br := map[string]string{"Accept-Encoding": "gzip, br"}
	for _, tc := range []struct {
		ifNoneMatch string
		status      int
	}{
		{tags["br"], http.StatusNotModified},
		{`"other", ` + tags["br"], http.StatusNotModified},
		{"W/" + tags["br"], http.StatusNotModified}, // If-None-Match compares weakly
		{"*", http.StatusNotModified},
		{tags["gzip"], http.StatusOK}, // the client would get another body than it holds
		{tags["identity"], http.StatusOK},
		{`"other"`, http.StatusOK},
	} {
		hdr := map[string]string{"Accept-Encoding": br["Accept-Encoding"], "If-None-Match": tc.ifNoneMatch}
		resp, body := staticGet(t, h, http.MethodGet, "/static/app.js", hdr)
		if resp.StatusCode != tc.status {
			t.Errorf("If-None-Match %s: status %d, want %d", tc.ifNoneMatch, resp.StatusCode, tc.status)
			continue
		}
		if tc.status == http.StatusNotModified {
			if len(body) != 0 || resp.Header.Get("ETag") != tags["br"] || resp.Header.Get("Vary") != "Accept-Encoding" ||
				resp.Header.Get("Cache-Control") == "" {
				t.Errorf("304: body %d bytes, headers %v", len(body), resp.Header)
			}
		}
	}
	// The tag stays the same from request to request (and is not a time).
	resp, _ := staticGet(t, h, http.MethodGet, "/static/app.js", map[string]string{"Accept-Encoding": "br"})
	if resp.Header.Get("ETag") != tags["br"] {
		t.Error("the ETag changed between two requests")
	}
}

// TestStaticHeadAndMethods: HEAD gets the headers of GET without a body;
// other methods are refused.
func TestStaticHeadAndMethods(t *testing.T) {
	h := newHarness(t)
	get, body := staticGet(t, h, http.MethodGet, "/static/logo.svg", map[string]string{"Accept-Encoding": "gzip"})
	head, hbody := staticGet(t, h, http.MethodHead, "/static/logo.svg", map[string]string{"Accept-Encoding": "gzip"})
	if head.StatusCode != 200 || len(hbody) != 0 || head.Header.Get("ETag") != get.Header.Get("ETag") ||
		head.Header.Get("Content-Length") != get.Header.Get("Content-Length") || get.Header.Get("Content-Length") != itoa(int64(len(body))) {
		t.Errorf("HEAD %d %v, GET %v", head.StatusCode, head.Header, get.Header)
	}
	post, _ := staticGet(t, h, http.MethodPost, "/static/logo.svg", nil)
	if post.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d", post.StatusCode)
	}
}
