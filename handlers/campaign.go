package handlers

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/campaign"
	"github.com/writeback/writeback/services/errs"
	"github.com/writeback/writeback/services/i18n"
	"github.com/writeback/writeback/web"
)

// CampaignService is what the Registration campaign page needs of
// services/campaign.
type CampaignService interface {
	Settings(ctx context.Context) (campaign.Settings, settingsMeta, error)
	Save(ctx context.Context, actor audit.Actor, expectVersion int64, next campaign.Settings) (bool, error)
	DryRun(ctx context.Context) (campaign.Enumeration, error)
	Start(ctx context.Context, actor audit.Actor) (campaign.Enumeration, error)
	Stop(ctx context.Context, actor audit.Actor) error
	Status(ctx context.Context) (campaign.Status, error)
}

// campaignPath is "Password reset › Registration campaign" (the path of
// web.Navigation's entry); Global Administrators only, as it reads the
// directory and mails people.
const campaignPath = "/password-reset/registration-campaign"

func (s *Server) campaignView(w http.ResponseWriter, r *http.Request) (web.CampaignView, error) {
	if s.campaign == nil {
		return web.CampaignView{}, errNotFound
	}
	st, meta, err := s.campaign.Settings(r.Context())
	if err != nil {
		return web.CampaignView{}, err
	}
	status, err := s.campaign.Status(r.Context())
	if err != nil {
		return web.CampaignView{}, err
	}
	ctx := r.Context()
	v := web.CampaignView{Page: s.page(w, r, "campaign", i18n.T(ctx, "Password reset"), i18n.T(ctx, "Registration campaign"),
		i18n.T(ctx, "Mail everyone in scope who has not registered enough methods, or whose re-confirmation is due, with a link to register.")),
		Version: meta.Version, Enabled: st.Enabled, Interval: strconv.Itoa(st.IntervalDays), PerMinute: strconv.Itoa(st.PerMinute),
		NotRegistered: st.NotRegistered, ReconfirmDue: st.ReconfirmDue, UpdatedBy: meta.UpdatedBy, UpdatedAt: meta.UpdatedAt,
		Running: status.Running, Next: status.Next,
		MinInterval: campaign.MinInterval, MaxInterval: campaign.MaxInterval, MinPerMinute: campaign.MinPerMinute, MaxPerMinute: campaign.MaxPerMinute}
	if l := status.Last; l != nil {
		v.Last = &web.CampaignRun{State: l.State, Started: msTime(l.StartedMS), Ended: msTime(l.EndedMS), StartedBy: l.StartedBy,
			Total: l.Total(), Queued: l.Queued + l.Sending, Sent: l.Sent, Skipped: l.Skipped, Failed: l.Failed}
	}
	return v, nil
}

func (s *Server) campaignForm(w http.ResponseWriter, r *http.Request) error {
	return s.campaignPage(w, r, http.StatusOK, func(*web.CampaignView) {})
}

func (s *Server) campaignSave(w http.ResponseWriter, r *http.Request) error {
	if s.campaign == nil {
		return errNotFound
	}
	version, err := formVersion(r)
	if err != nil {
		return err
	}
	enabled := r.PostFormValue("enabled") == "yes"
	notRegistered, reconfirm := r.PostFormValue("not_registered") == "yes", r.PostFormValue("reconfirm_due") == "yes"
	next, err := campaign.ParseSettings(enabled, r.PostFormValue("interval_days"), r.PostFormValue("per_minute"), notRegistered, reconfirm)
	if err == nil {
		var changed bool
		if changed, err = s.campaign.Save(r.Context(), s.actor(r), version, next); err == nil {
			s.saved(w, r, changed, i18n.Key("Saved the registration campaign."), "/admin"+campaignPath)
			return nil
		}
	}
	if !formProblem(err) {
		return err
	}
	return s.campaignPage(w, r, statusOf(err), func(v *web.CampaignView) {
		showProblemIn(r.Context(), &v.Page, err)
		v.Enabled, v.NotRegistered, v.ReconfirmDue = enabled, notRegistered, reconfirm
		v.Interval, v.PerMinute = r.PostFormValue("interval_days"), r.PostFormValue("per_minute")
	})
}

// campaignPage renders the page with status, after fill changed its view
// (a problem to show, the input kept, the dry run's result).
func (s *Server) campaignPage(w http.ResponseWriter, r *http.Request, status int, fill func(v *web.CampaignView)) error {
	v, err := s.campaignView(w, r)
	if err != nil {
		return err
	}
	fill(&v)
	s.render(w, r, status, web.CampaignPage(v))
	return nil
}

// campaignDryRun shows how many a run would mail now and the first of
// them; nothing is sent. A failure is shown on the page.
func (s *Server) campaignDryRun(w http.ResponseWriter, r *http.Request) error {
	if s.campaign == nil {
		return errNotFound
	}
	e, err := s.campaign.DryRun(r.Context())
	return s.campaignPage(w, r, http.StatusOK, func(v *web.CampaignView) {
		v.DryRun = true
		if err != nil {
			v.DryRunError = s.campaignError(r.Context(), "dry run", err)
		} else {
			v.Enumeration = enumerationView(r.Context(), e)
		}
	})
}

func (s *Server) campaignStart(w http.ResponseWriter, r *http.Request) error {
	if s.campaign == nil {
		return errNotFound
	}
	e, err := s.campaign.Start(r.Context(), s.actor(r))
	if err == nil {
		s.flash(w, r, i18n.T(r.Context(), "Started a run: %d people to mail, %d in scope.", e.ToMail, e.InScope))
		seeOther(w, r, "/admin"+campaignPath)
		return nil
	}
	status := statusOf(err)
	if !formProblem(err) {
		status = http.StatusOK // a directory failure: shown on the page, the settings stay usable
	}
	return s.campaignPage(w, r, status, func(v *web.CampaignView) { v.Errors = []string{s.campaignError(r.Context(), "start", err)} })
}

func (s *Server) campaignStop(w http.ResponseWriter, r *http.Request) error {
	if s.campaign == nil {
		return errNotFound
	}
	if err := s.campaign.Stop(r.Context(), s.actor(r)); err != nil {
		if !formProblem(err) {
			return err
		}
		return s.campaignPage(w, r, statusOf(err), func(v *web.CampaignView) { showProblemIn(r.Context(), &v.Page, err) })
	}
	s.flash(w, r, i18n.T(r.Context(), "Stopped the run. Nobody else is mailed in it."))
	seeOther(w, r, "/admin"+campaignPath)
	return nil
}

// campaignError is what the page says of a failure, in the reader's
// language: its safe message, or a pointer to the operator log for one on
// our side.
func (s *Server) campaignError(ctx context.Context, what string, err error) string {
	if errs.KindOf(err) == errs.Internal {
		s.log.Error("campaign: "+what, "err", err)
		return i18n.T(ctx, "That failed on our side; the operator log has the reason.")
	}
	return errs.MessageIn(ctx, err)
}

func enumerationView(ctx context.Context, e campaign.Enumeration) *web.CampaignEnumeration {
	out := &web.CampaignEnumeration{At: e.At, InScope: e.InScope, NotRegistered: e.NotRegistered, ReconfirmDue: e.ReconfirmDue,
		ToMail: e.ToMail, NoAddress: e.NoAddress}
	for _, p := range e.Sample {
		why := i18n.T(ctx, "Not registered enough")
		if p.Why == campaign.WhyReconfirm {
			why = i18n.T(ctx, "Re-confirmation due")
		}
		out.Sample = append(out.Sample, web.CampaignPerson{Login: p.Login, Name: p.Name, To: p.To, Why: why})
	}
	return out
}

// msTime is Unix milliseconds as a UTC time, zero for 0.
func msTime(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}
