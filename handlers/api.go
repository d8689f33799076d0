package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humachi"
	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"

	"github.com/writeback/writeback/services/admins"
	"github.com/writeback/writeback/services/apitokens"
	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/errs"
)

// APITokenAuth is what the REST API needs of services/apitokens: the
// token of a request, and the audit row of each call.
type APITokenAuth interface {
	Authenticate(ctx context.Context, secret string) (apitokens.Token, error)
	Record(ctx context.Context, t apitokens.Token, actor audit.Actor, call apitokens.Recorded) error
}

// APIPrefix is where the REST API is served.
const APIPrefix = "/api/v1"

// DefaultAPIPerMinute is the default limit of requests per API token and
// minute.
const DefaultAPIPerMinute = 120

// errAPIRateLimited answers a token over its limit.
var errAPIRateLimited = errs.E(errs.TooMany, "Too many requests with this API token. Wait a minute and try again.", nil)

type apiKey int

const apiCallerKey apiKey = 1

// apiCaller is the token a request of the API came with.
type apiCaller struct {
	token apitokens.Token
	actor audit.Actor
}

// caller is the request's token; the API's middleware has put it there
// before any operation runs.
func caller(ctx context.Context) apiCaller {
	c, _ := ctx.Value(apiCallerKey).(*apiCaller)
	if c == nil {
		return apiCaller{actor: audit.Actor{Type: "anonymous"}}
	}
	return *c
}

// apiRoutes mounts the REST API on r (the /api/v1 router). Requests are
// authenticated by a bearer token only: no cookie is read, so a browser's
// session never authenticates one, and browser CSRF does not apply (a
// page on another site cannot make a browser send the token).
func (s *Server) apiRoutes(r chi.Router) {
	cfg := huma.DefaultConfig("Writeback API", "1.0.0")
	cfg.Info.Description = "The REST API of the Writeback portal, for automation. Authenticate with an API token " +
		"(created on Administration | API tokens or with `writeback token create`) as `Authorization: Bearer TOKEN`. " +
		"Each token acts with one administrator role, exactly as an administrator of that role may on the pages. " +
		"Errors are application/problem+json: `title` is the kind of error (invalid, policy, not found, forbidden, " +
		"unauthorized, conflict, too many, unavailable, internal), `detail` the message the pages show, `errors` the fields."
	// No documentation page: the one huma serves loads its script from a
	// CDN. No $schema links in the bodies either.
	cfg.DocsPath, cfg.SchemasPath, cfg.CreateHooks = "", "", nil
	cfg.Servers = []*huma.Server{{URL: s.apiBase()}}
	cfg.Components.SecuritySchemes = map[string]*huma.SecurityScheme{
		"bearer": {Type: "http", Scheme: "bearer", Description: "An API token, wbt_…"},
	}
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		s.writeAPIError(w, r, errs.E(errs.NotFound, "There is no API operation at this address.", nil))
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		s.writeAPIError(w, r, errs.E(errs.NotFound, "There is no API operation at this address.", nil))
	})
	api := humachi.New(r, cfg)
	s.apiSettings(api)
	s.apiRetention(api)
	s.apiPortalSettings(api)
	s.apiDirectory(api)
	s.apiUsers(api)
	s.apiAudit(api)
}

// apiBase is the API's absolute address, for the OpenAPI document.
func (s *Server) apiBase() string {
	if s.cfg.BaseURL == nil {
		return APIPrefix
	}
	return strings.TrimRight(s.cfg.BaseURL.String(), "/") + APIPrefix
}

// Who may call an operation: the roles of the page it mirrors.
var (
	rolesRead     = []admins.Role{admins.GlobalAdmin, admins.HelpdeskAdmin, admins.ReportsReader}
	rolesGlobal   = []admins.Role{admins.GlobalAdmin}
	rolesHelpdesk = []admins.Role{admins.GlobalAdmin, admins.HelpdeskAdmin}
)

// register adds an operation that a token of one of roles may call.
func register[I, O any](s *Server, api huma.API, roles []admins.Role, op huma.Operation, h func(context.Context, *I) (*O, error)) {
	labels := make([]string, 0, len(roles))
	for _, r := range roles {
		labels = append(labels, r.Label())
	}
	op.Description = strings.TrimSpace(op.Description + " Roles: " + strings.Join(labels, ", ") + ".")
	op.Security = []map[string][]string{{"bearer": {}}}
	op.Middlewares = append(op.Middlewares, s.apiAuthenticate(roles))
	op.Errors = append([]int{http.StatusUnauthorized, http.StatusForbidden, http.StatusTooManyRequests}, op.Errors...)
	huma.Register(api, op, func(ctx context.Context, in *I) (*O, error) {
		out, err := h(ctx, in)
		if err != nil {
			return nil, s.apiError(ctx, err)
		}
		return out, nil
	})
}

// bearer is the token of an Authorization header.
func bearer(h string) string {
	scheme, tok, ok := strings.Cut(strings.TrimSpace(h), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(tok)
}

// apiAuthenticate is every operation's first step: the bearer token (and
// nothing else) says who calls; a token over its limit is refused with 429
// and Retry-After; a role not among roles with 403, as on the pages. Every
// call that gets past the limit is recorded in the audit log with the
// token's name as the actor, never the token itself.
func (s *Server) apiAuthenticate(roles []admins.Role) func(huma.Context, func(huma.Context)) {
	return func(ctx huma.Context, next func(huma.Context)) {
		r, w := humachi.Unwrap(ctx)
		w.Header().Set("Cache-Control", "no-store")
		if s.apiAuth == nil {
			s.writeAPIErrorCtx(ctx, errNotFound)
			return
		}
		tok, err := s.apiAuth.Authenticate(r.Context(), bearer(r.Header.Get("Authorization")))
		if err != nil {
			if errs.KindOf(err) == errs.Unauthorized {
				s.log.InfoContext(r.Context(), "api token refused", "route", routeOf(r), "client_ip", s.clientIP(r))
				w.Header().Set("WWW-Authenticate", `Bearer realm="writeback"`)
			}
			s.writeAPIErrorCtx(ctx, err)
			return
		}
		ok, err := s.apiLimit.allow(r.Context(), w.Header(), "api-token "+strconv.FormatInt(tok.ID, 10))
		if err != nil {
			s.writeAPIErrorCtx(ctx, fmt.Errorf("api rate limit: %w", err))
			return
		}
		if !ok {
			s.log.InfoContext(r.Context(), "api token over its limit", "token", tok.Name, "token_id", tok.ID, "route", routeOf(r))
			s.writeAPIErrorCtx(ctx, errAPIRateLimited)
			return
		}
		ua := r.UserAgent()
		if len(ua) > 300 {
			ua = ua[:300]
		}
		c := &apiCaller{token: tok, actor: tok.Actor(s.clientIP(r), ua)}
		op := ctx.Operation()
		defer func() {
			status := ctx.Status()
			if status == 0 {
				status = http.StatusOK
			}
			// Not the request's context: a client that hung up still had
			// its call made.
			rctx := context.WithoutCancel(r.Context())
			if err := s.apiAuth.Record(rctx, tok, c.actor, apitokens.Recorded{Operation: op.OperationID, Method: op.Method, Status: status}); err != nil {
				s.log.ErrorContext(rctx, "api call not recorded", "err", err, "token", tok.Name, "operation", op.OperationID)
			}
		}()
		if !slices.Contains(roles, tok.Role) {
			s.log.InfoContext(r.Context(), "forbidden", "route", routeOf(r), "method", r.Method, "token_id", tok.ID, "role", string(tok.Role))
			s.writeAPIErrorCtx(ctx, errForbidden)
			return
		}
		next(huma.WithValue(ctx, apiCallerKey, c))
	}
}

// apiError turns an error of the services into the API's error answer:
// the status, kind and message the pages would show for it; per-field
// messages as errors[]. Internal errors are logged and answered with the
// same words as the error page, with the request's reference.
func (s *Server) apiError(ctx context.Context, err error) *huma.ErrorModel {
	status := statusOf(err)
	msg := errs.MessageOf(err)
	kind := errs.KindOf(err)
	switch {
	case status == http.StatusInternalServerError:
		id := middleware.GetReqID(ctx)
		s.log.ErrorContext(ctx, "api request failed", "operation", apiOperation(ctx), "err", err, "request_id", id)
		msg = "Something went wrong on our side. Please try again; if it keeps happening, contact your administrator (reference " + id + ")."
	case status == http.StatusRequestEntityTooLarge:
		msg, kind = "That request was too large.", errs.Invalid
	case status >= 500:
		s.log.ErrorContext(ctx, "api request failed", "operation", apiOperation(ctx), "err", err)
	}
	m := &huma.ErrorModel{Title: kind.String(), Status: status, Detail: msg}
	fields := errs.FieldsOf(err)
	names := make([]string, 0, len(fields))
	for k := range fields {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		m.Errors = append(m.Errors, &huma.ErrorDetail{Location: "body." + k, Message: fields[k]})
	}
	return m
}

func apiOperation(ctx context.Context) string {
	if rc := chi.RouteContext(ctx); rc != nil && rc.RoutePattern() != "" {
		return rc.RoutePattern()
	}
	return "unmatched"
}

// writeAPIError answers a request for an address that is no operation
// with the API's error body.
func (s *Server) writeAPIError(w http.ResponseWriter, r *http.Request, err error) {
	m := s.apiError(r.Context(), err)
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(m.Status)
	_ = json.NewEncoder(w).Encode(m)
}

// writeAPIErrorCtx answers from the authentication step, before the
// operation's handler, with the API's error body (through ctx, so that the
// status is the one the audit row records).
func (s *Server) writeAPIErrorCtx(ctx huma.Context, err error) {
	m := s.apiError(ctx.Context(), err)
	ctx.SetHeader("Content-Type", "application/problem+json")
	ctx.SetStatus(m.Status)
	_ = json.NewEncoder(ctx.BodyWriter()).Encode(m)
}

// apiTime is t in UTC, or nil when t is zero.
func apiTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

// The errors huma makes itself (a body that does not match the schema, an
// unreadable body) read like the services' errors: the kind as the title,
// the pages' words for invalid values, and each field's message without
// the value that was sent (it may be a password).
func init() {
	huma.NewError = func(status int, msg string, details ...error) huma.StatusError {
		kind := errs.Internal
		switch status {
		case http.StatusBadRequest, http.StatusUnprocessableEntity, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType:
			kind = errs.Invalid
		case http.StatusNotFound, http.StatusMethodNotAllowed:
			kind = errs.NotFound
		case http.StatusUnauthorized:
			kind = errs.Unauthorized
		case http.StatusForbidden:
			kind = errs.Forbidden
		case http.StatusConflict, http.StatusPreconditionFailed:
			kind = errs.Conflict
		case http.StatusTooManyRequests:
			kind = errs.TooMany
		case http.StatusServiceUnavailable:
			kind = errs.Unavailable
		}
		m := &huma.ErrorModel{Title: kind.String(), Status: status, Detail: msg}
		for _, d := range details {
			if d == nil {
				continue
			}
			var ed *huma.ErrorDetail
			if errors.As(d, &ed) {
				m.Errors = append(m.Errors, &huma.ErrorDetail{Location: ed.Location, Message: ed.Message})
			} else {
				m.Errors = append(m.Errors, &huma.ErrorDetail{Message: d.Error()})
			}
		}
		if kind == errs.Invalid && len(m.Errors) > 0 {
			m.Detail = "Some values need your attention."
		}
		return m
	}
}
