package directory

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/go-ldap/ldap/v3"

	"github.com/writeback/writeback/services/errs"
)

// Pool tuning. Directories and load balancers drop idle connections (AD after
// 15 minutes by default), so idle ones are checked before reuse and retired.
const (
	maxIdlePerServer = 8
	checkIdleAfter   = 30 * time.Second
	maxIdleTime      = 5 * time.Minute
	rootDSETTL       = 10 * time.Minute
)

// OIDs the package looks for.
const (
	oidPolicyHints           = "1.2.840.113556.1.4.2239"
	oidPolicyHintsDeprecated = "1.2.840.113556.1.4.2066"
	oidPasswordModify        = "1.3.6.1.4.1.4203.1.11.1"
	oidStartTLS              = "1.3.6.1.4.1.1466.20037"
	oidADCapability          = "1.2.840.113556.1.4.800"
	oidMatchingRuleInChain   = "1.2.840.113556.1.4.1941"
)

// server is one configured URL with its pool of connections bound as the
// service account.
type server struct {
	u        serverURL
	startTLS bool // ldap:// upgraded with StartTLS
	plain    bool // ldap:// without StartTLS: never used to bind
	tls      *tls.Config

	mu     sync.Mutex
	idle   []*pconn
	closed bool
	dse    *rootDSE
	dseAt  time.Time
	// What protect reads once in a while: AD's protected groups and the
	// service account's ID.
	prot    *adProtection
	protAt  time.Time
	svcID   string
	svcIDAt time.Time

	// users holds idle connections for binds as a person (see userConn),
	// apart from the service account's: never handed to anything but a
	// new bind as a person.
	users []*pconn
}

// pconn is one LDAP connection.
type pconn struct {
	raw      net.Conn // the TCP connection under TLS: closing it aborts any request at once
	conn     *ldap.Conn
	tlsState tls.ConnectionState
	lastUsed time.Time
	// broken is set by a request the context cut short (guard); requests
	// on one connection may run at once (session.prefetch).
	broken atomic.Bool
	// asUser marks a connection taken for a bind as a person: it never
	// goes back to the service account's pool (see release).
	asUser bool
}

func (pc *pconn) close() {
	// Closing the socket first makes ldap.Conn.Close return at once even when
	// the server stopped answering.
	_ = pc.raw.Close()
	_ = pc.conn.Close()
}

// guard runs f, one request on pc, and aborts it by closing the socket when
// ctx ends first.
func (pc *pconn) guard(ctx context.Context, f func() error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { _ = pc.raw.Close() })
	err := f()
	if !stop() {
		pc.broken.Store(true)
		if err != nil {
			err = errors.Join(ctx.Err(), err)
		}
	}
	return err
}

// rootDSE is what the package reads from a server's root DSE.
type rootDSE struct {
	supportedControl      []string
	supportedExtension    []string
	supportedCapabilities []string
	defaultNamingContext  string
	namingContexts        []string
	forestFunctionality   string
	vendor                string
	dnsHostName           string
}

func parseRootDSE(e *ldap.Entry) *rootDSE {
	d := &rootDSE{
		supportedControl:      e.GetAttributeValues("supportedControl"),
		supportedExtension:    e.GetAttributeValues("supportedExtension"),
		supportedCapabilities: e.GetAttributeValues("supportedCapabilities"),
		defaultNamingContext:  e.GetAttributeValue("defaultNamingContext"),
		namingContexts:        e.GetAttributeValues("namingContexts"),
		forestFunctionality:   e.GetAttributeValue("forestFunctionality"),
		dnsHostName:           e.GetAttributeValue("dnsHostName"),
	}
	d.vendor = strings.TrimSpace(e.GetAttributeValue("vendorName") + " " + e.GetAttributeValue("vendorVersion"))
	return d
}

func (d *rootDSE) isAD() bool {
	return d.forestFunctionality != "" || slices.Contains(d.supportedCapabilities, oidADCapability)
}

// policyHints returns the policy-hints control OID the DC advertises, or "".
func (d *rootDSE) policyHints() string {
	switch {
	case slices.Contains(d.supportedControl, oidPolicyHints):
		return oidPolicyHints
	case slices.Contains(d.supportedControl, oidPolicyHintsDeprecated):
		return oidPolicyHintsDeprecated
	}
	return ""
}

func rootDSERequest() *ldap.SearchRequest {
	return ldap.NewSearchRequest("", ldap.ScopeBaseObject, ldap.NeverDerefAliases, 1, 0, false,
		"(objectClass=*)", []string{"supportedControl", "supportedExtension", "supportedCapabilities",
			"defaultNamingContext", "namingContexts", "forestFunctionality", "vendorName", "vendorVersion", "dnsHostName"}, nil)
}

// connectError says at which step a connection failed.
type connectError struct {
	stage string // tcp, tls, starttls
	err   error
}

func (e *connectError) Error() string { return e.stage + ": " + e.err.Error() }
func (e *connectError) Unwrap() error { return e.err }

// tlsConfigFor builds the TLS configuration for host: always verified,
// against caPEM or the system roots.
func tlsConfigFor(caPEM, host string) (*tls.Config, error) {
	cfg := &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	if strings.TrimSpace(caPEM) != "" {
		pool, err := parseCAPEM(caPEM)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}

// connect opens a connection to u, secured with TLS (ldaps://) or StartTLS
// (ldap:// with startTLS), bounded by ctx. It does not bind.
func connect(ctx context.Context, u serverURL, startTLS bool, cfg *tls.Config) (*pconn, error) {
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", u.hostport)
	if err != nil {
		return nil, &connectError{"tcp", err}
	}
	var conn net.Conn = raw
	secure := u.scheme == "ldaps" || startTLS
	if u.scheme == "ldap" && startTLS {
		if err := startTLSExchange(ctx, raw); err != nil {
			_ = raw.Close()
			return nil, &connectError{"starttls", err}
		}
	}
	var state tls.ConnectionState
	if secure {
		tc := tls.Client(raw, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			_ = raw.Close()
			return nil, &connectError{"tls", err}
		}
		state = tc.ConnectionState()
		conn = tc
	}
	lc := ldap.NewConn(conn, secure)
	lc.Start()
	return &pconn{raw: raw, conn: lc, tlsState: state, lastUsed: time.Now()}, nil
}

// startTLSExchange sends the StartTLS extended request on raw and reads the
// answer itself, so that the handshake that follows keeps its context and
// its certificate error (go-ldap's StartTLS flattens both).
func startTLSExchange(ctx context.Context, raw net.Conn) error {
	if dl, ok := ctx.Deadline(); ok {
		_ = raw.SetDeadline(dl)
		defer func() { _ = raw.SetDeadline(time.Time{}) }()
	}
	stop := context.AfterFunc(ctx, func() { _ = raw.SetDeadline(time.Now()) })
	defer stop()

	packet := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "LDAP Request")
	packet.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, int64(1), "MessageID"))
	req := ber.Encode(ber.ClassApplication, ber.TypeConstructed, ldap.ApplicationExtendedRequest, nil, "Start TLS")
	req.AppendChild(ber.NewString(ber.ClassContext, ber.TypePrimitive, 0, oidStartTLS, "TLS Extended Command"))
	packet.AppendChild(req)
	if _, err := raw.Write(packet.Bytes()); err != nil {
		return err
	}
	resp, err := ber.ReadPacket(raw)
	if err != nil {
		return err
	}
	if len(resp.Children) < 2 || resp.Children[1].Tag != ldap.ApplicationExtendedResponse {
		return ldap.NewError(ldap.ErrorUnexpectedResponse, errors.New("unexpected answer to StartTLS"))
	}
	return ldap.GetLDAPError(resp)
}

// classifyConnect turns a connect error into the error returned to callers.
func classifyConnect(ctx context.Context, op string, u serverURL, err error) *errs.Error {
	oe := &OpError{Op: op, Server: u.raw, Err: err, LDAPResult: ldap.ErrorNetwork}
	var ce *connectError
	stage := ""
	if errors.As(err, &ce) {
		stage = ce.stage
	}
	if reason := tlsFailure(err, u.host); reason != "" {
		oe.Rule = reason
		oe.LDAPResult = 0
		return fail(CodeCertificate, "The directory's TLS certificate is not trusted: "+reason+".", oe)
	}
	if ctx.Err() != nil {
		return fail(CodeUnavailable, msgTimeout, oe)
	}
	if stage == "starttls" {
		var le *ldap.Error
		if errors.As(err, &le) && le.ResultCode != ldap.ErrorNetwork {
			oe.LDAPResult = le.ResultCode
			oe.Diagnostic = le.Err.Error()
			return fail(CodeInsecure, "The server refused StartTLS; passwords are only written over LDAPS or StartTLS. Use an ldaps:// URL.", oe)
		}
	}
	if stage == "tls" {
		oe.Rule = "TLS handshake failed"
	}
	return fail(CodeUnavailable, msgUnavailable, oe)
}

// acquire returns a connection to srv bound as the service account: an idle
// one when it still works, otherwise a new one. fresh skips the idle ones.
// pooled tells which it was.
func (c *Client) acquire(ctx context.Context, srv *server, fresh bool) (pc *pconn, pooled bool, err error) {
	if !fresh {
		for pc := srv.popFrom(&srv.idle); pc != nil; pc = srv.popFrom(&srv.idle) {
			idle := time.Since(pc.lastUsed)
			if pc.conn.IsClosing() || idle > maxIdleTime {
				pc.close()
				continue
			}
			if idle > checkIdleAfter {
				c.note(Request{Op: "ping", Kind: KindSearch, Server: srv.u.raw})
				if err := pc.guard(ctx, func() error {
					_, err := pc.conn.Search(ldap.NewSearchRequest("", ldap.ScopeBaseObject, ldap.NeverDerefAliases, 1, 0,
						false, "(objectClass=*)", []string{"1.1"}, nil))
					return err
				}); err != nil {
					c.log.Debug("directory: dropping idle connection", "server", srv.u.raw, "err", err)
					pc.close()
					continue
				}
			}
			return pc, true, nil
		}
	}
	c.note(Request{Op: "dial", Kind: KindDial, Server: srv.u.raw})
	pc, err = connect(ctx, srv.u, srv.startTLS, srv.tls)
	if err != nil {
		return nil, false, classifyConnect(ctx, "dial", srv.u, err)
	}
	if err := c.bindService(ctx, srv, pc); err != nil {
		pc.close()
		return nil, false, err
	}
	return pc, false, nil
}

// bindService binds pc as the service account.
func (c *Client) bindService(ctx context.Context, srv *server, pc *pconn) error {
	c.note(Request{Op: "bind", Kind: KindBind, Server: srv.u.raw})
	err := pc.guard(ctx, func() error {
		_, err := pc.conn.SimpleBind(&ldap.SimpleBindRequest{Username: c.cfg.BindDN, Password: c.cfg.BindPassword})
		return err
	})
	if err == nil {
		return nil
	}
	oe := pc.opError("bind", srv.u.raw, err)
	if oe.Code == CodeUnavailable || ctx.Err() != nil {
		return generic(oe, ctx)
	}
	bf := classifyBind(c.cfg.Type, err, nil)
	oe.Rule = bf.rule
	if bf.code == CodeInsecure {
		return fail(CodeInsecure, msgInsecure, oe)
	}
	return fail(CodeServiceAccount, "The directory refused the portal's service account: the account "+bf.reason+
		". Check the service account under the directory settings.", oe)
}

// popFrom takes the most recently released connection off one of the
// server's pools (idle for the service account, users for binds as people).
func (s *server) popFrom(pool *[]*pconn) *pconn {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := len(*pool); n > 0 {
		pc := (*pool)[n-1]
		*pool = (*pool)[:n-1]
		return pc
	}
	return nil
}

// release returns pc to the pool when it is still good.
func (s *server) release(pc *pconn, healthy bool) { s.pushTo(&s.idle, pc, healthy && !pc.asUser) }

// pushTo returns pc to pool, the counterpart of popFrom, when keep and the
// connection still works (at most maxIdlePerServer of them wait); otherwise
// it closes pc.
func (s *server) pushTo(pool *[]*pconn, pc *pconn, keep bool) {
	if !keep || pc.broken.Load() || pc.conn.IsClosing() {
		pc.close()
		return
	}
	pc.lastUsed = time.Now()
	s.mu.Lock()
	if s.closed || len(*pool) >= maxIdlePerServer {
		s.mu.Unlock()
		pc.close()
		return
	}
	*pool = append(*pool, pc)
	s.mu.Unlock()
}

func (s *server) closeIdle() {
	s.mu.Lock()
	idle := append(s.idle, s.users...)
	s.idle, s.users = nil, nil
	s.closed = true
	s.mu.Unlock()
	for _, pc := range idle {
		pc.close()
	}
}

// session is one operation's use of one connection on one server.
type session struct {
	ctx   context.Context
	c     *Client
	srv   *server
	pc    *pconn
	op    string
	wrote bool // a write was sent: the operation must not be repeated elsewhere
	// lean sessions read users without AD's constructed attributes: the
	// state an action decides on (disabled, protected, the account's
	// identity) is in plain ones, the lock comes from lockoutTime (see
	// adState), and the fine-grained policy is read only to explain a
	// refused password (see withPSO).
	lean bool
	// extraAttrs are read by the session's user searches besides
	// userAttributes (Resolve: the directory's count of wrong passwords).
	extraAttrs []string
}

// opError describes a failed request on pc. A request that fails while the
// connection is closing, without a result code from the server, lost its
// connection: go-ldap then returns a plain error ("unable to read LDAP
// response packet: EOF") that says nothing about the network by its type, so
// the connection's state decides, and the request can be retried elsewhere.
func (pc *pconn) opError(op, server string, err error) *OpError {
	oe := newOpError(op, server, err)
	if oe.Code == CodeUnavailable || !pc.conn.IsClosing() {
		return oe
	}
	var le *ldap.Error
	if errors.As(err, &le) && le.ResultCode < ldap.ErrorNetwork {
		return oe // the server answered
	}
	oe.LDAPResult, oe.Code = ldap.ErrorNetwork, CodeUnavailable
	return oe
}

func (s *session) search(req *ldap.SearchRequest) (*ldap.SearchResult, *OpError) {
	s.c.note(Request{Op: s.op, Kind: KindSearch, Server: s.srv.u.raw})
	var res *ldap.SearchResult
	err := s.pc.guard(s.ctx, func() error {
		var err error
		res, err = s.pc.conn.Search(req)
		return err
	})
	if err != nil {
		return res, s.pc.opError(s.op, s.srv.u.raw, err)
	}
	return res, nil
}

func (s *session) modify(req *ldap.ModifyRequest) ([]ldap.Control, *OpError) {
	s.c.note(Request{Op: s.op, Kind: KindModify, Server: s.srv.u.raw})
	s.wrote = true
	var res *ldap.ModifyResult
	err := s.pc.guard(s.ctx, func() error {
		var err error
		res, err = s.pc.conn.ModifyWithResult(req)
		return err
	})
	if err != nil {
		return responseControls(err), s.pc.opError(s.op, s.srv.u.raw, err)
	}
	return res.Controls, nil
}

func (s *session) extended(conn *pconn, req *ldap.ExtendedRequest) ([]ldap.Control, *OpError) {
	s.c.note(Request{Op: s.op, Kind: KindExtended, Server: s.srv.u.raw})
	s.wrote = true
	var res *ldap.ExtendedResponse
	err := conn.guard(s.ctx, func() error {
		var err error
		res, err = conn.conn.Extended(req)
		return err
	})
	if err != nil {
		return responseControls(err), conn.opError(s.op, s.srv.u.raw, err)
	}
	return res.Controls, nil
}

// rootDSE returns the server's root DSE, read at most every rootDSETTL.
func (s *session) rootDSE() (*rootDSE, *OpError) {
	s.srv.mu.Lock()
	d, at := s.srv.dse, s.srv.dseAt
	s.srv.mu.Unlock()
	if d != nil && time.Since(at) < rootDSETTL {
		return d, nil
	}
	res, oe := s.search(rootDSERequest())
	if oe != nil {
		return nil, oe
	}
	if len(res.Entries) != 1 {
		return nil, &OpError{Op: s.op, Server: s.srv.u.raw, Err: errors.New("the root DSE could not be read")}
	}
	d = parseRootDSE(res.Entries[0])
	s.srv.mu.Lock()
	s.srv.dse, s.srv.dseAt = d, time.Now()
	s.srv.mu.Unlock()
	return d, nil
}

// run performs fn on one server, bound as the service account, within the
// configured timeout. It moves to the next URL only when a server cannot be
// reached (or its certificate is refused), and retries once on a fresh
// connection when a pooled one turns out to be dead before anything was
// written.
func (c *Client) run(ctx context.Context, op string, fn func(*session) error) (res Result, err error) {
	return c.runFor(ctx, op, c.cfg.Timeout, fn)
}

// runFor is run under timeout instead of the configured one, for the
// operations that read many entries (Expiring).
func (c *Client) runFor(ctx context.Context, op string, timeout time.Duration, fn func(*session) error) (res Result, err error) {
	if c.closed.Load() {
		return Result{}, fail(CodeUnavailable, msgUnavailable, &OpError{Op: op, Err: errors.New("client is closed")})
	}
	parent := ctx
	defer func() { c.reportOutage(parent, op, err) }()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()

	var failures []error      // every server's failure, for the audit log
	var preferred *errs.Error // the most telling failure: certificate > insecure > unavailable
	note := func(srv *server, e *errs.Error) {
		failures = append(failures, e.Cause)
		if preferred == nil || rank(e) > rank(preferred) {
			preferred = e
		}
		c.log.Warn("directory: server not usable, trying the next", "op", op, "server", srv.u.raw,
			"code", string(codeOf(e)), "err", e.Cause)
	}

servers:
	for i, srv := range c.servers {
		if srv.plain {
			note(srv, fail(CodeInsecure, msgInsecure, &OpError{Op: op, Server: srv.u.raw,
				Err: errors.New("ldap:// without StartTLS is never used to send a password")}))
			continue
		}
		if ctx.Err() != nil {
			break
		}
		for attempt := 0; attempt < 2; attempt++ {
			// Leave later servers a share of the time: a server that swallows
			// packets must not use up the whole timeout.
			dctx, dcancel := context.WithTimeout(ctx, shareOf(ctx, len(c.servers)-i))
			pc, pooled, err := c.acquire(dctx, srv, attempt > 0)
			dcancel()
			if err != nil {
				e := asErrs(err)
				if codeOf(e) == CodeUnavailable || codeOf(e) == CodeCertificate {
					note(srv, e)
					continue servers
				}
				c.logDone(op, srv, start, e)
				return Result{Server: srv.u.raw}, e
			}
			s := &session{ctx: ctx, c: c, srv: srv, pc: pc, op: op}
			err = fn(s)
			srv.release(pc, err == nil || !isRetryable(err))
			if err != nil && isRetryable(err) && !s.wrote && ctx.Err() == nil {
				if pooled {
					continue // a dropped idle connection: redial this server
				}
				note(srv, asErrs(err))
				continue servers
			}
			if err != nil && s.wrote && isRetryable(err) && ctx.Err() == nil {
				var oe *OpError
				errors.As(err, &oe)
				err = fail(CodeUnavailable, "The directory stopped answering during the change; it may or may not have been applied. Check the account before trying again.", oe)
			}
			c.logDone(op, srv, start, err)
			return Result{Server: srv.u.raw}, err
		}
	}

	if preferred == nil || ctx.Err() != nil && codeOf(preferred) == CodeUnavailable {
		oe := &OpError{Op: op, Code: CodeUnavailable, LDAPResult: ldap.ErrorNetwork, Err: errors.Join(append(failures, ctx.Err())...)}
		preferred = fail(CodeUnavailable, msgTimeout, oe)
		if ctx.Err() == nil {
			preferred.Message = msgUnavailable
		}
	} else if len(failures) > 1 {
		var oe *OpError
		if errors.As(preferred, &oe) {
			cp := *oe
			cp.Err = errors.Join(failures...)
			preferred = &errs.Error{Kind: preferred.Kind, Message: preferred.Message, Cause: &cp}
		}
	}
	c.log.Error("directory: no server usable", "op", op, "servers", len(c.servers),
		"duration_ms", time.Since(start).Milliseconds(), "code", string(codeOf(preferred)), "err", preferred.Cause)
	return Result{}, preferred
}

// shareOf returns the part of ctx's remaining time one of n servers may use
// to connect.
func shareOf(ctx context.Context, n int) time.Duration {
	dl, ok := ctx.Deadline()
	if !ok || n < 1 {
		return DefaultTimeout
	}
	return time.Until(dl) / time.Duration(n)
}

func rank(e *errs.Error) int {
	switch codeOf(e) {
	case CodeCertificate:
		return 3
	case CodeInsecure:
		return 2
	}
	return 1
}

func codeOf(err error) Code {
	var oe *OpError
	if errors.As(err, &oe) {
		return oe.Code
	}
	return ""
}

// asErrs makes sure err is an *errs.Error.
func asErrs(err error) *errs.Error {
	var e *errs.Error
	if errors.As(err, &e) {
		return e
	}
	return fail(CodeInternal, "Something went wrong while talking to the directory.", &OpError{Op: "unknown", Err: err})
}

func (c *Client) logDone(op string, srv *server, start time.Time, err error) {
	attrs := []any{"op", op, "server", srv.u.raw, "duration_ms", time.Since(start).Milliseconds()}
	if err == nil {
		c.log.Debug("directory: done", attrs...)
		return
	}
	attrs = append(attrs, "code", string(codeOf(err)), "err", errors.Unwrap(err))
	if k := errs.KindOf(err); k == errs.Internal || k == errs.Unavailable {
		c.log.Error("directory: failed", attrs...)
	} else {
		c.log.Info("directory: refused", attrs...)
	}
}

func (s *server) String() string { return fmt.Sprintf("server(%s)", s.u.raw) }
