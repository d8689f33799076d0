package main

import (
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/writeback/writeback/cmd/internal/certfile"
)

// reloadOnHangup reads the TLS pair again on every SIGHUP until the returned
// function is called: a certificate renewed on disk (certbot, a mounted
// secret) is served from the next handshake, without a restart. A pair
// that is unusable is refused with a log line and the current one kept.
func reloadOnHangup(pair *certfile.Pair, log *slog.Logger) (stop func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-done:
				return
			case <-hup:
				if err := pair.Reload(); err != nil {
					log.Error("TLS certificate not reloaded: the current one is still served", "err", err,
						"tls_not_after", pair.Current().Leaf.NotAfter.UTC().Format(time.RFC3339))
					continue
				}
				log.Info("TLS certificate reloaded", "tls_cert", pair.CertFile,
					"tls_not_after", pair.Current().Leaf.NotAfter.UTC().Format(time.RFC3339))
			}
		}
	}()
	return func() {
		signal.Stop(hup)
		close(done)
	}
}

// redirectToHTTPS answers plain HTTP (--http-redirect-listen): GET and HEAD
// get a 308 to the same path and query on the https base URL's host (never
// the request's Host header); other methods are refused, since a form sent
// over plain HTTP has already shown its content to the network.
func redirectToHTTPS(base *url.URL) http.Handler {
	origin := "https://" + base.Host
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "This portal answers over HTTPS only: "+base.String(), http.StatusMethodNotAllowed)
			return
		}
		http.Redirect(w, r, origin+r.URL.RequestURI(), http.StatusPermanentRedirect)
	})
}
