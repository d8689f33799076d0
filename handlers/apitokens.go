package handlers

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/writeback/writeback/services/admins"
	"github.com/writeback/writeback/services/apitokens"
	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/errs"
	"github.com/writeback/writeback/services/i18n"
	"github.com/writeback/writeback/web"
)

// APITokenAdmin is what the API tokens page needs of services/apitokens.
type APITokenAdmin interface {
	Create(ctx context.Context, actor audit.Actor, name string, role admins.Role, days int) (apitokens.New, error)
	List(ctx context.Context) ([]apitokens.Token, error)
	Revoke(ctx context.Context, actor audit.Actor, id int64, name string) (apitokens.Token, error)
}

func (s *Server) apiTokensView(w http.ResponseWriter, r *http.Request) (web.APITokensView, error) {
	if s.apiTokens == nil {
		return web.APITokensView{}, errNotFound
	}
	list, err := s.apiTokens.List(r.Context())
	if err != nil {
		return web.APITokensView{}, err
	}
	ctx := r.Context()
	v := web.APITokensView{Page: s.page(w, r, "api-tokens", i18n.T(ctx, "Administration"), i18n.T(ctx, "API tokens"),
		i18n.T(ctx, "Tokens for scripts and other systems that call the portal's REST API at /api/v1. Each acts with one administrator role and is refused once revoked or expired.")),
		NewRole: string(admins.ReportsReader), NewDays: strconv.Itoa(apitokens.DefaultDays)}
	for _, role := range admins.Roles {
		v.Roles = append(v.Roles, web.RoleOption{Value: string(role), Label: i18n.T(ctx, role.Label())})
	}
	now := time.Now()
	for _, t := range list {
		v.Tokens = append(v.Tokens, web.APITokenRow{ID: t.ID, Name: t.Name, RoleLabel: i18n.T(ctx, t.Role.Label()), State: t.State(now),
			CreatedBy: t.CreatedBy, CreatedAt: t.CreatedAt, ExpiresAt: t.ExpiresAt, LastUsedAt: t.LastUsedAt, LastUsedIP: t.LastUsedIP})
	}
	return v, nil
}

func (s *Server) apiTokensList(w http.ResponseWriter, r *http.Request) error {
	v, err := s.apiTokensView(w, r)
	if err != nil {
		return err
	}
	s.render(w, r, http.StatusOK, web.APITokensPage(v))
	return nil
}

// apiTokensCreate creates a token and shows it in this answer, never in a
// redirect or the session: it is seen once, by whoever asked for it.
func (s *Server) apiTokensCreate(w http.ResponseWriter, r *http.Request) error {
	if s.apiTokens == nil {
		return errNotFound
	}
	name, role, daysText := r.PostFormValue("name"), r.PostFormValue("role"), strings.TrimSpace(r.PostFormValue("expires"))
	days, err := strconv.Atoi(daysText)
	if err != nil {
		days = -1
	}
	tok, err := s.apiTokens.Create(r.Context(), s.actor(r), name, admins.Role(role), days)
	if errs.KindOf(err) == errs.Invalid {
		v, verr := s.apiTokensView(w, r)
		if verr != nil {
			return verr
		}
		showProblemIn(r.Context(), &v.Page, err)
		v.NewName, v.NewRole, v.NewDays = name, role, daysText
		s.render(w, r, http.StatusUnprocessableEntity, web.APITokensPage(v))
		return nil
	}
	if err != nil {
		return err
	}
	base := "https://PORTAL"
	if s.cfg.BaseURL != nil {
		base = strings.TrimRight(s.cfg.BaseURL.String(), "/")
	}
	v := web.APITokenCreatedView{Page: s.page(w, r, "api-tokens", i18n.T(r.Context(), "Administration"), i18n.T(r.Context(), "API token %s created", tok.Name), ""),
		Name: tok.Name, RoleLabel: i18n.T(r.Context(), tok.Role.Label()), Token: tok.Secret, ExpiresAt: tok.ExpiresAt,
		Example: "curl -H 'Authorization: Bearer " + tok.Secret + "' " + base + "/api/v1/directory/status"}
	// The answer holds the secret: no cache may keep it.
	w.Header().Set("Cache-Control", "no-store")
	s.render(w, r, http.StatusOK, web.APITokenCreatedPage(v))
	return nil
}

func (s *Server) apiTokensRevoke(w http.ResponseWriter, r *http.Request) error {
	if s.apiTokens == nil {
		return errNotFound
	}
	id, err := strconv.ParseInt(chi.URLParam(r, "id"), 10, 64)
	if err != nil || id <= 0 {
		return errNotFound
	}
	t, err := s.apiTokens.Revoke(r.Context(), s.actor(r), id, "")
	if err != nil {
		return err
	}
	s.flash(w, r, i18n.T(r.Context(), "Revoked the API token %s. It is refused from now on.", t.Name))
	seeOther(w, r, "/admin/api-tokens")
	return nil
}
