package handlers

import (
	"context"
	"net/http"
	"strconv"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/errs"
	"github.com/writeback/writeback/services/i18n"
	"github.com/writeback/writeback/services/selfservice"
	"github.com/writeback/writeback/services/sms"
	"github.com/writeback/writeback/web"
)

// SMSService is what the Text messages page and the mobile number on
// /register need of services/selfservice.
type SMSService interface {
	SMSSettings(ctx context.Context) (selfservice.SMSSettings, settingsMeta, error)
	SMSStatus(ctx context.Context) (selfservice.SMSStatus, error)
	SaveSMS(ctx context.Context, actor audit.Actor, expectVersion int64, in selfservice.SMSInput) (bool, error)
	SendTestSMS(ctx context.Context, actor audit.Actor, to string) error
	BeginPhone(ctx context.Context, id, browser, number string, from audit.Actor) error
	ConfirmPhone(ctx context.Context, id, browser, code string, from audit.Actor) error
}

const smsPath = "/password-reset/text-messages"

// smsView is the page for the stored gateway.
func (s *Server) smsView(w http.ResponseWriter, r *http.Request) (web.SMSView, error) {
	m, meta, err := s.sms.SMSSettings(r.Context())
	if err != nil {
		return web.SMSView{}, err
	}
	ctx := r.Context()
	v := web.SMSView{Page: s.page(w, r, "sms", i18n.T(ctx, "Password reset"), i18n.T(ctx, "Text messages"),
		i18n.T(ctx, "The SMS gateway that sends verification codes by text message, and its limits.")),
		Version: meta.Version, HasSecret: m.SecretSealed != "", DefaultCap: selfservice.DefaultSMSDailyCap, UpdatedBy: meta.UpdatedBy, UpdatedAt: meta.UpdatedAt,
		Limits: web.SMSLimits{PerAccount: selfservice.SMSPerAccount, PerNumber: selfservice.SMSPerNumber, PerNumberDay: selfservice.SMSPerNumberDay,
			PerClient: selfservice.SMSPerClient, CooldownSeconds: int(selfservice.SMSCooldown.Seconds())}}
	for _, p := range sms.Presets() {
		v.Presets = append(v.Presets, web.SMSPreset{Key: p.Key, Label: i18n.T(ctx, p.Label)})
	}
	v.Presets = append(v.Presets, web.SMSPreset{Key: "custom", Label: i18n.T(ctx, "Another gateway (fill in the form yourself)")})
	fillSMS(&v, m.Config)
	v.DefaultRegion, v.AllowedRegions = m.DefaultRegion, strings.Join(m.AllowedRegions, ", ")
	if m.DailyCap > 0 {
		v.DailyCap = strconv.Itoa(m.DailyCap)
	}
	st, err := s.sms.SMSStatus(r.Context())
	if err != nil {
		return web.SMSView{}, err
	}
	if st.OK || !st.At.Before(meta.UpdatedAt) { // as the mail page: a failure before the last save was about other settings
		v.LastSendOK, v.LastSendMessage, v.LastSendAt = st.OK, st.Message, st.At
	}
	return v, nil
}

func fillSMS(v *web.SMSView, c sms.Config) {
	v.Preset, v.Method, v.URL, v.Headers, v.Encoding, v.Body = c.Preset, c.Method, c.URL, sms.HeadersText(c.Headers), c.Encoding, c.Body
	v.From, v.Auth, v.Username, v.AuthHeader = c.From, c.Auth, c.Username, c.AuthHead
	if v.Method == "" {
		v.Method = http.MethodPost
	}
}

func (s *Server) smsForm(w http.ResponseWriter, r *http.Request) error {
	v, err := s.smsView(w, r)
	if err != nil {
		return err
	}
	s.render(w, r, http.StatusOK, web.SMSPage(v))
	return nil
}

// smsPreset fills the form with a preset without saving anything.
func (s *Server) smsPreset(w http.ResponseWriter, r *http.Request) error {
	v, err := s.smsView(w, r)
	if err != nil {
		return err
	}
	key := r.PostFormValue("preset")
	if p, ok := sms.PresetByKey(key); ok {
		from := v.From
		fillSMS(&v, p.Config)
		if v.From == "" {
			v.From = from
		}
		v.PresetHelp = i18n.T(r.Context(), "%s Enter the secret, then Save.", i18n.T(r.Context(), p.Help))
	} else {
		v.Preset = "custom"
		v.PresetHelp = i18n.T(r.Context(), "Fill in your gateway's request: put {{to}} and {{message}} where it expects the number and the text.")
	}
	s.render(w, r, http.StatusOK, web.SMSPage(v))
	return nil
}

func (s *Server) smsSave(w http.ResponseWriter, r *http.Request) error {
	version, err := strconv.ParseInt(r.PostFormValue("version"), 10, 64)
	if err != nil {
		return errs.Invalidf("This form is missing its version. Reload the page and save again.")
	}
	c := sms.Config{Preset: r.PostFormValue("preset"), Method: r.PostFormValue("method"), URL: r.PostFormValue("url"), Encoding: r.PostFormValue("encoding"),
		Body: r.PostFormValue("body"), From: r.PostFormValue("from"), Auth: r.PostFormValue("auth"), Username: r.PostFormValue("username"),
		AuthHead: r.PostFormValue("auth_header")}
	// fields are the form's own problems, in the reader's language.
	fields := map[string]string{}
	hs, herr := sms.ParseHeaders(r.PostFormValue("headers"))
	if herr != nil {
		fields = errs.FieldsIn(r.Context(), herr)
	}
	c.Headers = hs
	capText := strings.TrimSpace(r.PostFormValue("daily_cap"))
	daily := 0
	if capText != "" {
		if daily, err = strconv.Atoi(capText); err != nil || daily < 1 {
			fields["daily_cap"] = i18n.T(r.Context(), "Enter a whole number from 1 to 100000, or leave it empty for the default.")
		}
	}
	in := selfservice.SMSInput{Config: c, Secret: r.PostFormValue("secret"), DefaultRegion: r.PostFormValue("default_region"),
		AllowedRegions: strings.Split(r.PostFormValue("allowed_regions"), ","), DailyCap: daily}
	if len(fields) > 0 {
		err = errs.E(errs.Invalid, errs.MsgFieldsInvalid, nil) // fields holds the messages
	} else {
		_, err = s.sms.SaveSMS(r.Context(), s.actor(r), version, in)
	}
	if err == nil {
		s.flash(w, r, i18n.T(r.Context(), "Saved the text message gateway. Use Send test message to check it."))
		seeOther(w, r, "/admin"+smsPath)
		return nil
	}
	if k := errs.KindOf(err); k != errs.Invalid && k != errs.Conflict {
		return err
	}
	v, verr := s.smsView(w, r)
	if verr != nil {
		return verr
	}
	// Keep what was typed (never the secret).
	fillSMS(&v, c)
	v.Headers = r.PostFormValue("headers")
	v.DefaultRegion, v.AllowedRegions, v.DailyCap = r.PostFormValue("default_region"), r.PostFormValue("allowed_regions"), capText
	if len(fields) > 0 {
		v.Fields = fields
	} else {
		showProblemIn(r.Context(), &v.Page, err)
	}
	s.render(w, r, statusOf(err), web.SMSPage(v))
	return nil
}

func (s *Server) smsTest(w http.ResponseWriter, r *http.Request) error {
	to := strings.TrimSpace(r.PostFormValue("to"))
	err := s.sms.SendTestSMS(r.Context(), s.actor(r), to)
	if err == nil {
		s.flash(w, r, i18n.T(r.Context(), "Sent a test message. Check that it arrived."))
		seeOther(w, r, "/admin"+smsPath)
		return nil
	}
	if errs.KindOf(err) == errs.Internal {
		return err
	}
	v, verr := s.smsView(w, r)
	if verr != nil {
		return verr
	}
	v.TestTo = to
	if f := errs.FieldsIn(r.Context(), err); len(f) > 0 {
		v.Fields = f
	} else {
		v.Errors = []string{i18n.T(r.Context(), "The test message was not sent: %s", errs.MessageIn(r.Context(), err))}
	}
	s.render(w, r, http.StatusUnprocessableEntity, web.SMSPage(v))
	return nil
}

func (s *Server) registerPhone(w http.ResponseWriter, r *http.Request) error {
	number := r.PostFormValue("phone")
	err := s.sms.BeginPhone(r.Context(), chi.URLParam(r, "flow"), browserSecret(r), number, s.actor(r))
	return s.registerAfter(w, r, err, "", number)
}

func (s *Server) registerPhoneConfirm(w http.ResponseWriter, r *http.Request) error {
	err := s.sms.ConfirmPhone(r.Context(), chi.URLParam(r, "flow"), browserSecret(r), r.PostFormValue("phone_code"), s.actor(r))
	return s.registerAfter(w, r, err, "Your mobile number is registered.", "")
}
