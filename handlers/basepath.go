package handlers

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/writeback/writeback/web"
)

// basePath is the path of a base URL as the portal is served under it:
// "" at the root, else e.g. "/password" (no trailing slash).
func basePath(u *url.URL) string {
	if u == nil {
		return ""
	}
	return strings.TrimRight(u.Path, "/")
}

// underBase serves h under the base URL's path. A request for
// /password/reset reaches h as /reset, so that every route, middleware and
// check sees the portal's own paths; the prefix rides in the request's
// context (web.WithBase), from which every link and redirect is built
// (web.Path). A request without the prefix is served as it is, which is what
// a reverse proxy that strips the prefix sends; the bare prefix is sent to
// its trailing-slash form, the portal's start page.
func (s *Server) underBase(h http.Handler) http.Handler {
	base := s.base
	if base == "" {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := web.WithBase(r.Context(), base)
		switch {
		case r.URL.Path == base:
			to := base + "/"
			if r.URL.RawQuery != "" {
				to += "?" + r.URL.RawQuery
			}
			http.Redirect(w, r, to, http.StatusPermanentRedirect)
			return
		case strings.HasPrefix(r.URL.Path, base+"/"):
			// The base path holds only characters that need no escaping
			// (the serve command checks), so it begins RawPath as it
			// begins Path.
			u := *r.URL
			u.Path = strings.TrimPrefix(u.Path, base)
			u.RawPath = strings.TrimPrefix(u.RawPath, base)
			r2 := r.Clone(ctx)
			r2.URL = &u
			r = r2
		default:
			r = r.WithContext(ctx)
		}
		h.ServeHTTP(w, r)
	})
}
