package handlers

import (
	"context"
	"errors"
	"net/http"
	"net/url"

	"github.com/writeback/writeback/services/admins"
	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/errs"
	"github.com/writeback/writeback/services/i18n"
	"github.com/writeback/writeback/services/passkeys"
	"github.com/writeback/writeback/store"
	"github.com/writeback/writeback/web"
)

// SignInFactors is what the sign-in's second step and the enrolment of a
// second factor need of services/admins.
type SignInFactors interface {
	ResolvePending(ctx context.Context, raw string) (admins.Pending, error)
	CancelPending(ctx context.Context, raw string) error
	Factors(ctx context.Context, adminID int64) ([]admins.Factor, int, error)
	PasskeysAvailable() bool
	Policy(ctx context.Context) (admins.Policy, settingsMeta, error)
	VerifyTOTP(ctx context.Context, p admins.Pending, code string, from audit.Actor) (string, error)
	VerifyRecoveryCode(ctx context.Context, p admins.Pending, code string, from audit.Actor) (string, error)
	BeginPasskeySignIn(ctx context.Context, p admins.Pending) (passkeys.Options, string, error)
	VerifyPasskey(ctx context.Context, p admins.Pending, sealed string, response []byte, from audit.Actor) (string, error)
	BeginTOTP(a store.Admin, bind, sealed string) (admins.TOTPSetup, error)
	ConfirmTOTP(ctx context.Context, actor audit.Actor, a store.Admin, bind, sealed, name, code string) ([]string, error)
	BeginPasskeyRegistration(ctx context.Context, a store.Admin, bind string) (passkeys.Options, string, error)
	FinishPasskeyRegistration(ctx context.Context, actor audit.Actor, a store.Admin, bind, sealed, name string, response []byte) ([]string, error)
	FinishEnrolSignIn(ctx context.Context, p admins.Pending, from audit.Actor) (string, error)
}

// Session values of the sign-in's second step and of enrolment. Ceremony
// state is sealed by services/admins, bound to the administrator and to
// the session or half-signed-in state it was made in.
const (
	keyPending    = "pid"         // raw ID of the half-signed-in state
	keyCerSignIn  = "cer_signin"  // passkey assertion in progress
	keyCerTOTP    = "cer_totp"    // authenticator secret being enrolled
	keyCerPasskey = "cer_passkey" // passkey registration in progress
)

var errExpiredSignIn = admins.ErrSignInExpired

// bindOf names the session or half-signed-in state ceremony state is
// bound to: the hash its row is stored under.
func bindOf(raw string) string { return admins.HashID(raw) }

func sessString(r *http.Request, key string) string {
	v, _ := state(r).sess.Values[key].(string)
	return v
}

// withPending runs fn for a half-signed-in administrator at stage; without
// one (never signed in, timed out) the browser goes back to the sign-in
// page, and a fully signed-in administrator on to where they were going.
func (s *Server) withPending(stage string, fn func(w http.ResponseWriter, r *http.Request, p admins.Pending) error) http.HandlerFunc {
	return s.handle(func(w http.ResponseWriter, r *http.Request) error {
		st := state(r)
		next := safeNext(r.FormValue("next"))
		if st.admin != nil {
			seeOther(w, r, next)
			return nil
		}
		p, err := s.factors.ResolvePending(r.Context(), sessString(r, keyPending))
		if errors.Is(err, errExpiredSignIn) {
			if st.sess != nil && st.csrf != "" {
				delete(st.sess.Values, keyPending)
				st.sess.AddFlash(errs.MessageIn(r.Context(), err))
				_ = st.sess.Save(r, w)
			}
			seeOther(w, r, "/login?next="+url.QueryEscape(next))
			return nil
		}
		if err != nil {
			return err
		}
		if p.Stage != stage {
			to := "/login/factor"
			if p.Stage == store.StageEnrol {
				to = "/login/enrol"
			}
			seeOther(w, r, to+"?next="+url.QueryEscape(next))
			return nil
		}
		return fn(w, r, p)
	})
}

// signedIn finishes a sign-in: the session cookie gets the new session and
// fresh CSRF and browser secrets (nothing of the half-signed-in state).
func (s *Server) signedIn(w http.ResponseWriter, r *http.Request, raw string) error {
	st := state(r)
	st.sess.Values = map[any]any{"sid": raw, "csrf": randomHex(32), "bid": randomHex(32)}
	st.csrf = st.sess.Values["csrf"].(string)
	return st.sess.Save(r, w)
}

// secondStep renders the second step with a fresh passkey challenge.
func (s *Server) secondStep(w http.ResponseWriter, r *http.Request, p admins.Pending, status int, open string, err error) error {
	factors, left, ferr := s.factors.Factors(r.Context(), p.Admin.ID)
	if ferr != nil {
		return ferr
	}
	v := web.SecondStepView{Next: safeNext(r.FormValue("next")), RecoveryLeft: left, Open: open}
	for _, f := range factors {
		switch f.Kind {
		case store.FactorTOTP:
			v.HasApp = true
		case store.FactorPasskey:
			v.HasPasskey = v.HasPasskey || s.factors.PasskeysAvailable()
		}
	}
	st := state(r)
	if v.HasPasskey {
		opts, sealed, berr := s.factors.BeginPasskeySignIn(r.Context(), p)
		if berr != nil {
			return berr
		}
		v.PasskeyOptions = string(opts)
		st.sess.Values[keyCerSignIn] = sealed
		if serr := st.sess.Save(r, w); serr != nil {
			return serr
		}
	}
	v.Page = s.page(w, r, "", "", i18n.T(r.Context(), "Confirm it's you"), i18n.T(r.Context(), "Your password was right. Now use your second factor, %s.", p.Admin.Name))
	if err != nil {
		if f := errs.FieldsIn(r.Context(), err); len(f) > 0 {
			v.Fields = f
		} else {
			v.Errors = []string{errs.MessageIn(r.Context(), err)}
		}
	}
	s.render(w, r, status, web.SecondStepPage(v))
	return nil
}

func (s *Server) factorForm(w http.ResponseWriter, r *http.Request, p admins.Pending) error {
	return s.secondStep(w, r, p, http.StatusOK, "", nil)
}

// factorResult ends a second-step attempt: a session, or the page again
// with the reason (a timed-out sign-in goes back to the password).
func (s *Server) factorResult(w http.ResponseWriter, r *http.Request, p admins.Pending, raw string, err error, open string) error {
	if errors.Is(err, errExpiredSignIn) {
		st := state(r)
		delete(st.sess.Values, keyPending)
		st.sess.AddFlash(errs.MessageIn(r.Context(), err))
		_ = st.sess.Save(r, w)
		seeOther(w, r, "/login")
		return nil
	}
	if err != nil {
		k := errs.KindOf(err)
		if k != errs.Unauthorized && k != errs.TooMany && k != errs.Invalid {
			return err
		}
		return s.secondStep(w, r, p, statusOf(err), open, err)
	}
	if err := s.signedIn(w, r, raw); err != nil {
		return err
	}
	seeOther(w, r, safeNext(r.PostFormValue("next")))
	return nil
}

func (s *Server) factorApp(w http.ResponseWriter, r *http.Request, p admins.Pending) error {
	raw, err := s.factors.VerifyTOTP(r.Context(), p, r.PostFormValue("code"), s.actor(r))
	if errors.Is(err, admins.ErrWrongCode) || errors.Is(err, admins.ErrCodeUsed) {
		err = errs.FieldErrors(map[string]string{"code": errs.MessageOf(err)})
		err.(*errs.Error).Kind = errs.Unauthorized
	}
	return s.factorResult(w, r, p, raw, err, "app")
}

func (s *Server) factorRecovery(w http.ResponseWriter, r *http.Request, p admins.Pending) error {
	raw, err := s.factors.VerifyRecoveryCode(r.Context(), p, r.PostFormValue("recovery"), s.actor(r))
	if errors.Is(err, admins.ErrWrongRecovery) {
		err = errs.FieldErrors(map[string]string{"recovery": errs.MessageOf(err)})
		err.(*errs.Error).Kind = errs.Unauthorized
	}
	return s.factorResult(w, r, p, raw, err, "recovery")
}

var errNeedsScript = errs.E(errs.Invalid, "Passkeys need JavaScript in your browser. Turn it on, or use another way to sign in.", nil)

func (s *Server) factorPasskey(w http.ResponseWriter, r *http.Request, p admins.Pending) error {
	cred := r.PostFormValue("credential")
	sealed := sessString(r, keyCerSignIn)
	// The challenge is used once, whatever the outcome.
	delete(state(r).sess.Values, keyCerSignIn)
	if cred == "" {
		return s.factorResult(w, r, p, "", errNeedsScript, "passkey")
	}
	raw, err := s.factors.VerifyPasskey(r.Context(), p, sealed, []byte(cred), s.actor(r))
	return s.factorResult(w, r, p, raw, err, "passkey")
}

// enrolView builds the enrolment page: the authenticator secret kept in
// the session (or a new one) and a fresh passkey registration challenge.
func (s *Server) enrolView(w http.ResponseWriter, r *http.Request, a store.Admin, bind string, atSignIn bool) (web.EnrolView, error) {
	st := state(r)
	v := web.EnrolView{AtSignIn: atSignIn, Action: "/admin/security", Next: safeNext(r.FormValue("next"))}
	if atSignIn {
		v.Action = "/login/enrol"
	}
	totp, err := s.factors.BeginTOTP(a, bind, sessString(r, keyCerTOTP))
	if err != nil {
		return v, err
	}
	v.TOTPSecret, v.TOTPURL, v.TOTPQR = totp.Secret, totp.URL, totp.QR
	st.sess.Values[keyCerTOTP] = totp.Sealed
	if s.factors.PasskeysAvailable() {
		opts, sealed, err := s.factors.BeginPasskeyRegistration(r.Context(), a, bind)
		if err != nil {
			return v, err
		}
		v.PasskeyOptions = string(opts)
		st.sess.Values[keyCerPasskey] = sealed
	}
	if err := st.sess.Save(r, w); err != nil {
		return v, err
	}
	pol, _, err := s.factors.Policy(r.Context())
	if err != nil {
		return v, err
	}
	v.Required = pol.Requires(admins.Role(a.Role))
	if atSignIn {
		lead := i18n.T(r.Context(), "Your role requires a second factor, %s: a passkey or an authenticator app. You sign in with it after your password from now on.", a.Name)
		if !v.Required {
			lead = i18n.T(r.Context(), "Your sign-in was reset, %s: set up your second factor again: a passkey or an authenticator app. You sign in with it after your password from now on.", a.Name)
		}
		v.Page = s.page(w, r, "", "", i18n.T(r.Context(), "Set up a second way to sign in"), lead)
	} else {
		v.Page = s.page(w, r, "security", i18n.T(r.Context(), "Your account"), i18n.T(r.Context(), "Add a sign-in method"), i18n.T(r.Context(), "Add a passkey or an authenticator app as a second factor."))
	}
	return v, nil
}

func (s *Server) enrolForm(w http.ResponseWriter, r *http.Request, p admins.Pending) error {
	v, err := s.enrolView(w, r, p.Admin, p.IDHash, true)
	if err != nil {
		return err
	}
	s.render(w, r, http.StatusOK, web.EnrolPage(v))
	return nil
}

// enrolFailed shows the enrolment page again with the problem, keeping the
// names typed.
func (s *Server) enrolFailed(w http.ResponseWriter, r *http.Request, a store.Admin, bind string, atSignIn bool, err error) error {
	if errs.KindOf(err) != errs.Invalid {
		return err
	}
	v, verr := s.enrolView(w, r, a, bind, atSignIn)
	if verr != nil {
		return verr
	}
	v.Fields = errs.FieldsIn(r.Context(), err)
	if len(v.Fields) == 0 {
		v.Errors = []string{errs.MessageIn(r.Context(), err)}
	} else if msg, ok := v.Fields["name"]; ok {
		delete(v.Fields, "name")
		v.Fields["app-name"] = msg
		if r.URL.Path != v.Action+"/app" {
			delete(v.Fields, "app-name")
			v.Fields["passkey-name"] = msg
		}
	}
	v.AppName, v.PasskeyName = r.PostFormValue("app-name"), r.PostFormValue("passkey-name")
	s.render(w, r, statusOf(err), web.EnrolPage(v))
	return nil
}

// enrolled ends an enrolment at sign-in: the session starts, and the new
// recovery codes are shown once before the browser goes on.
func (s *Server) enrolled(w http.ResponseWriter, r *http.Request, p admins.Pending, codes []string) error {
	raw, err := s.factors.FinishEnrolSignIn(r.Context(), p, s.actor(r))
	if err != nil {
		return s.factorResult(w, r, p, "", err, "")
	}
	if err := s.signedIn(w, r, raw); err != nil {
		return err
	}
	next := safeNext(r.PostFormValue("next"))
	if len(codes) == 0 {
		seeOther(w, r, next)
		return nil
	}
	s.showCodes(w, r, codes, next)
	return nil
}

func (s *Server) showCodes(w http.ResponseWriter, r *http.Request, codes []string, next string) {
	st := state(r)
	title := i18n.T(r.Context(), "Your recovery codes")
	p := web.Page{Title: title, Heading: title, CSRF: st.csrf,
		Lead: i18n.T(r.Context(), "Your second factor is set up. If you ever cannot use it, sign in with one of these codes instead.")}
	s.render(w, r, http.StatusOK, web.RecoveryCodesPage(web.RecoveryCodesView{Page: p, Codes: codes, Continue: next}))
}

func (s *Server) enrolApp(w http.ResponseWriter, r *http.Request, p admins.Pending) error {
	codes, err := s.factors.ConfirmTOTP(r.Context(), admins.ActorFor(p.Admin, s.clientIP(r), r.UserAgent()), p.Admin, p.IDHash,
		sessString(r, keyCerTOTP), r.PostFormValue("app-name"), r.PostFormValue("code"))
	if err != nil {
		return s.enrolFailed(w, r, p.Admin, p.IDHash, true, err)
	}
	delete(state(r).sess.Values, keyCerTOTP)
	return s.enrolled(w, r, p, codes)
}

func (s *Server) enrolPasskey(w http.ResponseWriter, r *http.Request, p admins.Pending) error {
	sealed := sessString(r, keyCerPasskey)
	delete(state(r).sess.Values, keyCerPasskey)
	cred := r.PostFormValue("credential")
	if cred == "" {
		return s.enrolFailed(w, r, p.Admin, p.IDHash, true, errNeedsScript)
	}
	codes, err := s.factors.FinishPasskeyRegistration(r.Context(), admins.ActorFor(p.Admin, s.clientIP(r), r.UserAgent()), p.Admin, p.IDHash,
		sealed, r.PostFormValue("passkey-name"), []byte(cred))
	if err != nil {
		return s.enrolFailed(w, r, p.Admin, p.IDHash, true, err)
	}
	return s.enrolled(w, r, p, codes)
}
