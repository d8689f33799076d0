package web

import (
	"context"
	"strings"

	"github.com/a-h/templ"
)

// baseKey keys the portal's path prefix in a request's context.
type baseKey struct{}

// WithBase returns ctx carrying the path prefix the portal is served under
// ("" at the root, else e.g. "/password": a leading slash, no trailing one).
// The handlers set it on every request; URL and Path read it.
func WithBase(ctx context.Context, base string) context.Context {
	return context.WithValue(ctx, baseKey{}, base)
}

// Base is the path prefix in ctx ("" at the root).
func Base(ctx context.Context) string {
	b, _ := ctx.Value(baseKey{}).(string)
	return b
}

// Path is the portal path p ("/admin/agents", "/static/app.css",
// "/reset?x=1") as a browser must ask for it: under the prefix in ctx.
// Every link, form action, asset and redirect is built with it, so that a
// portal served under a path (--base-url https://intranet.example/password/)
// never sends a browser outside it. A p that is not a path from the root
// ("#writeback", "") is relative to the page and returned as it is.
func Path(ctx context.Context, p string) string {
	if !strings.HasPrefix(p, "/") {
		return p
	}
	return Base(ctx) + p
}

// URL is Path for templates' href, src and action attributes.
func URL(ctx context.Context, p string) templ.SafeURL {
	return templ.SafeURL(Path(ctx, p))
}
