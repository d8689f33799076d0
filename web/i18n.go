package web

import (
	"context"
	"strings"
	"time"

	"github.com/writeback/writeback/services/i18n"
)

// t is a message of the catalogue in the reader's language; every text a
// template writes goes through it (a test fails on a bare one).
func t(ctx context.Context, key string, args ...any) string { return i18n.T(ctx, key, args...) }

// asText is s in the reader's language when it is one of the catalogue's
// texts without values, else as it is: for values that are data but may be
// one of the portal's own words (an audit activity, a security question
// the portal ships, not one an administrator wrote).
func asText(ctx context.Context, s string) string {
	if strings.Contains(s, "%") || !i18n.Known(s) {
		return s
	}
	return i18n.T(ctx, s)
}

// lang is the reader's language code, for the page's lang attribute.
func lang(ctx context.Context) string { return i18n.Code(i18n.LangOf(ctx)) }

// dateTime is a moment in UTC, in the reader's language.
func dateTime(ctx context.Context, at time.Time) string { return i18n.DateTime(ctx, at) }

// num is a count with the reader's digit grouping.
func num(ctx context.Context, n int) string { return i18n.Number(ctx, int64(n)) }

// LanguageOption is one entry of the language switcher.
type LanguageOption struct {
	Code, Name string
	Current    bool
}

// languages are the switcher's entries, the reader's language marked.
func languages(ctx context.Context) []LanguageOption {
	cur := i18n.LangOf(ctx)
	out := make([]LanguageOption, 0, len(i18n.Supported))
	for _, tag := range i18n.Supported {
		out = append(out, LanguageOption{Code: i18n.Code(tag), Name: i18n.Name(tag), Current: tag == cur})
	}
	return out
}

type pathKey struct{}

// WithPath returns ctx carrying the path of the page being shown (from the
// portal's root), so that the language switcher comes back to it.
func WithPath(ctx context.Context, path string) context.Context {
	return context.WithValue(ctx, pathKey{}, path)
}

func pagePath(ctx context.Context) string {
	p, _ := ctx.Value(pathKey{}).(string)
	if p == "" {
		return "/"
	}
	return p
}
