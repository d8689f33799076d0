package handlers

import (
	"context"
	"net/http"

	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/errs"
	"github.com/writeback/writeback/services/i18n"
	"github.com/writeback/writeback/services/reminders"
	"github.com/writeback/writeback/services/selfservice"
	"github.com/writeback/writeback/web"
)

// RemindersService is what the Expiry reminders page needs of
// services/reminders.
type RemindersService interface {
	Settings(ctx context.Context) (reminders.Settings, settingsMeta, error)
	Save(ctx context.Context, actor audit.Actor, expectVersion int64, next reminders.Settings) (bool, error)
	Plan(ctx context.Context) ([]reminders.Due, error)
}

// remindersPath is "Password reset › Expiry reminders" (the path of
// web.Navigation's entry).
const remindersPath = "/password-reset/expiry-reminders"

func (s *Server) remindersView(w http.ResponseWriter, r *http.Request) (web.RemindersView, error) {
	if s.reminders == nil {
		return web.RemindersView{}, errNotFound
	}
	st, meta, err := s.reminders.Settings(r.Context())
	if err != nil {
		return web.RemindersView{}, err
	}
	ctx := r.Context()
	return web.RemindersView{Page: s.page(w, r, "reminders", i18n.T(ctx, "Password reset"), i18n.T(ctx, "Expiry reminders"),
		i18n.T(ctx, "Mail people before their directory password expires, with a link to change it.")),
		Version: meta.Version, Enabled: st.Enabled, Thresholds: reminders.FormatThresholds(st.Thresholds),
		UpdatedBy: meta.UpdatedBy, UpdatedAt: meta.UpdatedAt}, nil
}

func (s *Server) remindersForm(w http.ResponseWriter, r *http.Request) error {
	v, err := s.remindersView(w, r)
	if err != nil {
		return err
	}
	// The dry run reads the directory and lists people: Global
	// Administrators only (the page shows its button to them alone).
	if r.URL.Query().Get("dry-run") != "" && v.Viewer.IsGlobal() {
		s.dryRun(r, &v)
	}
	s.render(w, r, http.StatusOK, web.RemindersPage(v))
	return nil
}

// dryRun fills v with who would be mailed now; a failure is shown on the
// page (the administrator asked, and the settings stay usable).
func (s *Server) dryRun(r *http.Request, v *web.RemindersView) {
	v.DryRun = true
	ctx := r.Context()
	due, err := s.reminders.Plan(ctx)
	if err != nil {
		if errs.KindOf(err) == errs.Internal {
			s.log.Error("reminders: dry run", "err", err)
			v.DryRunError = i18n.T(ctx, "The dry run failed on our side; the operator log has the reason.")
			return
		}
		v.DryRunError = errs.MessageIn(ctx, err)
		return
	}
	for _, d := range due {
		row := web.ReminderRow{Login: d.User.Login, Name: d.User.DisplayName, To: selfservice.Mask(d.User.Email), Mailed: d.Skip == "",
			Expires: d.Expires, Left: i18n.T(ctx, "%s left", reminders.LeftIn(i18n.LangOf(ctx), d.Left)), Threshold: d.Threshold}
		if d.Skip != "" {
			row.To = i18n.T(ctx, "Not mailed: %s", i18n.T(ctx, d.Skip))
		}
		v.Due = append(v.Due, row)
	}
}

func (s *Server) remindersSave(w http.ResponseWriter, r *http.Request) error {
	if s.reminders == nil {
		return errNotFound
	}
	version, err := formVersion(r)
	if err != nil {
		return err
	}
	enabled := r.PostFormValue("enabled") == "yes"
	thresholds, err := reminders.ParseThresholds(r.PostFormValue("thresholds"))
	if err == nil {
		var changed bool
		changed, err = s.reminders.Save(r.Context(), s.actor(r), version, reminders.Settings{Enabled: enabled, Thresholds: thresholds})
		if err == nil {
			s.saved(w, r, changed, i18n.Key("Saved expiry reminders."), "/admin"+remindersPath)
			return nil
		}
	}
	if !formProblem(err) {
		return err
	}
	v, verr := s.remindersView(w, r)
	if verr != nil {
		return verr
	}
	showProblemIn(r.Context(), &v.Page, err)
	v.Enabled, v.Thresholds = enabled, r.PostFormValue("thresholds")
	s.render(w, r, statusOf(err), web.RemindersPage(v))
	return nil
}
