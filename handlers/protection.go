package handlers

import (
	"context"
	"net/http"
	"strings"

	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/banned"
	"github.com/writeback/writeback/services/i18n"
	"github.com/writeback/writeback/web"
)

// ProtectionService is what the Password protection page needs of
// services/banned.
type ProtectionService interface {
	Settings(ctx context.Context) (banned.Settings, settingsMeta, error)
	Save(ctx context.Context, actor audit.Actor, expectVersion int64, next banned.Settings) (bool, error)
	ClientRules(ctx context.Context, personal ...string) (banned.ClientRules, error)
	Breached(ctx context.Context) (*banned.Breached, error)
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
	ctx := r.Context()
	v := web.ProtectionView{Page: s.page(w, r, "protection", i18n.T(ctx, "Password reset"), i18n.T(ctx, "Password protection"),
		i18n.T(ctx, "Refuse new passwords that attackers guess first, before anything is written to the directory.")),
		Version: meta.Version, Common: st.Common, Personal: st.Personal, Custom: strings.Join(st.Custom, "\n"),
		Terms: len(st.Custom), CommonTerms: banned.Common().Len(), MaxTerms: banned.MaxTerms,
		UpdatedBy: meta.UpdatedBy, UpdatedAt: meta.UpdatedAt, BreachedFile: st.BreachedFile}
	if st.BreachedFile != "" {
		switch l, err := s.banned.Breached(r.Context()); {
		case err != nil:
			s.log.Warn("the breached-password list cannot be used", "path", st.BreachedFile, "err", err)
			v.BreachedProblem = i18n.T(ctx, "The list cannot be used on this server, so new passwords are refused until it is fixed or the field is cleared: %s", strings.TrimPrefix(err.Error(), "banned: "))
		default:
			v.BreachedStatus = i18n.T(ctx, "In use: %s, %s, changed %s.", i18n.T(ctx, l.Kind), humanBytes(ctx, l.Size), i18n.DateTime(ctx, l.ModTime))
		}
	}
	return v, nil
}

// humanBytes is a file size for people, in the reader's language: "1.2 GB".
func humanBytes(ctx context.Context, n int64) string {
	const unit = 1000
	if n < unit {
		return i18n.T(ctx, "%d bytes", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return i18n.T(ctx, "%.1f %sB", float64(n)/float64(div), string("kMGTPE"[exp]))
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
	version, err := formVersion(r)
	if err != nil {
		return err
	}
	next := banned.Settings{Common: r.PostFormValue("common") == "yes", Personal: r.PostFormValue("personal") == "yes",
		Custom: strings.Split(r.PostFormValue("custom"), "\n"), BreachedFile: r.PostFormValue("breached_file")}
	changed, err := s.banned.Save(r.Context(), s.actor(r), version, next)
	if err == nil {
		s.saved(w, r, changed, i18n.Key("Saved password protection."), "/admin"+protectionPath)
		return nil
	}
	if !formProblem(err) {
		return err
	}
	v, verr := s.protectionView(w, r)
	if verr != nil {
		return verr
	}
	showProblemIn(r.Context(), &v.Page, err)
	v.Common, v.Personal, v.Custom, v.BreachedFile = next.Common, next.Personal, r.PostFormValue("custom"), next.BreachedFile
	s.render(w, r, statusOf(err), web.ProtectionPage(v))
	return nil
}
