package agenthub_test

import (
	"bytes"
	"context"
	"errors"
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

// peers is the hub's view of the portal's replicas.
type peers struct {
	self string
	live *atomic.Int64
}

func (p peers) Self() string { return p.self }
func (p peers) Live() int    { return int(p.live.Load()) }

// lb is a load balancer in front of the replicas' hubs: each dial goes to
// the next hub of route (then round robin over the hubs), and counts.
type lb struct {
	t     *testing.T
	ctx   context.Context
	id    string
	mu    sync.Mutex
	hubs  []*agenthub.Hub
	route []int
	n     int
	dials []int // dials per hub
}

func (l *lb) dial(ctx context.Context) (connector.Conn, error) {
	l.mu.Lock()
	i := l.n % len(l.hubs)
	if l.n < len(l.route) {
		i = l.route[l.n]
	}
	l.n++
	l.dials[i]++
	h := l.hubs[i]
	l.mu.Unlock()
	p, ag := conntest.Pipe()
	go h.Serve(l.ctx, l.id, "192.0.2.30", p)
	return ag, nil
}

func (l *lb) add(h *agenthub.Hub) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.hubs = append(l.hubs, h)
	l.dials = append(l.dials, 0)
}

func (l *lb) dialsTo(i int) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.dials[i]
}

// TestAgentConnectsToEveryReplica: with the portal running as replicas on
// one database, the agent keeps a connection to each, through a load
// balancer that first sends it to the same replica three times; a replica
// it has already refuses the duplicate without dropping the first; a job
// on any replica runs; a replica added later gets a connection too.
func TestAgentConnectsToEveryReplica(t *testing.T) {
	ctx := ctxT(t)
	key, _ := agentwire.NewPortalKey(bytes.Repeat([]byte{4}, 32)) // the replicas' shared key file
	ident, _ := agentwire.NewIdentity()
	live := &atomic.Int64{}
	live.Store(2)
	newReplica := func(name string) (*agenthub.Hub, *fakeReg) {
		reg := newReg()
		reg.enrol("id-a1", "a1", ident.Public())
		h := agenthub.New(reg, testLog(t).With("replica", name))
		h.SetSigningKey(key)
		h.SetPeers(peers{self: name, live: live})
		t.Cleanup(h.Shutdown)
		return h, reg
	}
	h1, _ := newReplica("r1")
	h2, _ := newReplica("r2")
	balancer := &lb{t: t, ctx: ctx, id: "id-a1", route: []int{0, 0, 0}}
	balancer.add(h1)
	balancer.add(h2)

	dir := &fakeDir{t: t, resetLogin: func(ctx context.Context, login, pw string, opt directory.ResetOptions) (directory.User, directory.Result, error) {
		return directory.User{Login: login, DN: "uid=" + login + ",ou=people,dc=writeback,dc=test"}, directory.Result{Server: "ldaps://dc1"}, nil
	}}
	ag := connector.New(connector.Config{
		AgentID: "id-a1", Identity: ident, PortalKey: h1.PublicKey(),
		Directory: func(context.Context) (directory.Directory, []string, error) {
			return dir, []string{"ou=people,dc=writeback,dc=test"}, nil
		},
		Status: func(context.Context) agentwire.Status {
			return agentwire.Status{Version: "test", Host: "a1", PasswordWriteback: true, Configured: true}
		},
		HeartbeatEvery: 30 * time.Millisecond, MinBackoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond,
		Log: testLog(t).With("agent", "a1"),
	})
	runCtx, stop := context.WithCancel(ctx)
	runErr := make(chan error, 1)
	go func() { runErr <- ag.Run(runCtx, balancer.dial) }()

	h := &harness{t: t}
	both := func() bool { c1, _ := h1.Connected(); c2, _ := h2.Connected(); return c1 == 1 && c2 == 1 }
	h.waitFor(both, "the agent connected to both replicas")
	if n := balancer.dialsTo(0); n < 3 {
		t.Fatalf("%d dials reached r1, want the three the balancer sent there", n)
	}
	for _, hub := range []*agenthub.Hub{h1, h2} {
		u, res, err := hub.ResetLogin(ctx, "ann", "Winter-2026!x", directory.ResetOptions{})
		if err != nil || u.Login != "ann" || res.Agent != "a1" {
			t.Fatalf("a reset on a replica: %+v %+v %v", u, res, err)
		}
	}
	// The duplicates did not replace r1's connection: it is the same one
	// all along (no disconnection was recorded there).
	time.Sleep(50 * time.Millisecond)
	if !both() {
		t.Fatal("a replica lost the agent")
	}

	// A third replica starts: the others tell the agent at its next
	// heartbeat, and it dials until the new one has it too.
	h3, _ := newReplica("r3")
	balancer.add(h3)
	live.Store(3)
	h.waitFor(func() bool { c, _ := h3.Connected(); return c == 1 }, "the agent connected to the new replica")
	if !both() {
		t.Fatal("the first replicas lost the agent when the third came")
	}

	stop()
	if err := <-runErr; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v", err)
	}
}

// TestDuplicateConnectionRefused: a hello that names this replica as one
// the agent has already is refused with CloseDuplicate, and the first
// connection stays.
func TestDuplicateConnectionRefused(t *testing.T) {
	h := newHarness(t)
	live := &atomic.Int64{}
	live.Store(2)
	h.hub.SetPeers(peers{self: "r1", live: live})
	a := h.agent("a1", agentOpts{})
	h.connected(a)

	// The same agent's second connection, by hand, naming r1 as had.
	p, end := conntest.Pipe()
	hubErr := make(chan error, 1)
	go func() { hubErr <- h.hub.Serve(ctxT(t), a.id, "192.0.2.1", p) }()
	b, _ := end.Read(ctxT(t))
	env, _ := agentwire.Decode(b)
	var ch agentwire.Challenge
	agentwire.DecodeBody(env, &ch)
	hello, _ := agentwire.Encode(agentwire.TypeHello, "", agentwire.Hello{AgentID: a.id, Proof: a.ident.SignConnect(a.id, ch.Nonce),
		Protocol: agentwire.Version, Nonce: bytes.Repeat([]byte{1}, 32), Have: []string{"r1"}})
	end.Write(ctxT(t), hello)
	if err := wait(t, hubErr, "hub"); err == nil {
		t.Fatal("the hub accepted a duplicate connection")
	}
	_, err := end.Read(ctxT(t))
	var ce *connector.CloseError
	if !errors.As(err, &ce) || ce.Code != agentwire.CloseDuplicate {
		t.Fatalf("agent read %v, want close %d", err, agentwire.CloseDuplicate)
	}
	if c, _ := h.hub.Connected(); c != 1 {
		t.Fatalf("Connected() = %d: the first connection was dropped", c)
	}
	for _, e := range h.reg.Events() {
		if e == "disconnected "+a.id+": replaced by a new connection of the same agent" {
			t.Fatal("the duplicate replaced the first connection")
		}
	}
}
