package handlers

import (
	"context"
	"net/http"
	"strconv"
	"strings"

	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/banned"
	"github.com/writeback/writeback/services/errs"
	"github.com/writeback/writeback/web"
)

// ProtectionService is what the Password protection page needs of
// services/banned.
type ProtectionService interface {
	Settings(ctx context.Context) (banned.Settings, settingsMeta, error)
	Save(ctx context.Context, actor audit.Actor, expectVersion int64, next banned.Settings) (bool, error)
	ClientRules(ctx context.Context, personal ...string) (banned.ClientRules, error)
}

// meter is the strength meter of a new-password field that the banned
// rules apply to, with what of them the page may check; personal are the
// person's own terms the page may hold. Without the banned service (some
// test wirings) it shows the strength alone.
func (s *Server) meter(ctx context.Context, field, personalField string, personal ...string) (web.Meter, error) {
	m := web.Meter{Field: field}
	if s.banned == nil {
		return m, nil
	}
	cr, err := s.banned.ClientRules(ctx, personal...)
	if err != nil {
		return m, err
	}
	m.Banned, m.Common, m.Personal, m.Salt, m.Custom = true, cr.Common, cr.Personal, cr.Salt, cr.Custom
	if cr.PersonalRule {
		m.PersonalField = personalField
	}
	return m, nil
}

// protectionPath is "Password reset › Password protection" (the path of
// web.Navigation's entry).
const protectionPath = "/password-reset/password-protection"

func (s *Server) protectionView(w http.ResponseWriter, r *http.Request) (web.ProtectionView, error) {
	if s.banned == nil {
		return web.ProtectionView{}, errNotFound
	}
	st, meta, err := s.banned.Settings(r.Context())
	if err != nil {
		return web.ProtectionView{}, err
	}
	v := web.ProtectionView{Page: s.page(w, r, "protection", "Password reset", "Password protection",
		"Refuse new passwords that attackers guess first, before anything is written to the directory."),
		Version: meta.Version, Common: st.Common, Personal: st.Personal, Custom: strings.Join(st.Custom, "\n"),
		Terms: len(st.Custom), CommonTerms: banned.Common().Len(), MaxTerms: banned.MaxTerms,
		UpdatedBy: meta.UpdatedBy, UpdatedAt: meta.UpdatedAt}
	return v, nil
}

func (s *Server) protectionForm(w http.ResponseWriter, r *http.Request) error {
	v, err := s.protectionView(w, r)
	if err != nil {
		return err
	}
	s.render(w, r, http.StatusOK, web.ProtectionPage(v))
	return nil
}

func (s *Server) protectionSave(w http.ResponseWriter, r *http.Request) error {
	if s.banned == nil {
		return errNotFound
	}
	version, err := strconv.ParseInt(r.PostFormValue("version"), 10, 64)
	if err != nil {
		return errs.Invalidf("This form is missing its version. Reload the page and save again.")
	}
	next := banned.Settings{Common: r.PostFormValue("common") == "yes", Personal: r.PostFormValue("personal") == "yes",
		Custom: strings.Split(r.PostFormValue("custom"), "\n")}
	changed, err := s.banned.Save(r.Context(), s.actor(r), version, next)
	if err == nil {
		msg := "Saved password protection."
		if !changed {
			msg = "Nothing changed."
		}
		s.flash(w, r, msg)
		seeOther(w, r, "/admin"+protectionPath)
		return nil
	}
	if k := errs.KindOf(err); k != errs.Invalid && k != errs.Conflict {
		return err
	}
	v, verr := s.protectionView(w, r)
	if verr != nil {
		return verr
	}
	v.Common, v.Personal, v.Custom = next.Common, next.Personal, r.PostFormValue("custom")
	if f := errs.FieldsOf(err); len(f) > 0 {
		v.Fields = f
	} else {
		v.Errors = []string{errs.MessageOf(err)}
	}
	s.render(w, r, statusOf(err), web.ProtectionPage(v))
	return nil
}
