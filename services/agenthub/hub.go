// Package agenthub is the portal's side of its writeback agents: it keeps
// the agents' connections (challenge, proof, heartbeats, replacement,
// revocation) and is a directory.Directory whose every operation is one
// job on one healthy connected agent, with passwords sealed to that
// agent's key. The portal never dials an agent: agents connect to it.
package agenthub

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/writeback/writeback/services/agentwire"
)

// Sentinels of this package.
var (
	// ErrNoAgent is the cause of every operation that found no agent to
	// run it.
	ErrNoAgent = errors.New("writeback unavailable: no agent connected")
	// ErrUnknownAgent is what Registry.Agent wraps for an ID it does not know.
	ErrUnknownAgent = errors.New("agenthub: unknown agent")
)

// Registry is what the hub needs of the enrolled agents (services/agents
// implements it).
type Registry interface {
	// Agent returns an enrolled agent's name and public keys; revoked agents have revoked=true; unknown IDs an error
	// wrapping agenthub.ErrUnknownAgent.
	Agent(ctx context.Context, id string) (name string, pub agentwire.Public, revoked bool, err error)
	Connected(ctx context.Context, id string, st agentwire.Status, remoteAddr string) error
	Heartbeat(ctx context.Context, id string, st agentwire.Status) error
	Disconnected(ctx context.Context, id string, reason string) error
	JobDone(ctx context.Context, id, op string, err error) error // counts "operations in the last hour", keeps the last error
}

// Conn is an agent's WebSocket as the hub sees it (the handler adapts
// *websocket.Conn). Close may be called while a Read is blocked, and must
// make it return.
type Conn interface {
	Read(ctx context.Context) ([]byte, error)
	Write(ctx context.Context, msg []byte) error
	Close(code int, reason string) error
}

// Defaults of the hub's timings.
const (
	// DefaultMaxWait caps how long a job waits for its agent.
	DefaultMaxWait = 15 * time.Second
	// DefaultHandshakeTimeout bounds the wait for an agent's hello.
	DefaultHandshakeTimeout = 10 * time.Second
	// registryTimeout bounds each Registry call made outside a request.
	registryTimeout = 5 * time.Second
)

// WebSocket close codes the hub uses beside agentwire's.
const (
	closeNormal    = 1000
	closeGoingAway = 1001
	closeProtocol  = 1002
	closeInternal  = 1011
)

// Hub keeps the connected agents and runs directory operations on them.
// Set the timing fields before the first Serve; zero means the default.
type Hub struct {
	// DeadAfter drops an agent that sent nothing for this long (default
	// agentwire.DeadAfter).
	DeadAfter time.Duration
	// MaxWait caps a job's wait for its agent (default DefaultMaxWait).
	MaxWait time.Duration
	// HandshakeTimeout bounds the wait for a hello (default
	// DefaultHandshakeTimeout).
	HandshakeTimeout time.Duration

	reg Registry
	log *slog.Logger
	// key signs each connection's challenge and welcome
	// (agentwire.EncodeSigned), and with the welcome the session that
	// authenticates the jobs; the agents learnt its public half at
	// enrolment.
	key atomic.Pointer[ed25519.PrivateKey]

	// stateMu orders the Registry's Connected and Disconnected calls, so
	// that a replaced connection's end never marks its successor gone.
	stateMu sync.Mutex

	mu     sync.Mutex
	agents map[string]*agentConn // the current connection of each agent ID
	seq    uint64                // counts picks, for the round-robin among equals
	closed bool

	peers     atomic.Pointer[Peers]
	onOutage  atomic.Pointer[func(error)]
	onConnect atomic.Pointer[func()]
	bg        sync.WaitGroup
}

// New returns a hub whose agents are looked up in reg. log may be nil.
func New(reg Registry, log *slog.Logger) *Hub {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := &Hub{reg: reg, log: log, agents: map[string]*agentConn{}}
	// A key of its own until SetSigningKey gives the portal's (tests, and a
	// hub whose agents learn its key from PublicKey).
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		panic("agenthub: signing key: " + err.Error()) // crypto/rand does not fail
	}
	h.key.Store(&k)
	return h
}

// Peers tells the hub about the portal's replicas when several run on one
// database: a job goes out from the replica that took the person's request,
// so every agent keeps a connection to each replica (the welcome says how
// many there are, and TypeReplicas when that changes).
type Peers interface {
	// Self is this replica's ID.
	Self() string
	// Live is how many replicas run now, this one included (at least 1).
	// It is called on every heartbeat: answer from memory.
	Live() int
}

// SetPeers gives the hub its replicas; without it the hub is the only one.
func (h *Hub) SetPeers(p Peers) { h.peers.Store(&p) }

// replicas is this replica's ID and how many run ("" and 1 without Peers).
func (h *Hub) replicas() (self string, live int) {
	p := h.peers.Load()
	if p == nil || *p == nil {
		return "", 1
	}
	return (*p).Self(), max(1, (*p).Live())
}

// SetSigningKey makes the hub sign with the portal's key: the one whose
// public half enrolment gives the agents (agentwire.EnrollResponse).
func (h *Hub) SetSigningKey(k ed25519.PrivateKey) { h.key.Store(&k) }

// PublicKey is the public half of the key the hub signs with.
func (h *Hub) PublicKey() []byte {
	return []byte((*h.key.Load()).Public().(ed25519.PublicKey))
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// errNotSent: the connection had ended before a message was written.
var errNotSent = errors.New("connection closed, message not sent")

// agentConn is one connection of one agent.
type agentConn struct {
	id, name, remote string
	key              *ed25519.PrivateKey // the hub's signing key when it connected
	sess             *agentwire.Session  // this connection's keys (agentwire.Session)
	c                Conn
	since            time.Time

	wmu sync.Mutex // writes take turns

	// Under Hub.mu.
	status   agentwire.Status
	inflight int
	picked   uint64

	jmu  sync.Mutex
	jobs map[string]chan agentwire.Envelope

	// ready: the handshake's second look at the revocation passed. Until
	// then the connection is listed (so that Disconnect finds it) but gets
	// no job.
	ready atomic.Bool

	// replicas is the number of portal replicas this agent was last told.
	replicas atomic.Int64

	// stalled: a job's wait ran out on the hub's own deadline without an
	// answer (the agent froze, or hangs at its DC). It gets no new job
	// until its next message shows it is there again.
	stalled atomic.Bool

	stopOnce sync.Once
	done     chan struct{}
	why      string        // set before done closes
	closed   chan struct{} // closed once Conn.Close returned
}

// stop ends the connection with code (once; later calls do nothing).
func (a *agentConn) stop(code int, why string) {
	a.stopOnce.Do(func() {
		a.why = why
		close(a.done)
		// Close may wait for the agent's close frame: not on the caller's
		// time. Serve waits for it, so that the close code reaches the agent
		// before the handler drops the connection.
		go func() {
			defer close(a.closed)
			_ = a.c.Close(code, why)
		}()
	})
}

func (a *agentConn) gone() bool {
	select {
	case <-a.done:
		return true
	default:
		return false
	}
}

// write sends one message on the connection: the welcome carries the
// portal's signature for this agent, every later message the session's MAC.
func (a *agentConn) write(ctx context.Context, typ, id string, body any) error {
	var b []byte
	var err error
	if typ == agentwire.TypeWelcome {
		b, err = agentwire.EncodeSigned(*a.key, a.id, typ, id, body)
	} else {
		b, err = a.sess.EncodeToAgent(typ, id, body)
	}
	if err != nil {
		return err
	}
	a.wmu.Lock()
	defer a.wmu.Unlock()
	if a.gone() {
		return fmt.Errorf("agent %s: %w (%s)", a.name, errNotSent, a.why)
	}
	// The WebSocket closes the whole connection when a write's context
	// ends: a caller that gave up (the person left the page) must not cut
	// off the agent every other request shares. Such a caller sends
	// nothing; a write still under way at the caller's deadline is a stuck
	// connection and may end it.
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("agent %s: send %s: %w", a.name, typ, err)
	}
	wctx := context.WithoutCancel(ctx)
	if d, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		wctx, cancel = context.WithDeadline(wctx, d)
		defer cancel()
	}
	if err := a.c.Write(wctx, b); err != nil {
		return fmt.Errorf("agent %s: send %s: %w", a.name, typ, err)
	}
	return nil
}

// Serve runs one agent connection until it ends: the challenge, the hello
// with its proof, the welcome, then heartbeats and job messages. It
// returns why the connection ended; the connection is closed then.
func (h *Hub) Serve(ctx context.Context, agentID, remoteAddr string, c Conn) error {
	a, err := h.handshake(ctx, agentID, remoteAddr, c)
	if err != nil {
		return err
	}
	err = h.readLoop(ctx, a)
	h.leave(a)
	<-a.closed
	return err
}

// refuse closes a connection whose handshake failed.
func (h *Hub) refuse(c Conn, agentID, remote string, code int, why string, err error) error {
	h.log.Warn("agent connection refused", "agent_id", agentID, "remote", remote, "code", code, "reason", why, "err", err)
	_ = c.Close(code, why)
	if err == nil {
		return fmt.Errorf("agenthub: agent %q refused: %s", agentID, why)
	}
	return fmt.Errorf("agenthub: agent %q refused: %s: %w", agentID, why, err)
}

func (h *Hub) handshake(ctx context.Context, agentID, remote string, c Conn) (*agentConn, error) {
	hctx, cancel := context.WithTimeout(ctx, orDefault(h.HandshakeTimeout, DefaultHandshakeTimeout))
	defer cancel()
	nonce := make([]byte, 32)
	rand.Read(nonce)
	b, err := agentwire.EncodeSigned(*h.key.Load(), agentID, agentwire.TypeChallenge, "", agentwire.Challenge{Nonce: nonce, Now: time.Now().UnixMilli()})
	if err == nil {
		err = c.Write(hctx, b)
	}
	if err != nil {
		_ = c.Close(closeInternal, "challenge not sent")
		return nil, fmt.Errorf("agenthub: send challenge: %w", err)
	}
	b, err = c.Read(hctx)
	if err != nil {
		return nil, h.refuse(c, agentID, remote, closeProtocol, "no hello", err)
	}
	env, err := agentwire.Decode(b)
	var hello agentwire.Hello
	if err == nil && env.Type != agentwire.TypeHello {
		err = fmt.Errorf("%q where hello was due", env.Type)
	}
	if err == nil {
		err = agentwire.DecodeBody(env, &hello)
	}
	if err != nil {
		return nil, h.refuse(c, agentID, remote, closeProtocol, "bad hello", err)
	}
	if hello.Protocol != agentwire.Version {
		return nil, h.refuse(c, agentID, remote, agentwire.CloseVersion,
			fmt.Sprintf("protocol %d, the portal speaks %d", hello.Protocol, agentwire.Version), nil)
	}
	if agentID == "" || hello.AgentID != agentID {
		return nil, h.refuse(c, agentID, remote, agentwire.CloseUnauthorized, "unknown agent", nil)
	}
	name, pub, revoked, err := h.reg.Agent(hctx, agentID)
	switch {
	case errors.Is(err, ErrUnknownAgent):
		return nil, h.refuse(c, agentID, remote, agentwire.CloseUnauthorized, "unknown agent", err)
	case err != nil:
		return nil, h.refuse(c, agentID, remote, closeInternal, "try again later", err)
	}
	if err := agentwire.VerifyConnect(agentID, nonce, pub, hello.Proof); err != nil {
		return nil, h.refuse(c, agentID, remote, agentwire.CloseUnauthorized, "unknown agent", err)
	}
	if revoked {
		return nil, h.refuse(c, agentID, remote, agentwire.CloseRevoked, "revoked", nil)
	}
	self, live := h.replicas()
	if self != "" && slices.Contains(hello.Have, self) {
		// A second connection of a running agent that reached this replica
		// again (the load balancer's choice): keep the first, so that the
		// agent dials once more for another replica.
		h.log.Debug("agent connection refused: already connected to this replica", "agent_id", agentID, "remote", remote, "replica", self)
		_ = c.Close(agentwire.CloseDuplicate, "already connected to this replica")
		return nil, fmt.Errorf("agenthub: agent %q is connected to this replica already", agentID)
	}
	sess, enc, err := agentwire.NewPortalSession(pub, agentID, nonce, hello.Nonce)
	if err != nil {
		return nil, h.refuse(c, agentID, remote, closeProtocol, "bad hello", err)
	}

	a := &agentConn{id: agentID, name: name, remote: remote, key: h.key.Load(), sess: sess, c: c, since: time.Now(), status: hello.Status,
		jobs: map[string]chan agentwire.Envelope{}, done: make(chan struct{}), closed: make(chan struct{})}
	// The welcome goes out before the connection can be picked, so that it
	// is the first message after the challenge.
	a.replicas.Store(int64(live))
	if err := a.write(hctx, agentwire.TypeWelcome, "", agentwire.Welcome{Name: name, Nonce: hello.Nonce, Session: enc, Confirm: sess.Confirm(),
		Replica: self, Replicas: live}); err != nil {
		_ = c.Close(closeInternal, "welcome not sent")
		return nil, fmt.Errorf("agenthub: %w", err)
	}

	h.stateMu.Lock()
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		h.stateMu.Unlock()
		a.stop(closeGoingAway, "portal shutting down")
		return nil, errors.New("agenthub: the hub is shut down")
	}
	old := h.agents[agentID]
	h.agents[agentID] = a
	h.mu.Unlock()
	if old != nil {
		old.stop(agentwire.CloseReplaced, "replaced by a new connection of the same agent")
		h.log.Info("agent connection replaced", "agent", name, "agent_id", agentID, "old_remote", old.remote, "remote", remote)
	}
	rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), registryTimeout)
	if err := h.reg.Connected(rctx, agentID, hello.Status, remote); err != nil {
		h.log.Error("record agent connected", "agent", name, "err", err)
	}
	// A revocation that committed after the lookup above but before this
	// connection was listed called Disconnect when there was nothing to
	// disconnect: look again now that Disconnect would find it.
	_, _, revoked, err = h.reg.Agent(rctx, agentID)
	rcancel()
	h.stateMu.Unlock()
	switch {
	case revoked || errors.Is(err, ErrUnknownAgent):
		a.stop(agentwire.CloseRevoked, "revoked")
	case err != nil:
		// The first look may be stale: without a second one, a revocation
		// committed meanwhile would go unnoticed. Fail closed; the agent
		// tries again.
		h.log.Error("check agent revocation", "agent", name, "err", err)
		a.stop(closeInternal, "try again later")
	default:
		a.ready.Store(true)
		if f := h.onConnect.Load(); f != nil {
			(*f)()
		}
	}
	h.log.Info("agent connected", "agent", name, "agent_id", agentID, "remote", remote, "host", hello.Status.Host,
		"version", hello.Status.Version, "password_writeback", hello.Status.PasswordWriteback, "configured", hello.Status.Configured)
	return a, nil
}

// readLoop reads the agent's messages until the connection ends: heartbeats
// update its state, admit and result messages go to their job.
func (h *Hub) readLoop(ctx context.Context, a *agentConn) error {
	deadAfter := orDefault(h.DeadAfter, agentwire.DeadAfter)
	watchdog := time.AfterFunc(deadAfter, func() {
		a.stop(closeNormal, fmt.Sprintf("no heartbeat for %s", deadAfter))
	})
	defer watchdog.Stop()
	for {
		b, err := a.c.Read(ctx)
		if err != nil {
			switch {
			case a.gone():
				return fmt.Errorf("agenthub: agent %s: %s", a.name, a.why)
			case ctx.Err() != nil:
				a.stop(closeGoingAway, "portal shutting down")
			default:
				a.stop(closeNormal, "connection lost: "+err.Error())
			}
			return fmt.Errorf("agenthub: agent %s: %w", a.name, err)
		}
		env, err := agentwire.Decode(b)
		if err != nil {
			a.stop(closeProtocol, "unreadable message")
			return fmt.Errorf("agenthub: agent %s: %w", a.name, err)
		}
		// Only the agent that answered the challenge holds this session's
		// keys: a message without its MAC (injected by whoever is between
		// them) is neither a result nor a sign of life.
		if err := a.sess.VerifyFromAgent(env); err != nil {
			h.log.Warn("agent message without this connection's MAC refused", "agent", a.name, "type", env.Type, "job", env.ID)
			continue
		}
		watchdog.Reset(deadAfter)
		a.stalled.Store(false) // it is there
		switch env.Type {
		case agentwire.TypeHeartbeat:
			var st agentwire.Status
			if err := agentwire.DecodeBody(env, &st); err != nil {
				h.log.Warn("agent heartbeat unreadable", "agent", a.name, "err", err)
				continue
			}
			h.mu.Lock()
			a.status = st
			h.mu.Unlock()
			if _, live := h.replicas(); int64(live) != a.replicas.Load() {
				wctx, cancel := context.WithTimeout(ctx, registryTimeout)
				if err := a.write(wctx, agentwire.TypeReplicas, "", agentwire.Replicas{Replicas: live}); err == nil {
					a.replicas.Store(int64(live))
				}
				cancel()
			}
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), registryTimeout)
			if err := h.reg.Heartbeat(rctx, a.id, st); err != nil {
				h.log.Error("record agent heartbeat", "agent", a.name, "err", err)
				// The Registry refuses the heartbeat of an agent revoked
				// where this hub's Disconnect was not called (another
				// process): cut it off now.
				if _, _, revoked, aerr := h.reg.Agent(rctx, a.id); revoked || errors.Is(aerr, ErrUnknownAgent) {
					a.stop(agentwire.CloseRevoked, "revoked")
				}
			}
			cancel()
		case agentwire.TypeAdmit, agentwire.TypeResult:
			a.jmu.Lock()
			ch := a.jobs[env.ID]
			a.jmu.Unlock()
			if ch == nil {
				h.log.Debug("agent message for no job in flight", "agent", a.name, "type", env.Type, "job", env.ID)
				continue
			}
			select {
			case ch <- env:
			default:
				h.log.Warn("agent sent more than its job expects", "agent", a.name, "type", env.Type, "job", env.ID)
			}
		default:
			h.log.Debug("agent message of unknown type ignored", "agent", a.name, "type", env.Type)
		}
	}
}

// leave forgets a connection that ended and tells the Registry, unless a
// newer connection of the same agent replaced it.
func (h *Hub) leave(a *agentConn) {
	h.stateMu.Lock()
	defer h.stateMu.Unlock()
	h.mu.Lock()
	current := h.agents[a.id] == a
	if current {
		delete(h.agents, a.id)
	}
	h.mu.Unlock()
	h.log.Info("agent disconnected", "agent", a.name, "agent_id", a.id, "remote", a.remote, "reason", a.why,
		"connected_for", time.Since(a.since).Round(time.Second).String())
	if !current {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), registryTimeout)
	defer cancel()
	if err := h.reg.Disconnected(ctx, a.id, a.why); err != nil {
		h.log.Error("record agent disconnected", "agent", a.name, "err", err)
	}
}

// Disconnect closes the agent's connection at once with CloseRevoked (the
// agent then stops trying). Revoking an agent calls it after the
// revocation is stored, so that the agent cannot come back.
func (h *Hub) Disconnect(id string) {
	h.mu.Lock()
	a := h.agents[id]
	h.mu.Unlock()
	if a != nil {
		a.stop(agentwire.CloseRevoked, "revoked")
	}
}

// Connected counts the connected agents, and among them those that can
// write: a directory configured and password writeback on.
func (h *Hub) Connected() (connected, writeback int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, a := range h.agents {
		if a.gone() || !a.ready.Load() {
			continue
		}
		connected++
		if a.status.Configured && a.status.PasswordWriteback {
			writeback++
		}
	}
	return connected, writeback
}

// Shutdown closes every agent connection (the agents reconnect to the next
// portal process) and refuses new ones, then waits for the hub's
// background Registry calls.
func (h *Hub) Shutdown() {
	h.mu.Lock()
	h.closed = true
	all := make([]*agentConn, 0, len(h.agents))
	for _, a := range h.agents {
		all = append(all, a)
	}
	h.mu.Unlock()
	for _, a := range all {
		a.stop(closeGoingAway, "portal shutting down")
	}
	h.bg.Wait()
}

// OnOutage makes the hub call f, synchronously, when an operation finds no
// agent, times out, loses its agent, or the agent's directory could not be
// used. Operations the caller gave up on and connection tests do not count.
func (h *Hub) OnOutage(f func(error)) { h.onOutage.Store(&f) }

// OnConnect makes the hub call f, synchronously, each time an agent's
// connection is ready for jobs: the portal's status panel then checks again
// rather than at its next interval.
func (h *Hub) OnConnect(f func()) { h.onConnect.Store(&f) }

// Close does nothing: the hub lives as long as the portal, whichever
// directory mode is in use; Shutdown ends its connections.
func (h *Hub) Close() error { return nil }
