package handlers

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/branding"
	"github.com/writeback/writeback/services/errs"
	"github.com/writeback/writeback/services/i18n"
	"github.com/writeback/writeback/web"
)

// BrandingService is what the pages need of services/branding.
type BrandingService interface {
	Brand(ctx context.Context) (branding.Brand, error)
	Logo(ctx context.Context, f func(typ, sha string, data []byte)) error
	Settings(ctx context.Context) (branding.Settings, settingsMeta, error)
	Save(ctx context.Context, actor audit.Actor, expectVersion int64, in branding.Input) (bool, error)
}

// Where the organisation's logo and stylesheet are served: public (the
// sign-in and employee pages show them), outside the session.
const (
	brandingPath = "/password-reset/company-branding"
	logoPath     = "/branding/logo"
	themePath    = "/branding/theme.css"
)

// brand is the page brand of ctx's request: the organisation's name, logo
// and colours, each address with its version so that a browser may keep
// it for a year. A failure to read it is logged and the page is shown in
// Writeback's own look rather than not at all.
func (s *Server) brand(ctx context.Context) web.Brand {
	if s.branding == nil {
		return web.Brand{}
	}
	b, err := s.branding.Brand(ctx)
	if err != nil {
		s.log.WarnContext(ctx, "branding not read; the page shows Writeback's own", "err", err)
		return web.Brand{}
	}
	out := web.Brand{Name: b.OrgName, HideAdminLink: b.HideAdminLink}
	if b.LogoSHA != "" {
		out.LogoPath = logoPath + "?v=" + b.LogoSHA[:16]
	}
	if b.Accent != "" {
		out.ThemePath = themePath + "?v=" + strings.TrimPrefix(b.Accent, "#")
	}
	return out
}

// brandedAsset answers GET of an asset whose address carries its version:
// for a year when the version asked for is the current one, else without
// caching (an old page asking for the previous logo gets today's).
func brandedAsset(w http.ResponseWriter, r *http.Request, typ, version string, body []byte) {
	h := w.Header()
	h.Set("Content-Type", typ)
	h.Set("X-Content-Type-Options", "nosniff")
	// An SVG opened on its own is a document of this origin: it may run
	// nothing and load nothing (it is checked when uploaded, too).
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; sandbox")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	if r.URL.Query().Get("v") == version {
		h.Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		h.Set("Cache-Control", "no-cache")
	}
	etag := `"` + version + `"`
	h.Set("ETag", etag)
	if r.Header.Get("If-None-Match") == etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

func (s *Server) brandLogo(w http.ResponseWriter, r *http.Request) error {
	if s.branding == nil {
		return errNotFound
	}
	found := false
	err := s.branding.Logo(r.Context(), func(typ, sha string, data []byte) {
		found = true
		brandedAsset(w, r, typ, sha[:16], data)
	})
	if err != nil {
		return err
	}
	if !found {
		return errNotFound
	}
	return nil
}

func (s *Server) brandTheme(w http.ResponseWriter, r *http.Request) error {
	if s.branding == nil {
		return errNotFound
	}
	b, err := s.branding.Brand(r.Context())
	if err != nil {
		return err
	}
	css := branding.ThemeCSS(b.Accent)
	if css == "" {
		return errNotFound
	}
	brandedAsset(w, r, "text/css; charset=utf-8", strings.TrimPrefix(b.Accent, "#"), []byte(css))
	return nil
}

func (s *Server) brandingView(w http.ResponseWriter, r *http.Request) (web.BrandingView, error) {
	if s.branding == nil {
		return web.BrandingView{}, errNotFound
	}
	st, meta, err := s.branding.Settings(r.Context())
	if err != nil {
		return web.BrandingView{}, err
	}
	b, err := s.branding.Brand(r.Context())
	if err != nil {
		return web.BrandingView{}, err
	}
	ctx := r.Context()
	v := web.BrandingView{Page: s.page(w, r, "branding", i18n.T(ctx, "Password reset"), i18n.T(ctx, "Company branding"),
		i18n.T(ctx, "Show employees your organisation's logo and colour, so they know the page is yours.")),
		Version: meta.Version, Accent: st.Accent, HideAdminLink: st.HideAdminLink, LogoType: st.LogoType, LogoBytes: len(st.Logo),
		MaxLogoKB: branding.MaxLogoBytes >> 10, OrgName: b.OrgName, UpdatedBy: meta.UpdatedBy, UpdatedAt: meta.UpdatedAt}
	if st.LogoSHA != "" {
		v.LogoPath = logoPath + "?v=" + st.LogoSHA[:16]
	}
	return v, nil
}

func (s *Server) brandingForm(w http.ResponseWriter, r *http.Request) error {
	v, err := s.brandingView(w, r)
	if err != nil {
		return err
	}
	s.render(w, r, http.StatusOK, web.BrandingPage(v))
	return nil
}

func (s *Server) brandingSave(w http.ResponseWriter, r *http.Request) error {
	if s.branding == nil {
		return errNotFound
	}
	// The form was read already, by the CSRF check (whose limit on the
	// request body, 1 MiB, bounds the upload).
	if err := r.ParseMultipartForm(branding.MaxLogoBytes); err != nil && !errors.Is(err, http.ErrNotMultipart) {
		return errs.E(errs.Invalid, "The form could not be read. Reload the page and try again.", err)
	}
	version, err := strconv.ParseInt(r.PostFormValue("version"), 10, 64)
	if err != nil {
		return errs.Invalidf("This form is missing its version. Reload the page and save again.")
	}
	in := branding.Input{Accent: r.PostFormValue("accent"), HideAdminLink: r.PostFormValue("show_admin_link") == "no",
		RemoveLogo: r.PostFormValue("remove_logo") == "yes"}
	if f, hdr, err := r.FormFile("logo"); err == nil {
		defer f.Close()
		if hdr.Size > branding.MaxLogoBytes {
			return s.brandingRefused(w, r, errs.FieldTexts(map[string]errs.Text{"logo": errs.Textf(
				"The logo is %d KB; it can be at most %d KB. Save it smaller and upload it again.", (hdr.Size+1023)>>10, branding.MaxLogoBytes>>10)}))
		}
		if in.Logo, err = io.ReadAll(f); err != nil {
			return errs.E(errs.Invalid, "The uploaded file could not be read.", err)
		}
		if len(in.Logo) == 0 {
			in.Logo = nil // no file chosen
		}
	}
	changed, err := s.branding.Save(r.Context(), s.actor(r), version, in)
	if err != nil {
		return s.brandingRefused(w, r, err)
	}
	s.saved(w, r, changed, i18n.Key("Saved company branding."), "/admin"+brandingPath)
	return nil
}

// brandingRefused shows the page again with what was typed and why it was
// refused; nothing was saved.
func (s *Server) brandingRefused(w http.ResponseWriter, r *http.Request, err error) error {
	if k := errs.KindOf(err); k != errs.Invalid && k != errs.Conflict {
		return err
	}
	v, verr := s.brandingView(w, r)
	if verr != nil {
		return verr
	}
	v.Accent, v.HideAdminLink = r.PostFormValue("accent"), r.PostFormValue("show_admin_link") == "no"
	showProblemIn(r.Context(), &v.Page, err)
	s.render(w, r, statusOf(err), web.BrandingPage(v))
	return nil
}
