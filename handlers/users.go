package handlers

import (
	"context"
	"net/http"
	"net/url"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/writeback/writeback/services/directory"
	"github.com/writeback/writeback/services/errs"
	"github.com/writeback/writeback/services/i18n"
	"github.com/writeback/writeback/services/writeback"
	"github.com/writeback/writeback/web"
)

func userRow(u directory.User) web.UserRow {
	name := u.DisplayName
	if name == "" {
		name = u.Login
	}
	return web.UserRow{Login: u.Login, DisplayName: name, Email: u.Email, DN: u.DN, Locked: u.Locked, Disabled: u.Disabled,
		Expired: u.PasswordExpired, MustChange: u.MustChange, Protected: u.Protected, ProtectedReason: u.ProtectedReason}
}

func (s *Server) usersSearch(w http.ResponseWriter, r *http.Request) error {
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	p := s.page(w, r, "users", i18n.T(r.Context(), "Users"), i18n.T(r.Context(), "Directory users"), i18n.T(r.Context(), "Find a person in the on-premises directory to see their account state, reset their password or unlock them."))
	v := web.UsersView{Page: p, Query: q}
	status := http.StatusOK
	if q != "" {
		users, err := s.writeback.Search(r.Context(), q, 50)
		if err != nil {
			if errs.KindOf(err) == errs.Internal {
				return err
			}
			v.Errors, status = []string{errs.MessageIn(r.Context(), err)}, statusOf(err)
		} else {
			v.Searched = true
			for _, u := range users {
				v.Results = append(v.Results, userRow(u))
			}
			if len(users) == 50 {
				v.Note = i18n.T(r.Context(), "Showing the first %d matches. Type more to narrow the search.", 50)
			}
		}
	}
	s.render(w, r, status, web.UsersPage(v))
	return nil
}

func (s *Server) userView(w http.ResponseWriter, r *http.Request, u directory.User) (web.UserView, error) {
	st, err := s.writeback.State(r.Context())
	if err != nil {
		return web.UserView{}, err
	}
	p := s.page(w, r, "users", i18n.T(r.Context(), "Users"), userRow(u).DisplayName, "")
	v := web.UserView{Page: p, User: userRow(u), ID: u.ID, LockedUntil: u.LockedUntil, PasswordSet: u.PasswordLastSet}
	v.CanAct, v.WhyNot = canActIn(r.Context(), st, u)
	if v.Meter, err = s.meter(r.Context(), "password", "", u.Login); err != nil {
		return web.UserView{}, err
	}
	if pol, err := s.writeback.Policy(r.Context(), u); err == nil {
		v.Policy = pol.String()
	}
	if err := s.fillSelfService(r.Context(), &v, u); err != nil {
		return web.UserView{}, err
	}
	return v, nil
}

// canAct says whether a helpdesk reset or unlock of u can run, and if not
// why, in English (the API).
func canAct(st writeback.State, u directory.User) (bool, string) {
	return canActIn(context.Background(), st, u)
}

// canActIn is canAct in the reader's language (ctx).
func canActIn(ctx context.Context, st writeback.State, u directory.User) (bool, string) {
	switch {
	case !st.Writeback:
		return false, i18n.T(ctx, "%s Reset and unlock are disabled until writeback is on.", i18n.T(ctx, st.Reason))
	case u.Protected:
		return false, i18n.T(ctx, "This account is protected: %s. Writeback never resets or unlocks it.", u.ProtectedReason)
	case u.Disabled:
		return false, i18n.T(ctx, "This account is disabled in the directory: Writeback never resets or unlocks a disabled account.")
	}
	if st.Reason == "" {
		return true, ""
	}
	return true, i18n.T(ctx, st.Reason)
}

// loginParam is the login in the path, decoded. chi matches on the escaped
// path whenever it differs from Go's own escaping (say %0a for %0A or
// %e2%80%8b), and then hands out the parameter still escaped: decoded here,
// a control character is refused like any other, rather than searched for
// as the literal text "%0a".
func loginParam(r *http.Request) (string, error) {
	v := chi.URLParam(r, "login")
	if r.URL.RawPath == "" {
		return v, nil
	}
	d, err := url.PathUnescape(v)
	if err != nil {
		return "", errs.E(errs.Invalid, "That address does not name a user.", err)
	}
	return d, nil
}

func (s *Server) userShow(w http.ResponseWriter, r *http.Request) error {
	login, err := loginParam(r)
	if err != nil {
		return err
	}
	u, err := s.writeback.Lookup(r.Context(), login)
	if err != nil {
		return err
	}
	v, err := s.userView(w, r, u)
	if err != nil {
		return err
	}
	s.render(w, r, http.StatusOK, web.UserPage(v))
	return nil
}

// userActionFailed re-renders the user page with the plain reason, from a
// fresh read of the user (a helpdesk action reads only what it needs to
// decide). When the user cannot be read again (gone, the directory down, a
// name that is not one), the error page says why: the action's reason if
// there was one, else the lookup's.
func (s *Server) userActionFailed(w http.ResponseWriter, r *http.Request, login string, actErr error, fields map[string]string) error {
	u, err := s.writeback.Lookup(r.Context(), login)
	if err != nil {
		if actErr != nil {
			return actErr
		}
		return err
	}
	v, err := s.userView(w, r, u)
	if err != nil {
		return err
	}
	v.Fields = fields
	if actErr != nil {
		if f := errs.FieldsIn(r.Context(), actErr); len(f) > 0 {
			v.Fields = f
		} else {
			v.Errors = []string{errs.MessageIn(r.Context(), actErr)}
		}
	}
	v.MustChange = r.PostFormValue("must_change") == "yes"
	status := http.StatusUnprocessableEntity
	if actErr != nil {
		status = statusOf(actErr)
	}
	s.render(w, r, status, web.UserPage(v))
	return nil
}

func (s *Server) userReset(w http.ResponseWriter, r *http.Request) error {
	login, err := loginParam(r)
	if err != nil {
		return err
	}
	pw, confirm := r.PostFormValue("password"), r.PostFormValue("confirm")
	switch {
	case pw == "":
		return s.userActionFailed(w, r, login, nil, map[string]string{"password": i18n.T(r.Context(), "Enter the new password.")})
	case pw != confirm:
		return s.userActionFailed(w, r, login, nil, map[string]string{"confirm": i18n.T(r.Context(), "The two passwords are not the same.")})
	}
	u, err := s.writeback.AdminReset(r.Context(), s.actor(r), login, pw, r.PostFormValue("must_change") == "yes")
	if err != nil {
		if errs.KindOf(err) == errs.Internal {
			return err
		}
		if errs.KindOf(err) == errs.Policy {
			return s.userActionFailed(w, r, login, nil, map[string]string{"password": i18n.T(r.Context(), "The directory refused this password: %s", errs.MessageIn(r.Context(), err))})
		}
		if f := errs.FieldsIn(r.Context(), err); f["password"] != "" { // the banned-password rules
			return s.userActionFailed(w, r, login, nil, f)
		}
		return s.userActionFailed(w, r, login, err, nil)
	}
	msg := i18n.T(r.Context(), "Password reset for %s. Other devices may keep the old password for a while.", userRow(u).DisplayName)
	if r.PostFormValue("must_change") == "yes" {
		msg = i18n.T(r.Context(), "Password reset for %s. They must change it at next sign-in. Other devices may keep the old password for a while.", userRow(u).DisplayName)
	}
	s.flash(w, r, msg)
	seeOther(w, r, web.UserPath(u.Login))
	return nil
}

func (s *Server) userUnlock(w http.ResponseWriter, r *http.Request) error {
	login, err := loginParam(r)
	if err != nil {
		return err
	}
	u, err := s.writeback.AdminUnlock(r.Context(), s.actor(r), login)
	if err != nil {
		if errs.KindOf(err) == errs.Internal {
			return err
		}
		return s.userActionFailed(w, r, login, err, nil)
	}
	s.flash(w, r, i18n.T(r.Context(), "Unlocked %s. The password was not changed.", userRow(u).DisplayName))
	seeOther(w, r, web.UserPath(u.Login))
	return nil
}
