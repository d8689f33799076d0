package web

import "context"

// Brand is the organisation's look on a page: its name and logo in the
// header, its colours (a stylesheet after the portal's own), and whether
// the employee pages link to the administrator sign-in. The zero Brand is
// Writeback's own.
type Brand struct {
	Name          string // the organisation's name; empty: Writeback
	LogoPath      string // the portal path of its logo, with its version; empty: Writeback's
	ThemePath     string // the portal path of its stylesheet, with its version; empty: none
	HideAdminLink bool
}

type brandKey struct{}

// WithBrand returns ctx carrying the page's brand; the handlers set it on
// every page they render.
func WithBrand(ctx context.Context, b Brand) context.Context {
	return context.WithValue(ctx, brandKey{}, b)
}

// BrandOf is the brand in ctx (Writeback's own when none).
func BrandOf(ctx context.Context) Brand {
	b, _ := ctx.Value(brandKey{}).(Brand)
	return b
}

// brandName is the name the header and the title show.
func brandName(ctx context.Context) string {
	if n := BrandOf(ctx).Name; n != "" {
		return n
	}
	return "Writeback"
}

// brandLogo is the header's logo.
func brandLogo(ctx context.Context) string {
	if p := BrandOf(ctx).LogoPath; p != "" {
		return p
	}
	return "/static/logo.svg"
}
