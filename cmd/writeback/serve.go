package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	goio "io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/writeback/writeback/cmd/internal/certfile"

	"github.com/writeback/writeback/cmd/internal/cmdline"
	"github.com/writeback/writeback/cmd/internal/datadir"
	"github.com/writeback/writeback/handlers"
	"github.com/writeback/writeback/services/admins"
	"github.com/writeback/writeback/services/agenthub"
	"github.com/writeback/writeback/services/agents"
	"github.com/writeback/writeback/services/agentwire"
	"github.com/writeback/writeback/services/alerts"
	"github.com/writeback/writeback/services/apitokens"
	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/branding"
	"github.com/writeback/writeback/services/campaign"
	"github.com/writeback/writeback/services/metrics"
	"github.com/writeback/writeback/services/passkeys"
	"github.com/writeback/writeback/services/reminders"
	"github.com/writeback/writeback/services/replicas"
	"github.com/writeback/writeback/services/reports"
	"github.com/writeback/writeback/services/selfservice"
)

// statusInterval is how often the writeback service status is refreshed
// while nothing else happens: an outage shows on the panel within a minute
// even when no request runs into it (one that does shows it at once).
const statusInterval = time.Minute

// defaultShutdownTimeout is the grace period after SIGTERM: below Docker's
// 10 s between SIGTERM and SIGKILL, so a container stops cleanly by default.
const defaultShutdownTimeout = 8 * time.Second

type serveConfig struct {
	listen          string
	data            datadir.Location
	baseURL         *url.URL
	trustedProxies  []netip.Prefix
	auditStdout     bool
	auditSyslog     *url.URL    // tcp://, udp:// or tls://host:port
	auditSyslogTLS  *tls.Config // for tls://: the roots of --audit-syslog-ca, or nil for the system roots
	shutdownTimeout time.Duration
	logLevel        slog.Level
	logFormat       string // logText or logJSON
	requestLog      bool   // a log line per request (at Info)
	// publicPerMinute and signInPerMinute are the default rate limits per
	// client address; a value saved on the Properties page replaces them.
	publicPerMinute int
	signInPerMinute int
	// tls, when set, serves HTTPS on listen with the pair from
	// --tls-cert/--tls-key (read again on SIGHUP); redirectListen, when set,
	// answers plain HTTP there with a redirect to the base URL.
	tls            *certfile.Pair
	redirectListen string
	// apiPerMinute is the limit of REST API requests per token.
	apiPerMinute int
	// metricsListen is the address of the listener that serves only
	// /metrics (empty: none); metricsToken, when set, also serves /metrics
	// on the main listener to requests bearing it.
	metricsListen string
	metricsToken  []byte
}

// plainPath reports whether a base URL's path (without its trailing slash)
// is "" or segments of characters that need no escaping — so that it reads
// the same escaped and not —, none of them empty, "." or "..".
func plainPath(p string) bool {
	if p == "" {
		return true
	}
	segs := strings.Split(p, "/")
	for _, seg := range segs[1:] {
		if seg == "." || seg == ".." || !segmentRE.MatchString(seg) {
			return false
		}
	}
	return segs[0] == ""
}

var segmentRE = regexp.MustCompile(`^[A-Za-z0-9._~-]+$`)

// minMetricsToken is the shortest bearer token --metrics-token-file takes.
const minMetricsToken = 16

func parseServeFlags(args []string, getenv env, io stdio) (serveConfig, error) {
	fs := newFlags("serve", io)
	listen := fs.String("listen", cmdline.EnvOr(getenv, "WRITEBACK_LISTEN", "127.0.0.1:8080"), "address to listen on (env WRITEBACK_LISTEN)")
	data := dataFlag(fs.StringVar, getenv)
	base := fs.String("base-url", getenv("WRITEBACK_BASE_URL"), "public URL of the portal, the only source of absolute links (env WRITEBACK_BASE_URL; default http://<listen>)")
	proxies := fs.String("trusted-proxy", getenv("WRITEBACK_TRUSTED_PROXIES"), "comma-separated addresses or CIDRs of reverse proxies whose X-Forwarded-For is honoured (env WRITEBACK_TRUSTED_PROXIES)")
	stdoutFwd := fs.Bool("audit-stdout", getenv("WRITEBACK_AUDIT_STDOUT") == "1" || getenv("WRITEBACK_AUDIT_STDOUT") == "true", "also write each audit event as a JSON line on standard output (env WRITEBACK_AUDIT_STDOUT=1)")
	syslogFwd := fs.String("audit-syslog", getenv("WRITEBACK_AUDIT_SYSLOG"), "also send each audit event to a syslog server (RFC 5424), e.g. tls://siem.example.com:6514, tcp://10.0.0.5:514 or udp://10.0.0.5:514 (env WRITEBACK_AUDIT_SYSLOG)")
	syslogCA := fs.String("audit-syslog-ca", getenv("WRITEBACK_AUDIT_SYSLOG_CA"), "PEM file with the CA certificates that verify a tls:// syslog server (env WRITEBACK_AUDIT_SYSLOG_CA; default: the system roots)")
	shutdownTimeout := fs.Duration("shutdown-timeout", defaultShutdownTimeout, "grace period after SIGTERM or Ctrl-C for requests, background work and audit forwarding to finish (env WRITEBACK_SHUTDOWN_TIMEOUT)")
	if v := getenv("WRITEBACK_SHUTDOWN_TIMEOUT"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return serveConfig{}, cmdline.Usagef("WRITEBACK_SHUTDOWN_TIMEOUT %q: want a duration such as 8s", v)
		}
		*shutdownTimeout = d
	}
	logFormat := fs.String("log-format", cmdline.EnvOr(getenv, "WRITEBACK_LOG_FORMAT", logText), "the operator log's format: text (key=value lines) or json (one object per line) (env WRITEBACK_LOG_FORMAT)")
	logLevel := fs.String("log-level", cmdline.EnvOr(getenv, "WRITEBACK_LOG_LEVEL", "info"), "the least level of the operator log: debug, info, warn or error (env WRITEBACK_LOG_LEVEL)")
	requestLog := fs.String("request-log", cmdline.EnvOr(getenv, "WRITEBACK_REQUEST_LOG", "on"), "on: a log line (at info) per request; off: none, errors are still logged (env WRITEBACK_REQUEST_LOG)")
	tlsCert := fs.String("tls-cert", getenv("WRITEBACK_TLS_CERT"), "PEM file with the certificate (and its chain) to serve HTTPS on --listen, read again on SIGHUP; needs --tls-key (env WRITEBACK_TLS_CERT)")
	tlsKey := fs.String("tls-key", getenv("WRITEBACK_TLS_KEY"), "PEM file with the private key of --tls-cert (env WRITEBACK_TLS_KEY)")
	redirectListen := fs.String("http-redirect-listen", getenv("WRITEBACK_HTTP_REDIRECT_LISTEN"), "with --tls-cert: also listen for plain HTTP on this address and redirect GET and HEAD to the https base URL (env WRITEBACK_HTTP_REDIRECT_LISTEN)")
	publicRate := fs.Int("rate-limit-public", selfservice.DefaultPerMinute,
		"default requests per minute from one client address to the employee pages' forms, 1 to 10000; a limit saved on Password reset › Properties replaces it (env WRITEBACK_RATE_LIMIT_PUBLIC)")
	signInRate := fs.Int("rate-limit-signin", selfservice.DefaultPerMinute,
		"default administrator sign-ins per minute from one client address, 1 to 10000; a limit saved on Password reset › Properties replaces it (env WRITEBACK_RATE_LIMIT_SIGNIN)")
	apiRate := fs.Int("rate-limit-api", handlers.DefaultAPIPerMinute,
		"REST API requests per minute with one API token, 1 to 10000 (env WRITEBACK_RATE_LIMIT_API)")
	metricsListen := fs.String("metrics-listen", getenv("WRITEBACK_METRICS_LISTEN"), "address of a second listener that serves only /metrics, e.g. 127.0.0.1:9090 (env WRITEBACK_METRICS_LISTEN; default: none)")
	metricsToken := fs.String("metrics-token-file", getenv("WRITEBACK_METRICS_TOKEN_FILE"), "file holding a bearer token (at least 16 characters) that Prometheus sends for /metrics on the main listener (env WRITEBACK_METRICS_TOKEN_FILE; default: no /metrics there)")
	for _, e := range []struct {
		name string
		to   *int
	}{{"WRITEBACK_RATE_LIMIT_PUBLIC", publicRate}, {"WRITEBACK_RATE_LIMIT_SIGNIN", signInRate}, {"WRITEBACK_RATE_LIMIT_API", apiRate}} {
		if v := getenv(e.name); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil {
				return serveConfig{}, cmdline.Usagef("%s %q: want requests per minute, 1 to %d", e.name, v, selfservice.MaxPerMinute)
			}
			*e.to = n
		}
	}
	if err := cmdline.Parse(fs, args); err != nil {
		return serveConfig{}, err
	}
	cfg := serveConfig{listen: *listen, data: *data, auditStdout: *stdoutFwd, shutdownTimeout: *shutdownTimeout}
	for _, l := range []struct {
		flag, env string
		n         int
		to        *int
	}{{"rate-limit-public", "WRITEBACK_RATE_LIMIT_PUBLIC", *publicRate, &cfg.publicPerMinute},
		{"rate-limit-signin", "WRITEBACK_RATE_LIMIT_SIGNIN", *signInRate, &cfg.signInPerMinute},
		{"rate-limit-api", "WRITEBACK_RATE_LIMIT_API", *apiRate, &cfg.apiPerMinute}} {
		if l.n < 1 || l.n > selfservice.MaxPerMinute {
			return cfg, cmdline.Usagef("--%s (env %s) %d: want requests per minute, 1 to %d", l.flag, l.env, l.n, selfservice.MaxPerMinute)
		}
		*l.to = l.n
	}
	if err := cfg.logLevel.UnmarshalText([]byte(*logLevel)); err != nil || strings.ContainsAny(*logLevel, "+-") {
		return cfg, cmdline.Usagef("--log-level %q: want debug, info, warn or error", *logLevel)
	}
	switch *logFormat {
	case logText, logJSON:
		cfg.logFormat = *logFormat
	default:
		return cfg, cmdline.Usagef("--log-format %q: want text or json", *logFormat)
	}
	switch *requestLog {
	case "on":
		cfg.requestLog = true
	case "off":
	default:
		return cfg, cmdline.Usagef("--request-log %q: want on or off", *requestLog)
	}
	if cfg.shutdownTimeout <= 0 {
		return cfg, cmdline.Usagef("--shutdown-timeout %s: want a positive duration such as 8s", cfg.shutdownTimeout)
	}
	if *syslogFwd != "" {
		su, err := url.Parse(*syslogFwd)
		if err != nil || (su.Scheme != "tcp" && su.Scheme != "udp" && su.Scheme != "tls") || su.Port() == "" || su.Hostname() == "" ||
			(su.Path != "" && su.Path != "/") || su.RawQuery != "" || su.User != nil {
			return cfg, cmdline.Usagef("--audit-syslog %q: want tls://host:port, tcp://host:port or udp://host:port", *syslogFwd)
		}
		cfg.auditSyslog = su
	}
	if *syslogCA != "" {
		if cfg.auditSyslog == nil || cfg.auditSyslog.Scheme != "tls" {
			return cfg, cmdline.Usagef("--audit-syslog-ca needs a tls:// --audit-syslog")
		}
		pem, err := os.ReadFile(*syslogCA)
		if err != nil {
			return cfg, cmdline.Usagef("--audit-syslog-ca %q: %v", *syslogCA, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return cfg, cmdline.Usagef("--audit-syslog-ca %q: no PEM certificate in the file", *syslogCA)
		}
		cfg.auditSyslogTLS = &tls.Config{RootCAs: pool}
	}
	if _, _, err := net.SplitHostPort(cfg.listen); err != nil {
		return cfg, cmdline.Usagef("--listen %q: want host:port, e.g. 127.0.0.1:8080", cfg.listen)
	}
	if (*tlsCert == "") != (*tlsKey == "") {
		return cfg, cmdline.Usagef("--tls-cert and --tls-key go together: give both files or neither")
	}
	if *redirectListen != "" {
		if *tlsCert == "" {
			return cfg, cmdline.Usagef("--http-redirect-listen needs --tls-cert and --tls-key")
		}
		if _, _, err := net.SplitHostPort(*redirectListen); err != nil {
			return cfg, cmdline.Usagef("--http-redirect-listen %q: want host:port, e.g. 0.0.0.0:80", *redirectListen)
		}
		cfg.redirectListen = *redirectListen
	}
	if cfg.metricsListen = *metricsListen; cfg.metricsListen != "" {
		if _, _, err := net.SplitHostPort(cfg.metricsListen); err != nil {
			return cfg, cmdline.Usagef("--metrics-listen %q: want host:port, e.g. 127.0.0.1:9090", cfg.metricsListen)
		}
	}
	if *metricsToken != "" {
		b, err := os.ReadFile(*metricsToken)
		if err != nil {
			return cfg, cmdline.Usagef("--metrics-token-file %q: %v", *metricsToken, err)
		}
		tok, _, _ := strings.Cut(string(b), "\n")
		if tok = strings.TrimSpace(tok); len(tok) < minMetricsToken {
			return cfg, cmdline.Usagef("--metrics-token-file %q: want a token of at least %d characters on the first line", *metricsToken, minMetricsToken)
		}
		cfg.metricsToken = []byte(tok)
	}
	b := *base
	if b == "" {
		b = "http://" + cfg.listen
		if *tlsCert != "" {
			b = "https://" + cfg.listen
		}
	}
	u, err := url.Parse(b)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return cfg, cmdline.Usagef("--base-url %q: want an absolute http(s) URL such as https://reset.example.com", b)
	}
	if *tlsCert != "" && u.Scheme != "https" {
		return cfg, cmdline.Usagef("--base-url %q: with --tls-cert the portal is served over HTTPS: want an https:// URL", b)
	}
	if *tlsCert != "" {
		if cfg.tls, err = certfile.Load(*tlsCert, *tlsKey); err != nil {
			return cfg, cmdline.Usagef("--tls-cert: %v", err)
		}
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	if !plainPath(u.Path) || u.RawPath != "" {
		return cfg, cmdline.Usagef("--base-url %q: the path may hold only letters, digits and . _ ~ - between slashes, e.g. https://intranet.example/password/", b)
	}
	cfg.baseURL = u
	for _, p := range strings.Split(*proxies, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		if !strings.Contains(p, "/") {
			a, err := netip.ParseAddr(p)
			if err != nil {
				return cfg, cmdline.Usagef("--trusted-proxy %q: want an IP address or CIDR", p)
			}
			cfg.trustedProxies = append(cfg.trustedProxies, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		pr, err := netip.ParsePrefix(p)
		if err != nil {
			return cfg, cmdline.Usagef("--trusted-proxy %q: want an IP address or CIDR", p)
		}
		cfg.trustedProxies = append(cfg.trustedProxies, pr.Masked())
	}
	return cfg, nil
}

func cmdServe(ctx context.Context, args []string, getenv env, io stdio) error {
	cfg, err := parseServeFlags(args, getenv, io)
	if err != nil {
		return err
	}
	a, err := openAppLog(ctx, cfg.data, newLogger(io.Err, cfg.logLevel, cfg.logFormat))
	if err != nil {
		return err
	}
	// Everything started below is stopped by stop, on every way out, within
	// one grace period that starts when shutdown does.
	sd := &shutdown{app: a}
	var deadline time.Time // set when the signal comes
	defer func() {
		if deadline.IsZero() { // returning early: stop what was started
			deadline = time.Now().Add(cfg.shutdownTimeout)
		}
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		defer cancel()
		sd.stop(ctx)
	}()

	// The forwarders read the audit log after their cursors in the
	// database (services/audit.Forwarder): one replica at a time sends
	// each event, and a restart resumes where the last run stopped.
	if cfg.auditStdout {
		fwd, err := audit.NewStdoutForwarder(ctx, a.db, io.Out, a.log)
		if err != nil {
			return fmt.Errorf("audit stdout forwarding: %w", err)
		}
		sd.forwarder("stdout", fwd.Close)
	}
	if cfg.auditSyslog != nil {
		network := cfg.auditSyslog.Scheme
		fwd, err := audit.NewSyslogForwarder(ctx, a.db, network, cfg.auditSyslog.Host, audit.SyslogOptions{Logger: a.log, TLS: cfg.auditSyslogTLS})
		if err != nil {
			return fmt.Errorf("audit syslog forwarding: %w", err)
		}
		sd.forwarder("syslog", fwd.Close)
	}
	// Links in e-mails come only from the configured base URL.
	a.useSelfService(selfservice.New(a.db, a.wb, a.keys, a.log, cfg.baseURL.String()), cfg.baseURL.String())
	// The Global Administrators are mailed when writeback fails or the
	// audit chain breaks, and when it is over: the readings come from the
	// leader's background work (leaderWork), the incidents' state is in
	// the database.
	al := alerts.New(a.db, a.ss, a.log, cfg.baseURL.String())
	a.wb.OnHealth(al.Writeback)
	a.audit.OnVerified(al.AuditChain)
	met, metricsHandler := a.metrics(cfg)
	// Passkeys belong to the base URL's host name (the WebAuthn RP ID); on
	// an IP address browsers refuse them, and only authenticator apps are
	// offered.
	adminOpts := []admins.Option{admins.WithKeyring(a.keys)}
	switch pk, err := passkeys.New(cfg.baseURL.String(), "Writeback"); {
	case errors.Is(err, passkeys.ErrHostName):
		a.log.Warn("passkeys are off: "+err.Error(), "base_url", cfg.baseURL.String())
	case err != nil:
		return err
	default:
		adminOpts = append(adminOpts, admins.WithPasskeys(pk))
		// The same relying party verifies employees' passkeys (issue 13).
		a.ss.UsePasskeys(pk)
	}
	if a.admins, err = admins.New(a.db, a.log, admins.DefaultHashParams, adminOpts...); err != nil {
		return err
	}
	// The writeback agents: the page and the enrolment endpoint, and the
	// registry of the hub that takes their connections (the hub in turn
	// cuts off the agents that are revoked). In agents mode every directory
	// operation goes through the hub.
	ag := agents.New(a.db, a.log)
	hub := agenthub.New(ag, a.log)
	// The hub signs every job with a key derived from the key file, so
	// that restarts keep it; enrolment gives agents its public half.
	portalKey, err := agentwire.NewPortalKey(a.keys.Derive("agent-job-signing"))
	if err != nil {
		return err
	}
	hub.SetSigningKey(portalKey)
	ag.SetPortalKey(hub.PublicKey())
	ag.SetDisconnector(hub)
	a.wb.UseAgents(hub)
	// On PostgreSQL this process is one of several replicas: it registers
	// (the agents keep a connection to each live one) and runs the
	// background work only while it holds the leader lease. On SQLite it is
	// the only process and runs that work itself.
	var reg *replicas.Registry
	if a.db.Engine() == "postgres" {
		reg = replicas.New(a.db, a.log, replicas.Options{})
		ag.SetReplica(reg.Self())
		for _, job := range a.leaderWork(statusInterval, met) {
			reg.Lead(job)
		}
		hub.SetPeers(reg)
	}
	// The per-address limits hold across replicas only when they count in
	// the database; one SQLite process counts faster in memory (nil).
	var rateCounter handlers.RateCounter
	if reg != nil {
		rateCounter = a.db.RateCounts(time.Minute) // the limits' window (handlers.rateWindow)
	}
	var requests handlers.RequestRecorder // nil, not a nil *Metrics, when there are none
	if met != nil {
		requests = met
	}
	srv := handlers.New(handlers.Config{
		BaseURL: cfg.baseURL, TrustedProxies: cfg.trustedProxies,
		CookieHashKey: a.keys.Derive("cookie-hash"), CookieBlockKey: a.keys.Derive("cookie-block"),
		Health:       func(ctx context.Context) error { return a.db.SQL().PingContext(ctx) },
		NoRequestLog: !cfg.requestLog, PublicPerMinute: cfg.publicPerMinute, SignInPerMinute: cfg.signInPerMinute,
		APIPerMinute: cfg.apiPerMinute,
		Metrics:      requests, MetricsHandler: metricsHandler, MetricsToken: cfg.metricsToken,
	}, a.log, handlers.Deps{Admins: a.admins, Settings: a.settings, Writeback: a.wb, SelfService: a.ss, Audit: a.audit,
		Agents: ag, AgentEnroll: ag, AgentHub: hub, Limits: a.ss, RateCounter: rateCounter, Banned: a.banned, Reminders: a.reminders, Campaign: a.campaign, Branding: branding.New(a.db, a.ss.OrgName), Reports: reports.New(a.db, a.ss),
		APITokens: apitokens.NewService(a.db, a.log)})

	ln, err := net.Listen("tcp", cfg.listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.listen, err)
	}
	if cfg.metricsListen != "" {
		mln, err := net.Listen("tcp", cfg.metricsListen)
		if err != nil {
			ln.Close()
			return fmt.Errorf("listen on %s (--metrics-listen): %w", cfg.metricsListen, err)
		}
		ms := metricsServer(metricsHandler)
		go func() { _ = ms.Serve(mln) }()
		defer ms.Close()
		a.log.Info("serving metrics", "addr", mln.Addr().String())
	}
	hs := &http.Server{Handler: srv.Routes(), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 60 * time.Second, IdleTimeout: 120 * time.Second, MaxHeaderBytes: 64 << 10}

	var redirect *http.Server
	var redirectLn net.Listener
	if cfg.redirectListen != "" {
		if redirectLn, err = net.Listen("tcp", cfg.redirectListen); err != nil {
			ln.Close()
			return fmt.Errorf("listen on %s: %w", cfg.redirectListen, err)
		}
		redirect = &http.Server{Handler: redirectToHTTPS(cfg.baseURL), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
			WriteTimeout: 30 * time.Second, IdleTimeout: 120 * time.Second, MaxHeaderBytes: 64 << 10}
	}

	// Answer at once: the log line and the setup token's read come after
	// (they are part of every start's time to its first answer otherwise).
	errc := make(chan error, 2)
	if cfg.tls != nil {
		hs.TLSConfig = cfg.tls.Config()
		go func() { errc <- hs.ServeTLS(ln, "", "") }()
		stopReload := reloadOnHangup(cfg.tls, a.log)
		defer stopReload()
	} else {
		go func() { errc <- hs.Serve(ln) }()
	}
	if redirect != nil {
		go func() { errc <- redirect.Serve(redirectLn) }()
		defer redirect.Close()
	}
	logArgs := []any{"addr", ln.Addr().String(), "base_url", cfg.baseURL.String(), "data", cfg.data.Dir, "database", a.db.Engine()}
	if cfg.tls != nil {
		logArgs = append(logArgs, "tls_cert", cfg.tls.CertFile, "tls_not_after", cfg.tls.Current().Leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	if redirect != nil {
		logArgs = append(logArgs, "http_redirect_addr", redirectLn.Addr().String())
	}
	if reg != nil {
		logArgs = append(logArgs, "replica", reg.Self())
	}
	a.log.Info("listening", logArgs...)
	// Background work does not stop on ctx (the signal) directly: shutdown
	// first lets requests finish, then cancels it and waits for it.
	bg := sd.background()
	// A database that stops answering right after the start does not end
	// the portal (it is serving already): the link is tried again until the
	// database is back.
	beforeSetupLink()
	if !a.printSetupLink(ctx, io.Out, cfg.baseURL.String()) {
		sd.work.Go(func() {
			t := time.NewTicker(setupLinkRetry)
			defer t.Stop()
			for {
				select {
				case <-bg.Done():
					return
				case <-t.C:
					if a.printSetupLink(bg, io.Out, cfg.baseURL.String()) {
						return
					}
				}
			}
		})
	}
	if reg != nil {
		// The work that must run once per database runs on the leader.
		sd.work.Go(func() { reg.Run(bg) })
	} else {
		for _, job := range a.leaderWork(statusInterval, met) {
			sd.work.Go(func() { job(bg) })
		}
	}
	sd.work.Go(func() {
		// `writeback agent revoke` runs in another process (or replica):
		// this one cuts off the agent's connections to it. At shutdown the
		// agents' operation counts are kept.
		ag.WatchRevocations(bg, 2*time.Second)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := ag.Flush(ctx); err != nil {
			a.log.Warn("keep the agents' operation counts", "err", err)
		}
	})

	var serveErr error
	select {
	case err := <-errc:
		serveErr = fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	a.log.Info("shutting down", "grace", cfg.shutdownTimeout.String())
	// The agents' WebSockets are hijacked connections, which the HTTP
	// server's Shutdown neither waits for nor closes.
	hub.Shutdown()
	deadline = time.Now().Add(cfg.shutdownTimeout)
	shutCtx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	if err := hs.Shutdown(shutCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		// Requests still running at the deadline are cut off; go on stopping
		// the rest rather than leaving it to the kill that follows.
		a.log.Warn("requests still running at the end of the grace period were cut off", "err", err)
		hs.Close()
		sd.unclean = true
	}
	return serveErr
}

// setupLinkRetry is how often the first start tries again to create the
// setup link while the database does not answer.
var setupLinkRetry = 2 * time.Second

// beforeSetupLink runs just before the first try (a test stops the database
// there).
var beforeSetupLink = func() {}

// printSetupLink prints the one-time link that creates the first Global
// Administrator, while none exists. It reports false when the database did
// not answer (a stop asked for meanwhile is not that), so the caller tries
// again.
func (a *app) printSetupLink(ctx context.Context, out goio.Writer, base string) bool {
	tok, err := a.admins.NewSetupToken(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return true
		}
		a.log.Warn("could not create the setup link; trying again", "err", err)
		return false
	}
	if tok != "" {
		fmt.Fprintf(out, "\nNo administrator exists yet. Open this one-time link within the hour to create the first Global Administrator:\n\n    %s/setup?token=%s\n\n", base, tok)
	}
	return true
}

// shutdown stops what serve started, in the order that loses nothing:
// background work and e-mail sends first (they write audit events), then the
// audit forwarders (they send what is queued), then the database. Each step
// gives up when the grace period ends, so a stuck SIEM, directory or mail
// server cannot keep the process from exiting.
type shutdown struct {
	app        *app
	cancelBG   context.CancelFunc
	work       sync.WaitGroup // background work started with work.Go
	forwarders []stoppable
	// unclean: requests were still running when the grace period ended, so
	// the database may still be in use.
	unclean bool
}

type stoppable struct {
	name  string
	close func(context.Context) error
}

// background returns the context of the work started with work.Go; stop
// cancels it.
func (s *shutdown) background() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	s.cancelBG = cancel
	return ctx
}

// forwarder registers an audit forwarder: close sends what is left and
// stops it.
func (s *shutdown) forwarder(name string, close func(context.Context) error) {
	s.forwarders = append(s.forwarders, stoppable{name, close})
}

func (s *shutdown) stop(ctx context.Context) {
	log := s.app.log
	if s.cancelBG != nil {
		s.cancelBG()
	}
	idle := make(chan struct{})
	go func() {
		s.work.Wait()
		s.app.ss.Wait()
		close(idle)
	}()
	clean := !s.unclean
	select {
	case <-idle:
	case <-ctx.Done():
		clean = false
		log.Warn("background work or e-mail sends still running at the end of the grace period; exiting without waiting for them")
	}
	for _, f := range s.forwarders {
		if err := f.close(ctx); err != nil {
			log.Warn("audit forwarder did not stop cleanly", "forwarder", f.name, "err", err)
		}
	}
	s.app.wb.Close()
	if !clean {
		// database/sql's Close waits for queries in progress, which is what
		// just timed out; SQLite's journal keeps the file consistent without it.
		return
	}
	if err := s.app.db.Close(); err != nil {
		log.Warn("close database", "err", err)
	}
	log.Info("stopped")
}

// maintenanceDelay is how long after the listener opens the start-up
// housekeeping and audit maintenance (prune, chain check) wait: none of it
// is urgent, and on a small machine it would take the CPU and the database
// from the first requests, which after a restart are a load balancer's
// health checks and people waiting for a page.
const maintenanceDelay = time.Second

// pause waits d; false when ctx ended first.
func pause(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// leaderWork is the background work that must run once per database, not
// once per replica: the directory health check that keeps the writeback
// status panel fresh (a settings document every replica reads), the purge
// of expired sessions and flows, the audit log's retention pruning and
// chain check, the password-expiry reminders and the registration
// campaign. Each runs until ctx ends.
func (a *app) leaderWork(statusEvery time.Duration, met *metrics.Metrics) []func(context.Context) {
	jobs := []func(context.Context){
		func(ctx context.Context) { a.wb.Monitor(ctx, statusEvery) },
		func(ctx context.Context) {
			if pause(ctx, maintenanceDelay) {
				a.housekeeping(ctx)
			}
		},
		func(ctx context.Context) {
			if pause(ctx, maintenanceDelay) {
				a.audit.Maintain(ctx, 24*time.Hour, a.settings.RetentionDays)
			}
		},
		// Password-expiry reminders, once an hour (services/reminders).
		func(ctx context.Context) { a.reminders.Run(ctx, maintenanceDelay, reminders.Every) },
		// The registration campaign's runs (services/campaign).
		func(ctx context.Context) { a.campaign.Run(ctx, maintenanceDelay, campaign.Every) },
	}
	if met != nil {
		// The command line's resets and unlocks, from the audit log.
		jobs = append(jobs, func(ctx context.Context) { met.CountCommandLine(ctx, a.db, commandLineEvery, a.log) })
	}
	return jobs
}

// commandLineEvery is how often the leader looks for the command line's
// resets and unlocks in the audit log, for the metrics.
const commandLineEvery = 15 * time.Second

// metrics builds the metrics on a registry of their own, when /metrics is
// served somewhere (--metrics-listen or --metrics-token-file), and hooks
// them to the database and the services; nil, nil otherwise.
func (a *app) metrics(cfg serveConfig) (*metrics.Metrics, http.Handler) {
	if cfg.metricsListen == "" && cfg.metricsToken == nil {
		return nil, nil
	}
	reg := prometheus.NewRegistry()
	met := metrics.New(reg)
	metrics.RegisterAuditChain(reg, a.audit.Integrity)
	a.db.OnError(met.DatabaseError)
	a.db.OnAudit(met.Audit) // for the life of the process
	a.wb.UseRecorder(met)
	a.ss.UseRecorder(met)
	return met, promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
}

// metricsServer serves h at GET /metrics and nothing else (404).
func metricsServer(h http.Handler) *http.Server {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", h)
	return &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 60 * time.Second, IdleTimeout: 120 * time.Second, MaxHeaderBytes: 64 << 10}
}

// housekeeping runs periodic background work until ctx ends.
func (a *app) housekeeping(ctx context.Context) {
	t := time.NewTicker(10 * time.Minute)
	defer t.Stop()
	for {
		if n, err := a.admins.PurgeExpiredSessions(ctx); err != nil && ctx.Err() == nil {
			a.log.Error("purge expired sessions", "err", err)
		} else if n > 0 {
			a.log.Info("purged expired sessions", "count", n)
		}
		if n, err := a.db.DeleteExpiredFlows(ctx, time.Now().Add(-time.Hour).UnixMilli()); err != nil && ctx.Err() == nil {
			a.log.Error("purge expired self-service flows", "err", err)
		} else if n > 0 {
			a.log.Info("purged expired self-service flows", "count", n)
		}
		if n, err := a.db.DeleteExpiredChallenges(ctx, time.Now().Add(-time.Hour).UnixMilli()); err != nil && ctx.Err() == nil {
			a.log.Error("purge spent challenges and old address counts", "err", err)
		} else if n > 0 {
			a.log.Info("purged spent challenges and old address counts", "count", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func cmdMigrate(ctx context.Context, args []string, getenv env, io stdio) error {
	fs := newFlags("migrate", io)
	data := dataFlag(fs.StringVar, getenv)
	a, err := openParsed(ctx, fs, args, data, io)
	if err != nil {
		return err
	}
	defer a.Close()
	fmt.Fprintln(io.Out, "database is up to date")
	return nil
}

func cmdHealthcheck(ctx context.Context, args []string, getenv env, io stdio) error {
	fs := newFlags("healthcheck", io)
	listen := fs.String("listen", cmdline.EnvOr(getenv, "WRITEBACK_LISTEN", "127.0.0.1:8080"), "address the portal listens on (env WRITEBACK_LISTEN)")
	tlsCert := fs.String("tls-cert", getenv("WRITEBACK_TLS_CERT"), "the portal's --tls-cert: ask over HTTPS, trusting that certificate (env WRITEBACK_TLS_CERT)")
	base := fs.String("base-url", getenv("WRITEBACK_BASE_URL"), "the portal's --base-url: with --tls-cert, the host name its certificate is checked for (env WRITEBACK_BASE_URL)")
	if err := cmdline.Parse(fs, args); err != nil {
		return err
	}
	host, port, err := net.SplitHostPort(*listen)
	if err != nil {
		return cmdline.Usagef("--listen %q: want host:port", *listen)
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	client, scheme := http.DefaultClient, "http"
	if *tlsCert != "" {
		// The certificate the portal serves is its own root here: the check
		// is that this portal answers, on this address, for its host name.
		pem, err := os.ReadFile(*tlsCert)
		if err != nil {
			return cmdline.Usagef("--tls-cert %q: %v", *tlsCert, err)
		}
		roots := x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return cmdline.Usagef("--tls-cert %q: no PEM certificate in the file", *tlsCert)
		}
		name := host
		if u, err := url.Parse(*base); err == nil && u.Hostname() != "" {
			name = u.Hostname()
		}
		client = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: name, MinVersion: tls.VersionTLS12}}}
		scheme = "https"
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+net.JoinHostPort(host, port)+"/healthz", nil)
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("unhealthy: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("unhealthy: /healthz answered %s", resp.Status)
	}
	fmt.Fprintln(io.Out, "healthy")
	return nil
}
