// Package handlers serves the portal over HTTP: the chi routes, the
// middleware that every request passes (security headers, sessions, CSRF,
// roles), and one handler per page.
package handlers

import (
	"context"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"

	"github.com/gorilla/sessions"

	"github.com/writeback/writeback/services/admins"
	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/settings"
	"github.com/writeback/writeback/store"
)

// AdminService is what handlers need of services/admins.
type AdminService interface {
	Authenticate(ctx context.Context, email, password string, from audit.Actor) (store.Admin, error)
	StartSession(ctx context.Context, a store.Admin, from audit.Actor) (string, error)
	Resolve(ctx context.Context, rawID string) (store.Admin, error)
	EndSession(ctx context.Context, rawID string, actor audit.Actor) error
	SetupTokenValid(ctx context.Context, token string) (bool, error)
	CreateFirst(ctx context.Context, token string, actor audit.Actor, n admins.NewAdmin) (store.Admin, error)
	Create(ctx context.Context, actor audit.Actor, n admins.NewAdmin) (store.Admin, error)
	Update(ctx context.Context, actor audit.Actor, id int64, role admins.Role, disabled bool) (store.Admin, error)
	List(ctx context.Context) ([]store.Admin, error)
}

// SettingsService is what handlers need of services/settings.
type SettingsService interface {
	OnPrem(ctx context.Context) (settings.OnPrem, settings.Meta, error)
	SaveOnPrem(ctx context.Context, actor audit.Actor, expectVersion int64, next settings.OnPrem) (bool, settings.Meta, error)
	Status(ctx context.Context) (settings.ServiceStatus, error)
}

// Config holds what the server needs to know about how it is reached.
type Config struct {
	BaseURL        *url.URL       // the only source of absolute links
	TrustedProxies []netip.Prefix // X-Forwarded-For is honoured only from these
	CookieHashKey  []byte         // 32 bytes, signs the session cookie
	CookieBlockKey []byte         // 32 bytes, encrypts the session cookie
	Health         func(ctx context.Context) error
}

// Server holds every handler's dependencies.
type Server struct {
	cfg      Config
	log      *slog.Logger
	admins   AdminService
	settings SettingsService
	cookies  *sessions.CookieStore
	secure   bool
}

// New builds the server.
func New(cfg Config, log *slog.Logger, a AdminService, s SettingsService) *Server {
	cs := sessions.NewCookieStore(cfg.CookieHashKey, cfg.CookieBlockKey)
	secure := cfg.BaseURL != nil && cfg.BaseURL.Scheme == "https"
	cs.Options = &sessions.Options{
		Path:     "/",
		MaxAge:   int(admins.AbsoluteTimeout.Seconds()),
		HttpOnly: true,
		Secure:   secure,
		SameSite: http.SameSiteLaxMode,
	}
	return &Server{cfg: cfg, log: log, admins: a, settings: s, cookies: cs, secure: secure}
}
