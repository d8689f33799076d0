package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/writeback/writeback/handlers"
	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/selfservice"
)

// statusInterval is how often the writeback service status is refreshed.
const statusInterval = 5 * time.Minute

type serveConfig struct {
	listen         string
	dataDir        string
	baseURL        *url.URL
	trustedProxies []netip.Prefix
	auditStdout    bool
	auditSyslog    *url.URL // tcp://host:port or udp://host:port
}

func parseServeFlags(args []string, getenv env, io stdio) (serveConfig, error) {
	fs := newFlags("serve", io)
	listen := fs.String("listen", envOr(getenv, "WRITEBACK_LISTEN", "127.0.0.1:8080"), "address to listen on (env WRITEBACK_LISTEN)")
	data := dataFlag(fs.StringVar, getenv)
	base := fs.String("base-url", getenv("WRITEBACK_BASE_URL"), "public URL of the portal, the only source of absolute links (env WRITEBACK_BASE_URL; default http://<listen>)")
	proxies := fs.String("trusted-proxy", getenv("WRITEBACK_TRUSTED_PROXIES"), "comma-separated addresses or CIDRs of reverse proxies whose X-Forwarded-For is honoured (env WRITEBACK_TRUSTED_PROXIES)")
	stdoutFwd := fs.Bool("audit-stdout", getenv("WRITEBACK_AUDIT_STDOUT") == "1" || getenv("WRITEBACK_AUDIT_STDOUT") == "true", "also write each audit event as a JSON line on standard output (env WRITEBACK_AUDIT_STDOUT=1)")
	syslogFwd := fs.String("audit-syslog", getenv("WRITEBACK_AUDIT_SYSLOG"), "also send each audit event to a syslog server (RFC 5424), e.g. tcp://siem.example.com:6514 or udp://10.0.0.5:514 (env WRITEBACK_AUDIT_SYSLOG)")
	if err := parse(fs, args); err != nil {
		return serveConfig{}, err
	}
	cfg := serveConfig{listen: *listen, dataDir: *data, auditStdout: *stdoutFwd}
	if *syslogFwd != "" {
		su, err := url.Parse(*syslogFwd)
		if err != nil || (su.Scheme != "tcp" && su.Scheme != "udp") || su.Port() == "" || su.Hostname() == "" {
			return cfg, usagef("--audit-syslog %q: want tcp://host:port or udp://host:port", *syslogFwd)
		}
		cfg.auditSyslog = su
	}
	if _, _, err := net.SplitHostPort(cfg.listen); err != nil {
		return cfg, usagef("--listen %q: want host:port, e.g. 127.0.0.1:8080", cfg.listen)
	}
	b := *base
	if b == "" {
		b = "http://" + cfg.listen
	}
	u, err := url.Parse(b)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return cfg, usagef("--base-url %q: want an absolute http(s) URL such as https://reset.example.com", b)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	cfg.baseURL = u
	for _, p := range strings.Split(*proxies, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		if !strings.Contains(p, "/") {
			a, err := netip.ParseAddr(p)
			if err != nil {
				return cfg, usagef("--trusted-proxy %q: want an IP address or CIDR", p)
			}
			cfg.trustedProxies = append(cfg.trustedProxies, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		pr, err := netip.ParsePrefix(p)
		if err != nil {
			return cfg, usagef("--trusted-proxy %q: want an IP address or CIDR", p)
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
	a, err := openAppLevel(ctx, cfg.dataDir, io.err, slog.LevelInfo)
	if err != nil {
		return err
	}
	defer a.Close()

	if cfg.auditStdout {
		fwd := audit.NewStdoutForwarder(io.out)
		defer fwd.Close(context.WithoutCancel(ctx))
		defer a.db.OnAudit(fwd.Forward)()
	}
	if cfg.auditSyslog != nil {
		fwd, err := audit.NewSyslogForwarder(cfg.auditSyslog.Scheme, cfg.auditSyslog.Host, audit.SyslogOptions{})
		if err != nil {
			return fmt.Errorf("audit syslog forwarding: %w", err)
		}
		defer fwd.Close(context.WithoutCancel(ctx))
		defer a.db.OnAudit(fwd.Forward)()
	}
	// Links in e-mails come only from the configured base URL.
	a.ss = selfservice.New(a.db, a.wb, a.keys, a.log, cfg.baseURL.String())
	srv := handlers.New(handlers.Config{
		BaseURL: cfg.baseURL, TrustedProxies: cfg.trustedProxies,
		CookieHashKey: a.keys.Derive("cookie-hash"), CookieBlockKey: a.keys.Derive("cookie-block"),
		Health: func(ctx context.Context) error { return a.db.SQL().PingContext(ctx) },
	}, a.log, handlers.Deps{Admins: a.admins, Settings: a.settings, Writeback: a.wb, SelfService: a.ss, Audit: a.audit})

	ln, err := net.Listen("tcp", cfg.listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.listen, err)
	}
	hs := &http.Server{Handler: srv.Routes(), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 60 * time.Second, IdleTimeout: 120 * time.Second, MaxHeaderBytes: 64 << 10}

	a.log.Info("listening", "addr", ln.Addr().String(), "base_url", cfg.baseURL.String(), "data", cfg.dataDir)
	if tok, err := a.admins.NewSetupToken(ctx); err != nil {
		return err
	} else if tok != "" {
		fmt.Fprintf(io.out, "\nNo administrator exists yet. Open this one-time link within the hour to create the first Global Administrator:\n\n    %s/setup?token=%s\n\n", cfg.baseURL.String(), tok)
	}

	go a.housekeeping(ctx)
	go a.wb.Monitor(ctx, statusInterval)
	go a.audit.Maintain(ctx, 24*time.Hour, a.settings.RetentionDays)

	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	a.log.Info("shutting down")
	shutCtx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := hs.Shutdown(shutCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("shutdown: %w", err)
	}
	a.log.Info("stopped")
	return nil
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
	fmt.Fprintln(io.out, "database is up to date")
	return nil
}

func cmdHealthcheck(ctx context.Context, args []string, getenv env, io stdio) error {
	fs := newFlags("healthcheck", io)
	listen := fs.String("listen", envOr(getenv, "WRITEBACK_LISTEN", "127.0.0.1:8080"), "address the portal listens on (env WRITEBACK_LISTEN)")
	if err := parse(fs, args); err != nil {
		return err
	}
	host, port, err := net.SplitHostPort(*listen)
	if err != nil {
		return usagef("--listen %q: want host:port", *listen)
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+net.JoinHostPort(host, port)+"/healthz", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("unhealthy: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("unhealthy: /healthz answered %s", resp.Status)
	}
	fmt.Fprintln(io.out, "healthy")
	return nil
}
