package handlers

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/errs"
	"github.com/writeback/writeback/services/i18n"
	"github.com/writeback/writeback/services/mail"
	"github.com/writeback/writeback/services/selfservice"
	"github.com/writeback/writeback/store"
	"github.com/writeback/writeback/web"
)

// policyPage is one self-service policy page: its path segment, heading,
// lead sentence, and the policy fields it edits, named as the audit details
// of "Update self-service password reset policy" name them.
type policyPage struct {
	path, heading, lead string
	fields              []string
}

// policyPages are the self-service policy pages by navigation key.
var policyPages = map[string]policyPage{
	"properties": {"properties", i18n.Key("Properties"), i18n.Key("Choose who may use self-service password reset, how often one network address may try, and when scripts must pay for their tries."),
		[]string{"enabled", "group", "public_per_minute", "signin_per_minute", "challenge", "challenge_after"}},
	"methods": {"authentication-methods", i18n.Key("Authentication methods"), i18n.Key("Choose how people prove who they are, and how many methods a reset needs."),
		[]string{"methods", "required", "questions_to_register", "questions_to_answer", "questions"}},
	"registration": {"registration", i18n.Key("Registration"), i18n.Key("Choose how often people are asked to re-confirm the methods they registered."),
		[]string{"reconfirm_days"}},
	"notifications": {"notifications", i18n.Key("Notifications"), i18n.Key("Choose who is told by e-mail when a password is reset."),
		[]string{"notify_users", "notify_admins"}},
	"customization": {"customization", i18n.Key("Customization"), i18n.Key("Tell people who cannot finish where to get help."),
		[]string{"helpdesk", "org_name", "language"}},
}

// lastPolicyChange finds who last changed one of fields, and when. The five
// policy pages share one settings document, whose own "last saved" would
// show a Notifications save on the Properties page; the audit log records
// which fields each save changed. Zero when no retained event changed them.
func (s *Server) lastPolicyChange(ctx context.Context, fields []string) (string, time.Time, error) {
	f := store.AuditFilter{Activities: []string{audit.ActivityUpdateSSPRPolicy}, TargetID: selfservice.PolicyTargetID}
	var cur store.Cursor
	// Policy saves are rare; a few pages back is far enough in practice,
	// and bounds the cost of a page view.
	for range 10 {
		rows, next, err := s.audit.Query(ctx, f, cur, 100)
		if err != nil {
			return "", time.Time{}, err
		}
		for _, e := range rows {
			var d map[string]json.RawMessage
			if json.Unmarshal([]byte(e.Details), &d) != nil {
				continue
			}
			for _, k := range fields {
				if _, ok := d[k]; ok {
					by := e.ActorName
					if by == "" {
						by = e.ActorType
					}
					return by, time.UnixMilli(e.TimeMS).UTC(), nil
				}
			}
		}
		if next.IsZero() {
			break
		}
		cur = next
	}
	return "", time.Time{}, nil
}

func (s *Server) policyView(w http.ResponseWriter, r *http.Request, nav string) (web.PolicyView, error) {
	p, meta, err := s.selfservice.Policy(r.Context())
	if err != nil {
		return web.PolicyView{}, err
	}
	pg := policyPages[nav]
	v := web.PolicyView{Page: s.page(w, r, nav, i18n.T(r.Context(), "Password reset"), i18n.T(r.Context(), pg.heading), i18n.T(r.Context(), pg.lead)), Version: meta.Version,
		Enabled: p.Enabled, Group: p.Group, MethodEmail: p.Methods.Email, MethodApp: p.Methods.App, MethodQuestions: p.Methods.Questions,
		MethodSMS: p.Methods.SMS, MethodPasskey: p.Methods.Passkey, PasskeysAvailable: s.selfservice.PasskeysAvailable(),
		Required: p.Required, QuestionsToRegister: p.QuestionsToRegister, QuestionsToAnswer: p.QuestionsToAnswer,
		Questions: strings.Join(p.Questions, "\n"), ReconfirmDays: p.ReconfirmDays, NotifyUsers: p.NotifyUsers, NotifyAdmins: p.NotifyAdmins,
		Helpdesk: p.Helpdesk, OrgName: p.OrgName, Language: p.Language,
		PublicPerMinute: limitText(p.PublicPerMinute), SignInPerMinute: limitText(p.SignInPerMinute),
		DefaultPublicPerMinute: defaultLimit(s.cfg.PublicPerMinute), DefaultSignInPerMinute: defaultLimit(s.cfg.SignInPerMinute),
		MaxPerMinute: selfservice.MaxPerMinute,
		Challenge:    !p.ChallengeOff, ChallengeAfter: limitText(p.ChallengeAfter),
		DefaultChallengeAfter: selfservice.DefaultChallengeAfter, MaxChallengeAfter: selfservice.MaxChallengeAfter}
	if v.UpdatedBy, v.UpdatedAt, err = s.lastPolicyChange(r.Context(), pg.fields); err != nil {
		return web.PolicyView{}, err
	}
	v.Title = i18n.T(r.Context(), "Password reset | %s", i18n.T(r.Context(), pg.heading))
	return v, nil
}

func (s *Server) policyForm(nav string) func(http.ResponseWriter, *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		v, err := s.policyView(w, r, nav)
		if err != nil {
			return err
		}
		s.render(w, r, http.StatusOK, web.PolicyPage(v))
		return nil
	}
}

func atoiField(r *http.Request, name string, fields map[string]errs.Text) int {
	n, err := strconv.Atoi(strings.TrimSpace(r.PostFormValue(name)))
	if err != nil {
		fields[name] = errs.Textf("Enter a whole number.")
	}
	return n
}

// limitText is a rate limit as its field shows it: empty for the server's
// default.
func limitText(n int) string {
	if n == 0 {
		return ""
	}
	return strconv.Itoa(n)
}

// defaultLimit is the server's default rate limit of a Config value.
func defaultLimit(n int) int {
	if n <= 0 {
		return selfservice.DefaultPerMinute
	}
	return n
}

// limitField reads a rate limit field: empty is the server's default (0);
// ok is false when the form has no such field, so that a form without it
// (an older page still open in a browser) keeps the stored value.
func limitField(r *http.Request, name string, fields map[string]errs.Text) (n int, ok bool) {
	return numberField(r, name, selfservice.MaxPerMinute,
		errs.Textf("Enter a whole number from 1 to %d, or leave it empty for the server's default.", selfservice.MaxPerMinute), fields)
}

// numberField reads a field of 1 to maxN where empty is the default (0),
// as limitField does; msg is the field's error.
func numberField(r *http.Request, name string, maxN int, msg errs.Text, fields map[string]errs.Text) (n int, ok bool) {
	if _, ok := r.PostForm[name]; !ok {
		return 0, false
	}
	v := strings.TrimSpace(r.PostFormValue(name))
	if v == "" {
		return 0, true
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > maxN {
		fields[name] = msg
	}
	return n, true
}

func (s *Server) policySave(nav string) func(http.ResponseWriter, *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		version, err := strconv.ParseInt(r.PostFormValue("version"), 10, 64)
		if err != nil {
			return errs.Invalidf("This form is missing its version. Reload the page and save again.")
		}
		fields := map[string]errs.Text{}
		var change func(*selfservice.Policy)
		switch nav {
		case "properties":
			enabled, group := r.PostFormValue("enabled"), r.PostFormValue("group")
			public, setPublic := limitField(r, "public_per_minute", fields)
			signIn, setSignIn := limitField(r, "signin_per_minute", fields)
			challengeOn, setChallenge := r.PostFormValue("challenge"), false
			if challengeOn == "yes" || challengeOn == "no" {
				setChallenge = true
			}
			after, setAfter := numberField(r, "challenge_after", selfservice.MaxChallengeAfter,
				errs.Textf("Enter a whole number from 1 to %d, or leave it empty for the default, %d.", selfservice.MaxChallengeAfter, selfservice.DefaultChallengeAfter), fields)
			change = func(p *selfservice.Policy) {
				p.Enabled, p.Group = enabled, group
				if setChallenge {
					p.ChallengeOff = challengeOn == "no"
				}
				if setAfter {
					p.ChallengeAfter = after
				}
				if setPublic {
					p.PublicPerMinute = public
				}
				if setSignIn {
					p.SignInPerMinute = signIn
				}
			}
		case "methods":
			m := selfservice.Methods{Email: r.PostFormValue("method_email") == "yes", App: r.PostFormValue("method_app") == "yes",
				Questions: r.PostFormValue("method_questions") == "yes", SMS: r.PostFormValue("method_sms") == "yes",
				Passkey: r.PostFormValue("method_passkey") == "yes"}
			req := atoiField(r, "required", fields)
			reg, ans := atoiField(r, "questions_to_register", fields), atoiField(r, "questions_to_answer", fields)
			qs := lines(r.PostFormValue("questions"))
			change = func(p *selfservice.Policy) {
				p.Methods, p.Required, p.QuestionsToRegister, p.QuestionsToAnswer, p.Questions = m, req, reg, ans, qs
			}
		case "registration":
			days := atoiField(r, "reconfirm_days", fields)
			change = func(p *selfservice.Policy) { p.ReconfirmDays = days }
		case "notifications":
			users, admins := r.PostFormValue("notify_users") == "yes", r.PostFormValue("notify_admins") == "yes"
			change = func(p *selfservice.Policy) { p.NotifyUsers, p.NotifyAdmins = users, admins }
		case "customization":
			helpdesk, org, lang := r.PostFormValue("helpdesk"), r.PostFormValue("org_name"), r.PostFormValue("language")
			change = func(p *selfservice.Policy) { p.Helpdesk, p.OrgName, p.Language = helpdesk, org, lang }
		}
		if len(fields) == 0 {
			var changed bool
			changed, err = s.selfservice.SavePolicy(r.Context(), s.actor(r), version, policyPages[nav].heading, change)
			if err == nil {
				msg := i18n.T(r.Context(), "Saved. Nothing changed.")
				if changed {
					msg = i18n.T(r.Context(), "Saved the %s settings.", i18n.T(r.Context(), policyPages[nav].heading))
				}
				s.flash(w, r, msg)
				seeOther(w, r, "/admin/password-reset/"+policyPages[nav].path)
				return nil
			}
			if k := errs.KindOf(err); k != errs.Invalid && k != errs.Conflict {
				return err
			}
		}
		v, verr := s.policyView(w, r, nav)
		if verr != nil {
			return verr
		}
		// Keep what was typed.
		switch nav {
		case "properties":
			v.Enabled, v.Group = r.PostFormValue("enabled"), r.PostFormValue("group")
			if _, ok := r.PostForm["public_per_minute"]; ok {
				v.PublicPerMinute = r.PostFormValue("public_per_minute")
			}
			if _, ok := r.PostForm["signin_per_minute"]; ok {
				v.SignInPerMinute = r.PostFormValue("signin_per_minute")
			}
			if c := r.PostFormValue("challenge"); c == "yes" || c == "no" {
				v.Challenge = c == "yes"
			}
			if _, ok := r.PostForm["challenge_after"]; ok {
				v.ChallengeAfter = r.PostFormValue("challenge_after")
			}
		case "methods":
			v.MethodEmail, v.MethodApp, v.MethodQuestions = r.PostFormValue("method_email") == "yes", r.PostFormValue("method_app") == "yes", r.PostFormValue("method_questions") == "yes"
			v.MethodSMS = r.PostFormValue("method_sms") == "yes"
			v.MethodPasskey = r.PostFormValue("method_passkey") == "yes"
			v.Required, _ = strconv.Atoi(r.PostFormValue("required"))
			v.QuestionsToRegister, _ = strconv.Atoi(r.PostFormValue("questions_to_register"))
			v.QuestionsToAnswer, _ = strconv.Atoi(r.PostFormValue("questions_to_answer"))
			v.Questions = r.PostFormValue("questions")
		case "registration":
			v.ReconfirmDays, _ = strconv.Atoi(r.PostFormValue("reconfirm_days"))
		case "customization":
			v.Helpdesk, v.OrgName, v.Language = r.PostFormValue("helpdesk"), r.PostFormValue("org_name"), r.PostFormValue("language")
		}
		if len(fields) > 0 {
			v.Fields = errs.FieldsIn(r.Context(), errs.FieldTexts(fields))
		}
		if err != nil {
			if f := errs.FieldsIn(r.Context(), err); len(f) > 0 {
				v.Fields = f
			} else {
				v.Errors = []string{errs.MessageIn(r.Context(), err)}
			}
		}
		status := http.StatusUnprocessableEntity
		if errs.KindOf(err) == errs.Conflict {
			status = http.StatusConflict
		}
		s.render(w, r, status, web.PolicyPage(v))
		return nil
	}
}

func (s *Server) mailView(w http.ResponseWriter, r *http.Request) (web.MailView, error) {
	m, meta, err := s.selfservice.MailSettings(r.Context())
	if err != nil {
		return web.MailView{}, err
	}
	v := web.MailView{Page: s.page(w, r, "mail", i18n.T(r.Context(), "Password reset"), i18n.T(r.Context(), "Mail server"), i18n.T(r.Context(), "The SMTP server that sends verification codes and notifications.")),
		Version: meta.Version, Host: m.Host, Port: m.Port, TLS: string(m.TLS), From: m.From, Username: m.Username,
		HasPassword: m.PasswordSealed != "", CAPEM: m.CAPEM, UpdatedBy: meta.UpdatedBy, UpdatedAt: meta.UpdatedAt}
	st, err := s.mailStatus(r.Context(), meta)
	if err != nil {
		return web.MailView{}, err
	}
	v.LastSendOK, v.LastSendMessage, v.LastSendAt = st.OK, st.Message, st.At
	return v, nil
}

// mailStatus is the outcome of the last send, as the Mail server page and
// the setup checklist report it: a failure from before the mail settings
// were last saved is left out (zero), since it was news about the server
// as it was then, and the save is usually its fix. A success stays: no mail
// has failed since.
func (s *Server) mailStatus(ctx context.Context, saved settingsMeta) (selfservice.MailStatus, error) {
	st, err := s.selfservice.MailStatus(ctx)
	if err != nil || (!st.OK && st.At.Before(saved.UpdatedAt)) {
		return selfservice.MailStatus{}, err
	}
	return st, nil
}

func (s *Server) mailForm(w http.ResponseWriter, r *http.Request) error {
	v, err := s.mailView(w, r)
	if err != nil {
		return err
	}
	s.render(w, r, http.StatusOK, web.MailPage(v))
	return nil
}

func (s *Server) mailSave(w http.ResponseWriter, r *http.Request) error {
	version, err := strconv.ParseInt(r.PostFormValue("version"), 10, 64)
	if err != nil {
		return errs.Invalidf("This form is missing its version. Reload the page and save again.")
	}
	port, perr := strconv.Atoi(strings.TrimSpace(r.PostFormValue("port")))
	in := selfservice.MailInput{Host: r.PostFormValue("host"), Port: port, TLS: mail.TLSMode(r.PostFormValue("tls")), From: r.PostFormValue("from"),
		Username: r.PostFormValue("username"), Password: r.PostFormValue("password"), CAPEM: strings.TrimSpace(r.PostFormValue("ca_pem"))}
	if perr != nil {
		err = errs.FieldErrors(map[string]string{"port": "Enter a port number, e.g. 587."})
	} else {
		_, err = s.selfservice.SaveMail(r.Context(), s.actor(r), version, in)
	}
	if err == nil {
		s.flash(w, r, i18n.T(r.Context(), "Saved the mail server. Use Send test mail to check it."))
		seeOther(w, r, "/admin/password-reset/mail-server")
		return nil
	}
	if k := errs.KindOf(err); k != errs.Invalid && k != errs.Conflict {
		return err
	}
	v, verr := s.mailView(w, r)
	if verr != nil {
		return verr
	}
	v.Host, v.Port, v.TLS, v.From, v.Username, v.CAPEM = in.Host, in.Port, string(in.TLS), in.From, in.Username, in.CAPEM
	if f := errs.FieldsIn(r.Context(), err); len(f) > 0 {
		v.Fields = f
	} else {
		v.Errors = []string{errs.MessageIn(r.Context(), err)}
	}
	s.render(w, r, statusOf(err), web.MailPage(v))
	return nil
}

func (s *Server) mailTest(w http.ResponseWriter, r *http.Request) error {
	to := strings.TrimSpace(r.PostFormValue("to"))
	err := s.selfservice.SendTestMail(r.Context(), s.actor(r), to)
	if err == nil {
		s.flash(w, r, i18n.T(r.Context(), "Sent a test mail to %s.", to))
		seeOther(w, r, "/admin/password-reset/mail-server")
		return nil
	}
	if errs.KindOf(err) == errs.Internal {
		return err
	}
	v, verr := s.mailView(w, r)
	if verr != nil {
		return verr
	}
	v.TestTo = to
	v.Errors = []string{i18n.T(r.Context(), "The test mail was not sent: %s", errs.MessageIn(r.Context(), err))}
	s.render(w, r, http.StatusUnprocessableEntity, web.MailPage(v))
	return nil
}
