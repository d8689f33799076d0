package handlers

import (
	"net/http"
	"net/url"

	"github.com/writeback/writeback/services/admins"
	"github.com/writeback/writeback/services/errs"
	"github.com/writeback/writeback/services/i18n"
	"github.com/writeback/writeback/web"
)

func (s *Server) loginForm(w http.ResponseWriter, r *http.Request) error {
	if state(r).admin != nil {
		seeOther(w, r, safeNext(r.URL.Query().Get("next")))
		return nil
	}
	p := s.page(w, r, "", "", i18n.T(r.Context(), "Sign in"), i18n.T(r.Context(), "Sign in to administer Writeback."))
	s.render(w, r, http.StatusOK, web.LoginPage(web.LoginView{Page: p, Next: safeNext(r.URL.Query().Get("next"))}))
	return nil
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) error {
	email, password, next := r.PostFormValue("email"), r.PostFormValue("password"), safeNext(r.PostFormValue("next"))
	a, err := s.admins.Authenticate(r.Context(), email, password, s.actor(r))
	if err != nil {
		kind := errs.KindOf(err)
		if kind != errs.Unauthorized && kind != errs.TooMany {
			return err
		}
		p := s.page(w, r, "", "", i18n.T(r.Context(), "Sign in"), i18n.T(r.Context(), "Sign in to administer Writeback."))
		p.Errors = []string{errs.MessageIn(r.Context(), err)}
		s.render(w, r, statusOf(err), web.LoginPage(web.LoginView{Page: p, Email: email, Next: next}))
		return nil
	}
	step, raw, err := s.admins.BeginSignIn(r.Context(), a, s.actor(r))
	if err != nil {
		return err
	}
	// A fresh session on sign-in: new cookie contents and a new CSRF
	// secret. The half-signed-in state is a value of its own ("pid"), never
	// "sid": the pages behind sign-in see no administrator in it.
	st := state(r)
	key, to := "sid", next
	switch step {
	case admins.NextFactor:
		key, to = keyPending, "/login/factor?next="+url.QueryEscape(next)
	case admins.NextEnrol:
		key, to = keyPending, "/login/enrol?next="+url.QueryEscape(next)
	}
	st.sess.Values = map[any]any{key: raw, "csrf": randomHex(32), "bid": randomHex(32)}
	if err := st.sess.Save(r, w); err != nil {
		return err
	}
	seeOther(w, r, to)
	return nil
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request) error {
	st := state(r)
	if sid, _ := st.sess.Values["sid"].(string); sid != "" && st.admin != nil {
		if err := s.admins.EndSession(r.Context(), sid, s.actor(r)); err != nil {
			return err
		}
	}
	if pid, _ := st.sess.Values[keyPending].(string); pid != "" && s.factors != nil {
		if err := s.factors.CancelPending(r.Context(), pid); err != nil {
			return err
		}
	}
	st.sess.Values = map[any]any{"csrf": randomHex(32), "bid": randomHex(32)}
	st.sess.AddFlash(i18n.T(r.Context(), "You have signed out."))
	if err := st.sess.Save(r, w); err != nil {
		return err
	}
	seeOther(w, r, "/login")
	return nil
}

func (s *Server) setupForm(w http.ResponseWriter, r *http.Request) error {
	tok := r.URL.Query().Get("token")
	ok, err := s.admins.SetupTokenValid(r.Context(), tok)
	if err != nil {
		return err
	}
	if !ok {
		return admins.ErrSetupLinkInvalid
	}
	p := s.page(w, r, "", "", i18n.T(r.Context(), "Create the first Global Administrator"), i18n.T(r.Context(), "This one-time link creates the first administrator of this portal. You can add others after signing in."))
	s.render(w, r, http.StatusOK, web.SetupPage(web.SetupView{Page: p, Token: tok}))
	return nil
}

func (s *Server) setup(w http.ResponseWriter, r *http.Request) error {
	tok := r.PostFormValue("token")
	n := admins.NewAdmin{Email: r.PostFormValue("email"), Name: r.PostFormValue("name"), Password: r.PostFormValue("password")}
	var err error
	if n.Password != r.PostFormValue("confirm") {
		err = errs.FieldErrors(map[string]string{"confirm": "The two passwords are not the same."})
	} else {
		_, err = s.admins.CreateFirst(r.Context(), tok, s.actor(r), n)
	}
	if errs.KindOf(err) == errs.Invalid {
		p := s.page(w, r, "", "", i18n.T(r.Context(), "Create the first Global Administrator"), "")
		p.Fields = errs.FieldsIn(r.Context(), err)
		s.render(w, r, http.StatusUnprocessableEntity, web.SetupPage(web.SetupView{Page: p, Token: tok, Email: n.Email, Name: n.Name}))
		return nil
	}
	if err != nil {
		return err
	}
	s.flash(w, r, i18n.T(r.Context(), "Your Global Administrator account is ready. Sign in with it."))
	seeOther(w, r, "/login")
	return nil
}
