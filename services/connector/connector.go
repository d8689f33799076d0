// Package connector is the writeback agent's side of its connection to the
// portal: it answers the portal's challenge with the agent's key, sends
// heartbeats, and runs the portal's jobs on the agent's own directory
// connection, after its own guards (deadline, sealed passwords, the
// password writeback switch, a rate limit on writes, the search bases).
// Run keeps one connection open, reconnecting with backoff.
//
// It never imports net/http: the agent program dials the WebSocket and
// hands a Conn in.
package connector

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/writeback/writeback/services/agentwire"
	"github.com/writeback/writeback/services/directory"
	"github.com/writeback/writeback/services/errs"
)

// Conn is the agent's connection to the portal as this package sees it:
// the WebSocket the agent program dialled. Read must return an error
// wrapping a *CloseError when the portal closed the connection with a close
// frame, so that a revocation can be told from a network failure.
type Conn interface {
	Read(ctx context.Context) ([]byte, error)
	Write(ctx context.Context, msg []byte) error
	Close(code int, reason string) error
}

// Pinger is a Conn that can check that the portal still answers (a
// WebSocket ping, answered by a pong while the portal reads). A Conn that
// implements it is pinged after each heartbeat: the portal sends nothing
// while it has no job, so without it an agent behind a path that silently
// drops packets would wait for ever instead of reconnecting.
type Pinger interface {
	Ping(ctx context.Context) error
}

// CloseError is the portal's close frame, as Conn.Read reports it.
type CloseError struct {
	Code   int
	Reason string
}

func (e *CloseError) Error() string {
	return fmt.Sprintf("the portal closed the connection (code %d: %s)", e.Code, e.Reason)
}

// Why Serve and Run stop.
var (
	// ErrRevoked: the portal closed the connection with CloseRevoked. Run
	// stops; the agent must be enrolled again.
	ErrRevoked = errors.New("connector: the portal revoked this agent; enrol it again to reconnect")
	// ErrUnauthorized: the portal does not know this agent ID or its key.
	ErrUnauthorized = errors.New("connector: the portal does not recognise this agent (unknown agent ID or another key)")
	// ErrVersion: the portal speaks another protocol version.
	ErrVersion = errors.New("connector: the portal speaks another protocol version; update the agent or the portal")
	// ErrReplaced: another connection with this agent's identity took over.
	ErrReplaced = errors.New("connector: another connection of this agent replaced this one (is a second `writeback-agent run` using the same data folder?)")
	// ErrDuplicate: the portal replica reached is one this agent is
	// connected to already (Run dials again, for another one).
	ErrDuplicate = errors.New("connector: the load balancer sent this connection to a portal replica the agent is connected to already")
)

// Defaults of Config.
const (
	DefaultWritesPerMinute = 120
	DefaultMinBackoff      = time.Second
	DefaultMaxBackoff      = time.Minute
	// handshakeTimeout bounds the wait for the portal's challenge and welcome.
	handshakeTimeout = 30 * time.Second
	// maxJob bounds how long a job may run whatever its deadline says: the
	// portal caps its own wait at 15 s.
	maxJob = time.Minute
	// maxConcurrentJobs bounds the jobs running at once; more wait, and
	// those whose deadline passes meanwhile are refused as late.
	maxConcurrentJobs = 32
)

// Config is what an Agent needs.
type Config struct {
	// AgentID is the ID the portal gave at enrolment.
	AgentID string
	// Identity is the agent's private key pair.
	Identity *agentwire.Identity
	// PortalKey is the portal's public key from enrolment
	// (agentwire.EnrollResponse.PortalKey). The challenge and the welcome
	// must carry its signature, and the welcome the connection's session,
	// whose MAC every job and admit result must carry: what the agent acts
	// on comes from the portal it enrolled with, never from a proxy between
	// them. Serve and Run refuse to start without it (ErrNoPortalKey).
	PortalKey []byte
	// Directory returns the agent's own directory connection and its search
	// bases; an error when none is configured. It is called for each job.
	Directory func(ctx context.Context) (directory.Directory, []string, error)
	// Status reports the agent's version, host, password writeback switch,
	// whether a directory is configured and which. It is read for the hello,
	// each heartbeat and each write job, so a switch turned off while Run
	// runs takes effect with the next job.
	Status func(ctx context.Context) agentwire.Status
	// WritesPerMinute is the agent's own limit on writes (resets, unlocks,
	// changes); 0 means DefaultWritesPerMinute.
	WritesPerMinute int
	// Log receives the agent's log lines; nil discards them.
	Log *slog.Logger

	// HeartbeatEvery is the time between heartbeats; 0 means
	// agentwire.HeartbeatEvery. Tests shorten it.
	HeartbeatEvery time.Duration
	// MinBackoff and MaxBackoff bound Run's wait between attempts (doubling
	// from the first to the second, with jitter); 0 means the defaults.
	MinBackoff, MaxBackoff time.Duration
	// Now is the agent's clock; nil means time.Now.
	Now func() time.Time
}

// Agent runs the agent's side of the connection.
type Agent struct {
	cfg   Config
	log   *slog.Logger
	now   func() time.Time
	limit *bucket
	sem   chan struct{}

	// seen and seenOld hold the IDs of the jobs this agent received
	// (two generations, swapped every seenFor), until well after their
	// deadline: a job sent again on its connection is refused, not run
	// twice. (One recorded on another connection fails the session's MAC.)
	seenMu    sync.Mutex
	seen      map[string]struct{}
	seenOld   map[string]struct{}
	seenSince time.Time
}

// ErrNoPortalKey: the agent has no portal key (enrol it again).
var ErrNoPortalKey = errors.New("connector: no portal key: enrol the agent again")

// seenFor is how long a job ID is remembered: longer than any job may
// wait and run (its deadline is at most MaxWait away, and the portal's
// clock within MaxClockSkew).
const seenFor = maxJob + 2*agentwire.MaxClockSkew

// firstTime records a job ID and tells whether it is new. An ID is kept
// for at least seenFor and at most twice that, at a constant cost per job.
func (a *Agent) firstTime(id string) bool {
	now := a.now()
	a.seenMu.Lock()
	defer a.seenMu.Unlock()
	if a.seen == nil || now.Sub(a.seenSince) >= 2*seenFor {
		a.seen, a.seenOld, a.seenSince = map[string]struct{}{}, nil, now
	} else if now.Sub(a.seenSince) >= seenFor {
		a.seen, a.seenOld, a.seenSince = map[string]struct{}{}, a.seen, now
	}
	if _, ok := a.seen[id]; ok {
		return false
	}
	if _, ok := a.seenOld[id]; ok {
		return false
	}
	a.seen[id] = struct{}{}
	return true
}

// New builds an Agent from cfg.
func New(cfg Config) *Agent {
	if cfg.WritesPerMinute <= 0 {
		cfg.WritesPerMinute = DefaultWritesPerMinute
	}
	if cfg.HeartbeatEvery <= 0 {
		cfg.HeartbeatEvery = agentwire.HeartbeatEvery
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = DefaultMinBackoff
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = DefaultMaxBackoff
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = cfg.MinBackoff
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	return &Agent{cfg: cfg, log: log, now: now, limit: newBucket(cfg.WritesPerMinute, time.Minute, now),
		sem: make(chan struct{}, maxConcurrentJobs)}
}

// Serve runs one connection until it ends: the handshake, heartbeats and
// jobs. It returns ErrRevoked, ErrUnauthorized, ErrVersion, ErrReplaced or ErrDuplicate
// when the portal closed the connection for that reason, ctx's error when
// ctx ended, or what broke the connection.
func (a *Agent) Serve(ctx context.Context, c Conn) error {
	_, err := a.serve(ctx, c, nil)
	return err
}

// session is one connection's state.
type session struct {
	a      *Agent
	c      Conn
	offset time.Duration // the portal's clock minus ours, learnt from the challenge
	sess   *agentwire.Session

	wmu sync.Mutex

	mu      sync.Mutex
	running map[string]chan agentwire.Envelope // job ID → its admit_result, while it runs
}

// serve runs one connection; t, when Run dialled it, learns of its
// handshake and its replica (nil for Serve).
func (a *Agent) serve(ctx context.Context, c Conn, t *try) (welcomed bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	var jobs sync.WaitGroup
	defer func() {
		cancel()
		jobs.Wait()
		if ctx.Err() != nil {
			_ = c.Close(1001, "agent stopping")
		}
	}()
	if len(a.cfg.PortalKey) == 0 {
		_ = c.Close(1008, "no portal key")
		return false, ErrNoPortalKey
	}
	s := &session{a: a, c: c, running: map[string]chan agentwire.Envelope{}}
	w, err := s.handshake(ctx, t.have())
	if err != nil {
		t.release()
		if errors.Is(err, ErrDuplicate) {
			_ = c.Close(1000, "already connected to this replica")
		} else {
			_ = c.Close(1002, "handshake failed")
		}
		return false, err
	}
	t.joined(w.Replica, w.Replicas)
	defer t.left(w.Replica)
	if w.Replica == "" {
		a.log.Info("writeback agent: connected to the portal", "name", w.Name, "clock_offset", s.offset.String())
	} else {
		a.log.Info("writeback agent: connected to the portal", "name", w.Name, "replica", w.Replica, "replicas", w.Replicas,
			"clock_offset", s.offset.String())
	}
	go s.heartbeats(ctx)
	for {
		b, err := c.Read(ctx)
		if err != nil {
			return true, readErr(ctx, err)
		}
		env, err := agentwire.Decode(b)
		if err != nil {
			a.log.Warn("writeback agent: unreadable message from the portal", "err", err)
			continue
		}
		// Only the portal that signed this connection's welcome holds the
		// session's keys: a message without its MAC (from a proxy, or
		// recorded on another connection) is refused.
		if err := s.sess.VerifyFromPortal(env); err != nil {
			a.log.Warn("writeback agent: a message not from the portal was refused", "type", env.Type, "job", env.ID)
			if env.Type == agentwire.TypeJob && env.ID != "" {
				res := agentwire.Result{Error: agentwire.EncodeError(refused("", errs.Forbidden, directory.CodeNotPermitted, msgNotSigned,
					agentwire.RefusedNotSigned, "the job does not carry this connection's MAC from the enrolled portal"))}
				_ = s.send(ctx, agentwire.TypeResult, env.ID, res)
			}
			continue
		}
		switch env.Type {
		case agentwire.TypeJob:
			arrived := a.now()
			if !a.firstTime(env.ID) {
				a.log.Warn("writeback agent: a job was sent again; refused", "job", env.ID, "reason", agentwire.RefusedReplayed)
				res := agentwire.Result{Error: agentwire.EncodeError(refused("", errs.Forbidden, directory.CodeNotPermitted, msgReplayed,
					agentwire.RefusedReplayed, "this job ID was received before"))}
				_ = s.send(ctx, agentwire.TypeResult, env.ID, res)
				continue
			}
			if !s.start(env.ID) {
				a.log.Warn("writeback agent: the portal sent a job ID twice; ignored", "job", env.ID)
				continue
			}
			jobs.Add(1)
			go func() {
				defer jobs.Done()
				defer s.finish(env.ID)
				res := s.job(ctx, env, arrived)
				if err := s.send(ctx, agentwire.TypeResult, env.ID, res); err != nil {
					a.log.Warn("writeback agent: could not send a job's result", "job", env.ID, "err", err)
				}
			}()
		case agentwire.TypeAdmitResult:
			s.deliver(env)
		case agentwire.TypeReplicas:
			var r agentwire.Replicas
			if agentwire.DecodeBody(env, &r) == nil {
				t.replicas(r.Replicas)
			}
		default:
			a.log.Debug("writeback agent: message of unknown type ignored", "type", env.Type)
		}
	}
}

// readErr turns a failed read into Serve's answer.
func readErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var ce *CloseError
	if errors.As(err, &ce) {
		switch ce.Code {
		case agentwire.CloseRevoked:
			return ErrRevoked
		case agentwire.CloseUnauthorized:
			return ErrUnauthorized
		case agentwire.CloseVersion:
			return ErrVersion
		case agentwire.CloseReplaced:
			return ErrReplaced
		case agentwire.CloseDuplicate:
			return ErrDuplicate
		}
	}
	return fmt.Errorf("connector: read from the portal: %w", err)
}

// handshake reads the challenge, answers hello (naming the replicas the
// agent is connected to already) and waits for the welcome.
func (s *session) handshake(ctx context.Context, have []string) (w agentwire.Welcome, err error) {
	hctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
	defer cancel()
	var ch agentwire.Challenge
	env, err := s.expectEnv(hctx, agentwire.TypeChallenge, &ch)
	if err != nil {
		return agentwire.Welcome{}, err
	}
	// The challenge's clock decides which jobs are late: it must be the
	// portal's, and near ours (a recorded challenge is neither for long).
	if err := agentwire.VerifyPortal(s.a.cfg.PortalKey, s.a.cfg.AgentID, env); err != nil {
		return agentwire.Welcome{}, fmt.Errorf("connector: the challenge is not signed by the portal this agent enrolled with: %w", err)
	}
	s.offset = time.UnixMilli(ch.Now).Sub(s.a.now())
	if s.offset > agentwire.MaxClockSkew || s.offset < -agentwire.MaxClockSkew {
		return agentwire.Welcome{}, fmt.Errorf("connector: the portal's clock is %s from this server's, more than %s: set both by NTP", s.offset.Round(time.Second), agentwire.MaxClockSkew)
	}
	nonce := make([]byte, 32)
	crand.Read(nonce)
	hello := agentwire.Hello{AgentID: s.a.cfg.AgentID, Proof: s.a.cfg.Identity.SignConnect(s.a.cfg.AgentID, ch.Nonce),
		Protocol: agentwire.Version, Status: s.a.cfg.Status(hctx), Nonce: nonce, Have: have}
	if err := s.send(hctx, agentwire.TypeHello, "", hello); err != nil {
		return agentwire.Welcome{}, err
	}
	env, err = s.expectEnv(hctx, agentwire.TypeWelcome, &w)
	if err != nil {
		return agentwire.Welcome{}, err
	}
	// The welcome carries the session every job is checked against: it
	// must be the portal's, and for this connection (a recorded one names
	// another hello's nonce).
	if err := agentwire.VerifyPortal(s.a.cfg.PortalKey, s.a.cfg.AgentID, env); err != nil {
		return agentwire.Welcome{}, fmt.Errorf("connector: the welcome is not signed by the portal this agent enrolled with: %w", err)
	}
	if !bytes.Equal(w.Nonce, nonce) {
		return agentwire.Welcome{}, errors.New("connector: the welcome is not for this connection (it names another nonce)")
	}
	sess, err := s.a.cfg.Identity.OpenSession(s.a.cfg.AgentID, ch.Nonce, nonce, w.Session)
	if err == nil && !sess.CheckConfirm(w.Confirm) {
		err = errors.New("its key confirmation does not match")
	}
	if err != nil {
		return agentwire.Welcome{}, fmt.Errorf("connector: the welcome's session does not open with this agent's key: %w", err)
	}
	s.sess = sess
	return w, nil
}

// expect reads one message of type typ into v.
func (s *session) expect(ctx context.Context, typ string, v any) error {
	_, err := s.expectEnv(ctx, typ, v)
	return err
}

// expectEnv is expect that also returns the message as read.
func (s *session) expectEnv(ctx context.Context, typ string, v any) (agentwire.Envelope, error) {
	b, err := s.c.Read(ctx)
	if err != nil {
		return agentwire.Envelope{}, readErr(ctx, err)
	}
	env, err := agentwire.Decode(b)
	if err != nil {
		return env, fmt.Errorf("connector: %w", err)
	}
	if env.Type != typ {
		return env, fmt.Errorf("connector: the portal sent %q where %q was due", env.Type, typ)
	}
	if err := agentwire.DecodeBody(env, v); err != nil {
		return env, fmt.Errorf("connector: %w", err)
	}
	return env, nil
}

// send writes one message; writes from jobs and heartbeats take turns.
// Every message after the hello carries the session's MAC.
func (s *session) send(ctx context.Context, typ, id string, body any) error {
	var b []byte
	var err error
	if s.sess == nil {
		b, err = agentwire.Encode(typ, id, body)
	} else {
		b, err = s.sess.EncodeToPortal(typ, id, body)
	}
	if err != nil {
		return err
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	// The WebSocket closes the whole connection on a write whose context
	// has ended: a job out of time (its admit, say) must not cut off the
	// portal's other jobs.
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("connector: send %s: %w", typ, err)
	}
	if err := s.c.Write(ctx, b); err != nil {
		return fmt.Errorf("connector: send %s: %w", typ, err)
	}
	return nil
}

// heartbeats sends the agent's status every HeartbeatEvery until ctx ends,
// and pings the portal after each when the Conn can. A heartbeat that cannot
// be sent, or a ping not answered, within HeartbeatEvery ends the
// connection (Run then dials again).
func (s *session) heartbeats(ctx context.Context) {
	every := s.a.cfg.HeartbeatEvery
	t := time.NewTicker(every)
	defer t.Stop()
	pinger, _ := s.c.(Pinger)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		hctx, cancel := context.WithTimeout(ctx, every)
		err := s.send(hctx, agentwire.TypeHeartbeat, "", s.a.cfg.Status(hctx))
		if err == nil && pinger != nil {
			if err = pinger.Ping(hctx); err != nil {
				err = fmt.Errorf("the portal did not answer a ping within %s: %w", every, err)
			}
		}
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				s.a.log.Warn("writeback agent: the portal stopped answering; closing the connection", "err", err)
				_ = s.c.Close(1001, "portal not answering")
			}
			return
		}
	}
}

// start records a running job; false when its ID is already running.
func (s *session) start(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, dup := s.running[id]; dup || id == "" {
		return false
	}
	s.running[id] = make(chan agentwire.Envelope, 1)
	return true
}

func (s *session) finish(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.running, id)
}

// deliver hands an admit_result to its job; one for no job waiting is dropped.
func (s *session) deliver(env agentwire.Envelope) {
	s.mu.Lock()
	ch := s.running[env.ID]
	s.mu.Unlock()
	if ch == nil {
		return
	}
	select {
	case ch <- env:
	default:
	}
}

func (s *session) admitResult(id string) chan agentwire.Envelope {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.running[id]
}
