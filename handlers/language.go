package handlers

import (
	"context"
	"net/http"
	"net/url"
	"strings"

	"github.com/writeback/writeback/services/errs"
	"github.com/writeback/writeback/services/i18n"
	"github.com/writeback/writeback/web"
)

// langCookie remembers the language a person chose with the switcher. It
// is a preference, not a credential: readable by the page is not needed,
// so HttpOnly; a year long.
const (
	langCookie       = "wb_lang"
	langCookieMaxAge = 365 * 24 * 60 * 60
)

// language puts the reader's language in the request's context: the
// switcher's choice, else the browser's Accept-Language, else the
// organisation's default (Password reset › Customization), else English.
func (s *Server) language(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var chosen string
		if c, err := r.Cookie(langCookie); err == nil {
			chosen = c.Value
		}
		accept := r.Header.Get("Accept-Language")
		if len(accept) > 512 { // bounded work per request
			accept = accept[:512]
		}
		tag := i18n.Choose(chosen, accept, func() string { return s.orgLanguage(r) })
		next.ServeHTTP(w, r.WithContext(i18n.WithLang(r.Context(), tag)))
	})
}

// orgLanguage is the organisation's default language, "" when none is set
// or the policy cannot be read (English then).
func (s *Server) orgLanguage(r *http.Request) string {
	if ls, ok := s.selfservice.(languageSource); ok {
		return ls.Language(r.Context())
	}
	return ""
}

// languageSource is the part of the self-service policy the language of a
// page needs.
type languageSource interface {
	Language(ctx context.Context) string
}

// setLanguage is the switcher: it remembers the language chosen and goes
// back to the page it was on (a path of this portal only).
func (s *Server) setLanguage(w http.ResponseWriter, r *http.Request) error {
	tag, ok := i18n.Parse(r.PostFormValue("lang"))
	if !ok {
		return errs.E(errs.Invalid, "Choose one of the languages offered.", nil)
	}
	http.SetCookie(w, &http.Cookie{
		Name: langCookie, Value: i18n.Code(tag), Path: s.base + "/", MaxAge: langCookieMaxAge,
		HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteLaxMode,
	})
	http.Redirect(w, r, web.Path(r.Context(), safeBack(r.PostFormValue("back"))), http.StatusSeeOther)
	return nil
}

// safeBack keeps the switcher's way back on a page of this portal: a path
// (no scheme, host, query or fragment) that stays a path however often it
// is decoded; anything else goes to the start page.
func safeBack(p string) string {
	if p == "" || len(p) > maxNext || !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") || strings.ContainsAny(p, "\\?#") {
		return "/"
	}
	u, err := url.Parse(p)
	if err != nil || u.Scheme != "" || u.Host != "" {
		return "/"
	}
	if !everyDecoding(u.Path, func(s string) bool {
		return strings.HasPrefix(s, "/") && !strings.HasPrefix(s, "//") && !strings.Contains(s, "\\") && !hasCTL(s)
	}) {
		return "/"
	}
	return u.EscapedPath()
}
