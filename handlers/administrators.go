package handlers

import (
	"net/http"
	"strconv"

	"github.com/go-chi/chi/v5"

	"github.com/writeback/writeback/services/admins"
	"github.com/writeback/writeback/services/errs"
	"github.com/writeback/writeback/services/i18n"
	"github.com/writeback/writeback/web"
)

func (s *Server) adminsView(w http.ResponseWriter, r *http.Request) (web.AdminsView, error) {
	list, err := s.admins.List(r.Context())
	if err != nil {
		return web.AdminsView{}, err
	}
	p := s.page(w, r, "admins", i18n.T(r.Context(), "Administration"), i18n.T(r.Context(), "Administrators"), i18n.T(r.Context(), "Add administrators, change their role, or disable them. Changing a role or disabling someone ends their sessions at once."))
	v := web.AdminsView{Page: p, NewRole: string(admins.HelpdeskAdmin)}
	for _, role := range admins.Roles {
		v.Roles = append(v.Roles, web.RoleOption{Value: string(role), Label: i18n.T(r.Context(), role.Label())})
	}
	self := state(r).admin
	for _, a := range list {
		row := web.AdminRow{ID: a.ID, Name: a.Name, Email: a.Email, Role: a.Role,
			RoleLabel: i18n.T(r.Context(), admins.Role(a.Role).Label()), Disabled: a.Disabled, IsSelf: self != nil && self.ID == a.ID}
		if s.factors != nil {
			fs, _, err := s.factors.Factors(r.Context(), a.ID)
			if err != nil {
				return web.AdminsView{}, err
			}
			row.Factors = len(fs)
		}
		v.Admins = append(v.Admins, row)
	}
	if s.factors != nil {
		pol, meta, err := s.factors.Policy(r.Context())
		if err != nil {
			return web.AdminsView{}, err
		}
		v.PolicyGlobal, v.PolicyHelpdesk, v.PolicyReports, v.PolicyVersion = pol.GlobalAdmin, pol.HelpdeskAdmin, pol.ReportsReader, meta.Version
	}
	return v, nil
}

func (s *Server) adminsList(w http.ResponseWriter, r *http.Request) error {
	v, err := s.adminsView(w, r)
	if err != nil {
		return err
	}
	s.render(w, r, http.StatusOK, web.AdminsPage(v))
	return nil
}

func (s *Server) adminsAdd(w http.ResponseWriter, r *http.Request) error {
	n := admins.NewAdmin{Email: r.PostFormValue("email"), Name: r.PostFormValue("name"),
		Role: admins.Role(r.PostFormValue("role")), Password: r.PostFormValue("password")}
	a, err := s.admins.Create(r.Context(), s.actor(r), n)
	if errs.KindOf(err) == errs.Invalid {
		v, verr := s.adminsView(w, r)
		if verr != nil {
			return verr
		}
		v.Fields = errs.FieldsIn(r.Context(), err)
		if len(v.Fields) == 0 {
			v.Errors = []string{errs.MessageIn(r.Context(), err)}
		}
		v.NewEmail, v.NewName, v.NewRole = n.Email, n.Name, string(n.Role)
		s.render(w, r, http.StatusUnprocessableEntity, web.AdminsPage(v))
		return nil
	}
	if err != nil {
		return err
	}
	s.flash(w, r, i18n.T(r.Context(), "Added %s as %s.", a.Name, i18n.T(r.Context(), admins.Role(a.Role).Label())))
	seeOther(w, r, "/admin/administrators")
	return nil
}

func (s *Server) adminsUpdate(w http.ResponseWriter, r *http.Request) error {
	id, err := strconv.ParseInt(chi.URLParam(r, "id"), 10, 64)
	if err != nil {
		return errNotFound
	}
	role, err := admins.ParseRole(r.PostFormValue("role"))
	if err != nil {
		return err
	}
	var disabled bool
	switch r.PostFormValue("state") {
	case "active":
	case "disabled":
		disabled = true
	default:
		return errs.Invalidf("Choose Active or Disabled.")
	}
	a, err := s.admins.Update(r.Context(), s.actor(r), id, role, disabled)
	if k := errs.KindOf(err); k == errs.Conflict || k == errs.Invalid {
		v, verr := s.adminsView(w, r)
		if verr != nil {
			return verr
		}
		v.Errors = []string{errs.MessageIn(r.Context(), err)}
		s.render(w, r, statusOf(err), web.AdminsPage(v))
		return nil
	}
	if err != nil {
		return err
	}
	msg := i18n.T(r.Context(), "%s is now %s (active).", a.Name, i18n.T(r.Context(), admins.Role(a.Role).Label()))
	if a.Disabled {
		msg = i18n.T(r.Context(), "%s is now %s (disabled).", a.Name, i18n.T(r.Context(), admins.Role(a.Role).Label()))
	}
	s.flash(w, r, msg)
	if self := state(r).admin; self != nil && self.ID == a.ID {
		// Changing one's own role ends one's own session too.
		seeOther(w, r, "/login")
		return nil
	}
	seeOther(w, r, "/admin/administrators")
	return nil
}
