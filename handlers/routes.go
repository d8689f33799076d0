package handlers

import (
	"net/http"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"

	"github.com/writeback/writeback/services/admins"
	"github.com/writeback/writeback/services/agentwire"
	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/static"
	"github.com/writeback/writeback/store"
)

// Routes returns every route of the portal, under the base URL's path.
func (s *Server) Routes() http.Handler {
	return s.underBase(s.routes())
}

// routes are the portal's routes, from its root.
func (s *Server) routes() http.Handler {
	r := chi.NewRouter()
	r.Use(middleware.RequestID)
	// HEAD is answered by every GET route (the server sends no body).
	r.Use(middleware.GetHead)
	r.Use(s.recoverer)
	r.Use(s.securityHeaders)
	r.Use(s.limitBody(1 << 20))
	if !s.cfg.NoRequestLog || s.cfg.Metrics != nil {
		r.Use(s.logRequests)
	}
	// The reader's language is worked out only where a page can be shown:
	// static files, probes, the agents' and the API's JSON need none.
	notFound := s.language(s.handle(func(w http.ResponseWriter, r *http.Request) error { return errNotFound }))
	r.NotFound(notFound.ServeHTTP)
	r.MethodNotAllowed(notFound.ServeHTTP)

	r.Get("/healthz", s.healthz)
	r.Get("/readyz", s.readyz)
	if s.cfg.MetricsHandler != nil && len(s.cfg.MetricsToken) > 0 {
		r.With(s.metricsAuth).Get("/metrics", s.cfg.MetricsHandler.ServeHTTP)
	}
	// No session, no cookie: the agent's key is the credential. Attempts are
	// limited per address (an agent reconnects with a backoff of 1 s and
	// more), so that unauthenticated handshakes cannot pile up.
	r.With(s.limiter("agent-connect", fixed(agentConnectsPerMinute), agentConnectTooMany)).
		Get(agentwire.PathConnect, s.agentConnect)
	r.Handle("/static/*", s.staticFiles(static.FS))
	r.Get(logoPath, s.handle(s.brandLogo))
	r.Get(themePath, s.handle(s.brandTheme))
	// The agents' enrolment: JSON, no cookie, so outside the session and
	// CSRF middleware below (the one-time token is the credential).
	r.With(s.limiter("agent-enroll", fixed(10), enrollTooMany)).
		Post(agentwire.PathEnroll, s.enrollAgent)

	// The REST API: a bearer token is the credential, never a cookie, so it
	// is outside the session and CSRF middleware below (a page on another
	// site cannot make a browser send the token); only these addresses are.
	r.Route(APIPrefix, s.apiRoutes)

	r.Group(func(r chi.Router) {
		r.Use(s.language)
		r.Use(s.crossOrigin)
		r.Use(s.session)
		r.Use(s.csrf)
		r.Get("/", s.handle(s.start))
		// Employee pages: public, rate limited per client address, all of
		// their forms together (the limit an administrator can change).
		limited := r.With(s.limiter("public", s.publicLimit, nil))
		limited.Post("/language", s.handle(s.setLanguage))
		for _, kind := range []string{"/reset", "/unlock"} {
			r.Get(kind, s.handle(s.whoForm))
			limited.Post(kind, s.handle(s.whoSubmit))
			r.Get(kind+"/{flow}", s.handle(s.stepShow))
			limited.Post(kind+"/{flow}/method", s.handle(s.stepMethod))
			limited.Post(kind+"/{flow}/verify", s.handle(s.stepVerify))
			limited.Post(kind+"/{flow}/password", s.handle(s.stepPassword))
		}
		limited.Post("/unlock/{flow}/unlock", s.handle(s.stepUnlock))
		r.Get("/change", s.handle(s.changeForm))
		limited.Post("/change", s.handle(s.changeSubmit))
		r.Get("/register", s.handle(s.registerForm))
		limited.Post("/register", s.handle(s.registerSubmit))
		r.Get("/register/{flow}", s.handle(s.registerShow))
		limited.Post("/register/{flow}/email", s.handle(s.registerEmail))
		limited.Post("/register/{flow}/email/confirm", s.handle(s.registerEmailConfirm))
		limited.Post("/register/{flow}/app", s.handle(s.registerApp))
		limited.Post("/register/{flow}/app/confirm", s.handle(s.registerAppConfirm))
		limited.Post("/register/{flow}/questions", s.handle(s.registerQuestions))
		limited.Post("/register/{flow}/confirm", s.handle(s.registerConfirm))
		if s.sms != nil {
			limited.Post("/register/{flow}/phone", s.handle(s.registerPhone))
			limited.Post("/register/{flow}/phone/confirm", s.handle(s.registerPhoneConfirm))
		}
		limited.Post("/register/{flow}/passkey", s.handle(s.registerPasskey))
		limited.Post("/register/{flow}/passkeys/{credential}/remove", s.handle(s.registerPasskeyRemove))

		r.Get("/login", s.handle(s.loginForm))
		r.With(s.limiter("signin", s.signInLimit, nil)).Post("/login", s.handle(s.login))
		r.Post("/logout", s.handle(s.logout))
		// The second step of a sign-in, reachable only in the half-signed-in
		// state; wrong codes are limited by services/admins as well.
		second := r.With(s.limiter("signin-factor", s.signInLimit, nil))
		r.Get("/login/factor", s.withPending(store.StageFactor, s.factorForm))
		second.Post("/login/factor/app", s.withPending(store.StageFactor, s.factorApp))
		second.Post("/login/factor/recovery", s.withPending(store.StageFactor, s.factorRecovery))
		second.Post("/login/factor/passkey", s.withPending(store.StageFactor, s.factorPasskey))
		r.Get("/login/enrol", s.withPending(store.StageEnrol, s.enrolForm))
		second.Post("/login/enrol/app", s.withPending(store.StageEnrol, s.enrolApp))
		second.Post("/login/enrol/passkey", s.withPending(store.StageEnrol, s.enrolPasskey))
		r.Get("/login/reset", s.handle(s.resetPasswordForm))
		r.With(s.limiter("login-reset", fixed(10), nil)).Post("/login/reset", s.handle(s.resetPassword))
		r.Get("/setup", s.handle(s.setupForm))
		r.With(s.limiter("setup", fixed(10), nil)).Post("/setup", s.handle(s.setup))

		r.Route("/admin", func(r chi.Router) {
			r.Use(s.requireRole(admins.GlobalAdmin, admins.HelpdeskAdmin, admins.ReportsReader))
			// Helpdesk Administrators start where their work is: Directory
			// users; the others on the portal's first settings page.
			start := func(w http.ResponseWriter, r *http.Request) {
				if a := state(r).admin; a != nil && a.Role == string(admins.HelpdeskAdmin) {
					seeOther(w, r, "/admin/users")
					return
				}
				seeOther(w, r, "/admin/password-reset/on-premises-integration")
			}
			r.Get("/", start)
			// GetHead, above, sees the mounted router's "/" as a route of
			// every method, so it does not turn this HEAD into a GET.
			r.Head("/", start)
			r.Get("/security", s.handle(s.securityShow))
			r.Get("/security/add", s.handle(s.securityAdd))
			r.Post("/security/app", s.handle(s.securityApp))
			r.Post("/security/passkey", s.handle(s.securityPasskey))
			r.Post("/security/factors/{id}/remove", s.handle(s.securityRemove))
			r.Post("/security/recovery-codes", s.handle(s.securityCodes))
			r.Get("/password-reset/on-premises-integration", s.handle(s.onPremForm))
			r.With(s.requireRole(admins.GlobalAdmin)).Post("/password-reset/on-premises-integration", s.handle(s.onPremSave))
			for nav, pg := range policyPages {
				r.Get("/password-reset/"+pg.path, s.handle(s.policyForm(nav)))
				r.With(s.requireRole(admins.GlobalAdmin)).Post("/password-reset/"+pg.path, s.handle(s.policySave(nav)))
			}
			r.Get("/reports", s.handle(s.reportsPage))
			r.Get("/reports/export.csv", s.handle(s.reportsCSV))
			r.Get(protectionPath, s.handle(s.protectionForm))
			r.With(s.requireRole(admins.GlobalAdmin)).Post(protectionPath, s.handle(s.protectionSave))
			r.Get(remindersPath, s.handle(s.remindersForm))
			r.With(s.requireRole(admins.GlobalAdmin)).Post(remindersPath, s.handle(s.remindersSave))
			r.Route(campaignPath, func(r chi.Router) {
				r.Use(s.requireRole(admins.GlobalAdmin))
				r.Get("/", s.handle(s.campaignForm))
				r.Post("/", s.handle(s.campaignSave))
				r.Post("/dry-run", s.handle(s.campaignDryRun))
				r.Post("/start", s.handle(s.campaignStart))
				r.Post("/stop", s.handle(s.campaignStop))
			})
			r.Get(brandingPath, s.handle(s.brandingForm))
			r.With(s.requireRole(admins.GlobalAdmin)).Post(brandingPath, s.handle(s.brandingSave))
			r.Get("/password-reset/mail-server", s.handle(s.mailForm))
			r.With(s.requireRole(admins.GlobalAdmin)).Post("/password-reset/mail-server", s.handle(s.mailSave))
			r.With(s.requireRole(admins.GlobalAdmin)).Post("/password-reset/mail-server/test", s.handle(s.mailTest))
			if s.sms != nil {
				r.Get(smsPath, s.handle(s.smsForm))
				r.With(s.requireRole(admins.GlobalAdmin)).Post(smsPath, s.handle(s.smsSave))
				r.With(s.requireRole(admins.GlobalAdmin)).Post(smsPath+"/preset", s.handle(s.smsPreset))
				r.With(s.requireRole(admins.GlobalAdmin)).Post(smsPath+"/test", s.handle(s.smsTest))
			}
			r.Get("/audit", s.handle(s.auditList))
			r.Get("/audit/export.csv", s.handle(s.auditExport(audit.FormatCSV)))
			r.Get("/audit/export.jsonl", s.handle(s.auditExport(audit.FormatJSONL)))
			r.Get("/audit/correlation/{id}", s.handle(s.auditCorrelation))
			r.Get("/audit/{id}", s.handle(s.auditEvent))
			r.With(s.limiter("audit-verify", fixed(6), nil)).Post("/audit/verify", s.handle(s.auditVerify))
			r.With(s.requireRole(admins.GlobalAdmin)).Post("/audit/settings", s.handle(s.auditSettings))
			r.Get("/directory", s.handle(s.directoryForm))
			r.With(s.requireRole(admins.GlobalAdmin)).Post("/directory", s.handle(s.directorySave))
			r.With(s.requireRole(admins.GlobalAdmin)).Post("/directory/test", s.handle(s.directoryTest))
			r.Group(func(r chi.Router) {
				r.Use(s.requireRole(admins.GlobalAdmin, admins.HelpdeskAdmin))
				r.Get("/users", s.handle(s.usersSearch))
				r.Get("/users/{login}", s.handle(s.userShow))
				r.Post("/users/{login}/reset", s.handle(s.userReset))
				r.Post("/users/{login}/unlock", s.handle(s.userUnlock))
				r.Post("/users/{login}/methods/remove", s.handle(s.userRemoveMethods))
				r.Post("/users/{login}/unblock", s.handle(s.userLiftBlock))
			})
			r.Group(func(r chi.Router) {
				r.Use(s.requireRole(admins.GlobalAdmin))
				r.Get("/agents", s.handle(s.agentsList))
				r.Post("/agents", s.handle(s.agentsAdd))
				r.Get("/agents/{id}/revoke", s.handle(s.agentsRevokeForm))
				r.Post("/agents/{id}/revoke", s.handle(s.agentsRevoke))
			})
			r.Group(func(r chi.Router) {
				r.Use(s.requireRole(admins.GlobalAdmin))
				r.Get("/administrators", s.handle(s.adminsList))
				r.Post("/administrators", s.handle(s.adminsAdd))
				r.Post("/administrators/policy", s.handle(s.adminsPolicy))
				r.Post("/administrators/{id}", s.handle(s.adminsUpdate))
				r.Post("/administrators/{id}/reset", s.handle(s.adminsReset))
				r.Get("/api-tokens", s.handle(s.apiTokensList))
				r.Post("/api-tokens", s.handle(s.apiTokensCreate))
				r.Post("/api-tokens/{id}/revoke", s.handle(s.apiTokensRevoke))
			})
		})
	})
	return r
}
