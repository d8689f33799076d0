package handlers

import (
	"context"
	"net/http"
	"strconv"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/writeback/writeback/services/admins"
	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/errs"
	"github.com/writeback/writeback/services/i18n"
	"github.com/writeback/writeback/store"
	"github.com/writeback/writeback/web"
)

// FactorAdmin is what an administrator's own sign-in methods page and a
// Global Administrator's reset and policy need of services/admins.
type FactorAdmin interface {
	RemoveFactor(ctx context.Context, actor audit.Actor, a store.Admin, id int64) error
	NewRecoveryCodes(ctx context.Context, actor audit.Actor, a store.Admin) ([]string, error)
	SavePolicy(ctx context.Context, actor audit.Actor, expectVersion int64, next admins.Policy) (bool, error)
	ResetSignIn(ctx context.Context, actor audit.Actor, self, id int64) (string, error)
	ResetTarget(ctx context.Context, token string) (store.Admin, error)
	SetPasswordWithToken(ctx context.Context, token, password string, from audit.Actor) (store.Admin, error)
}

// sessionBind is the ceremony binding of the signed-in session.
func sessionBind(r *http.Request) string { return bindOf(sessString(r, "sid")) }

func (s *Server) securityView(w http.ResponseWriter, r *http.Request) (web.SecurityView, error) {
	a := state(r).admin
	factors, left, err := s.factors.Factors(r.Context(), a.ID)
	if err != nil {
		return web.SecurityView{}, err
	}
	pol, _, err := s.factors.Policy(r.Context())
	if err != nil {
		return web.SecurityView{}, err
	}
	v := web.SecurityView{RecoveryLeft: left, Required: pol.Requires(admins.Role(a.Role))}
	for _, f := range factors {
		v.Factors = append(v.Factors, web.FactorRow{ID: f.ID, KindLabel: i18n.T(r.Context(), admins.FactorKindLabel(f.Kind)), Name: f.Name, Created: f.Created, LastUsed: f.LastUsed})
	}
	v.Page = s.page(w, r, "security", i18n.T(r.Context(), "Your account"), i18n.T(r.Context(), "Sign-in methods"), i18n.T(r.Context(), "The second factors you sign in with after your password, and your recovery codes."))
	return v, nil
}

func (s *Server) securityShow(w http.ResponseWriter, r *http.Request) error {
	v, err := s.securityView(w, r)
	if err != nil {
		return err
	}
	s.render(w, r, http.StatusOK, web.SecurityPage(v))
	return nil
}

func (s *Server) securityAdd(w http.ResponseWriter, r *http.Request) error {
	v, err := s.enrolView(w, r, *state(r).admin, sessionBind(r), false)
	if err != nil {
		return err
	}
	s.render(w, r, http.StatusOK, web.EnrolPage(v))
	return nil
}

// securityAdded ends adding a factor from the page: the first one brings
// recovery codes, shown once; otherwise back to the list.
func (s *Server) securityAdded(w http.ResponseWriter, r *http.Request, codes []string) error {
	if len(codes) > 0 {
		s.showCodes(w, r, codes, "/admin/security")
		return nil
	}
	s.flash(w, r, i18n.T(r.Context(), "Added the sign-in method."))
	seeOther(w, r, "/admin/security")
	return nil
}

func (s *Server) securityApp(w http.ResponseWriter, r *http.Request) error {
	a := *state(r).admin
	codes, err := s.factors.ConfirmTOTP(r.Context(), s.actor(r), a, sessionBind(r), sessString(r, keyCerTOTP),
		r.PostFormValue("app-name"), r.PostFormValue("code"))
	if err != nil {
		return s.enrolFailed(w, r, a, sessionBind(r), false, err)
	}
	delete(state(r).sess.Values, keyCerTOTP)
	_ = state(r).sess.Save(r, w)
	return s.securityAdded(w, r, codes)
}

func (s *Server) securityPasskey(w http.ResponseWriter, r *http.Request) error {
	a := *state(r).admin
	sealed := sessString(r, keyCerPasskey)
	delete(state(r).sess.Values, keyCerPasskey)
	cred := r.PostFormValue("credential")
	if cred == "" {
		return s.enrolFailed(w, r, a, sessionBind(r), false, errNeedsScript)
	}
	codes, err := s.factors.FinishPasskeyRegistration(r.Context(), s.actor(r), a, sessionBind(r), sealed, r.PostFormValue("passkey-name"), []byte(cred))
	if err != nil {
		return s.enrolFailed(w, r, a, sessionBind(r), false, err)
	}
	_ = state(r).sess.Save(r, w)
	return s.securityAdded(w, r, codes)
}

func (s *Server) securityRemove(w http.ResponseWriter, r *http.Request) error {
	id, err := strconv.ParseInt(chi.URLParam(r, "id"), 10, 64)
	if err != nil {
		return errNotFound
	}
	err = s.factorAdmin.RemoveFactor(r.Context(), s.actor(r), *state(r).admin, id)
	if k := errs.KindOf(err); k == errs.Conflict || k == errs.NotFound {
		v, verr := s.securityView(w, r)
		if verr != nil {
			return verr
		}
		v.Errors = []string{errs.MessageIn(r.Context(), err)}
		s.render(w, r, statusOf(err), web.SecurityPage(v))
		return nil
	}
	if err != nil {
		return err
	}
	s.flash(w, r, i18n.T(r.Context(), "Removed the sign-in method."))
	seeOther(w, r, "/admin/security")
	return nil
}

func (s *Server) securityCodes(w http.ResponseWriter, r *http.Request) error {
	codes, err := s.factorAdmin.NewRecoveryCodes(r.Context(), s.actor(r), *state(r).admin)
	if errs.KindOf(err) == errs.Conflict {
		v, verr := s.securityView(w, r)
		if verr != nil {
			return verr
		}
		v.Errors = []string{errs.MessageIn(r.Context(), err)}
		s.render(w, r, statusOf(err), web.SecurityPage(v))
		return nil
	}
	if err != nil {
		return err
	}
	s.showCodes(w, r, codes, "/admin/security")
	return nil
}

// adminsReset resets another administrator's sign-in and shows the
// one-time link for them.
func (s *Server) adminsReset(w http.ResponseWriter, r *http.Request) error {
	id, err := strconv.ParseInt(chi.URLParam(r, "id"), 10, 64)
	if err != nil {
		return errNotFound
	}
	self := state(r).admin
	tok, err := s.factorAdmin.ResetSignIn(r.Context(), s.actor(r), self.ID, id)
	if k := errs.KindOf(err); k == errs.Conflict || k == errs.NotFound {
		return s.adminsProblem(w, r, err)
	}
	if err != nil {
		return err
	}
	var target web.AdminRow
	list, err := s.admins.List(r.Context())
	if err != nil {
		return err
	}
	for _, a := range list {
		if a.ID == id {
			target = web.AdminRow{Name: a.Name, Email: a.Email}
		}
	}
	p := s.page(w, r, "admins", i18n.T(r.Context(), "Administration"), i18n.T(r.Context(), "Sign-in reset"), "")
	s.render(w, r, http.StatusOK, web.ResetLinkPage(web.ResetLinkView{Page: p, Link: ResetLink(s.cfg.BaseURL.String(), tok),
		Name: target.Name, Email: target.Email}))
	return nil
}

// ResetLink is the one-time link of a reset administrator sign-in.
func ResetLink(baseURL, token string) string {
	return strings.TrimSuffix(baseURL, "/") + "/login/reset?token=" + token
}

func (s *Server) adminsProblem(w http.ResponseWriter, r *http.Request, err error) error {
	v, verr := s.adminsView(w, r)
	if verr != nil {
		return verr
	}
	v.Errors = []string{errs.MessageIn(r.Context(), err)}
	s.render(w, r, statusOf(err), web.AdminsPage(v))
	return nil
}

func (s *Server) adminsPolicy(w http.ResponseWriter, r *http.Request) error {
	ver, err := strconv.ParseInt(r.PostFormValue("version"), 10, 64)
	if err != nil {
		return errs.Invalidf("This form is incomplete. Reload the page and try again.")
	}
	var p admins.Policy
	switch r.PostFormValue("global_admin") {
	case "yes":
		p.GlobalAdmin = true
	case "no":
	default:
		return s.adminsProblem(w, r, errs.Invalidf("Choose Yes or No for Global Administrators."))
	}
	for name, dst := range map[string]*bool{"helpdesk_admin": &p.HelpdeskAdmin, "reports_reader": &p.ReportsReader} {
		switch r.PostFormValue(name) {
		case "required":
			*dst = true
		case "optional":
		default:
			return s.adminsProblem(w, r, errs.Invalidf("Choose Optional or Required for every role."))
		}
	}
	changed, err := s.factorAdmin.SavePolicy(r.Context(), s.actor(r), ver, p)
	if errs.KindOf(err) == errs.Conflict {
		return s.adminsProblem(w, r, err)
	}
	if err != nil {
		return err
	}
	msg := i18n.T(r.Context(), "Nothing changed.")
	if changed {
		msg = i18n.T(r.Context(), "Saved: a second factor is %s for Global Administrators, %s for Helpdesk Administrators and %s for Reports Readers.",
			i18n.T(r.Context(), word(p.GlobalAdmin)), i18n.T(r.Context(), word(p.HelpdeskAdmin)), i18n.T(r.Context(), word(p.ReportsReader)))
	}
	s.flash(w, r, msg)
	seeOther(w, r, "/admin/administrators")
	return nil
}

func word(required bool) string {
	if required {
		return i18n.Key("required")
	}
	return i18n.Key("optional")
}

func (s *Server) resetPasswordForm(w http.ResponseWriter, r *http.Request) error {
	tok := r.URL.Query().Get("token")
	a, err := s.factorAdmin.ResetTarget(r.Context(), tok)
	if err != nil {
		return err
	}
	p := s.page(w, r, "", "", i18n.T(r.Context(), "Choose a new password"), i18n.T(r.Context(), "Your sign-in was reset. Choose a new password, then sign in and set up your second factor again."))
	s.render(w, r, http.StatusOK, web.ResetPasswordPage(web.ResetPasswordView{Page: p, Token: tok, Email: a.Email}))
	return nil
}

func (s *Server) resetPassword(w http.ResponseWriter, r *http.Request) error {
	tok := r.PostFormValue("token")
	pw := r.PostFormValue("password")
	var err error
	var a store.Admin
	if pw != r.PostFormValue("confirm") {
		err = errs.FieldErrors(map[string]string{"confirm": "The two passwords are not the same."})
	} else {
		a, err = s.factorAdmin.SetPasswordWithToken(r.Context(), tok, pw, s.actor(r))
	}
	if errs.KindOf(err) == errs.Invalid {
		target, terr := s.factorAdmin.ResetTarget(r.Context(), tok)
		if terr != nil {
			return terr
		}
		p := s.page(w, r, "", "", i18n.T(r.Context(), "Choose a new password"), "")
		p.Fields = errs.FieldsIn(r.Context(), err)
		s.render(w, r, http.StatusUnprocessableEntity, web.ResetPasswordPage(web.ResetPasswordView{Page: p, Token: tok, Email: target.Email}))
		return nil
	}
	if err != nil {
		return err
	}
	s.flash(w, r, i18n.T(r.Context(), "Your new password is set, %s. Sign in with it.", a.Name))
	seeOther(w, r, "/login")
	return nil
}
