package handlers_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"html"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/writeback/writeback/handlers"
	"github.com/writeback/writeback/services/admins"
	"github.com/writeback/writeback/services/agenthub"
	"github.com/writeback/writeback/services/agents"
	"github.com/writeback/writeback/services/agentwire"
	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/connector"
	"github.com/writeback/writeback/services/directory"
	"github.com/writeback/writeback/services/mail"
	"github.com/writeback/writeback/services/mail/mailtest"
	"github.com/writeback/writeback/services/selfservice"
	"github.com/writeback/writeback/services/settings"
	"github.com/writeback/writeback/services/writeback"
	"github.com/writeback/writeback/testbed"
)

// Timings of the end-to-end suite: heartbeats often enough that a switch
// turned off on an agent reaches the portal within a second, and a dead
// agent dropped in seconds. Not shorter: an agent drops a connection whose
// ping is not answered within a heartbeat interval, and under the race
// detector on a loaded machine a round trip through the proxy can take a
// good part of 100 ms.
const (
	e2eHeartbeat = time.Second
	e2eDeadAfter = 5 * time.Second
	// e2eMaxWait caps a job's wait for its agent (15 s in production): the
	// timeout test waits this long.
	e2eMaxWait = 4 * time.Second
	// e2eWithin bounds every wait for an agent to connect, stop or be
	// noticed gone.
	e2eWithin = 10 * time.Second
)

// recConn is one connection the proxy opened to the portal, with every
// byte it wrote (sent) and read (recv).
type recConn struct {
	net.Conn
	kind string // "agent" (the agents' paths) or "browser"
	mu   sync.Mutex
	sent bytes.Buffer
	recv bytes.Buffer
}

func (c *recConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.mu.Lock()
	c.recv.Write(b[:n])
	c.mu.Unlock()
	return n, err
}

func (c *recConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	c.sent.Write(b)
	c.mu.Unlock()
	return c.Conn.Write(b)
}

func (c *recConn) bytes() (sent, recv []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return bytes.Clone(c.sent.Bytes()), bytes.Clone(c.recv.Bytes())
}

// recorder is the TLS-terminating proxy's way to the portal: it keeps
// every connection it opened, the agents' apart from the browsers'.
type recorder struct {
	mu    sync.Mutex
	conns []*recConn
}

func (r *recorder) transport(kind string) *http.Transport {
	return &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			rc := &recConn{Conn: c, kind: kind}
			r.mu.Lock()
			r.conns = append(r.conns, rc)
			r.mu.Unlock()
			return rc, nil
		},
		// One request per connection on the agents' side, so that each
		// recorded connection is one enrolment or one WebSocket.
		DisableKeepAlives: kind == "agent",
	}
}

func (r *recorder) of(kind string) []*recConn {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*recConn
	for _, c := range r.conns {
		if c.kind == kind {
			out = append(out, c)
		}
	}
	return out
}

// byPath sends the agents' requests through one transport and the
// browsers' through another.
type byPath struct{ agent, browser http.RoundTripper }

func (b byPath) RoundTrip(req *http.Request) (*http.Response, error) {
	if strings.HasPrefix(req.URL.Path, "/agent/") {
		return b.agent.RoundTrip(req)
	}
	return b.browser.RoundTrip(req)
}

// wsPayloads decodes what one direction of a recorded WebSocket
// connection carried after its HTTP handshake: every frame's payload,
// unmasked (an agent masks what it sends, so its frames never hold their
// text in the clear on the wire) and concatenated; frames counts them.
func wsPayloads(stream []byte) (payload []byte, frames int) {
	i := bytes.Index(stream, []byte("\r\n\r\n"))
	if i < 0 {
		return nil, 0
	}
	rest := stream[i+4:]
	for len(rest) >= 2 {
		masked, n, p := rest[1]&0x80 != 0, int(rest[1]&0x7f), 2
		switch n {
		case 126:
			if len(rest) < 4 {
				return payload, frames
			}
			n, p = int(binary.BigEndian.Uint16(rest[2:4])), 4
		case 127:
			if len(rest) < 10 {
				return payload, frames
			}
			n, p = int(binary.BigEndian.Uint64(rest[2:10])), 10
		}
		var key []byte
		if masked {
			if len(rest) < p+4 {
				return payload, frames
			}
			key, p = rest[p:p+4], p+4
		}
		if n < 0 || len(rest) < p+n {
			return payload, frames // cut off when the connection ended
		}
		data := bytes.Clone(rest[p : p+n])
		for j := range data {
			if masked {
				data[j] ^= key[j%4]
			}
		}
		payload = append(append(payload, data...), '\n')
		frames++
		rest = rest[p+n:]
	}
	return payload, frames
}

// withDecoded is what frames say, each frame's JSON strings that are
// base64 appended decoded: a field sent as []byte (as Job.Sealed is) would
// otherwise hide a password sent unsealed behind its base64.
func withDecoded(frames []byte) []byte {
	out := bytes.Clone(frames)
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for _, x := range v {
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		case string:
			for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
				if b, err := enc.DecodeString(v); err == nil {
					out = append(append(out, b...), '\n')
				}
			}
		}
	}
	for _, f := range bytes.Split(frames, []byte("\n")) {
		var v any
		if json.Unmarshal(f, &v) == nil {
			walk(v)
		}
	}
	return out
}

// slowDirectory is an agent's directory whose resets hang until the job's
// context ends, and a while longer (longer than the gap the hub may leave
// between the deadline it gives the agent and its own, so that the
// portal's deadline passes first), then try the DC all the same: a write
// that comes late must be stopped by that context, never applied.
// late receives what the late attempt answered; entered, when set, the
// agent's name as soon as a reset reaches it.
type slowDirectory struct {
	directory.Directory
	name    string
	entered chan string
	late    chan error
}

const slowExtra = 2500 * time.Millisecond

func (d slowDirectory) hang(ctx context.Context) {
	if d.entered != nil {
		d.entered <- d.name
	}
	<-ctx.Done()
	time.Sleep(slowExtra)
}

func (d slowDirectory) done(err error) {
	select {
	case d.late <- err:
	default:
	}
}

func (d slowDirectory) ResetLogin(ctx context.Context, login, pw string, opt directory.ResetOptions) (directory.User, directory.Result, error) {
	d.hang(ctx)
	u, res, err := d.Directory.ResetLogin(ctx, login, pw, opt)
	d.done(err)
	return u, res, err
}

func (d slowDirectory) ResetUser(ctx context.Context, u directory.User, pw string, opt directory.ResetOptions) (directory.User, directory.Result, error) {
	d.hang(ctx)
	u, res, err := d.Directory.ResetUser(ctx, u, pw, opt)
	d.done(err)
	return u, res, err
}

// e2eAgent is one writeback agent: its own identity from a real
// enrolment, its own directory client, its own switch and log.
type e2eAgent struct {
	name, id  string
	ident     *agentwire.Identity
	portalKey []byte // from the enrolment's answer
	dir       *directory.Client
	bases     []string
	writeback atomic.Bool
	slow      atomic.Pointer[slowDirectory] // set: resets hang (see slowDirectory)
	logs      *testbed.SyncBuffer

	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan error
}

func (a *e2eAgent) config() connector.Config {
	return connector.Config{
		AgentID: a.id, Identity: a.ident, PortalKey: a.portalKey,
		Directory: func(context.Context) (directory.Directory, []string, error) {
			if slow := a.slow.Load(); slow != nil {
				return *slow, a.bases, nil
			}
			return a.dir, a.bases, nil
		},
		Status: func(context.Context) agentwire.Status {
			return agentwire.Status{Version: "test", Host: a.name + ".corp.test", PasswordWriteback: a.writeback.Load(), Configured: true, Directory: "test DC"}
		},
		Log:            slog.New(slog.NewTextHandler(a.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		HeartbeatEvery: e2eHeartbeat,
		MinBackoff:     20 * time.Millisecond,
		MaxBackoff:     200 * time.Millisecond,
	}
}

// agentsPortal is the real portal in agents mode (its hub's registry the
// real agents service) served over plain HTTP and reached only through a
// TLS-terminating reverse proxy that records every byte it forwards.
type agentsPortal struct {
	*sspr
	reg   *agents.Service
	hub   *agenthub.Hub
	front *httptest.Server
	rec   *recorder
	// protectedGroups are protected by the agents' own configuration, on
	// top of the defaults (which protect AD's administrators).
	protectedGroups []string
}

func newAgentsPortal(t *testing.T, env testbed.Env, d directoryCase) *agentsPortal {
	t.Helper()
	ctx := context.Background()
	p := newPortal(t)
	reg := agents.New(p.db, p.log)
	hub := agenthub.New(reg, p.log)
	reg.SetPortalKey(hub.PublicKey())
	hub.DeadAfter, hub.MaxWait = e2eDeadAfter, e2eMaxWait
	reg.SetDisconnector(hub)
	p.wb.UseAgents(hub)
	t.Cleanup(hub.Shutdown)

	loopback := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	base, _ := url.Parse("https://portal.test")
	s := handlers.New(handlers.Config{BaseURL: base, CookieHashKey: p.keys.Derive("h"), CookieBlockKey: p.keys.Derive("b"), TrustedProxies: loopback}, p.log,
		handlers.Deps{Admins: p.admins, Settings: p.settings, Writeback: p.wb, SelfService: p.ss, Audit: p.audit,
			Agents: reg, AgentEnroll: reg, AgentHub: hub})
	back := httptest.NewServer(s.Routes())
	t.Cleanup(back.Close)
	target, _ := url.Parse(back.URL)
	rec := &recorder{}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			r.SetXForwarded()
			r.Out.Host = r.In.Host
		},
		Transport: byPath{agent: rec.transport("agent"), browser: rec.transport("browser")},
	}
	front := httptest.NewTLSServer(proxy)
	t.Cleanup(front.Close)

	if _, err := p.wb.SaveConnection(ctx, audit.CommandLine, 0, writeback.Input{Mode: writeback.ModeAgents}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := p.settings.SaveOnPrem(ctx, audit.CommandLine, 0, settings.OnPrem{Writeback: true, Unlock: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.ss.SavePolicy(ctx, audit.CommandLine, 0, "test", func(pol *selfservice.Policy) {
		pol.ChallengeOff = true // more attempts than the proof-of-work threshold; challenge_test.go tests it
		pol.Enabled, pol.Methods, pol.Required, pol.NotifyUsers = selfservice.EnabledAll, selfservice.Methods{Email: true}, 1, true
		pol.Helpdesk, pol.OrgName = "help@example.com", "Example Corp"
	}); err != nil {
		t.Fatal(err)
	}
	sink := mailtest.Start(t, mailtest.Options{})
	host, port := sink.Addr()
	if _, err := p.ss.SaveMail(ctx, audit.CommandLine, 0, selfservice.MailInput{Host: host, Port: port, TLS: mail.TLSNone, From: "portal@example.com"}); err != nil {
		t.Fatal(err)
	}
	h := &harness{portal: p, t: t, srv: front}
	return &agentsPortal{sspr: &sspr{harness: h, env: env, d: d, sink: sink}, reg: reg, hub: hub, front: front, rec: rec}
}

// browser is a person's browser on the proxy's TLS address, failing t.
func (e *agentsPortal) browser(t *testing.T) *client {
	jar, _ := cookiejar.New(nil)
	return &client{t: t, h: e.harness, http: &http.Client{Jar: jar, Transport: e.front.Client().Transport,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// enroll posts an enrolment as `writeback-agent enroll` does, through the
// proxy, and returns the status with the decoded answer.
func (e *agentsPortal) enroll(t *testing.T, ident *agentwire.Identity, token string) (int, agentwire.EnrollResponse, agentwire.EnrollError) {
	t.Helper()
	body, _ := json.Marshal(agentwire.EnrollRequest{Token: token, Public: ident.Public(), Proof: ident.SignEnroll(token), Host: "agent.corp.test", Version: "test"})
	resp, err := e.front.Client().Post(e.front.URL+agentwire.PathEnroll, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var ok agentwire.EnrollResponse
	var refused agentwire.EnrollError
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(b, &ok); err != nil {
			t.Fatalf("enrolment answer %q: %v", b, err)
		}
	} else if err := json.Unmarshal(b, &refused); err != nil {
		t.Fatalf("enrolment refusal %q: %v", b, err)
	}
	return resp.StatusCode, ok, refused
}

// dial opens an agent's WebSocket to the proxy's TLS address.
func (e *agentsPortal) dial(id string) func(ctx context.Context) (connector.Conn, error) {
	return func(ctx context.Context) (connector.Conn, error) {
		c, _, err := websocket.Dial(ctx, "wss"+strings.TrimPrefix(e.front.URL, "https")+agentwire.PathConnect,
			&websocket.DialOptions{HTTPClient: e.front.Client(), HTTPHeader: http.Header{agentwire.HeaderAgentID: {id}}})
		if err != nil {
			return nil, err
		}
		c.SetReadLimit(agentwire.MaxMessage)
		return agentConn{c}, nil
	}
}

// newAgent enrols an agent for real (a token from the agents service, the
// enrolment endpoint behind the proxy) with its own directory client.
func (e *agentsPortal) newAgent(t *testing.T, name string) *e2eAgent {
	t.Helper()
	tok, err := e.reg.Add(context.Background(), audit.CommandLine, name)
	if err != nil {
		t.Fatal(err)
	}
	ident, err := agentwire.NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	status, ok, refused := e.enroll(t, ident, tok.Token)
	if status != http.StatusOK || ok.Name != name || ok.AgentID == "" {
		t.Fatalf("enrol %s: %d %+v %q", name, status, ok, refused.Error)
	}
	cfg := directory.Defaults(directory.Type(e.d.typ), e.d.dir.BaseDN)
	cfg.URLs = []string{e.d.dir.URL}
	cfg.CAPEM = e.env.CAPEM()
	cfg.BindDN, cfg.BindPassword = e.d.dir.BindDN, e.d.dir.BindPassword
	cfg.BaseDNs = []string{e.d.dir.PeopleDN}
	cfg.ExcludedGroups = append(cfg.ExcludedGroups, e.protectedGroups...)
	cl, err := directory.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	a := &e2eAgent{name: name, id: ok.AgentID, ident: ident, portalKey: ok.PortalKey, dir: cl, bases: cfg.BaseDNs, logs: &testbed.SyncBuffer{}}
	a.writeback.Store(true)
	t.Cleanup(func() { e.stop(t, a) })
	return a
}

// start runs the agent (connector.Run, reconnecting) until stop.
func (e *agentsPortal) start(a *e2eAgent) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	ag := connector.New(a.config())
	go func() { done <- ag.Run(ctx, e.dial(a.id)) }()
	a.mu.Lock()
	a.cancel, a.done = cancel, done
	a.mu.Unlock()
}

// stop cancels the agent's Run and waits for it to return.
func (e *agentsPortal) stop(t *testing.T, a *e2eAgent) {
	a.mu.Lock()
	cancel, done := a.cancel, a.done
	a.cancel, a.done = nil, nil
	a.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	select {
	case <-done:
	case <-time.After(e2eWithin):
		t.Errorf("agent %s did not stop", a.name)
	}
}

// waitFor polls cond until it holds, failing t after e2eWithin.
func waitFor(t *testing.T, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > e2eWithin {
			t.Fatalf("after %s: %s", e2eWithin, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Since(start)
}

func (e *agentsPortal) waitConnected(t *testing.T, connected, wb int) time.Duration {
	t.Helper()
	return waitFor(t, "the hub does not have the agents expected", func() bool {
		c, w := e.hub.Connected()
		return c == connected && w == wb
	})
}

// lastAudit is the newest audit row of an activity.
func (e *agentsPortal) lastAudit(t *testing.T, activity string) (row struct{ Result, Reason, Details string }) {
	t.Helper()
	rows, err := e.db.RecentAudit(context.Background(), activity, 1)
	if err != nil || len(rows) == 0 {
		t.Fatalf("no audit row %q (%v)", activity, err)
	}
	row.Result, row.Reason, row.Details = rows[0].Result, rows[0].Reason, rows[0].Details
	return row
}

// agentOf returns the agent named in audit details, "" when none.
func agentOf(t *testing.T, details string) string {
	t.Helper()
	var d map[string]any
	if err := json.Unmarshal([]byte(details), &d); err != nil {
		t.Fatalf("audit details %q: %v", details, err)
	}
	s, _ := d["agent"].(string)
	return s
}

// resetByCode runs the self-service reset through the HTTP forms: the
// login, the e-mailed code, the new password. It returns the code and the
// last page.
func (e *agentsPortal) resetByCode(t *testing.T, c *client, login, to, newPw string) (code string, last page) {
	t.Helper()
	flow := c.begin("reset", login)
	if p := c.step(flow, "method", url.Values{"method": {"email"}}); p.Status != http.StatusSeeOther {
		t.Fatalf("choose e-mail: %d\n%s", p.Status, between(p.Body, "<main", "</main>"))
	}
	code = e.code(t, to)
	if p := c.step(flow, "verify", url.Values{"method": {"email"}, "code": {code}}); p.Status != http.StatusSeeOther {
		t.Fatalf("verify: %d\n%s", p.Status, between(p.Body, "<main", "</main>"))
	}
	return code, c.step(flow, "password", url.Values{"password": {newPw}, "confirm": {newPw}})
}

// TestAgentsEndToEnd is issue 10 item 10 in one process: the real portal
// in agents mode (its stored connection holds no server or credential)
// behind a TLS-terminating proxy that records every byte, two agents
// enrolled through the enrolment endpoint and connected over WebSockets
// through that proxy, each with its own connection to the real Samba AD or
// OpenLDAP. Each write is verified at the DC by binding or reading the
// account. In order, sharing the portal and the agents: a self-service
// reset by e-mailed code, a change with the old password (and a /register
// sign-in), a self-service unlock and a helpdesk reset go through an agent
// named in their audit rows; a protected account and a DN outside the
// search bases are refused by the agent; an agent that dies with a write in
// flight is not replaced for that write; one agent stopped, the next reset
// goes through the other; the one agent left with password writeback off
// refuses, and the pages say so; an agent that does not answer in time
// gives a clear error, an audit row that says which and why, and applies
// nothing late; none left, the person gets plain words and nothing
// changes; a revoked agent is cut off and refused; and no password, code or
// service account password is in the agents' traffic (raw, unmasked or
// base64), the logs or the audit rows. Last, reused, expired and forged
// enrolment tokens get the same one-line refusal.
func TestAgentsEndToEnd(t *testing.T) {
	env := testbed.Load(t)
	for _, d := range directories(env) {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel() // a portal of its own: the waits for deadlines overlap
			ctx := context.Background()
			e := newAgentsPortal(t, env, d)
			if d.typ == "openldap" {
				e.protectedGroups = []string{env.NewLDAPGroup(t, "wbprot"+testbed.RandomLogin())}
			}
			a, b := e.newAgent(t, "agent-a"), e.newAgent(t, "agent-b")
			e.start(a)
			e.start(b)
			e.waitConnected(t, 2, 2)
			both := map[string]bool{a.name: true, b.name: true}
			var secretsMu sync.Mutex
			var secrets []string
			secret := func(s ...string) {
				secretsMu.Lock()
				secrets = append(secrets, s...)
				secretsMu.Unlock()
			}
			// The administrators' sign-in password, and the agents' service
			// account password, which never leaves them.
			secret(testPassword, d.dir.BindPassword)

			t.Run("self-service reset by e-mailed code goes through an agent", func(t *testing.T) {
				user := d.newUser(t, testbed.UserOptions{})
				newPw := "Rst-" + testbed.RandomPassword()
				secret(user.Password, newPw)
				code, p := e.resetByCode(t, e.browser(t), user.Login, user.Mail, newPw)
				secret(code)
				if p.Status != http.StatusSeeOther {
					t.Fatalf("set password: %d\n%s", p.Status, between(p.Body, "<main", "</main>"))
				}
				if err := env.BindAs(t, d.dir, user.DN, newPw); err != nil {
					t.Errorf("bind with the new password: %v", err)
				}
				if err := env.BindAs(t, d.dir, user.DN, user.Password); err == nil {
					t.Error("the old password still binds")
				}
				row := e.lastAudit(t, audit.ActivityResetSelfService)
				if row.Result != "success" || !both[agentOf(t, row.Details)] {
					t.Errorf("audit row of the reset %+v: want a success naming the agent", row)
				}
			})

			t.Run("change with the old password goes through an agent", func(t *testing.T) {
				user := d.newUser(t, testbed.UserOptions{})
				newPw := "Chg-" + testbed.RandomPassword()
				secret(user.Password, newPw)
				c := e.browser(t)
				p := c.post("/change", url.Values{"csrf_token": {c.csrf("/")}, "login": {user.Login}, "current": {user.Password}, "password": {newPw}, "confirm": {newPw}})
				if p.Status != http.StatusSeeOther {
					t.Fatalf("change: %d\n%s", p.Status, between(p.Body, "<main", "</main>"))
				}
				if err := env.BindAs(t, d.dir, user.DN, newPw); err != nil {
					t.Errorf("bind with the new password: %v", err)
				}
				if err := env.BindAs(t, d.dir, user.DN, user.Password); err == nil {
					t.Error("the old password still binds")
				}
				row := e.lastAudit(t, audit.ActivityChangeSelfService)
				if row.Result != "success" || !both[agentOf(t, row.Details)] {
					t.Errorf("audit row of the change %+v: want a success naming the agent", row)
				}
				// Signing in to /register with one's own password goes
				// through an agent too: the right one is let in, a wrong
				// one is not.
				r := e.browser(t)
				if p := r.post("/register", url.Values{"csrf_token": {r.csrf("/")}, "login": {user.Login}, "password": {newPw}}); p.Status != http.StatusSeeOther {
					t.Errorf("register with the right password: %d\n%s", p.Status, between(p.Body, "<main", "</main>"))
				}
				wrong := "Wrong-" + testbed.RandomPassword()
				secret(wrong)
				if p := r.post("/register", url.Values{"csrf_token": {r.csrf("/")}, "login": {user.Login}, "password": {wrong}}); p.Status == http.StatusSeeOther {
					t.Error("register let a wrong password in")
				}
			})

			t.Run("self-service unlock goes through an agent", func(t *testing.T) {
				user := d.newUser(t, testbed.UserOptions{})
				secret(user.Password)
				d.lock(t, user)
				c := e.browser(t)
				flow := c.begin("unlock", user.Login)
				c.step(flow, "method", url.Values{"method": {"email"}})
				code := e.code(t, user.Mail)
				secret(code)
				if p := c.step(flow, "verify", url.Values{"method": {"email"}, "code": {code}}); p.Status != http.StatusSeeOther {
					t.Fatalf("verify: %d\n%s", p.Status, between(p.Body, "<main", "</main>"))
				}
				if p := c.get(flow); !strings.Contains(p.Body, "Your account is unlocked") {
					t.Fatalf("after the unlock:\n%s", between(p.Body, "<main", "</main>"))
				}
				if d.locked(t, user) {
					t.Error("still locked at the DC")
				}
				if err := env.BindAs(t, d.dir, user.DN, user.Password); err != nil {
					t.Errorf("bind with the unchanged password: %v", err)
				}
				row := e.lastAudit(t, audit.ActivityUnlockSelfService)
				if row.Result != "success" || !both[agentOf(t, row.Details)] {
					t.Errorf("audit row of the unlock %+v: want a success naming the agent", row)
				}
			})

			t.Run("helpdesk reset goes through an agent", func(t *testing.T) {
				user := d.newUser(t, testbed.UserOptions{})
				newPw := "Hlp-" + testbed.RandomPassword()
				secret(user.Password, newPw)
				hd := e.browser(t).signedIn(admins.HelpdeskAdmin)
				path := "/admin/users/" + url.PathEscape(user.Login)
				if p := hd.get(path); p.Status != http.StatusOK || !strings.Contains(p.Body, user.Login) {
					t.Fatalf("user page: %d\n%s", p.Status, between(p.Body, "<main", "</main>"))
				}
				if p := hd.post(path+"/reset", url.Values{"csrf_token": {hd.csrf("/")}, "password": {newPw}, "confirm": {newPw}}); p.Status != http.StatusSeeOther {
					t.Fatalf("helpdesk reset: %d\n%s", p.Status, between(p.Body, "<main", "</main>"))
				}
				if err := env.BindAs(t, d.dir, user.DN, newPw); err != nil {
					t.Errorf("bind with the new password: %v", err)
				}
				row := e.lastAudit(t, audit.ActivityResetByAdmin)
				if row.Result != "success" || !both[agentOf(t, row.Details)] {
					t.Errorf("audit row of the helpdesk reset %+v: want a success naming the agent", row)
				}
			})

			t.Run("a protected account: the agent refuses, the audit row has its reason", func(t *testing.T) {
				// The portal holds no directory configuration that could
				// protect anyone: the agent's own client refuses.
				var user testbed.TestUser
				if d.typ == "ad" {
					user = d.newUser(t, testbed.UserOptions{AdminCount: true})
				} else {
					user = d.newUser(t, testbed.UserOptions{Groups: e.protectedGroups})
				}
				newPw := "Prt-" + testbed.RandomPassword()
				secret(user.Password, newPw)
				hd := e.browser(t).signedIn(admins.HelpdeskAdmin)
				p := hd.post("/admin/users/"+url.PathEscape(user.Login)+"/reset", url.Values{"csrf_token": {hd.csrf("/")}, "password": {newPw}, "confirm": {newPw}})
				if p.Status == http.StatusSeeOther {
					t.Fatal("the helpdesk reset a protected account")
				}
				if err := env.BindAs(t, d.dir, user.DN, user.Password); err != nil {
					t.Errorf("the protected account's password changed: %v", err)
				}
				row := e.lastAudit(t, audit.ActivityResetByAdmin)
				if row.Result != "failure" || !both[agentOf(t, row.Details)] || !strings.Contains(row.Details, `"agent_refused":"`+agentwire.RefusedProtected+`"`) {
					t.Errorf("audit row %+v: want a failure naming the agent and its reason (%s)", row, agentwire.RefusedProtected)
				}
				// A portal taken over that sends a DN outside the agent's
				// search bases is refused by the agent before its directory
				// is asked (the DN is made up: nothing there to harm if the
				// guard failed).
				outside := directory.User{DN: "CN=wbnobody" + testbed.RandomLogin() + "," + e.d.dir.BaseDN, Login: "wbnobody"}
				_, res, err := e.hub.ResetUser(ctx, outside, newPw, directory.ResetOptions{})
				var re *agentwire.RefusedError
				if !errors.As(err, &re) || re.Reason != agentwire.RefusedOutsideBase || !both[res.Agent] {
					t.Errorf("a reset outside the agent's search bases: %v (result %+v)", err, res)
				}
			})

			t.Run("an agent lost during a write: not sent to the other, nothing changed", func(t *testing.T) {
				user := d.newUser(t, testbed.UserOptions{})
				newPw := "Lst-" + testbed.RandomPassword()
				secret(user.Password, newPw)
				entered := make(chan string, 2)
				for _, ag := range []*e2eAgent{a, b} {
					ag.slow.Store(&slowDirectory{Directory: ag.dir, name: ag.name, entered: entered, late: make(chan error, 1)})
				}
				hd := e.browser(t).signedIn(admins.HelpdeskAdmin)
				form := url.Values{"csrf_token": {hd.csrf("/")}, "password": {newPw}, "confirm": {newPw}}
				answer := make(chan page, 1)
				go func() { answer <- hd.post("/admin/users/"+url.PathEscape(user.Login)+"/reset", form) }()
				var first *e2eAgent
				select {
				case name := <-entered:
					first = map[string]*e2eAgent{a.name: a, b.name: b}[name]
				case <-time.After(e2eWithin):
					t.Fatal("the reset reached no agent")
				}
				e.stop(t, first) // the agent dies with the write in flight
				var p page
				select {
				case p = <-answer:
				case <-time.After(e2eWithin):
					t.Fatal("no answer after the agent died")
				}
				for _, ag := range []*e2eAgent{a, b} {
					ag.slow.Store(nil)
				}
				select {
				case name := <-entered:
					t.Errorf("the write was sent to %s too, after %s died with it", name, first.name)
				default:
				}
				main := between(p.Body, "<main", "</main>")
				if p.Status != http.StatusServiceUnavailable || !strings.Contains(main, "lost during the change; it may or may not have been applied") {
					t.Errorf("helpdesk reset with its agent lost: %d\n%s", p.Status, main)
				}
				t.Logf("the helpdesk sees (%d): %s", p.Status, between(main, `data-testid="errors"`, "</ul>"))
				row := e.lastAudit(t, audit.ActivityResetByAdmin)
				if row.Result != "failure" || agentOf(t, row.Details) != first.name || !strings.Contains(row.Details, "disconnected before answering") {
					t.Errorf("audit row %+v: want a failure naming %s and why", row, first.name)
				}
				if err := env.BindAs(t, d.dir, user.DN, user.Password); err != nil {
					t.Errorf("the old password no longer binds: %v", err)
				}
				e.start(first)
				e.waitConnected(t, 2, 2)
			})

			t.Run("one agent stopped: the next reset goes through the other", func(t *testing.T) {
				stopped := time.Now()
				e.stop(t, a)
				gone := e.waitConnected(t, 1, 1)
				user := d.newUser(t, testbed.UserOptions{})
				newPw := "Flo-" + testbed.RandomPassword()
				secret(user.Password, newPw)
				code, p := e.resetByCode(t, e.browser(t), user.Login, user.Mail, newPw)
				secret(code)
				if p.Status != http.StatusSeeOther {
					t.Fatalf("reset with one agent left: %d\n%s", p.Status, between(p.Body, "<main", "</main>"))
				}
				if err := env.BindAs(t, d.dir, user.DN, newPw); err != nil {
					t.Errorf("bind with the new password: %v", err)
				}
				if row := e.lastAudit(t, audit.ActivityResetSelfService); row.Result != "success" || agentOf(t, row.Details) != b.name {
					t.Errorf("audit row %+v: want a success by %s", row, b.name)
				}
				t.Logf("the hub dropped the stopped agent %s after its stop; the reset through %s was done %s after the stop",
					gone.Round(time.Millisecond), b.name, time.Since(stopped).Round(time.Millisecond))
			})

			t.Run("the one agent left has password writeback off: writes refused", func(t *testing.T) {
				user := d.newUser(t, testbed.UserOptions{})
				secret(user.Password)
				b.writeback.Store(false)
				defer func() {
					b.writeback.Store(true)
					e.waitConnected(t, 1, 1)
				}()
				e.waitConnected(t, 1, 0)

				// The agent itself refuses a write sent to it.
				pw := "Off-" + testbed.RandomPassword()
				secret(pw)
				_, res, err := e.hub.ResetLogin(ctx, user.Login, pw, directory.ResetOptions{})
				var re *agentwire.RefusedError
				if !errors.As(err, &re) || re.Reason != agentwire.RefusedWritebackOff || res.Agent != b.name {
					t.Errorf("a reset sent to the agent with writeback off: %v (result %+v)", err, res)
				}

				// The administrators' page says why.
				g := e.browser(t).signedIn(admins.GlobalAdmin)
				page := g.get(onPremPath)
				if panel := between(page.Body, `data-testid="agents-state"`, "</div>"); !strings.Contains(panel, "the agent has password writeback turned off") {
					t.Errorf("On-premises integration page:\n%s", panel)
				}

				// The employee's reset is refused at its start, in plain
				// words; the helpdesk's says why.
				c := e.browser(t)
				p := c.post("/reset", url.Values{"csrf_token": {c.csrf("/")}, "login": {user.Login}})
				main := between(p.Body, "<main", "</main>")
				if p.Status != http.StatusForbidden || !strings.Contains(main, `data-testid="unavailable"`) ||
					!strings.Contains(main, "Self-service password reset is not available right now") {
					t.Errorf("the employee's reset with writeback off: %d\n%s", p.Status, main)
				}
				for _, bad := range []string{"agent", "Agent", "Writeback unavailable"} {
					if strings.Contains(main, bad) {
						t.Errorf("the employee's page shows %q", bad)
					}
				}
				hd := e.browser(t).signedIn(admins.HelpdeskAdmin)
				hp := hd.post("/admin/users/"+url.PathEscape(user.Login)+"/reset", url.Values{"csrf_token": {hd.csrf("/")}, "password": {pw}, "confirm": {pw}})
				if hp.Status == http.StatusSeeOther || !strings.Contains(hp.Body, "the agent has password writeback turned off") {
					t.Errorf("helpdesk reset with writeback off: %d\n%s", hp.Status, between(hp.Body, "<main", "</main>"))
				}
				if err := env.BindAs(t, d.dir, user.DN, user.Password); err != nil {
					t.Errorf("the password changed at the DC: %v", err)
				}
			})

			t.Run("an agent that does not answer in time: a clear error, the audit row says which and why, nothing applied late", func(t *testing.T) {
				user := d.newUser(t, testbed.UserOptions{})
				newPw := "Slo-" + testbed.RandomPassword()
				secret(user.Password, newPw)
				hd := e.browser(t).signedIn(admins.HelpdeskAdmin)
				slow := &slowDirectory{Directory: b.dir, late: make(chan error, 1)}
				b.slow.Store(slow)
				defer b.slow.Store(nil)
				start := time.Now()
				p := hd.post("/admin/users/"+url.PathEscape(user.Login)+"/reset", url.Values{"csrf_token": {hd.csrf("/")}, "password": {newPw}, "confirm": {newPw}})
				took := time.Since(start)
				main := between(p.Body, "<main", "</main>")
				if p.Status != http.StatusServiceUnavailable || !strings.Contains(main, "Your organisation&#39;s directory could not be reached. Nothing was changed.") {
					t.Errorf("helpdesk reset through an agent that does not answer: %d after %s\n%s", p.Status, took, main)
				}
				if took > e2eMaxWait+2*time.Second {
					t.Errorf("the answer took %s, the cap is %s", took, e2eMaxWait)
				}
				row := e.lastAudit(t, audit.ActivityResetByAdmin)
				if row.Result != "failure" || agentOf(t, row.Details) != b.name || !strings.Contains(row.Details, "did not answer") {
					t.Errorf("audit row %+v: want a failure naming %s and why", row, b.name)
				}
				select {
				case err := <-slow.late:
					if err == nil {
						t.Error("the agent applied the reset after its deadline")
					}
				case <-time.After(e2eWithin):
					t.Fatal("the agent's late attempt did not end")
				}
				if err := env.BindAs(t, d.dir, user.DN, user.Password); err != nil {
					t.Errorf("the old password no longer binds: %v", err)
				}
				if err := env.BindAs(t, d.dir, user.DN, newPw); err == nil {
					t.Error("the new password binds: the reset was applied late")
				}
			})

			t.Run("both agents stopped: a clear error and nothing changed", func(t *testing.T) {
				user := d.newUser(t, testbed.UserOptions{})
				secret(user.Password)
				c := e.browser(t)
				flow := c.begin("reset", user.Login)
				c.step(flow, "method", url.Values{"method": {"email"}})
				code := e.code(t, user.Mail)
				secret(code)
				if p := c.step(flow, "verify", url.Values{"method": {"email"}, "code": {code}}); p.Status != http.StatusSeeOther {
					t.Fatalf("verify: %d", p.Status)
				}
				e.stop(t, b)
				e.waitConnected(t, 0, 0)
				g := e.browser(t).signedIn(admins.GlobalAdmin)
				if panel := between(g.get(onPremPath).Body, `data-testid="agents-state"`, "</div>"); !strings.Contains(panel, writeback.ReasonNoAgent) {
					t.Errorf("On-premises integration page with no agent:\n%s", panel)
				}
				newPw := "Non-" + testbed.RandomPassword()
				secret(newPw)
				p := c.step(flow, "password", url.Values{"password": {newPw}, "confirm": {newPw}})
				main := between(p.Body, "<main", "</main>")
				// The person reads that the directory could not be reached
				// and nothing was changed (selfservice.EmployeeError); the
				// detail is the audit row's.
				if p.Status != http.StatusServiceUnavailable || !strings.Contains(main, html.EscapeString(directory.MsgNotReached)) || strings.Contains(main, `data-testid="done"`) {
					t.Errorf("reset with no agent: %d\n%s", p.Status, main)
				}
				for _, bad := range []string{"agent", "Agent", "Writeback unavailable", "Global Administrator", "ldap", "LDAP", "DC="} {
					if strings.Contains(main, bad) {
						t.Errorf("the employee's page shows %q:\n%s", bad, main)
					}
				}
				if err := env.BindAs(t, d.dir, user.DN, user.Password); err != nil {
					t.Errorf("the old password no longer binds: %v", err)
				}
				if err := env.BindAs(t, d.dir, user.DN, newPw); err == nil {
					t.Error("the new password binds")
				}
				row := e.lastAudit(t, audit.ActivityResetSelfService)
				if row.Result != "failure" || !strings.Contains(row.Details+row.Reason, "no agent connected") {
					t.Errorf("audit row of the failed reset %+v: want a failure saying no agent is connected", row)
				}
			})

			t.Run("a revoked agent is cut off and cannot come back", func(t *testing.T) {
				e.start(a)
				e.start(b)
				e.waitConnected(t, 2, 2)
				a.mu.Lock()
				done := a.done
				a.mu.Unlock()
				if _, err := e.reg.Revoke(ctx, audit.CommandLine, a.name); err != nil {
					t.Fatal(err)
				}
				select {
				case err := <-done:
					if !errors.Is(err, connector.ErrRevoked) {
						t.Errorf("the revoked agent's Run = %v, want ErrRevoked", err)
					}
					a.mu.Lock()
					a.cancel, a.done = nil, nil
					a.mu.Unlock()
				case <-time.After(e2eWithin):
					t.Fatal("the revoked agent is still running")
				}
				e.waitConnected(t, 1, 1)
				// Coming back with its identity: refused as revoked.
				sctx, cancel := context.WithTimeout(ctx, e2eWithin)
				defer cancel()
				conn, err := e.dial(a.id)(sctx)
				if err != nil {
					t.Fatal(err)
				}
				if err := connector.New(a.config()).Serve(sctx, conn); !errors.Is(err, connector.ErrRevoked) {
					t.Errorf("a new connection of the revoked agent: %v, want ErrRevoked", err)
				}
				if n, _ := e.hub.Connected(); n != 1 {
					t.Errorf("%d agents connected, want only %s", n, b.name)
				}
				list, err := e.reg.List(ctx)
				if err != nil {
					t.Fatal(err)
				}
				for _, in := range list {
					if in.Name == a.name && in.State != agents.Revoked {
						t.Errorf("%s is %s, want revoked", a.name, in.State)
					}
				}
				// The Writeback agents page says so; enrolment, connections,
				// disconnections and the revocation are audit events.
				g := e.browser(t).signedIn(admins.GlobalAdmin)
				page := g.get("/admin/agents")
				rowOf := func(ag *e2eAgent) string { return between(page.Body, `data-agent-id="`+ag.id+`"`, "</tr>") }
				if !strings.Contains(rowOf(a), `data-testid="agent-state">Revoked`) || !strings.Contains(rowOf(b), `data-testid="agent-state">Connected`) {
					t.Errorf("Writeback agents page:\n%s\n%s", rowOf(a), rowOf(b))
				}
				rows, err := e.db.RecentAudit(ctx, "", 100000)
				if err != nil {
					t.Fatal(err)
				}
				seen := map[string]int{}
				for _, r := range rows {
					if r.TargetName == a.name {
						seen[r.Activity]++
					}
				}
				for _, act := range []string{agents.ActivityAddToken, agents.ActivityEnroll, agents.ActivityConnected, agents.ActivityDisconnected, agents.ActivityRevoke} {
					if seen[act] == 0 {
						t.Errorf("no %q audit row for %s (rows: %v)", act, a.name, seen)
					}
				}
				// The other agent still serves.
				user := d.newUser(t, testbed.UserOptions{})
				newPw := "Rev-" + testbed.RandomPassword()
				secret(user.Password, newPw)
				hd := e.browser(t).signedIn(admins.HelpdeskAdmin)
				if p := hd.post("/admin/users/"+url.PathEscape(user.Login)+"/reset", url.Values{"csrf_token": {hd.csrf("/")}, "password": {newPw}, "confirm": {newPw}}); p.Status != http.StatusSeeOther {
					t.Fatalf("helpdesk reset after the revocation: %d\n%s", p.Status, between(p.Body, "<main", "</main>"))
				}
				if err := env.BindAs(t, d.dir, user.DN, newPw); err != nil {
					t.Errorf("bind with the new password: %v", err)
				}
				if row := e.lastAudit(t, audit.ActivityResetByAdmin); agentOf(t, row.Details) != b.name {
					t.Errorf("audit row %+v: want %s", row, b.name)
				}
			})

			t.Run("no password in the proxy's bytes, the logs or the audit rows", func(t *testing.T) {
				e.stop(t, b)
				e.ss.Wait()
				secretsMu.Lock()
				secrets := append([]string(nil), secrets...)
				secretsMu.Unlock()
				var jobs, hellos, frames int
				for _, c := range e.rec.of("agent") {
					sent, recv := c.bytes()
					toPortal, n1 := wsPayloads(sent)
					toAgent, n2 := wsPayloads(recv)
					toPortal, toAgent = withDecoded(toPortal), withDecoded(toAgent)
					frames += n1 + n2
					jobs += bytes.Count(toAgent, []byte(`"type":"job"`))
					hellos += bytes.Count(toPortal, []byte(`"type":"hello"`)) // readable only unmasked
					for _, s := range secrets {
						for what, b := range map[string][]byte{"proxy → portal bytes": sent, "portal → proxy bytes": recv,
							"agent's frames": toPortal, "portal's frames": toAgent} {
							if bytes.Contains(b, []byte(s)) {
								t.Errorf("secret %q in the %s of an agent connection", s, what)
							}
						}
					}
				}
				if jobs < 10 || hellos < 4 || frames < 20 {
					t.Errorf("the proxy recorded %d jobs and %d hellos in %d frames on the agents' connections: the recording is not what this test reads", jobs, hellos, frames)
				}
				// The recording does hold what it is given in the clear: the
				// browsers' form posts carry the passwords.
				clear := 0
				for _, c := range e.rec.of("browser") {
					sent, _ := c.bytes()
					for _, s := range secrets {
						if bytes.Contains(sent, []byte(s)) {
							clear++
						}
					}
				}
				if clear == 0 {
					t.Error("no password in the browsers' recorded requests either: the recorder records nothing")
				}
				assertNoSecrets(t, e.harness, secrets...)
				// The portal holds no directory server or credential.
				if c, _, err := e.wb.Connection(ctx); err != nil || !c.Agents() || len(c.URLs) != 0 || c.BindDN != "" || c.HasPassword() {
					t.Errorf("the portal's directory connection %+v (%v): want agents mode without server or service account", c, err)
				}
				for _, ag := range []*e2eAgent{a, b} {
					logs := ag.logs.String()
					if logs == "" {
						t.Errorf("agent %s logged nothing", ag.name)
					}
					for _, s := range secrets {
						if strings.Contains(logs, s) {
							t.Errorf("secret %q in agent %s's log", s, ag.name)
						}
					}
				}
			})
		})
	}

	t.Run("reused, expired and forged enrolment tokens are refused alike", func(t *testing.T) {
		t.Parallel()
		ctx := context.Background()
		e := newAgentsPortal(t, env, directories(env)[1])
		tok, err := e.reg.Add(ctx, audit.CommandLine, "first")
		if err != nil {
			t.Fatal(err)
		}
		first, _ := agentwire.NewIdentity()
		if status, ok, refused := e.enroll(t, first, tok.Token); status != http.StatusOK || ok.Name != "first" {
			t.Fatalf("enrol: %d %+v %q", status, ok, refused.Error)
		}
		random := make([]byte, 32)
		rand.Read(random)
		late, err := e.reg.Add(ctx, audit.CommandLine, "late")
		if err != nil {
			t.Fatal(err)
		}
		var messages []string
		for _, tc := range []struct{ name, token string }{
			{"reused", tok.Token},
			{"forged", agents.TokenPrefix + base64.RawURLEncoding.EncodeToString(random)},
			{"not a token at all", "let-me-in"},
			{"expired", late.Token},
		} {
			if tc.name == "expired" {
				e.reg.SetClock(func() time.Time { return time.Now().Add(agents.TokenTTL + time.Minute) })
			}
			ident, _ := agentwire.NewIdentity()
			status, ok, refused := e.enroll(t, ident, tc.token)
			if status != http.StatusUnauthorized || ok.AgentID != "" || refused.Error == "" || strings.ContainsAny(refused.Error, "\r\n") {
				t.Errorf("%s token: %d %+v %q", tc.name, status, ok, refused.Error)
			}
			messages = append(messages, refused.Error)
		}
		e.reg.SetClock(time.Now)
		for i, m := range messages {
			if m != messages[0] {
				t.Errorf("refusal %d says %q, the first %q", i, m, messages[0])
			}
		}
		if !strings.Contains(messages[0], "This enrolment token is not valid") {
			t.Errorf("the refusal says %q", messages[0])
		}
		list, err := e.reg.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != 1 || list[0].Name != "first" {
			t.Errorf("agents after the refusals: %+v", list)
		}
		assertNoSecrets(t, e.harness, tok.Token, late.Token)
	})
}
