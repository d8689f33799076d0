package handlers

import (
	"context"
	"net/http"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/writeback/writeback/services/agents"
	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/errs"
	"github.com/writeback/writeback/services/i18n"
	"github.com/writeback/writeback/web"
)

// AgentsService is what the Writeback agents page needs of services/agents.
type AgentsService interface {
	Add(ctx context.Context, actor audit.Actor, name string) (agents.Token, error)
	List(ctx context.Context) ([]agents.Info, error)
	RevokeByID(ctx context.Context, actor audit.Actor, id string) (agents.Info, error)
	Coverage(ctx context.Context, list []agents.Info) ([]agents.ReplicaCoverage, error)
}

func agentRow(in agents.Info) web.AgentRow {
	return web.AgentRow{ID: in.ID, Name: in.Name, State: string(in.State), Host: in.Host, Version: in.Version,
		ConnectedSince: in.ConnectedSince, LastHeartbeat: in.LastHeartbeat, OpsLastHour: in.OpsLastHour,
		LastError: in.LastError, LastErrorAt: in.LastErrorAt, Directory: in.Directory, PasswordWriteback: in.PasswordWriteback,
		Fingerprint: in.Fingerprint, EnrolledAt: in.EnrolledAt, RevokedAt: in.RevokedAt}
}

func (s *Server) agentsView(w http.ResponseWriter, r *http.Request) (web.AgentsView, error) {
	if s.agents == nil {
		return web.AgentsView{}, errNotFound
	}
	list, err := s.agents.List(r.Context())
	if err != nil {
		return web.AgentsView{}, err
	}
	cover, err := s.agents.Coverage(r.Context(), list)
	if err != nil {
		return web.AgentsView{}, err
	}
	ctx := r.Context()
	v := web.AgentsView{Page: s.page(w, r, "agents", i18n.T(ctx, "Hybrid management"), i18n.T(ctx, "Writeback agents"),
		i18n.T(ctx, "The agents inside your network that perform password writeback for the portal. Each one dials out to the portal; nothing connects in to them.")),
		Replicas: len(cover)}
	for _, in := range list {
		row := agentRow(in)
		if len(cover) > 0 && in.State != agents.Revoked {
			row.Replicas = i18n.T(ctx, "%d of %d", in.Reached(cover), len(cover))
		}
		v.Agents = append(v.Agents, row)
	}
	for _, c := range cover {
		if c.Agents == 0 {
			v.Unreached = append(v.Unreached, c.Name())
		}
	}
	return v, nil
}

func (s *Server) agentsList(w http.ResponseWriter, r *http.Request) error {
	v, err := s.agentsView(w, r)
	if err != nil {
		return err
	}
	s.render(w, r, http.StatusOK, web.AgentsPage(v))
	return nil
}

// agentsAdd creates an enrolment token and shows it in this answer, never
// in a redirect or the session: it is seen once, by whoever asked for it.
func (s *Server) agentsAdd(w http.ResponseWriter, r *http.Request) error {
	if s.agents == nil {
		return errNotFound
	}
	name := r.PostFormValue("name")
	tok, err := s.agents.Add(r.Context(), s.actor(r), name)
	if errs.KindOf(err) == errs.Invalid {
		v, verr := s.agentsView(w, r)
		if verr != nil {
			return verr
		}
		showProblemIn(r.Context(), &v.Page, err)
		v.NewName = name
		s.render(w, r, http.StatusUnprocessableEntity, web.AgentsPage(v))
		return nil
	}
	if err != nil {
		return err
	}
	base := "https://PORTAL"
	if s.cfg.BaseURL != nil {
		base = strings.TrimRight(s.cfg.BaseURL.String(), "/")
	}
	v := web.AgentTokenView{Page: s.page(w, r, "agents", i18n.T(r.Context(), "Hybrid management"), i18n.T(r.Context(), "Agent %s added", tok.Name), ""),
		Name: tok.Name, Token: tok.Token, ExpiresAt: tok.ExpiresAt,
		Command: "writeback-agent enroll --portal " + base + " --token " + tok.Token}
	s.render(w, r, http.StatusOK, web.AgentTokenPage(v))
	return nil
}

// agentByID finds a listed agent that is not revoked.
func (s *Server) agentByID(r *http.Request) (agents.Info, error) {
	if s.agents == nil {
		return agents.Info{}, errNotFound
	}
	list, err := s.agents.List(r.Context())
	if err != nil {
		return agents.Info{}, err
	}
	id := chi.URLParam(r, "id")
	for _, in := range list {
		if in.ID == id && in.State != agents.Revoked {
			return in, nil
		}
	}
	return agents.Info{}, errs.E(errs.NotFound, "This agent does not exist or is already revoked.", nil)
}

// agentsRevokeForm is the confirmation step before a revocation.
func (s *Server) agentsRevokeForm(w http.ResponseWriter, r *http.Request) error {
	in, err := s.agentByID(r)
	if err != nil {
		return err
	}
	v := web.AgentRevokeView{Page: s.page(w, r, "agents", i18n.T(r.Context(), "Hybrid management"), i18n.T(r.Context(), "Revoke agent %s", in.Name), ""), Agent: agentRow(in)}
	s.render(w, r, http.StatusOK, web.AgentRevokePage(v))
	return nil
}

func (s *Server) agentsRevoke(w http.ResponseWriter, r *http.Request) error {
	if s.agents == nil {
		return errNotFound
	}
	in, err := s.agents.RevokeByID(r.Context(), s.actor(r), chi.URLParam(r, "id"))
	if err != nil {
		return err
	}
	s.flash(w, r, i18n.T(r.Context(), "Revoked %s. It has been disconnected and the portal refuses it from now on.", in.Name))
	seeOther(w, r, "/admin/agents")
	return nil
}
