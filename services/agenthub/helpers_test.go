package agenthub_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/writeback/writeback/services/agenthub"
	"github.com/writeback/writeback/services/agentwire"
	"github.com/writeback/writeback/services/connector"
	"github.com/writeback/writeback/services/connector/conntest"
	"github.com/writeback/writeback/services/directory"
)

// fakeDir is a directory.Directory built from function fields; a method
// whose field is nil fails the test.
type fakeDir struct {
	t           testing.TB
	find        func(ctx context.Context, login string) (directory.User, directory.Result, error)
	get         func(ctx context.Context, dn string) (directory.User, directory.Result, error)
	search      func(ctx context.Context, q string, limit int) ([]directory.User, error)
	expiring    func(ctx context.Context, groupDN string, until time.Time) ([]directory.User, error)
	inScope     func(ctx context.Context, groupDN string) []directory.User
	memberOf    func(ctx context.Context, u directory.User, groupDN string) (bool, error)
	policy      func(ctx context.Context, u directory.User) (directory.Policy, error)
	resetUser   func(ctx context.Context, u directory.User, pw string, opt directory.ResetOptions) (directory.User, directory.Result, error)
	resetLogin  func(ctx context.Context, login, pw string, opt directory.ResetOptions) (directory.User, directory.Result, error)
	unlock      func(ctx context.Context, u directory.User) (directory.Result, error)
	unlockLogin func(ctx context.Context, login string) (directory.User, directory.Result, error)
	changeLogin func(ctx context.Context, login, oldPw, newPw string, admit directory.Admit) (directory.Candidate, directory.Result, error)
	authLogin   func(ctx context.Context, login, pw string, admit directory.Admit) (directory.Candidate, directory.Result, error)
	test        func(ctx context.Context, login string) directory.Checklist
	calls       atomic.Int32
}

var errUnexpected = errors.New("fakeDir: unexpected call")

func (d *fakeDir) unexpected(name string) error {
	d.t.Errorf("fakeDir: unexpected call of %s", name)
	return errUnexpected
}

func (d *fakeDir) Find(ctx context.Context, login string) (directory.User, directory.Result, error) {
	d.calls.Add(1)
	if d.find == nil {
		return directory.User{}, directory.Result{}, d.unexpected("Find")
	}
	return d.find(ctx, login)
}
func (d *fakeDir) Get(ctx context.Context, dn string) (directory.User, directory.Result, error) {
	d.calls.Add(1)
	if d.get == nil {
		return directory.User{}, directory.Result{}, d.unexpected("Get")
	}
	return d.get(ctx, dn)
}
func (d *fakeDir) Search(ctx context.Context, q string, limit int) ([]directory.User, error) {
	d.calls.Add(1)
	if d.search == nil {
		return nil, d.unexpected("Search")
	}
	return d.search(ctx, q, limit)
}
func (d *fakeDir) Expiring(ctx context.Context, g string, until time.Time) ([]directory.User, error) {
	d.calls.Add(1)
	if d.expiring == nil {
		return nil, d.unexpected("Expiring")
	}
	return d.expiring(ctx, g, until)
}
func (d *fakeDir) InScope(ctx context.Context, g string, f func(directory.User) error) error {
	d.calls.Add(1)
	if d.inScope == nil {
		return d.unexpected("InScope")
	}
	for _, u := range d.inScope(ctx, g) {
		if err := f(u); err != nil {
			return err
		}
	}
	return nil
}
func (d *fakeDir) MemberOf(ctx context.Context, u directory.User, g string) (bool, error) {
	d.calls.Add(1)
	if d.memberOf == nil {
		return false, d.unexpected("MemberOf")
	}
	return d.memberOf(ctx, u, g)
}
func (d *fakeDir) Policy(ctx context.Context, u directory.User) (directory.Policy, error) {
	d.calls.Add(1)
	if d.policy == nil {
		return directory.Policy{}, d.unexpected("Policy")
	}
	return d.policy(ctx, u)
}
func (d *fakeDir) ResetUser(ctx context.Context, u directory.User, pw string, opt directory.ResetOptions) (directory.User, directory.Result, error) {
	d.calls.Add(1)
	if d.resetUser == nil {
		return directory.User{}, directory.Result{}, d.unexpected("ResetUser")
	}
	return d.resetUser(ctx, u, pw, opt)
}
func (d *fakeDir) ResetLogin(ctx context.Context, login, pw string, opt directory.ResetOptions) (directory.User, directory.Result, error) {
	d.calls.Add(1)
	if d.resetLogin == nil {
		return directory.User{}, directory.Result{}, d.unexpected("ResetLogin")
	}
	return d.resetLogin(ctx, login, pw, opt)
}
func (d *fakeDir) Unlock(ctx context.Context, u directory.User) (directory.Result, error) {
	d.calls.Add(1)
	if d.unlock == nil {
		return directory.Result{}, d.unexpected("Unlock")
	}
	return d.unlock(ctx, u)
}
func (d *fakeDir) UnlockLogin(ctx context.Context, login string) (directory.User, directory.Result, error) {
	d.calls.Add(1)
	if d.unlockLogin == nil {
		return directory.User{}, directory.Result{}, d.unexpected("UnlockLogin")
	}
	return d.unlockLogin(ctx, login)
}
func (d *fakeDir) ChangeLogin(ctx context.Context, login, oldPw, newPw string, admit directory.Admit) (directory.Candidate, directory.Result, error) {
	d.calls.Add(1)
	if d.changeLogin == nil {
		return directory.Candidate{}, directory.Result{}, d.unexpected("ChangeLogin")
	}
	return d.changeLogin(ctx, login, oldPw, newPw, admit)
}
func (d *fakeDir) AuthenticateLogin(ctx context.Context, login, pw string, admit directory.Admit) (directory.Candidate, directory.Result, error) {
	d.calls.Add(1)
	if d.authLogin == nil {
		return directory.Candidate{}, directory.Result{}, d.unexpected("AuthenticateLogin")
	}
	return d.authLogin(ctx, login, pw, admit)
}
func (d *fakeDir) Test(ctx context.Context, login string) directory.Checklist {
	d.calls.Add(1)
	if d.test == nil {
		d.unexpected("Test")
		return directory.Checklist{}
	}
	return d.test(ctx, login)
}
func (d *fakeDir) OnOutage(func(error)) {}
func (d *fakeDir) Close() error         { return nil }

// fakeReg is the Registry: enrolled agents, and what the hub told it.
type fakeReg struct {
	mu     sync.Mutex
	agents map[string]regAgent
	events []string
	jobs   []string
	// onAgent, when set, runs after each Agent lookup (outside the lock).
	onAgent func(id string)
	// agentErr, when set, fails the next Agent lookup (once).
	agentErr error
	// heartbeatErr, when set, is what Heartbeat returns.
	heartbeatErr error
	// connectedGate, when set, holds Connected until it is closed.
	connectedGate chan struct{}
}

type regAgent struct {
	name    string
	pub     agentwire.Public
	revoked bool
}

func newReg() *fakeReg { return &fakeReg{agents: map[string]regAgent{}} }

func (r *fakeReg) enrol(id, name string, pub agentwire.Public) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.agents[id] = regAgent{name: name, pub: pub}
}

func (r *fakeReg) revoke(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	a := r.agents[id]
	a.revoked = true
	r.agents[id] = a
}

func (r *fakeReg) Agent(ctx context.Context, id string) (string, agentwire.Public, bool, error) {
	r.mu.Lock()
	hook := r.onAgent
	r.onAgent = nil
	r.mu.Unlock()
	if hook != nil {
		defer hook(id)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.agentErr; err != nil {
		r.agentErr = nil
		return "", agentwire.Public{}, false, err
	}
	a, ok := r.agents[id]
	if !ok {
		return "", agentwire.Public{}, false, fmt.Errorf("agent %q: %w", id, agenthub.ErrUnknownAgent)
	}
	return a.name, a.pub, a.revoked, nil
}

func (r *fakeReg) note(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, s)
}

func (r *fakeReg) Connected(ctx context.Context, id string, st agentwire.Status, remote string) error {
	r.note("connected " + id + " " + remote)
	r.mu.Lock()
	gate := r.connectedGate
	r.mu.Unlock()
	if gate != nil {
		<-gate
	}
	return nil
}
func (r *fakeReg) Heartbeat(ctx context.Context, id string, st agentwire.Status) error {
	r.note("heartbeat " + id)
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.heartbeatErr
}
func (r *fakeReg) Disconnected(ctx context.Context, id, reason string) error {
	r.note("disconnected " + id + ": " + reason)
	return nil
}
func (r *fakeReg) JobDone(ctx context.Context, id, op string, err error) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.jobs = append(r.jobs, fmt.Sprintf("%s %s %v", id, op, err != nil))
	return nil
}

func (r *fakeReg) Events() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.events...)
}

func (r *fakeReg) Jobs() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.jobs...)
}

func testLog(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// harness is a hub with its registry.
type harness struct {
	t   testing.TB
	hub *agenthub.Hub
	reg *fakeReg
}

func newHarness(t testing.TB) *harness {
	reg := newReg()
	h := agenthub.New(reg, testLog(t))
	t.Cleanup(h.Shutdown)
	return &harness{t: t, hub: h, reg: reg}
}

// testAgent is one agent connected to the hub over a pipe.
type testAgent struct {
	id, name string
	ident    *agentwire.Identity
	dir      *fakeDir
	bases    []string
	st       atomic.Pointer[agentwire.Status]
	cfg      connector.Config
	portal   *conntest.End
	serveErr chan error // the connector's Serve
	hubErr   chan error // the hub's Serve
}

// agentOpts tune a testAgent before it connects.
type agentOpts struct {
	writesPerMinute int
	heartbeat       time.Duration
	writebackOff    bool
	notEnrolled     bool
	otherKey        bool // enrolled with another key than it signs with
}

func (h *harness) agent(name string, o agentOpts) *testAgent {
	h.t.Helper()
	ident, err := agentwire.NewIdentity()
	if err != nil {
		h.t.Fatal(err)
	}
	a := &testAgent{id: "id-" + name, name: name, ident: ident, dir: &fakeDir{t: h.t}, bases: []string{"ou=people,dc=writeback,dc=test"},
		serveErr: make(chan error, 1), hubErr: make(chan error, 1)}
	a.st.Store(&agentwire.Status{Version: "test", Host: name + ".corp.test", PasswordWriteback: !o.writebackOff, Configured: true, Directory: "fake"})
	if !o.notEnrolled {
		pub := ident.Public()
		if o.otherKey {
			other, _ := agentwire.NewIdentity()
			pub = other.Public()
		}
		h.reg.enrol(a.id, name, pub)
	}
	a.cfg = connector.Config{
		AgentID:   a.id,
		Identity:  ident,
		PortalKey: h.hub.PublicKey(),
		Directory: func(context.Context) (directory.Directory, []string, error) {
			return a.dir, a.bases, nil
		},
		Status:          func(context.Context) agentwire.Status { return *a.st.Load() },
		WritesPerMinute: o.writesPerMinute,
		HeartbeatEvery:  o.heartbeat,
		Log:             testLog(h.t).With("agent", name),
	}
	return a
}

// connect runs the agent's connector and the hub's Serve over a pipe.
func (h *harness) connect(a *testAgent) {
	h.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	h.t.Cleanup(cancel)
	p, ag := conntest.Pipe()
	a.portal = p
	hubErr, serveErr := a.hubErr, a.serveErr
	go func() { hubErr <- h.hub.Serve(ctx, a.id, "192.0.2.10", p) }()
	ac := connector.New(a.cfg)
	go func() { serveErr <- ac.Serve(ctx, ag) }()
}

// connected connects a and waits until the hub lists it.
func (h *harness) connected(a *testAgent) {
	h.t.Helper()
	n, _ := h.hub.Connected()
	h.connect(a)
	h.waitFor(func() bool { c, _ := h.hub.Connected(); return c > n }, "agent "+a.name+" connected")
}

func (h *harness) waitFor(cond func() bool, what string) {
	h.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// wait returns what ch delivers within 5 s.
func wait(t *testing.T, ch chan error, what string) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(5 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		return nil
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}
