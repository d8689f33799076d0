package handlers

import (
	"io/fs"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/go-chi/httprate"

	"github.com/writeback/writeback/services/admins"
	"github.com/writeback/writeback/static"
)

// Routes returns every route of the portal.
func (s *Server) Routes() http.Handler {
	r := chi.NewRouter()
	r.Use(middleware.RequestID)
	r.Use(s.recoverer)
	r.Use(s.securityHeaders)
	r.Use(s.limitBody(1 << 20))
	r.Use(s.logRequests)
	r.NotFound(s.handle(func(w http.ResponseWriter, r *http.Request) error { return errNotFound }))
	r.MethodNotAllowed(s.handle(func(w http.ResponseWriter, r *http.Request) error { return errNotFound }))

	r.Get("/healthz", s.healthz)
	staticFS, _ := fs.Sub(static.FS, ".")
	r.Handle("/static/*", http.StripPrefix("/static/", cacheStatic(http.FileServerFS(staticFS))))

	r.Group(func(r chi.Router) {
		r.Use(s.session)
		r.Use(s.csrf)
		r.Get("/", s.handle(s.home))
		r.Get("/login", s.handle(s.loginForm))
		r.With(httprate.Limit(30, time.Minute, httprate.WithKeyFuncs(s.clientKey))).Post("/login", s.handle(s.login))
		r.Post("/logout", s.handle(s.logout))
		r.Get("/setup", s.handle(s.setupForm))
		r.With(httprate.Limit(10, time.Minute, httprate.WithKeyFuncs(s.clientKey))).Post("/setup", s.handle(s.setup))

		r.Route("/admin", func(r chi.Router) {
			r.Use(s.requireRole(admins.GlobalAdmin, admins.HelpdeskAdmin, admins.ReportsReader))
			r.Get("/", http.RedirectHandler("/admin/password-reset/on-premises-integration", http.StatusSeeOther).ServeHTTP)
			r.Get("/password-reset/on-premises-integration", s.handle(s.onPremForm))
			r.With(s.requireRole(admins.GlobalAdmin)).Post("/password-reset/on-premises-integration", s.handle(s.onPremSave))
			r.Get("/directory", s.handle(s.directoryForm))
			r.With(s.requireRole(admins.GlobalAdmin)).Post("/directory", s.handle(s.directorySave))
			r.With(s.requireRole(admins.GlobalAdmin)).Post("/directory/test", s.handle(s.directoryTest))
			r.Group(func(r chi.Router) {
				r.Use(s.requireRole(admins.GlobalAdmin, admins.HelpdeskAdmin))
				r.Get("/users", s.handle(s.usersSearch))
				r.Get("/users/{login}", s.handle(s.userShow))
				r.Post("/users/{login}/reset", s.handle(s.userReset))
				r.Post("/users/{login}/unlock", s.handle(s.userUnlock))
			})
			r.Group(func(r chi.Router) {
				r.Use(s.requireRole(admins.GlobalAdmin))
				r.Get("/administrators", s.handle(s.adminsList))
				r.Post("/administrators", s.handle(s.adminsAdd))
				r.Post("/administrators/{id}", s.handle(s.adminsUpdate))
			})
		})
	})
	return r
}

func cacheStatic(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		h.ServeHTTP(w, r)
	})
}
