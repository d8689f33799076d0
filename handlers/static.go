package handlers

import (
	"crypto/sha256"
	"encoding/base64"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"
	"sync"
)

// staticCacheControl lets browsers keep an asset for an hour and then ask
// again with If-None-Match (answered 304 while it is unchanged). Asset URLs
// carry no version, so a longer lifetime would keep an old stylesheet
// beside a new page after an upgrade.
const staticCacheControl = "public, max-age=3600"

// codings are the content codings an asset can be stored in besides
// identity, in the order preferred when a client accepts several equally,
// with the suffix of their files (written by static/internal/compress).
var codings = []struct{ name, ext string }{{"br", ".br"}, {"gzip", ".gz"}}

// asset is one static file in every representation the server has of it.
type asset struct {
	contentType string
	reps        []representation // identity first, then codings' order
}

// representation is one encoding of an asset, ready to write.
type representation struct {
	coding string // "" for identity
	body   []byte
	etag   string // strong, from the bytes: each representation has its own
	length string
}

// assetTypes are the content types of the portal's own assets: the mime
// package would read the system's type tables (a few milliseconds of every
// start) to say the same.
var assetTypes = map[string]string{
	".css":   "text/css; charset=utf-8",
	".js":    "text/javascript; charset=utf-8",
	".svg":   "image/svg+xml",
	".png":   "image/png",
	".ico":   "image/vnd.microsoft.icon",
	".woff2": "font/woff2",
}

// loadAssets reads every asset of fsys with the variants that are smaller
// than it. The files themselves are the embedded ones (static.FS): this
// only builds the table, once, so that a request costs a map lookup.
func loadAssets(fsys fs.FS) (map[string]*asset, error) {
	out := map[string]*asset{}
	err := fs.WalkDir(fsys, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		for _, c := range codings {
			if strings.HasSuffix(name, c.ext) {
				return nil // a variant, read with its asset
			}
		}
		body, err := fs.ReadFile(fsys, name)
		if err != nil {
			return err
		}
		ct := assetTypes[path.Ext(name)]
		if ct == "" {
			ct = mime.TypeByExtension(path.Ext(name))
		}
		if ct == "" {
			ct = http.DetectContentType(body)
		}
		a := &asset{contentType: ct, reps: []representation{newRepresentation("", body)}}
		for _, c := range codings {
			v, err := fs.ReadFile(fsys, name+c.ext)
			if err != nil || len(v) >= len(body) {
				continue // none, or no gain: identity it is
			}
			a.reps = append(a.reps, newRepresentation(c.name, v))
		}
		out[name] = a
		return nil
	})
	return out, err
}

func newRepresentation(coding string, body []byte) representation {
	sum := sha256.Sum256(body)
	return representation{coding: coding, body: body, length: strconv.Itoa(len(body)),
		etag: `"` + base64.RawURLEncoding.EncodeToString(sum[:16]) + `"`}
}

// staticFiles serves the embedded assets under /static/: files only. A
// folder (/static/ itself included), a variant file and anything unknown
// are answered with the portal's 404 page rather than a listing. Each asset
// is served in the best encoding the client accepts (Accept-Encoding with
// its q-values), with Vary: Accept-Encoding and the representation's strong
// ETag, and 304 Not Modified when If-None-Match names it.
//
// The assets are read and hashed in the background, beside the rest of the
// start-up: a request for one waits for them, nothing else does.
func (s *Server) staticFiles(fsys fs.FS) http.Handler {
	load := sync.OnceValue(func() map[string]*asset {
		assets, err := loadAssets(fsys)
		if err != nil {
			// The files are embedded in the binary: this cannot fail at run time.
			panic("handlers: static assets: " + err.Error())
		}
		return assets
	})
	go load()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a := load()[strings.TrimPrefix(r.URL.Path, "/static/")]
		if a == nil {
			s.renderError(w, r, errNotFound)
			return
		}
		h := w.Header()
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			h.Set("Allow", "GET, HEAD")
			http.Error(w, "Only GET and HEAD are allowed here.", http.StatusMethodNotAllowed)
			return
		}
		h["Vary"] = varyAcceptEncoding
		h["Cache-Control"] = cacheControlStatic
		rep, ok := a.choose(r.Header.Values("Accept-Encoding"))
		if !ok {
			http.Error(w, "This file is only available as identity, gzip or br; the request's Accept-Encoding refuses all three.", http.StatusNotAcceptable)
			return
		}
		h["Etag"] = []string{rep.etag}
		if etagMatch(r.Header.Values("If-None-Match"), rep.etag) {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		h["Content-Type"] = []string{a.contentType}
		h["Content-Length"] = []string{rep.length}
		if rep.coding != "" {
			h["Content-Encoding"] = []string{rep.coding}
		}
		w.WriteHeader(http.StatusOK)
		if r.Method != http.MethodHead {
			_, _ = w.Write(rep.body)
		}
	})
}

// Header values shared by every asset response. Nothing writes into them:
// their capacity is their length, so even a later Header.Add appends to a
// copy.
var (
	varyAcceptEncoding = []string{"Accept-Encoding"}
	cacheControlStatic = []string{staticCacheControl}
)

// choose picks the representation for the Accept-Encoding field lines
// (RFC 9110 §12.5.3): the coding with the highest q-value the asset has, br
// before gzip before identity at equal q; no field means identity. ok is
// false when the client refuses identity (identity;q=0, or *;q=0 without
// identity) and accepts no coding the asset has.
func (a *asset) choose(accept []string) (representation, bool) {
	if len(accept) == 0 {
		return a.reps[0], true
	}
	q := parseAcceptEncoding(accept)
	qOf := func(coding string) float64 {
		if v, ok := q[coding]; ok {
			return v
		}
		if coding == "identity" {
			// Identity is acceptable unless refused by name or by *;q=0.
			if v, ok := q["*"]; ok && v == 0 {
				return 0
			}
			return 0.001 // below any coding the client named
		}
		if v, ok := q["*"]; ok {
			return v
		}
		return 0
	}
	best, bestQ := -1, 0.0
	for i, rep := range a.reps[1:] {
		if v := qOf(rep.coding); v > bestQ {
			best, bestQ = i+1, v
		}
	}
	if iq := qOf("identity"); iq > 0 && (best < 0 || iq > bestQ) {
		return a.reps[0], true
	}
	if best < 0 {
		return representation{}, false
	}
	return a.reps[best], true
}

// parseAcceptEncoding reads the codings and their q-values (1 when none is
// given; a q-value that does not parse counts as 0, refusing rather than
// guessing). Names are lower-cased; x-gzip is gzip.
func parseAcceptEncoding(fields []string) map[string]float64 {
	q := map[string]float64{}
	for _, f := range fields {
		for item := range strings.SplitSeq(f, ",") {
			name, params, _ := strings.Cut(item, ";")
			name = strings.ToLower(strings.TrimSpace(name))
			if name == "" {
				continue
			}
			if name == "x-gzip" {
				name = "gzip"
			}
			v := 1.0
			for p := range strings.SplitSeq(params, ";") {
				k, val, ok := strings.Cut(strings.TrimSpace(p), "=")
				if !ok || !strings.EqualFold(strings.TrimSpace(k), "q") {
					continue
				}
				x, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
				if err != nil || x < 0 || x > 1 {
					x = 0
				}
				v = x
			}
			q[name] = v
		}
	}
	return q
}

// etagMatch reports whether If-None-Match field lines name etag (weak
// comparison, as RFC 9110 §13.1.2 asks for If-None-Match) or are "*".
func etagMatch(fields []string, etag string) bool {
	for _, f := range fields {
		for tag := range strings.SplitSeq(f, ",") {
			tag = strings.TrimSpace(tag)
			if tag == "*" || strings.TrimPrefix(tag, "W/") == etag {
				return true
			}
		}
	}
	return false
}
