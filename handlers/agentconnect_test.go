package handlers_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/writeback/writeback/handlers"
	"github.com/writeback/writeback/services/agenthub"
	"github.com/writeback/writeback/services/agentwire"
	"github.com/writeback/writeback/services/connector"
	"github.com/writeback/writeback/services/directory"
	"github.com/writeback/writeback/services/errs"
	"github.com/writeback/writeback/testbed"
)

// agentRegistry is an agenthub.Registry of enrolled agents in memory.
type agentRegistry struct {
	mu     sync.Mutex
	agents map[string]agentwire.Public
	names  map[string]string
	events []string
}

func (r *agentRegistry) enrol(id, name string, pub agentwire.Public) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.agents[id], r.names[id] = pub, name
}

func (r *agentRegistry) Agent(ctx context.Context, id string) (string, agentwire.Public, bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	pub, ok := r.agents[id]
	if !ok {
		return "", agentwire.Public{}, false, fmt.Errorf("%q: %w", id, agenthub.ErrUnknownAgent)
	}
	return r.names[id], pub, false, nil
}

func (r *agentRegistry) note(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, s)
}

func (r *agentRegistry) seen() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.events...)
}

func (r *agentRegistry) Connected(ctx context.Context, id string, st agentwire.Status, remote string) error {
	r.note("connected " + id + " from " + remote)
	return nil
}
func (r *agentRegistry) Heartbeat(context.Context, string, agentwire.Status) error { return nil }
func (r *agentRegistry) Disconnected(ctx context.Context, id, reason string) error {
	r.note("disconnected " + id + ": " + reason)
	return nil
}
func (r *agentRegistry) JobDone(context.Context, string, string, error) error { return nil }

// agentPortal is the portal's handler with a hub, served with short read
// and write timeouts (which must not cut an agent's connection).
type agentPortal struct {
	hub *agenthub.Hub
	reg *agentRegistry
	srv *httptest.Server
}

func newAgentPortal(t *testing.T) *agentPortal {
	t.Helper()
	p := newPortal(t)
	reg := &agentRegistry{agents: map[string]agentwire.Public{}, names: map[string]string{}}
	hub := agenthub.New(reg, p.log)
	t.Cleanup(hub.Shutdown)
	base, _ := url.Parse(testBaseURL)
	s := handlers.New(handlers.Config{BaseURL: base, CookieHashKey: p.keys.Derive("h"), CookieBlockKey: p.keys.Derive("b")}, p.log,
		handlers.Deps{Admins: p.admins, Settings: p.settings, Writeback: p.wb, SelfService: p.ss, Audit: p.audit, AgentHub: hub})
	srv := httptest.NewUnstartedServer(s.Routes())
	srv.Config.ReadTimeout, srv.Config.WriteTimeout = 300*time.Millisecond, 300*time.Millisecond
	srv.Start()
	t.Cleanup(srv.Close)
	return &agentPortal{hub: hub, reg: reg, srv: srv}
}

// agentConn is the agent program's side of the WebSocket, as
// cmd/writeback-agent adapts it: close frames become *connector.CloseError.
type agentConn struct{ c *websocket.Conn }

func (a agentConn) Read(ctx context.Context) ([]byte, error) {
	_, b, err := a.c.Read(ctx)
	if err != nil {
		var ce websocket.CloseError
		if errors.As(err, &ce) {
			return nil, &connector.CloseError{Code: int(ce.Code), Reason: ce.Reason}
		}
		return nil, err
	}
	return b, nil
}
func (a agentConn) Write(ctx context.Context, b []byte) error {
	return a.c.Write(ctx, websocket.MessageText, b)
}
func (a agentConn) Close(code int, reason string) error {
	return a.c.Close(websocket.StatusCode(code), reason)
}

// Ping makes agentConn a connector.Pinger: the hub's reads answer it.
func (a agentConn) Ping(ctx context.Context) error { return a.c.Ping(ctx) }

func (p *agentPortal) dial(id string) func(ctx context.Context) (connector.Conn, error) {
	return func(ctx context.Context) (connector.Conn, error) {
		c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(p.srv.URL, "http")+agentwire.PathConnect,
			&websocket.DialOptions{HTTPHeader: http.Header{agentwire.HeaderAgentID: {id}}})
		if err != nil {
			return nil, err
		}
		c.SetReadLimit(agentwire.MaxMessage)
		return agentConn{c}, nil
	}
}

// runAgent enrols an agent serving d (under bases) and runs its connector
// against the portal until ctx ends; it returns once the hub lists it, with
// the channel that gets Run's answer. heartbeat 0 keeps the connector's
// default.
func (p *agentPortal) runAgent(t *testing.T, ctx context.Context, d directory.Directory, bases []string, heartbeat time.Duration) <-chan error {
	t.Helper()
	ident, _ := agentwire.NewIdentity()
	p.reg.enrol("id-dc1", "dc-agent", ident.Public())
	ag := connector.New(connector.Config{
		AgentID: "id-dc1", Identity: ident, PortalKey: p.hub.PublicKey(),
		Directory: func(context.Context) (directory.Directory, []string, error) { return d, bases, nil },
		Status: func(context.Context) agentwire.Status {
			return agentwire.Status{Version: "test", Host: "agent.corp.test", PasswordWriteback: true, Configured: true}
		},
		MinBackoff:     10 * time.Millisecond,
		HeartbeatEvery: heartbeat,
	})
	runErr := make(chan error, 1)
	go func() { runErr <- ag.Run(ctx, p.dial("id-dc1")) }()
	deadline := time.Now().Add(10 * time.Second)
	for n, _ := p.hub.Connected(); n != 1; n, _ = p.hub.Connected() {
		if time.Now().After(deadline) {
			t.Fatal("the agent did not connect")
		}
		time.Sleep(5 * time.Millisecond)
	}
	return runErr
}

func TestAgentConnectRefusesAnythingButAnAgentWebSocket(t *testing.T) {
	p := newAgentPortal(t)
	u := p.srv.URL + agentwire.PathConnect
	for _, tc := range []struct {
		name   string
		method string
		header map[string]string
		status int
	}{
		{"plain GET", http.MethodGet, map[string]string{agentwire.HeaderAgentID: "id-1"}, http.StatusUpgradeRequired},
		{"POST", http.MethodPost, map[string]string{agentwire.HeaderAgentID: "id-1"}, http.StatusNotFound},
		{"no agent ID", http.MethodGet, map[string]string{"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}, http.StatusUnauthorized},
		{"a page on another origin", http.MethodGet, map[string]string{agentwire.HeaderAgentID: "id-1", "Origin": "https://evil.test",
			"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}, http.StatusForbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, u, nil)
			for k, v := range tc.header {
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
			if len(resp.Cookies()) != 0 {
				t.Fatalf("the agent endpoint set cookies: %v", resp.Cookies())
			}
		})
	}
	if c, _ := p.hub.Connected(); c != 0 {
		t.Fatal("an agent is connected")
	}
}

// TestAgentThroughWebSocketAgainstRealDirectories: a reset through the
// portal's hub, the WebSocket, the connector and the agent's own directory
// client reaches the real DC (the user binds with the new password); a
// protected account is refused by the agent; revoking closes the
// connection so that the agent stops.
func TestAgentThroughWebSocketAgainstRealDirectories(t *testing.T) {
	env := testbed.Load(t)
	type dc struct {
		name    string
		typ     directory.Type
		d       testbed.Directory
		newUser func(testing.TB, testbed.UserOptions) testbed.TestUser
		// protected creates an account the agent's configuration protects.
		protected func(cfg *directory.Config) testbed.TestUser
	}
	for _, c := range []dc{
		{"ad", directory.TypeAD, env.AD, env.NewADUser, func(*directory.Config) testbed.TestUser {
			return env.NewADUser(t, testbed.UserOptions{AdminCount: true})
		}},
		{"openldap", directory.TypeOpenLDAP, env.LDAP, env.NewLDAPUser, func(cfg *directory.Config) testbed.TestUser {
			g := env.NewLDAPGroup(t, "wbprot"+testbed.RandomLogin())
			cfg.ExcludedGroups = append(cfg.ExcludedGroups, g)
			return env.NewLDAPUser(t, testbed.UserOptions{Groups: []string{g}})
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := directory.Defaults(c.typ, c.d.BaseDN)
			cfg.URLs = []string{c.d.URL}
			cfg.CAPEM = env.CAPEM()
			cfg.BindDN, cfg.BindPassword = c.d.BindDN, c.d.BindPassword
			cfg.BaseDNs = []string{c.d.PeopleDN}
			prot := c.protected(&cfg)
			cl, err := directory.New(cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { cl.Close() })

			p := newAgentPortal(t)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			// Heartbeats and pings while the test runs; each ping must be
			// answered within this, which a loaded machine running the race
			// detector does not always do in 50 ms.
			runErr := p.runAgent(t, ctx, cl, cfg.BaseDNs, 150*time.Millisecond)
			// Past the server's read and write timeouts, which are for pages:
			// the one connection stays up (the hub drops a dead one only
			// after DeadAfter), with jobs going both ways.
			for range 3 {
				time.Sleep(250 * time.Millisecond)
				if _, err := p.hub.Search(ctx, "nobody-by-this-name", 1); err != nil {
					t.Fatalf("search through the agent: %v", err)
				}
			}
			if ev := p.reg.seen(); len(ev) != 1 || !strings.HasPrefix(ev[0], "connected id-dc1") {
				t.Fatalf("registry events %v, want one connection", ev)
			}

			tu := c.newUser(t, testbed.UserOptions{})
			pw := testbed.RandomPassword()
			u, res, err := p.hub.ResetLogin(ctx, tu.Login, pw, directory.ResetOptions{})
			if err != nil {
				t.Fatalf("reset through the agent: %v", err)
			}
			if res.Agent != "dc-agent" || res.Server != c.d.URL || !strings.EqualFold(u.DN, tu.DN) {
				t.Fatalf("result %+v, user %s", res, u.DN)
			}
			if err := env.BindAs(t, c.d, tu.DN, pw); err != nil {
				t.Fatalf("bind with the new password: %v", err)
			}
			if err := env.BindAs(t, c.d, tu.DN, tu.Password); err == nil {
				t.Fatal("the old password still binds")
			}

			ppw := testbed.RandomPassword()
			_, res, err = p.hub.ResetLogin(ctx, prot.Login, ppw, directory.ResetOptions{})
			var oe *directory.OpError
			var re *agentwire.RefusedError
			if !errors.As(err, &oe) || oe.Code != directory.CodeProtected || errs.KindOf(err) != errs.Forbidden ||
				!errors.As(err, &re) || re.Reason != agentwire.RefusedProtected || res.Agent != "dc-agent" {
				t.Fatalf("reset of a protected account: %v (result %+v)", err, res)
			}
			if err := env.BindAs(t, c.d, prot.DN, prot.Password); err != nil {
				t.Fatalf("the protected account's password changed: %v", err)
			}

			p.hub.Disconnect("id-dc1")
			select {
			case err := <-runErr:
				if !errors.Is(err, connector.ErrRevoked) {
					t.Fatalf("Run = %v, want ErrRevoked through the WebSocket close code", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the agent did not stop after Disconnect")
			}
		})
	}
}

// TestAgentConnectAttemptsLimited: connection attempts to the agent
// endpoint are capped per client address, so unauthenticated handshakes
// cannot pile up.
func TestAgentConnectAttemptsLimited(t *testing.T) {
	const agentConnectsPerMinute = 60 // handlers.agentConnectsPerMinute
	p := newAgentPortal(t)
	u := p.srv.URL + agentwire.PathConnect
	statuses := map[int]int{}
	for range agentConnectsPerMinute + 5 {
		req, _ := http.NewRequest(http.MethodGet, u, nil)
		req.Header.Set(agentwire.HeaderAgentID, "id-1")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		statuses[resp.StatusCode]++
	}
	if statuses[http.StatusUpgradeRequired] != agentConnectsPerMinute || statuses[http.StatusTooManyRequests] != 5 {
		t.Fatalf("statuses %v, want %d × 426 then 5 × 429", statuses, agentConnectsPerMinute)
	}
}

// findOnly is a directory whose Find answers; the test calls nothing else.
type findOnly struct{ directory.Directory }

func (findOnly) Find(ctx context.Context, login string) (directory.User, directory.Result, error) {
	return directory.User{Login: login}, directory.Result{Server: "ldaps://dc1"}, nil
}

// TestCallerGivingUpKeepsTheAgentConnection: a request that ended (the
// person closed the page, the client dropped the connection) before its job
// was written must not cut the agent's WebSocket, which every other
// request shares: the WebSocket library closes a connection whose write
// context has ended.
func TestCallerGivingUpKeepsTheAgentConnection(t *testing.T) {
	p := newAgentPortal(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p.runAgent(t, ctx, findOnly{}, []string{"ou=people,dc=writeback,dc=test"}, 0)
	gone, giveUp := context.WithCancel(context.Background())
	giveUp()
	for range 20 {
		if _, _, err := p.hub.Find(gone, "ann"); err == nil {
			t.Fatal("Find with an ended context succeeded")
		}
	}
	if _, res, err := p.hub.Find(ctx, "ann"); err != nil || res.Agent != "dc-agent" {
		t.Fatalf("Find after the callers who gave up: %v (result %+v)", err, res)
	}
	if ev := p.reg.seen(); len(ev) != 1 || !strings.HasPrefix(ev[0], "connected id-dc1") {
		t.Fatalf("registry events %v: the agent's connection was cut by callers who gave up", ev)
	}
}

// slowAuth is a directory whose AuthenticateLogin resolves the login only
// when the job's deadline has passed (a slow DC), then asks admit.
type slowAuth struct{ directory.Directory }

func (slowAuth) AuthenticateLogin(ctx context.Context, login, pw string, admit directory.Admit) (directory.Candidate, directory.Result, error) {
	<-ctx.Done()
	c := directory.Candidate{User: directory.User{Login: login}}
	return c, directory.Result{}, admit(c, nil)
}

// TestLateAdmitKeepsTheAgentConnection: an agent whose job ran out of time
// (a slow DC) does not cut its own WebSocket, which the portal's other
// jobs share, by sending the job's admit on its ended context.
func TestLateAdmitKeepsTheAgentConnection(t *testing.T) {
	p := newAgentPortal(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p.runAgent(t, ctx, slowAuth{}, []string{"ou=people,dc=writeback,dc=test"}, 0)
	for range 10 {
		jctx, jcancel := context.WithTimeout(ctx, 100*time.Millisecond)
		_, _, err := p.hub.AuthenticateLogin(jctx, "ann", "Passw0rd!", func(directory.Candidate, error) error { return nil })
		jcancel()
		if err == nil {
			t.Fatal("an authentication past its deadline succeeded")
		}
	}
	time.Sleep(50 * time.Millisecond)
	if ev := p.reg.seen(); len(ev) != 1 || !strings.HasPrefix(ev[0], "connected id-dc1") {
		t.Fatalf("registry events %v: late admits cut the agent's connection", ev)
	}
}
