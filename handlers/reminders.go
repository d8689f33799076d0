package handlers

import (
	"context"
	"net/http"

	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/errs"
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
	return web.RemindersView{Page: s.page(w, r, "reminders", "Password reset", "Expiry reminders",
		"Mail people before their directory password expires, with a link to change it."),
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
	due, err := s.reminders.Plan(r.Context())
	if err != nil {
		if errs.KindOf(err) == errs.Internal {
			s.log.Error("reminders: dry run", "err", err)
			v.DryRunError = "The dry run failed on our side; the operator log has the reason."
			return
		}
		v.DryRunError = errs.MessageOf(err)
		return
	}
	for _, d := range due {
		row := web.ReminderRow{Login: d.User.Login, Name: d.User.DisplayName, To: selfservice.Mask(d.User.Email), Mailed: d.Skip == "",
			Expires: d.Expires, Left: reminders.LeftText(d.Left) + " left", Threshold: d.Threshold}
		if d.Skip != "" {
			row.To = "Not mailed: " + d.Skip
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
			s.saved(w, r, changed, "expiry reminders", "/admin"+remindersPath)
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
	showProblem(&v.Page, err)
	v.Enabled, v.Thresholds = enabled, r.PostFormValue("thresholds")
	s.render(w, r, statusOf(err), web.RemindersPage(v))
	return nil
}
