package handlers

import (
	"net/http"

	"github.com/writeback/writeback/services/admins"
	"github.com/writeback/writeback/services/i18n"
	"github.com/writeback/writeback/web"
)

// page builds the shared part of an admin page's view model.
func (s *Server) page(w http.ResponseWriter, r *http.Request, nav, section, heading, lead string) web.Page {
	st := state(r)
	p := web.Page{Title: heading, Section: section, Heading: heading, Lead: lead, Nav: nav, CSRF: st.csrf,
		Flash: s.takeFlash(w, r)}
	if a := st.admin; a != nil {
		p.Viewer = &web.Viewer{Name: a.Name, Email: a.Email, Role: a.Role, RoleLabel: i18n.T(r.Context(), admins.Role(a.Role).Label())}
	}
	return p
}
