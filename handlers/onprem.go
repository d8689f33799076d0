package handlers

import (
	"net/http"
	"strconv"

	"github.com/writeback/writeback/services/errs"
	"github.com/writeback/writeback/services/settings"
	"github.com/writeback/writeback/web"
)

const onPremLead = "Choose whether passwords reset or changed in Writeback are written back to your on-premises directory, and whether people may unlock their account without resetting their password."

func (s *Server) onPremView(w http.ResponseWriter, r *http.Request) (web.OnPremView, error) {
	o, meta, err := s.settings.OnPrem(r.Context())
	if err != nil {
		return web.OnPremView{}, err
	}
	st, err := s.settings.Status(r.Context())
	if err != nil {
		return web.OnPremView{}, err
	}
	p := s.page(w, r, "onprem", "Password reset", "On-premises integration", onPremLead)
	return web.OnPremView{Page: p, Writeback: o.Writeback, Unlock: o.Unlock, Version: meta.Version,
		UpdatedBy: meta.UpdatedBy, UpdatedAt: meta.UpdatedAt,
		Status: web.ServiceStatus{State: string(st.State), Message: st.Message, CheckedAt: st.CheckedAt, Details: st.Details}}, nil
}

func (s *Server) onPremForm(w http.ResponseWriter, r *http.Request) error {
	v, err := s.onPremView(w, r)
	if err != nil {
		return err
	}
	s.render(w, r, http.StatusOK, web.OnPremPage(v))
	return nil
}

func (s *Server) onPremSave(w http.ResponseWriter, r *http.Request) error {
	fields := map[string]string{}
	// A disabled radio group is not submitted, so a missing unlock means No;
	// writeback is always on the form and must be answered.
	yes := func(name string, required bool) bool {
		switch v := r.PostFormValue(name); {
		case v == "yes":
			return true
		case v == "no" || (v == "" && !required):
			return false
		}
		fields[name] = "Choose Yes or No."
		return false
	}
	next := settings.OnPrem{Writeback: yes("writeback", true), Unlock: yes("unlock", false)}
	version, verr := strconv.ParseInt(r.PostFormValue("version"), 10, 64)
	if verr != nil || version < 0 {
		return errs.Invalidf("This form is missing its version. Reload the page and save again.")
	}
	if len(fields) > 0 {
		v, err := s.onPremView(w, r)
		if err != nil {
			return err
		}
		v.Fields = fields
		s.render(w, r, http.StatusUnprocessableEntity, web.OnPremPage(v))
		return nil
	}
	changed, _, err := s.settings.SaveOnPrem(r.Context(), s.actor(r), version, next)
	if errs.KindOf(err) == errs.Conflict {
		v, verr := s.onPremView(w, r)
		if verr != nil {
			return verr
		}
		v.Errors = []string{errs.MessageOf(err)}
		s.render(w, r, http.StatusConflict, web.OnPremPage(v))
		return nil
	}
	if err != nil {
		return err
	}
	msg := "Saved. Nothing changed."
	if changed {
		next = next.Normalize()
		msg = "Saved. Write back passwords: " + yesNo(next.Writeback) + ". Unlock without resetting the password: " + yesNo(next.Unlock) + "."
	}
	s.flash(w, r, msg)
	http.Redirect(w, r, "/admin/password-reset/on-premises-integration", http.StatusSeeOther)
	return nil
}

func yesNo(b bool) string {
	if b {
		return "Yes"
	}
	return "No"
}
