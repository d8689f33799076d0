package handlers

import (
	"context"
	"net/http"
	"slices"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/challenge"
	"github.com/writeback/writeback/services/directory"
	"github.com/writeback/writeback/services/errs"
	"github.com/writeback/writeback/services/i18n"
	"github.com/writeback/writeback/services/passkeys"
	"github.com/writeback/writeback/services/selfservice"
	"github.com/writeback/writeback/web"
)

// SelfService is what handlers need of services/selfservice.
type SelfService interface {
	Policy(ctx context.Context) (selfservice.Policy, settingsMeta, error)
	SavePolicy(ctx context.Context, actor audit.Actor, expectVersion int64, page string, change func(*selfservice.Policy)) (bool, error)
	MailSettings(ctx context.Context) (selfservice.MailSettings, settingsMeta, error)
	MailStatus(ctx context.Context) (selfservice.MailStatus, error)
	SaveMail(ctx context.Context, actor audit.Actor, expectVersion int64, in selfservice.MailInput) (bool, error)
	SendTestMail(ctx context.Context, actor audit.Actor, to string) error
	Available(ctx context.Context, kind string) (selfservice.Availability, error)
	Start(ctx context.Context, kind, login, browser string, from audit.Actor) (string, error)
	View(ctx context.Context, id, browser string) (selfservice.View, error)
	Choose(ctx context.Context, id, browser, method string, from audit.Actor) error
	Verify(ctx context.Context, id, browser, method, code string, answers []string, from audit.Actor) error
	Challenge(ctx context.Context, id, browser, ip string) (*challenge.Challenge, error)
	CheckChallenge(ctx context.Context, id, browser, ip, payload string) error
	SetPassword(ctx context.Context, id, browser, password, confirm string, from audit.Actor) error
	Unlock(ctx context.Context, id, browser string, from audit.Actor) error
	ChangePassword(ctx context.Context, login, current, next, confirm string, from audit.Actor) (selfservice.Changed, error)
	ConfirmMethods(ctx context.Context, id, browser string, from audit.Actor) error
	StartRegister(ctx context.Context, login, password, browser string, from audit.Actor) (string, error)
	Registration(ctx context.Context, id, browser string) (selfservice.Registration, error)
	BeginAltEmail(ctx context.Context, id, browser, addr string, from audit.Actor) error
	ConfirmAltEmail(ctx context.Context, id, browser, code string, from audit.Actor) error
	BeginApp(ctx context.Context, id, browser string) error
	ConfirmApp(ctx context.Context, id, browser, code string, from audit.Actor) error
	SaveQuestions(ctx context.Context, id, browser string, questions, answers []string, from audit.Actor) error
	PasskeysAvailable() bool
	BeginPasskeyRegistration(ctx context.Context, id, browser string) (passkeys.Options, string, error)
	FinishPasskeyRegistration(ctx context.Context, id, browser, sealed, name string, response []byte, from audit.Actor) error
	RemovePasskey(ctx context.Context, id, browser, credentialID string, from audit.Actor) error
}

// browser is the secret that binds self-service flows to this browser
// session; only its hash is stored with a flow.
func browserSecret(r *http.Request) string {
	st := state(r)
	if st.sess == nil {
		return ""
	}
	b, _ := st.sess.Values["bid"].(string)
	return b
}

func (s *Server) public(w http.ResponseWriter, r *http.Request, heading, lead string, av selfservice.Availability) web.Public {
	p := s.page(w, r, "", "", heading, lead)
	return web.Public{Page: p, OrgName: av.OrgName, Helpdesk: av.Helpdesk, HelpHref: av.HelpHref}
}

func (s *Server) start(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	av, err := s.selfservice.Available(r.Context(), selfservice.KindReset)
	if err != nil {
		return err
	}
	v := web.StartView{Public: s.public(w, r, i18n.T(ctx, "Get back into your account"), i18n.T(ctx, "Reset a forgotten password, unlock your account, or change your password."), av),
		Available: av.OK, Reason: say(ctx, av.Reason), UnlockOffer: av.Unlock}
	s.render(w, r, http.StatusOK, web.StartPage(v))
	return nil
}

// kindOf tells the flow kind from the path: /unlock… or /reset….
func kindOf(r *http.Request) string {
	if strings.HasPrefix(r.URL.Path, "/unlock") {
		return selfservice.KindUnlock
	}
	return selfservice.KindReset
}

func whoHeading(ctx context.Context, kind string) (string, string) {
	if kind == selfservice.KindUnlock {
		return i18n.T(ctx, "Unlock your account"), i18n.T(ctx, "Prove it's you, and we unlock your account. Your password stays the same.")
	}
	return i18n.T(ctx, "Get back into your account"), i18n.T(ctx, "Who are you? Type your user name or e-mail address.")
}

func (s *Server) whoForm(w http.ResponseWriter, r *http.Request) error {
	kind := kindOf(r)
	av, err := s.selfservice.Available(r.Context(), kind)
	if err != nil {
		return err
	}
	h, lead := whoHeading(r.Context(), kind)
	v := web.WhoView{Public: s.public(w, r, h, lead, av), Kind: kind}
	if !av.OK {
		v.Unavailable = i18n.T(r.Context(), av.Reason)
	}
	s.render(w, r, http.StatusOK, web.WhoPage(v))
	return nil
}

func (s *Server) whoSubmit(w http.ResponseWriter, r *http.Request) error {
	kind := kindOf(r)
	login := r.PostFormValue("login")
	id, err := s.selfservice.Start(r.Context(), kind, login, browserSecret(r), s.actor(r))
	if err != nil {
		k := errs.KindOf(err)
		if k == errs.Internal {
			return err
		}
		av, aerr := s.selfservice.Available(r.Context(), kind)
		if aerr != nil {
			return aerr
		}
		h, lead := whoHeading(r.Context(), kind)
		v := web.WhoView{Public: s.public(w, r, h, lead, av), Kind: kind, Login: login}
		if f := errs.FieldsIn(r.Context(), err); len(f) > 0 {
			v.Fields = f
		} else if k == errs.Forbidden {
			v.Unavailable = errs.MessageIn(r.Context(), err)
		} else {
			v.Errors = []string{errs.MessageIn(r.Context(), err)}
		}
		s.render(w, r, statusOf(err), web.WhoPage(v))
		return nil
	}
	seeOther(w, r, kindPath(kind)+"/"+id)
	return nil
}

// say is a text of the catalogue in the reader's language; "" stays "".
func say(ctx context.Context, key string) string {
	if key == "" {
		return ""
	}
	return i18n.T(ctx, key)
}

func kindPath(kind string) string {
	if kind == selfservice.KindUnlock {
		return "/unlock"
	}
	return "/reset"
}

func rulesOf(p directory.Policy, has bool) web.Rules {
	if !has {
		return web.Rules{}
	}
	return web.Rules{Has: true, MinLength: p.MinLength, Complexity: p.Complexity, History: p.HistoryLength, HistoryOnReset: p.HistoryEnforcedOnReset}
}

// stepPage renders the current step of a flow, with an optional problem.
func (s *Server) stepPage(w http.ResponseWriter, r *http.Request, id string, status int, problem error) error {
	kind := kindOf(r)
	fv, err := s.selfservice.View(r.Context(), id, browserSecret(r))
	if err != nil {
		return err
	}
	if fv.Kind != kind {
		return selfservice.ErrFlowGone
	}
	av, err := s.selfservice.Available(r.Context(), kind)
	if err != nil {
		return err
	}
	heading := say(r.Context(), map[string]string{
		selfservice.StepChoose: i18n.Key("Prove it's you"), selfservice.StepCode: i18n.Key("Enter the code"), selfservice.StepApp: i18n.Key("Enter the code"), selfservice.StepSMS: i18n.Key("Enter the code"),
		selfservice.StepQuestions: i18n.Key("Answer your security questions"), selfservice.StepPassword: i18n.Key("Choose a new password"),
		selfservice.StepUnlock: i18n.Key("Unlock your account"), selfservice.StepDone: i18n.Key("Done"), selfservice.StepBlocked: i18n.Key("Try again later"),
		selfservice.StepPasskey: i18n.Key("Use your passkey"),
	}[fv.Step])
	v := web.StepView{Public: s.public(w, r, heading, "", av), Kind: kind, ID: fv.ID, Step: fv.Step, Verified: fv.Verified,
		Required: fv.Required, Questions: fv.Questions, Masked: fv.Masked, MaskedPhone: fv.MaskedPhone, SMSTrouble: fv.SMSTrouble, NotLocked: fv.NotLocked,
		Rules: rulesOf(fv.Policy, fv.HasPolicy), PasskeyOptions: fv.PasskeyOptions}
	for _, m := range fv.Methods {
		v.Methods = append(v.Methods, web.MethodOption{Key: m, Label: selfservice.MethodLabel(m)})
	}
	if fv.Step == selfservice.StepPassword {
		if v.Meter, err = s.meter(r.Context(), "password", "", fv.Personal...); err != nil {
			return err
		}
	}
	if guarded(fv.Step) && (fv.Step != selfservice.StepChoose || slices.Contains(fv.Methods, selfservice.MethodEmail) || slices.Contains(fv.Methods, selfservice.MethodSMS)) {
		c, err := s.selfservice.Challenge(r.Context(), id, browserSecret(r), s.clientIP(r))
		if err != nil {
			return err
		}
		if c != nil {
			v.Challenge = c.JSON()
		}
	}
	// The blocked step says it all by itself: the error that led there
	// would only repeat it.
	if problem != nil && fv.Step != selfservice.StepBlocked {
		ctx := r.Context()
		if f := errs.FieldsIn(ctx, problem); len(f) > 0 {
			v.Fields = f
		} else if challenge.Refused(problem) {
			v.Errors = []string{errs.MessageIn(ctx, problem)}
		} else if fv.Step == selfservice.StepCode || fv.Step == selfservice.StepApp || fv.Step == selfservice.StepSMS {
			v.Fields = map[string]string{"code": errs.MessageIn(ctx, problem)}
		} else {
			v.Errors = []string{errs.MessageIn(ctx, problem)}
		}
	}
	s.render(w, r, status, web.StepPage(v))
	return nil
}

func (s *Server) stepShow(w http.ResponseWriter, r *http.Request) error {
	return s.stepPage(w, r, chi.URLParam(r, "flow"), http.StatusOK, nil)
}

// stepAfter redirects after a successful POST, or re-renders with the problem.
func (s *Server) stepAfter(w http.ResponseWriter, r *http.Request, err error) error {
	id := chi.URLParam(r, "flow")
	if err == nil {
		seeOther(w, r, kindPath(kindOf(r))+"/"+id)
		return nil
	}
	if k := errs.KindOf(err); k == errs.Internal || err == selfservice.ErrFlowGone {
		return err
	}
	return s.stepPage(w, r, id, statusOf(err), err)
}

// guarded tells the steps whose form sends a code or has an answer
// checked: those that may ask for a solved challenge (the choice of a
// method only when a method that sends a code is offered).
func guarded(step string) bool {
	switch step {
	case selfservice.StepChoose, selfservice.StepCode, selfservice.StepSMS, selfservice.StepApp, selfservice.StepQuestions:
		return true
	}
	return false
}

// passChallenge lets a step that sends a code or checks an answer go on:
// nil when no challenge is needed or the form carries a solution of one
// (its "pow" field). Otherwise nothing has been sent or counted.
func (s *Server) passChallenge(r *http.Request, id string) error {
	return s.selfservice.CheckChallenge(r.Context(), id, browserSecret(r), s.clientIP(r), r.PostFormValue("pow"))
}

func (s *Server) stepMethod(w http.ResponseWriter, r *http.Request) error {
	id, method := chi.URLParam(r, "flow"), r.PostFormValue("method")
	if method == "" { // "Use another method": back to the choice
		return s.stepAfter(w, r, s.selfservice.Choose(r.Context(), id, browserSecret(r), "", s.actor(r)))
	}
	if method == selfservice.MethodEmail || method == selfservice.MethodSMS {
		if err := s.passChallenge(r, id); err != nil {
			return s.stepAfter(w, r, err)
		}
	}
	return s.stepAfter(w, r, s.selfservice.Choose(r.Context(), id, browserSecret(r), method, s.actor(r)))
}

func (s *Server) stepVerify(w http.ResponseWriter, r *http.Request) error {
	id := chi.URLParam(r, "flow")
	_ = r.ParseForm()
	if err := s.passChallenge(r, id); err != nil {
		return s.stepAfter(w, r, err)
	}
	method, code := r.PostFormValue("method"), r.PostFormValue("code")
	if method == selfservice.MethodPasskey {
		code = r.PostFormValue("credential") // the browser's assertion (JSON)
	}
	err := s.selfservice.Verify(r.Context(), id, browserSecret(r), method, code, r.PostForm["answer"], s.actor(r))
	return s.stepAfter(w, r, err)
}

func (s *Server) stepPassword(w http.ResponseWriter, r *http.Request) error {
	id := chi.URLParam(r, "flow")
	err := s.selfservice.SetPassword(r.Context(), id, browserSecret(r), r.PostFormValue("password"), r.PostFormValue("confirm"), s.actor(r))
	return s.stepAfter(w, r, err)
}

// stepUnlock tries the unlock of a verified unlock flow again after it failed.
func (s *Server) stepUnlock(w http.ResponseWriter, r *http.Request) error {
	return s.stepAfter(w, r, s.selfservice.Unlock(r.Context(), chi.URLParam(r, "flow"), browserSecret(r), s.actor(r)))
}

func (s *Server) changeForm(w http.ResponseWriter, r *http.Request) error {
	av, err := s.selfservice.Available(r.Context(), selfservice.KindReset)
	if err != nil {
		return err
	}
	v := web.ChangeView{Public: s.public(w, r, i18n.T(r.Context(), "Change your password"), i18n.T(r.Context(), "Works also when your password has expired or must be changed."), av)}
	v.Done = r.URL.Query().Get("done") == "1"
	v.Reconfirm = v.Done && r.URL.Query().Get("reconfirm") == "1"
	if v.Meter, err = s.meter(r.Context(), "password", "login"); err != nil {
		return err
	}
	s.render(w, r, http.StatusOK, web.ChangePage(v))
	return nil
}

func (s *Server) changeSubmit(w http.ResponseWriter, r *http.Request) error {
	login := r.PostFormValue("login")
	ch, err := s.selfservice.ChangePassword(r.Context(), login, r.PostFormValue("current"), r.PostFormValue("password"), r.PostFormValue("confirm"), s.actor(r))
	if err == nil {
		if ch.ReconfirmDue {
			seeOther(w, r, "/change?done=1&reconfirm=1")
			return nil
		}
		seeOther(w, r, "/change?done=1")
		return nil
	}
	if errs.KindOf(err) == errs.Internal {
		return err
	}
	av, aerr := s.selfservice.Available(r.Context(), selfservice.KindReset)
	if aerr != nil {
		return aerr
	}
	v := web.ChangeView{Public: s.public(w, r, i18n.T(r.Context(), "Change your password"), "", av), Login: login}
	if v.Meter, aerr = s.meter(r.Context(), "password", "login"); aerr != nil {
		return aerr
	}
	if f := errs.FieldsIn(r.Context(), err); len(f) > 0 {
		v.Fields = f
	} else {
		v.Errors = []string{errs.MessageIn(r.Context(), err)}
	}
	s.render(w, r, statusOf(err), web.ChangePage(v))
	return nil
}

func (s *Server) registerForm(w http.ResponseWriter, r *http.Request) error {
	av, err := s.selfservice.Available(r.Context(), selfservice.KindRegister)
	if err != nil {
		return err
	}
	v := web.RegisterSignInView{Public: s.public(w, r, i18n.T(r.Context(), "Set up how you prove it's you"), i18n.T(r.Context(), "Sign in with your directory password to register an e-mail address, an authenticator app or security questions."), av)}
	if !av.OK {
		v.Errors = []string{i18n.T(r.Context(), av.Reason)}
	}
	s.render(w, r, http.StatusOK, web.RegisterSignInPage(v))
	return nil
}

func (s *Server) registerSubmit(w http.ResponseWriter, r *http.Request) error {
	login := r.PostFormValue("login")
	id, err := s.selfservice.StartRegister(r.Context(), login, r.PostFormValue("password"), browserSecret(r), s.actor(r))
	if err == nil {
		seeOther(w, r, "/register/"+id)
		return nil
	}
	if errs.KindOf(err) == errs.Internal {
		return err
	}
	av, aerr := s.selfservice.Available(r.Context(), selfservice.KindRegister)
	if aerr != nil {
		return aerr
	}
	v := web.RegisterSignInView{Public: s.public(w, r, i18n.T(r.Context(), "Set up how you prove it's you"), "", av), Login: login}
	if f := errs.FieldsIn(r.Context(), err); len(f) > 0 {
		v.Fields = f
	} else {
		v.Errors = []string{errs.MessageIn(r.Context(), err)}
	}
	s.render(w, r, statusOf(err), web.RegisterSignInPage(v))
	return nil
}

func (s *Server) registerPage(w http.ResponseWriter, r *http.Request, status int, problem error, emailInput string) error {
	id := chi.URLParam(r, "flow")
	reg, err := s.selfservice.Registration(r.Context(), id, browserSecret(r))
	if err != nil {
		return err
	}
	av, err := s.selfservice.Available(r.Context(), selfservice.KindRegister)
	if err != nil {
		return err
	}
	v := web.RegisterView{Public: s.public(w, r, i18n.T(r.Context(), "Your verification methods"), i18n.T(r.Context(), "Signed in as %s. Register at least as many methods as a reset needs.", reg.Login), av),
		ID: reg.ID, Login: reg.Login, AllowEmail: reg.Allowed.Email, AllowApp: reg.Allowed.App, AllowQuestions: reg.Allowed.Questions,
		DirectoryEmail: reg.DirectoryEmail, AltEmail: reg.AltEmail, App: reg.App, Questions: reg.Questions, PendingEmail: reg.PendingEmail,
		AppSecret: reg.AppSecret, AppQR: reg.AppQR, AppURL: reg.AppURL, Choices: reg.Choices, ToRegister: reg.ToRegister, Stale: reg.Stale,
		EmailInput: emailInput, AllowSMS: reg.Allowed.SMS && s.sms != nil, Phone: reg.Phone, DirectoryPhone: reg.DirectoryPhone,
		PendingPhone: reg.PendingPhone, AllowPasskey: reg.PasskeysOn}
	for _, k := range reg.Passkeys {
		v.Passkeys = append(v.Passkeys, web.Passkey{ID: k.ID, Name: k.Name, Created: k.Created, LastUsed: k.LastUsed})
	}
	if reg.PasskeysOn {
		// A fresh request to register one more; its sealed state waits in
		// the session for the answer (used once).
		opts, sealed, err := s.selfservice.BeginPasskeyRegistration(r.Context(), id, browserSecret(r))
		if err != nil {
			return err
		}
		v.PasskeyOptions = string(opts)
		st := state(r)
		st.sess.Values[keyCerEmployeePasskey] = sealed
		if err := st.sess.Save(r, w); err != nil {
			return err
		}
	}
	if problem != nil && errs.FieldsOf(problem)["phone"] != "" {
		v.PhoneInput, v.EmailInput = emailInput, ""
	}
	if problem != nil {
		if f := errs.FieldsIn(r.Context(), problem); len(f) > 0 {
			v.Fields = f
		} else {
			v.Errors = []string{errs.MessageIn(r.Context(), problem)}
		}
	}
	s.render(w, r, status, web.RegisterPage(v))
	return nil
}

func (s *Server) registerShow(w http.ResponseWriter, r *http.Request) error {
	return s.registerPage(w, r, http.StatusOK, nil, "")
}

func (s *Server) registerAfter(w http.ResponseWriter, r *http.Request, err error, flash, emailInput string) error {
	if err == nil {
		if flash != "" {
			s.flash(w, r, i18n.T(r.Context(), flash))
		}
		seeOther(w, r, "/register/"+chi.URLParam(r, "flow"))
		return nil
	}
	if errs.KindOf(err) == errs.Internal || err == selfservice.ErrFlowGone {
		return err
	}
	return s.registerPage(w, r, statusOf(err), err, emailInput)
}

func (s *Server) registerEmail(w http.ResponseWriter, r *http.Request) error {
	addr := r.PostFormValue("email")
	return s.registerAfter(w, r, s.selfservice.BeginAltEmail(r.Context(), chi.URLParam(r, "flow"), browserSecret(r), addr, s.actor(r)), "", addr)
}

func (s *Server) registerEmailConfirm(w http.ResponseWriter, r *http.Request) error {
	err := s.selfservice.ConfirmAltEmail(r.Context(), chi.URLParam(r, "flow"), browserSecret(r), r.PostFormValue("code"), s.actor(r))
	return s.registerAfter(w, r, err, i18n.Key("Your alternate e-mail address is registered."), "")
}

func (s *Server) registerApp(w http.ResponseWriter, r *http.Request) error {
	return s.registerAfter(w, r, s.selfservice.BeginApp(r.Context(), chi.URLParam(r, "flow"), browserSecret(r)), "", "")
}

func (s *Server) registerAppConfirm(w http.ResponseWriter, r *http.Request) error {
	err := s.selfservice.ConfirmApp(r.Context(), chi.URLParam(r, "flow"), browserSecret(r), r.PostFormValue("app_code"), s.actor(r))
	return s.registerAfter(w, r, err, i18n.Key("Your authenticator app is registered."), "")
}

func (s *Server) registerConfirm(w http.ResponseWriter, r *http.Request) error {
	err := s.selfservice.ConfirmMethods(r.Context(), chi.URLParam(r, "flow"), browserSecret(r), s.actor(r))
	return s.registerAfter(w, r, err, i18n.Key("Thank you: your methods are confirmed."), "")
}

func (s *Server) registerQuestions(w http.ResponseWriter, r *http.Request) error {
	_ = r.ParseForm()
	err := s.selfservice.SaveQuestions(r.Context(), chi.URLParam(r, "flow"), browserSecret(r), r.PostForm["question"], r.PostForm["answer"], s.actor(r))
	return s.registerAfter(w, r, err, i18n.Key("Your security questions are registered."), "")
}

// keyCerEmployeePasskey is the session value of an employee's passkey
// registration in progress (sealed by services/selfservice, bound to the
// registration flow).
const keyCerEmployeePasskey = "cer_sspr_passkey"

func (s *Server) registerPasskey(w http.ResponseWriter, r *http.Request) error {
	sealed := sessString(r, keyCerEmployeePasskey)
	delete(state(r).sess.Values, keyCerEmployeePasskey) // used once, whatever the outcome
	err := s.selfservice.FinishPasskeyRegistration(r.Context(), chi.URLParam(r, "flow"), browserSecret(r), sealed, r.PostFormValue("passkey-name"),
		[]byte(r.PostFormValue("credential")), s.actor(r))
	return s.registerAfter(w, r, err, i18n.Key("Your passkey is registered."), "")
}

func (s *Server) registerPasskeyRemove(w http.ResponseWriter, r *http.Request) error {
	err := s.selfservice.RemovePasskey(r.Context(), chi.URLParam(r, "flow"), browserSecret(r), chi.URLParam(r, "credential"), s.actor(r))
	return s.registerAfter(w, r, err, i18n.Key("The passkey is removed. Remove it from your device too, in its passkey or password settings."), "")
}
