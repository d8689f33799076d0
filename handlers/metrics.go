package handlers

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"
	"time"
)

// RequestRecorder counts answered requests for the portal's metrics
// (*metrics.Metrics): route is chi's route pattern, never the path (paths
// carry flow IDs and logins), and method one of a few known ones.
type RequestRecorder interface {
	Request(route, method string, status int, d time.Duration)
}

// metricMethod bounds the method label: a client may send any word there.
func metricMethod(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions:
		return m
	}
	return "OTHER"
}

// metricsAuth serves Config.MetricsHandler to a request that carries the
// bearer token of Config.MetricsToken, compared in constant time (as
// SHA-256 sums, so that not even its length shows); anything else gets 401.
func (s *Server) metricsAuth(next http.Handler) http.Handler {
	want := sha256.Sum256(s.cfg.MetricsToken)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		sum := sha256.Sum256([]byte(strings.TrimSpace(got)))
		if !ok || subtle.ConstantTimeCompare(sum[:], want[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="metrics"`)
			http.Error(w, "a valid bearer token is needed for /metrics", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}
