package handlers

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/a-h/templ"
	"github.com/go-chi/chi/v5/middleware"

	"github.com/writeback/writeback/services/errs"
	"github.com/writeback/writeback/services/i18n"
	"github.com/writeback/writeback/web"
)

// handle adapts a handler that returns an error into an http.HandlerFunc;
// the error becomes a page in the portal's look.
func (s *Server) handle(fn func(http.ResponseWriter, *http.Request) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := fn(w, r); err != nil {
			s.renderError(w, r, err)
		}
	}
}

// statusOf is the one place that maps an error kind to an HTTP status.
func statusOf(err error) int {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return http.StatusRequestEntityTooLarge
	}
	switch errs.KindOf(err) {
	case errs.Invalid, errs.Policy:
		return http.StatusUnprocessableEntity
	case errs.NotFound:
		return http.StatusNotFound
	case errs.Forbidden:
		return http.StatusForbidden
	case errs.Unauthorized:
		return http.StatusUnauthorized
	case errs.Conflict:
		return http.StatusConflict
	case errs.TooMany:
		return http.StatusTooManyRequests
	case errs.Unavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

func (s *Server) renderError(w http.ResponseWriter, r *http.Request, err error) {
	ctx := r.Context()
	status := statusOf(err)
	msg := errs.MessageIn(ctx, err)
	title := i18n.T(ctx, "Something went wrong")
	switch status {
	case http.StatusInternalServerError:
		s.log.ErrorContext(ctx, "request failed", "route", routeOf(r), "err", err, "request_id", middleware.GetReqID(ctx))
		msg = i18n.T(ctx, "Something went wrong on our side. Please try again; if it keeps happening, contact your administrator (reference %s).", middleware.GetReqID(ctx))
	case http.StatusRequestEntityTooLarge:
		msg = i18n.T(ctx, "That request was too large.")
		title = i18n.T(ctx, "Too large")
	case http.StatusUnauthorized:
		title = i18n.T(ctx, "Sign-in needed")
	case http.StatusForbidden:
		title = i18n.T(ctx, "Not allowed")
	case http.StatusNotFound:
		title = i18n.T(ctx, "Page not found")
	case http.StatusConflict:
		title = i18n.T(ctx, "Changed in the meantime")
	case http.StatusUnprocessableEntity:
		title = i18n.T(ctx, "Check what was typed")
	case http.StatusTooManyRequests:
		title = i18n.T(ctx, "Too many attempts")
	case http.StatusServiceUnavailable:
		title = i18n.T(ctx, "Not available right now")
	}
	if status >= 500 && status != http.StatusInternalServerError {
		s.log.ErrorContext(ctx, "request failed", "route", routeOf(r), "err", err)
	}
	st := state(r)
	v := web.ErrorView{Page: web.Page{Title: title, Heading: title, CSRF: st.csrf}, Status: status, Message: msg}
	s.render(w, r, status, web.ErrorPage(v))
}

// render writes a component with a status, buffered so that a render error
// becomes a clean 500 rather than half a page.
func (s *Server) render(w http.ResponseWriter, r *http.Request, status int, c templ.Component) {
	buf := templ.GetBuffer()
	defer templ.ReleaseBuffer(buf)
	if err := c.Render(web.WithPath(web.WithBrand(r.Context(), s.brand(r.Context())), r.URL.Path), buf); err != nil {
		s.log.ErrorContext(r.Context(), "render", "err", err, "route", routeOf(r))
		http.Error(w, "Something went wrong on our side.", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h["Content-Type"] = hdrHTML
	h["Cache-Control"] = hdrNoStore
	// With its length the page goes out in one piece, not chunked: fewer
	// writes here and less parsing for the client.
	h["Content-Length"] = []string{strconv.Itoa(buf.Len())}
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// flash stores a one-time confirmation shown by the next page.
func (s *Server) flash(w http.ResponseWriter, r *http.Request, msg string) {
	st := state(r)
	if st.sess == nil {
		return
	}
	st.sess.AddFlash(msg)
	_ = st.sess.Save(r, w)
}

func (s *Server) takeFlash(w http.ResponseWriter, r *http.Request) string {
	st := state(r)
	if st.sess == nil {
		return ""
	}
	fl := st.sess.Flashes()
	if len(fl) == 0 {
		return ""
	}
	_ = st.sess.Save(r, w)
	m, _ := fl[len(fl)-1].(string)
	return m
}

// healthz is the liveness probe: the process serves requests. It checks
// nothing else, so that an orchestrator does not restart a replica for an
// outage of the database that a restart would not mend (readyz is for that).
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write([]byte("ok\n"))
}

// readyz is the readiness probe: 503 while the database cannot be reached,
// so that a load balancer takes the replica out until it can. The
// directory's state is reported (one word, no detail: the probe is public)
// but does not fail readiness: every replica would fail at once, and the
// pages that need no directory (and the error page that says so) would go
// with them.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if s.cfg.Health != nil {
		if err := s.cfg.Health(ctx); err != nil {
			s.log.ErrorContext(ctx, "readiness check failed: database unreachable", "err", err)
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("not ready\ndatabase: unreachable\n"))
			return
		}
	}
	dir := "unknown"
	if st, err := s.settings.Status(ctx); err == nil && st.State != "" {
		dir = string(st.State) // connected, error or not-configured
	}
	_, _ = w.Write([]byte("ready\ndatabase: ok\ndirectory: " + dir + "\n"))
}

func levelFor(status int) slog.Level {
	if status >= 500 {
		return slog.LevelError
	}
	return slog.LevelInfo
}

func slogStr(k, v string) slog.Attr     { return slog.String(k, v) }
func slogInt(k string, v int) slog.Attr { return slog.Int(k, v) }

// slogMS is a duration in milliseconds, with microseconds as decimals
// (a JSON log's Duration would be nanoseconds).
func slogMS(k string, v time.Duration) slog.Attr {
	return slog.Float64(k, float64(v.Microseconds())/1000)
}

// seeOther answers 303 to the portal path p (e.g. "/admin/agents"): every
// redirect goes through it, so that it stays under the path prefix the
// portal is served under (web.Path).
func seeOther(w http.ResponseWriter, r *http.Request, p string) {
	http.Redirect(w, r, web.Path(r.Context(), p), http.StatusSeeOther)
}
