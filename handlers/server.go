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

	"github.com/gorilla/securecookie"
	"github.com/gorilla/sessions"

	"github.com/writeback/writeback/services/admins"
	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/directory"
	"github.com/writeback/writeback/services/settings"
	"github.com/writeback/writeback/services/writeback"
	"github.com/writeback/writeback/store"
)

// AdminService is what handlers need of services/admins.
type AdminService interface {
	Authenticate(ctx context.Context, email, password string, from audit.Actor) (store.Admin, error)
	// BeginSignIn decides what follows a right password: a session, or
	// the half-signed-in state of the second step (its raw ID).
	BeginSignIn(ctx context.Context, a store.Admin, from audit.Actor) (admins.Next, string, error)
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
	Retention(ctx context.Context) (settings.Retention, settings.Meta, error)
	SaveRetention(ctx context.Context, actor audit.Actor, expectVersion int64, days int) (bool, error)
}

// WritebackService is what handlers need of services/writeback.
type WritebackService interface {
	Connection(ctx context.Context) (writeback.Connection, settings.Meta, error)
	SaveConnection(ctx context.Context, actor audit.Actor, expectVersion int64, in writeback.Input) (bool, error)
	Detect(ctx context.Context, url string, startTLS bool, caPEM string) (directory.Type, error)
	Test(ctx context.Context, actor audit.Actor, login string) (directory.Checklist, error)
	State(ctx context.Context) (writeback.State, error)
	Lookup(ctx context.Context, login string) (directory.User, error)
	Search(ctx context.Context, q string, limit int) ([]directory.User, error)
	Policy(ctx context.Context, u directory.User) (directory.Policy, error)
	AdminReset(ctx context.Context, actor audit.Actor, login, password string, mustChange bool) (directory.User, error)
	AdminUnlock(ctx context.Context, actor audit.Actor, login string) (directory.User, error)
}

// Deps are the services the handlers use.
type Deps struct {
	Admins      AdminService
	Settings    SettingsService
	Writeback   WritebackService
	SelfService SelfService
	Audit       AuditLog
	// AgentHub takes writeback agents' connections; nil turns the agent
	// endpoint off.
	AgentHub AgentHub
	// Agents serves the Writeback agents page and AgentEnroll the agents'
	// enrolment endpoint (both *agents.Service); nil leaves them out.
	Agents      AgentsService
	AgentEnroll AgentEnroller
	// Limits are the rate limits administrators set on the Properties
	// page (*selfservice.Service); nil leaves the Config defaults.
	Limits LimitSource
	// RateCounter keeps the counts of every per-address limit, told apart
	// by their keys; nil gives each limit an in-memory counter of its own,
	// right for one process.
	RateCounter RateCounter
	// Factors and FactorAdmin serve the second factor (both
	// *admins.Service); when nil, Admins is used if it has them.
	Factors     SignInFactors
	FactorAdmin FactorAdmin
	// Banned serves the Password protection page (*banned.Service); nil
	// leaves the page out.
	Banned ProtectionService
	// Reminders serves the Expiry reminders page (*reminders.Service);
	// nil leaves the page out.
	Reminders RemindersService
	// Campaign serves the Registration campaign page (*campaign.Service);
	// nil leaves the page out.
	Campaign CampaignService
	// Helpdesk serves the self-service part of a user's page; SelfService
	// is used if it has its methods.
	Helpdesk HelpdeskTools
	// Reports serves Usage & insights (*reports.Service); nil leaves it out.
	Reports ReportsService
	// Branding serves the Company branding page and gives every page the
	// organisation's look (*branding.Service); nil: Writeback's own.
	Branding BrandingService
	// SMS serves the Text messages page and the mobile number on /register
	// (*selfservice.Service); when nil, SelfService is used if it has its
	// methods.
	SMS SMSService
	// APITokens serves the API tokens page and APIAuth authenticates the
	// REST API's requests (both *apitokens.Service); when APIAuth is nil,
	// APITokens is used if it has its methods. Nil leaves both out.
	APITokens APITokenAdmin
	APIAuth   APITokenAuth
}

// settingsMeta is the version and last change of a settings document.
type settingsMeta = settings.Meta

// Config holds what the server needs to know about how it is reached.
type Config struct {
	BaseURL        *url.URL       // the only source of absolute links
	TrustedProxies []netip.Prefix // X-Forwarded-For is honoured only from these
	CookieHashKey  []byte         // 32 bytes, signs the session cookie
	CookieBlockKey []byte         // 32 bytes, encrypts the session cookie
	Health         func(ctx context.Context) error
	// NoRequestLog turns off the log line per request (errors are still
	// logged): under load those lines are most of what the portal writes.
	NoRequestLog bool
	// PublicPerMinute and SignInPerMinute are the default limits per client
	// address and minute on the employee pages' forms and on /login
	// (0: selfservice.DefaultPerMinute); a limit saved on the Properties
	// page replaces them (see configuredLimit).
	PublicPerMinute int
	SignInPerMinute int
	// APIPerMinute is the limit of REST API requests per token and minute
	// (0: DefaultAPIPerMinute).
	APIPerMinute int
	// Metrics, when set, counts every request by route, method and status.
	Metrics RequestRecorder
	// MetricsHandler serves GET /metrics on this listener when
	// MetricsToken is set too, and then only to requests that carry it as a
	// bearer token; otherwise there is no /metrics here (a listener of its
	// own serves it, or none).
	MetricsHandler http.Handler
	MetricsToken   []byte
}

// Server holds every handler's dependencies.
type Server struct {
	cfg         Config
	log         *slog.Logger
	admins      AdminService
	settings    SettingsService
	writeback   WritebackService
	selfservice SelfService
	sms         SMSService // nil: no text messages
	audit       AuditLog
	agentHub    AgentHub
	agents      AgentsService
	agentEnroll AgentEnroller
	limits      LimitSource
	rateCounter RateCounter
	factors     SignInFactors
	factorAdmin FactorAdmin
	banned      ProtectionService
	reminders   RemindersService
	campaign    CampaignService
	helpdesk    HelpdeskTools
	reports     ReportsService
	branding    BrandingService
	apiTokens   APITokenAdmin
	apiAuth     APITokenAuth
	apiLimit    *rateLimiter
	cookies     *sessions.CookieStore
	cookieCache *cookieCache
	cookieName  string
	secure      bool
	base        string // the base URL's path, basePath
}

// New builds the server.
func New(cfg Config, log *slog.Logger, d Deps) *Server {
	cs := sessions.NewCookieStore(cfg.CookieHashKey, cfg.CookieBlockKey)
	for _, c := range cs.Codecs {
		if sc, ok := c.(*securecookie.SecureCookie); ok {
			sc.SetSerializer(sessionSerializer{})
		}
	}
	secure := cfg.BaseURL != nil && cfg.BaseURL.Scheme == "https"
	base := basePath(cfg.BaseURL)
	name := cookieName
	switch {
	case secure && base == "":
		name = secureCookieName
	case secure:
		name = securePathCookieName
	}
	// No Domain: the cookie goes to this host only, and only under the
	// portal's path (the __Host- prefix requires Path=/).
	cs.Options = &sessions.Options{
		Path:     base + "/",
		HttpOnly: true,
		Secure:   secure,
		SameSite: http.SameSiteLaxMode,
	}
	// The cookie's Max-Age, and the oldest timestamp the decoder accepts
	// (which the decoded-cookie cache must know: it keeps no entry longer).
	maxAge := admins.AbsoluteTimeout
	cs.MaxAge(int(maxAge.Seconds()))
	if d.Factors == nil {
		d.Factors, _ = d.Admins.(SignInFactors)
	}
	if d.FactorAdmin == nil {
		d.FactorAdmin, _ = d.Admins.(FactorAdmin)
	}
	if d.APIAuth == nil {
		d.APIAuth, _ = d.APITokens.(APITokenAuth)
	}
	if d.Helpdesk == nil {
		d.Helpdesk, _ = d.SelfService.(HelpdeskTools)
	}
	if d.SMS == nil {
		d.SMS, _ = d.SelfService.(SMSService)
	}
	s := &Server{factors: d.Factors, factorAdmin: d.FactorAdmin, cfg: cfg, log: log, admins: d.Admins, settings: d.Settings, writeback: d.Writeback,
		selfservice: d.SelfService, audit: d.Audit, agentHub: d.AgentHub, agents: d.Agents, agentEnroll: d.AgentEnroll,
		limits: d.Limits, rateCounter: d.RateCounter, banned: d.Banned, reminders: d.Reminders, campaign: d.Campaign, helpdesk: d.Helpdesk, reports: d.Reports, branding: d.Branding, cookies: cs, cookieCache: newCookieCache(maxAge),
		cookieName: name, secure: secure, base: base, apiTokens: d.APITokens, apiAuth: d.APIAuth, sms: d.SMS}
	s.apiLimit = s.tokenLimiter()
	return s
}
