package handlers

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/gorilla/sessions"

	"github.com/writeback/writeback/services/admins"
	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/errs"
	"github.com/writeback/writeback/store"
)

type ctxKey int

const stateKey ctxKey = 1

// reqState is what the session middleware learned about a request.
type reqState struct {
	sess  *sessions.Session
	admin *store.Admin
	csrf  string
}

func state(r *http.Request) *reqState {
	st, _ := r.Context().Value(stateKey).(*reqState)
	if st == nil {
		return &reqState{}
	}
	return st
}

// The security headers every answer carries, each value a slice of its own
// shared by all answers: setting them allocated one slice per header and
// request. A slice of length and capacity one is never changed in place:
// Header.Add appends to a copy, Set and Clone replace or copy it.
var (
	hdrCSP = []string{"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
		"object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"}
	hdrNoSniff     = []string{"nosniff"}
	hdrDeny        = []string{"DENY"}
	hdrSameOrigin  = []string{"same-origin"}
	hdrPermissions = []string{"camera=(), microphone=(), geolocation=(), payment=()"}
	hdrHSTS        = []string{"max-age=31536000; includeSubDomains"}
	hdrHTML        = []string{"text/html; charset=utf-8"}
	hdrNoStore     = []string{"no-store"}
)

func (s *Server) securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h["Content-Security-Policy"] = hdrCSP
		h["X-Content-Type-Options"] = hdrNoSniff
		h["X-Frame-Options"] = hdrDeny
		h["Referrer-Policy"] = hdrSameOrigin
		h["Cross-Origin-Opener-Policy"] = hdrSameOrigin
		h["Permissions-Policy"] = hdrPermissions
		if s.secure {
			h["Strict-Transport-Security"] = hdrHSTS
		}
		next.ServeHTTP(w, r)
	})
}

func (s *Server) limitBody(n int64) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			r.Body = http.MaxBytesReader(w, r.Body, n)
			next.ServeHTTP(w, r)
		})
	}
}

func (s *Server) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil && v != http.ErrAbortHandler {
				s.log.ErrorContext(r.Context(), "panic", "route", routeOf(r), "panic", fmt.Sprint(v), "request_id", middleware.GetReqID(r.Context()))
				s.renderError(w, r, errs.E(errs.Internal, "", fmt.Errorf("panic: %v", v)))
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// logRequests writes the request log's line (unless NoRequestLog) and
// counts the request for the metrics (when Config.Metrics is set), both by
// route pattern and status. The line's duration_ms is in milliseconds.
func (s *Server) logRequests(next http.Handler) http.Handler {
	logOn, rec := !s.cfg.NoRequestLog, s.cfg.Metrics
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
		next.ServeHTTP(ww, r)
		d := time.Since(start)
		status := ww.Status()
		if status == 0 { // nothing written: net/http answers 200
			status = http.StatusOK
		}
		if rec != nil {
			rec.Request(routeOf(r), metricMethod(r.Method), status, d)
		}
		if !logOn || r.URL.Path == "/healthz" || r.URL.Path == "/readyz" || strings.HasPrefix(r.URL.Path, "/static/") {
			return
		}
		s.log.LogAttrs(r.Context(), levelFor(status), "request",
			slogStr("method", r.Method), slogStr("route", routeOf(r)), slogInt("status", status),
			slogMS("duration_ms", d), slogStr("client_ip", s.clientIP(r)),
			slogStr("request_id", middleware.GetReqID(r.Context())))
	})
}

// Session cookie names. With an https base URL the cookie carries the
// __Host- prefix: browsers then accept it only with Secure, Path=/ and no
// Domain, so neither a plain-http page nor a sibling subdomain can plant or
// overwrite it. Under a base path (Path=/password/) that prefix is not
// allowed and the cookie carries __Secure-, which still requires Secure.
const (
	cookieName           = "wb_session"
	secureCookieName     = "__Host-wb_session"
	securePathCookieName = "__Secure-wb_session"
)

// safeMethod reports whether a request may not change anything.
func safeMethod(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return true
	}
	return false
}

// session loads the cookie session, resolves the signed-in administrator
// from the server-side session row, and makes sure a page view carries a
// CSRF secret.
//
// A new session (and its Set-Cookie) is made only on a safe request. A form
// posted from another site arrives without the browser's SameSite cookie;
// answering it with a fresh cookie would replace the session the browser
// holds — signing an administrator out or breaking an employee's reset from
// any web page. Such a request keeps no session at all: it has no CSRF
// secret, so the CSRF check refuses it, and nothing is written back. This
// is the one place that guarantees a refusal sets no cookie: no session is
// saved on an unsafe request before its handler runs.
func (s *Server) session(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		safe := safeMethod(r)
		start := safe && !crossSiteSubresource(r)
		sess, err := s.loadSession(r)
		if err != nil { // tampered, too old or from an old key: start over
			sess, _ = s.cookies.New(r, s.cookieName)
		}
		st := &reqState{sess: sess}
		tok, _ := sess.Values["csrf"].(string)
		bid, _ := sess.Values["bid"].(string)
		switch {
		case len(tok) == 64 && len(bid) == 64:
			st.csrf = tok
		case start:
			if len(tok) != 64 {
				tok = randomHex(32)
			}
			st.csrf = tok
			sess.Values["csrf"] = tok
			// bid binds self-service flows to this browser session.
			sess.Values["bid"] = randomHex(32)
			if err := sess.Save(r, w); err != nil {
				s.renderError(w, r, fmt.Errorf("save session: %w", err))
				return
			}
		}
		if sid, ok := sess.Values["sid"].(string); ok && sid != "" {
			a, err := s.admins.Resolve(r.Context(), sid)
			switch {
			case err == nil:
				st.admin = &a
			case errors.Is(err, admins.ErrNoSession):
				delete(sess.Values, "sid")
				if safe {
					_ = sess.Save(r, w)
				}
			default:
				s.renderError(w, r, err)
				return
			}
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), stateKey, st)))
	})
}

// crossSiteSubresource reports a request another site's page made for an
// image, script, frame or fetch (not a navigation): it never needs a
// session, so it gets no cookie either.
func crossSiteSubresource(r *http.Request) bool {
	if r.Header.Get("Sec-Fetch-Site") != "cross-site" {
		return false
	}
	dest := r.Header.Get("Sec-Fetch-Dest")
	return dest != "" && dest != "document"
}

var errCSRF = errs.E(errs.Forbidden, "This form has expired or did not come from this portal. Go back, reload the page and try again.", nil)

// crossOrigin refuses state-changing requests that come from another
// origin (Fetch metadata / Origin, via net/http's CrossOriginProtection).
// It runs before the session is loaded, so a refusal touches no session.
func (s *Server) crossOrigin(next http.Handler) http.Handler {
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.log.InfoContext(r.Context(), "cross-origin request refused", "route", routeOf(r), "client_ip", s.clientIP(r))
		s.renderError(w, r, errCSRF)
	}))
	return cop.Handler(next)
}

// csrf refuses state-changing requests that lack the session's
// synchronizer token.
func (s *Server) csrf(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if safeMethod(r) {
			next.ServeHTTP(w, r)
			return
		}
		// Read the form here so that a body over the limit is answered as
		// such, not as a missing token.
		var err error
		if strings.HasPrefix(r.Header.Get("Content-Type"), "multipart/form-data") {
			err = r.ParseMultipartForm(256 << 10)
		} else {
			err = r.ParseForm()
		}
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				s.renderError(w, r, err)
				return
			}
		}
		st := state(r)
		got := r.PostFormValue("csrf_token")
		if got == "" {
			got = r.Header.Get("X-CSRF-Token")
		}
		if st.csrf == "" || subtle.ConstantTimeCompare([]byte(got), []byte(st.csrf)) != 1 {
			s.log.InfoContext(r.Context(), "csrf token refused", "route", routeOf(r), "client_ip", s.clientIP(r))
			s.renderError(w, r, errCSRF)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// requireRole lets through signed-in administrators holding one of roles.
// Anonymous GETs (and HEADs) are sent to the sign-in page; everything else
// is refused.
func (s *Server) requireRole(roles ...admins.Role) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			st := state(r)
			if st.admin == nil {
				if r.Method == http.MethodGet || r.Method == http.MethodHead {
					// The escaped path and the query, so that the page comes
					// back exactly as asked for (safeNext checks it again).
					seeOther(w, r, "/login?next="+url.QueryEscape(safeNext(r.URL.RequestURI())))
					return
				}
				s.renderError(w, r, errs.E(errs.Unauthorized, "Your session has ended. Sign in again.", nil))
				return
			}
			for _, role := range roles {
				if st.admin.Role == string(role) {
					next.ServeHTTP(w, r)
					return
				}
			}
			s.log.InfoContext(r.Context(), "forbidden", "route", routeOf(r), "method", r.Method, "admin_id", st.admin.ID, "role", st.admin.Role)
			s.renderError(w, r, errForbidden)
		})
	}
}

var errForbidden = errs.E(errs.Forbidden, "Your role does not allow this. Ask a Global Administrator if you need it.", nil)
var errNotFound = errs.E(errs.NotFound, "There is no page at this address.", nil)

// clientIP is the peer address, or the nearest untrusted address in
// X-Forwarded-For when the peer is a configured trusted proxy.
func (s *Server) clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	peer, err := netip.ParseAddr(host)
	if err != nil || !s.trusted(peer) {
		return host
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break
		}
		if !s.trusted(a) {
			return a.String()
		}
	}
	return host
}

func (s *Server) trusted(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range s.cfg.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func (s *Server) clientKey(r *http.Request) (string, error) { return s.clientIP(r), nil }

// actor is the audit actor of the request.
func (s *Server) actor(r *http.Request) audit.Actor {
	ua := r.UserAgent()
	if len(ua) > 300 {
		ua = ua[:300]
	}
	if a := state(r).admin; a != nil {
		return admins.ActorFor(*a, s.clientIP(r), ua)
	}
	return audit.Actor{Type: "anonymous", ClientIP: s.clientIP(r), UserAgent: ua}
}

// routeOf names the request for logs by its route pattern, not its path:
// paths carry flow IDs and logins, and query strings setup tokens.
func routeOf(r *http.Request) string {
	if rc := chi.RouteContext(r.Context()); rc != nil && rc.RoutePattern() != "" {
		return rc.RoutePattern()
	}
	return "unmatched"
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("crypto/rand: " + err.Error())
	}
	return hex.EncodeToString(b)
}
