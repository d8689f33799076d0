// Package agents enrols and manages the portal's writeback agents: the
// one-time enrolment tokens a Global Administrator creates, the enrolment
// that consumes one and stores the agent's public keys, the list the agents
// page and `writeback agent list` show, revocation, and the Registry the
// agent hub asks about connections, heartbeats and finished jobs.
package agents

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/writeback/writeback/services/agenthub"
	"github.com/writeback/writeback/services/agentwire"
	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/errs"
	"github.com/writeback/writeback/services/replicas"
	"github.com/writeback/writeback/store"
)

// Audit activities of this package. Their names are what administrators
// filter on; do not rename one once released.
const (
	ActivityAddToken     = "Create writeback agent enrolment token"
	ActivityEnroll       = "Enrol writeback agent"
	ActivityConnected    = "Writeback agent connected"
	ActivityDisconnected = "Writeback agent disconnected"
	ActivityRevoke       = "Revoke writeback agent"
)

// Activities lists the activities above, for the audit log's filter.
var Activities = []string{ActivityAddToken, ActivityConnected, ActivityDisconnected, ActivityEnroll, ActivityRevoke}

// TargetType is the audit target type of an agent.
const TargetType = "Writeback agent"

// Enrolment tokens: "wbat_" and 32 random bytes, base64url; valid TokenTTL,
// used once, stored only as agentwire.TokenHash.
const (
	TokenPrefix = "wbat_"
	TokenTTL    = time.Hour
	// MaxNameLen is the longest agent name, in characters.
	MaxNameLen = 64
)

// OpsWindow is how far back "operations in the last hour" counts.
const OpsWindow = time.Hour

// ErrTokenInvalid is the one answer to an enrolment whose token is
// unknown, used or expired: the same words for each, so that nobody can
// tell which.
var ErrTokenInvalid = errs.E(errs.Unauthorized,
	"This enrolment token is not valid (it may be used, expired or mistyped). Ask a Global Administrator for a new one.", nil)

// ErrBadProof answers an enrolment whose signature does not verify with the
// keys it carries. It is checked before the token is looked at, so it tells
// nothing about the token.
var ErrBadProof = errs.E(errs.Unauthorized,
	"The agent's proof of its key did not verify. Run writeback-agent enroll again.", nil)

// ErrUnknownAgent is wrapped by Agent for an ID no agent has: the hub's
// own sentinel, so that the hub closes such a connection as unauthorized.
var ErrUnknownAgent = agenthub.ErrUnknownAgent

// ErrRevoked is returned by Heartbeat for an agent revoked meanwhile (by
// another process, say `writeback agent revoke`): its connection should end.
var ErrRevoked = errors.New("agents: the agent is revoked")

// Disconnector cuts an agent's connection at once; the agent hub is one.
// Revoke calls it once the revocation is committed.
type Disconnector interface {
	Disconnect(id string)
}

// State is what the agents page says of an agent.
type State string

// The states of an agent.
const (
	Connected    State = "connected"
	Disconnected State = "disconnected"
	Revoked      State = "revoked"
)

// Token is a new enrolment token: shown once, never stored.
type Token struct {
	Token     string
	Name      string
	ExpiresAt time.Time
}

// Info is one agent as the agents page and `writeback agent list` show it.
type Info struct {
	ID                string    `json:"id"`
	Name              string    `json:"name"`
	State             State     `json:"state"`
	Host              string    `json:"host"`
	Version           string    `json:"version"`
	ConnectedSince    time.Time `json:"connected_since,omitzero"`
	LastHeartbeat     time.Time `json:"last_heartbeat,omitzero"`
	OpsLastHour       int64     `json:"operations_last_hour"`
	LastError         string    `json:"last_error"`
	LastErrorAt       time.Time `json:"last_error_at,omitzero"`
	Directory         string    `json:"directory"`
	Configured        bool      `json:"configured"`
	PasswordWriteback bool      `json:"password_writeback"`
	RemoteAddr        string    `json:"remote_addr"`
	Fingerprint       string    `json:"fingerprint"`
	EnrolledAt        time.Time `json:"enrolled_at"`
	EnrolledBy        string    `json:"enrolled_by"`
	RevokedAt         time.Time `json:"revoked_at,omitzero"`
	RevokedBy         string    `json:"revoked_by,omitempty"`
	// Connections are the replicas of the portal that hold a connection of
	// the agent (one on a single box), by replica ID.
	Connections []Connection `json:"connections"`
}

// Connection is an agent's connection to one replica of the portal.
type Connection struct {
	Replica        string    `json:"replica"`
	Host           string    `json:"replica_host,omitempty"` // the replica's host; empty on a single box
	RemoteAddr     string    `json:"remote_addr"`
	ConnectedSince time.Time `json:"connected_since"`
	LastHeartbeat  time.Time `json:"last_heartbeat"`
}

// Service is the agents service.
type Service struct {
	db   *store.DB
	log  *slog.Logger
	now  func() time.Time
	disc atomic.Pointer[Disconnector]

	mu sync.Mutex
	// conns holds the agents connected to this process's hub. The hub
	// reports a connection that replaces another as Connected again and
	// the replaced one's end not at all (AGENT10.md §2, §4): Disconnected
	// means the agent has no connection left.
	conns map[string]bool
	// ops holds operations not yet written, by agent and minute: counting
	// each one in the database would add a write to every directory
	// operation; they are written with the agent's next heartbeat (every
	// agentwire.HeartbeatEvery) or when it disconnects.
	ops map[string]map[int64]int64
	// statusErr is the last error each agent reported in its status, so
	// that a heartbeat repeating it does not write it again.
	statusErr map[string]string
	// jobErr is the last job error written for each agent.
	jobErr map[string]jobError
	// portalPub is what enrolment tells agents the portal signs with.
	portalPub []byte
	// replica names this process in agent_links: its replica ID on
	// PostgreSQL (SetReplica), LocalReplica on SQLite.
	replica string
}

// LocalReplica is the replica name of the single process on SQLite.
const LocalReplica = "local"

type jobError struct {
	text string
	at   time.Time
}

// New builds the service.
func New(db *store.DB, log *slog.Logger) *Service {
	return &Service{db: db, log: log, now: time.Now, conns: map[string]bool{}, ops: map[string]map[int64]int64{},
		statusErr: map[string]string{}, jobErr: map[string]jobError{}, replica: LocalReplica}
}

// SetReplica names the replica this process is (replicas.Registry.Self),
// before the hub takes connections: each replica records the connections
// it holds, so that the agents page shows which replicas an agent reaches.
func (s *Service) SetReplica(id string) {
	if id != "" {
		s.replica = id
	}
}

// withReplica adds the replica to an audit event's details when there are
// replicas.
func (s *Service) withReplica(d map[string]any) map[string]any {
	if s.replica != LocalReplica {
		d["replica"] = s.replica
	}
	return d
}

// stale is the heartbeat time before which a connection no longer counts.
func stale(now time.Time) int64 { return now.UnixMilli() - agentwire.DeadAfter.Milliseconds() }

// SetDisconnector names what Revoke cuts a connected agent off with (the
// agent hub). It is set after New because the hub is built with this
// service as its Registry.
func (s *Service) SetDisconnector(d Disconnector) {
	if d == nil {
		s.disc.Store(nil)
		return
	}
	s.disc.Store(&d)
}

// SetPortalKey sets the public key the portal signs jobs with (the hub's,
// agenthub.Hub.PublicKey), which enrolment hands to each agent.
func (s *Service) SetPortalKey(pub []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.portalPub = slices.Clone(pub)
}

func (s *Service) portalKey() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.portalPub)
}

// SetClock replaces the clock (tests).
func (s *Service) SetClock(now func() time.Time) { s.now = now }

// ValidateName checks an agent name: 1 to 64 characters, letters, digits,
// spaces and - _ . only, after trimming spaces. It returns the trimmed name.
func ValidateName(name string) (string, error) {
	name, problem, ok := CheckName(name)
	if !ok {
		return "", errs.FieldTexts(map[string]errs.Text{"name": problem})
	}
	return name, nil
}

// CheckName is ValidateName for a form that names more fields: the trimmed
// name, or what is wrong with it (ok false).
func CheckName(name string) (string, errs.Text, bool) {
	name = strings.TrimSpace(name)
	n := utf8.RuneCountInString(name)
	if n == 0 || n > MaxNameLen || !utf8.ValidString(name) {
		return "", errs.Textf("Enter a name of 1 to %d characters.", MaxNameLen), false
	}
	for _, r := range name {
		if !unicode.IsLetter(r) && !unicode.IsDigit(r) && r != ' ' && r != '-' && r != '_' && r != '.' {
			return "", errs.Textf("Use only letters, digits, spaces, hyphens, underscores and dots."), false
		}
	}
	return name, errs.Text{}, true
}

// Add creates a one-time enrolment token for an agent to be called name.
// The token is returned once; only its hash is stored.
func (s *Service) Add(ctx context.Context, actor audit.Actor, name string) (Token, error) {
	name, err := ValidateName(name)
	if err != nil {
		return Token{}, err
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return Token{}, fmt.Errorf("agents: add: %w", err)
	}
	tok := TokenPrefix + base64.RawURLEncoding.EncodeToString(b)
	now := s.now()
	exp := now.Add(TokenTTL)
	err = s.db.InTx(ctx, func(tx *store.Tx) error {
		taken, err := tx.AgentNameTaken(ctx, name, now.UnixMilli())
		if err != nil {
			return err
		}
		if taken {
			return errs.FieldTexts(map[string]errs.Text{"name": errs.Textf(
				"An agent called %s is already enrolled or has a token waiting. Choose another name, or revoke that agent first.", name)})
		}
		if err := tx.InsertAgentToken(ctx, store.AgentToken{Hash: agentwire.TokenHash(tok), Name: name, CreatedBy: actor.Name,
			CreatedMS: now.UnixMilli(), ExpiresMS: exp.UnixMilli()}); err != nil {
			return err
		}
		_, err = audit.Record(ctx, tx, audit.Entry{Category: audit.CategoryDirectoryManagement, Activity: ActivityAddToken,
			Actor: actor, Target: audit.Target{Type: TargetType, Name: name},
			Details: map[string]any{"expires": exp.UTC().Format(audit.TimeFormat)}})
		return err
	})
	if errs.KindOf(err) == errs.Invalid {
		return Token{}, err
	}
	if err != nil {
		return Token{}, fmt.Errorf("agents: add %s: %w", name, err)
	}
	return Token{Token: tok, Name: name, ExpiresAt: exp}, nil
}

// Limits on what an agent reports of itself.
const (
	maxHost      = 255
	maxVersion   = 64
	maxDirectory = 500
	maxError     = 500
	maxToken     = 200
)

// clean makes text an agent sent safe to keep and print: control and
// format characters (which could rewrite a terminal line in `agent list`)
// become spaces, and it is cut to max bytes at a character boundary.
func clean(s string, max int) string {
	s = strings.ToValidUTF8(s, "?")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || unicode.In(r, unicode.Cf) {
			return ' '
		}
		return r
	}, s)
	s = strings.TrimSpace(s)
	if len(s) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut]
	}
	return s
}

func newID() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// agentActor is the audit actor of what an agent does itself.
func agentActor(id, name, remoteAddr string) audit.Actor {
	return audit.Actor{Type: "system", ID: "agent:" + id, Name: "Writeback agent " + name, ClientIP: remoteAddr}
}

func target(a store.Agent) audit.Target {
	return audit.Target{Type: TargetType, ID: a.ID, Name: a.Name}
}

// Enroll checks an agent's enrolment (its proof of the keys it sends, then
// its token) and creates the agent, consuming the token in the same
// transaction. remoteAddr is the client address, for the audit log.
// Refusals are ErrBadProof, ErrTokenInvalid, an Invalid error for a
// malformed request, or a Conflict when the name was taken meanwhile; each
// is recorded in the audit log (never with the token).
func (s *Service) Enroll(ctx context.Context, req agentwire.EnrollRequest, remoteAddr string) (agentwire.EnrollResponse, error) {
	refuse := func(reason string, err error, name string) (agentwire.EnrollResponse, error) {
		rerr := s.db.InTx(ctx, func(tx *store.Tx) error {
			_, err := audit.Record(ctx, tx, audit.Entry{Category: audit.CategoryDirectoryManagement, Activity: ActivityEnroll,
				Actor: audit.Actor{Type: "anonymous", ClientIP: remoteAddr}, Target: audit.Target{Type: TargetType, Name: name},
				Result: audit.Failure, Reason: reason, Details: map[string]any{"host": clean(req.Host, maxHost)}})
			return err
		})
		if rerr != nil {
			return agentwire.EnrollResponse{}, fmt.Errorf("agents: enroll: record refusal: %w", rerr)
		}
		s.log.InfoContext(ctx, "agent enrolment refused", "reason", reason, "client_ip", remoteAddr)
		return agentwire.EnrollResponse{}, err
	}
	if req.Public.Valid() != nil || len(req.Proof) == 0 || len(req.Proof) > 128 {
		return refuse("malformed enrolment", errs.Invalidf("The enrolment request is not valid: it needs the agent's two public keys and its proof."), "")
	}
	if err := agentwire.VerifyEnroll(req.Token, req.Public, req.Proof); err != nil {
		return refuse("the proof did not verify with the keys sent", ErrBadProof, "")
	}
	if !strings.HasPrefix(req.Token, TokenPrefix) || len(req.Token) > maxToken {
		return refuse("unknown, used or expired token", ErrTokenInvalid, "")
	}
	id, err := newID()
	if err != nil {
		return agentwire.EnrollResponse{}, fmt.Errorf("agents: enroll: %w", err)
	}
	host, version := clean(req.Host, maxHost), clean(req.Version, maxVersion)
	now := s.now()
	var a store.Agent
	err = s.db.InTx(ctx, func(tx *store.Tx) error {
		var err error
		a, err = tx.EnrollAgent(ctx, agentwire.TokenHash(req.Token), store.Agent{ID: id, SignKey: req.Public.SignKey,
			SealKey: req.Public.SealKey, Host: host, Version: version}, now.UnixMilli())
		if err != nil {
			return err
		}
		a.RemoteAddr = remoteAddr
		_, err = audit.Record(ctx, tx, audit.Entry{Category: audit.CategoryDirectoryManagement, Activity: ActivityEnroll,
			Actor: agentActor(a.ID, a.Name, remoteAddr), Target: target(a),
			Details: map[string]any{"host": host, "version": version, "fingerprint": req.Public.Fingerprint(), "token_created_by": a.EnrolledBy}})
		return err
	})
	switch {
	case errors.Is(err, store.ErrNotFound):
		return refuse("unknown, used or expired token", ErrTokenInvalid, "")
	case errors.Is(err, store.ErrDuplicate):
		return refuse("the name was taken by another agent", errs.E(errs.Conflict,
			"Another agent with this name was enrolled meanwhile. Ask a Global Administrator for a token with another name.", nil), "")
	case err != nil:
		return agentwire.EnrollResponse{}, fmt.Errorf("agents: enroll: %w", err)
	}
	s.log.InfoContext(ctx, "agent enrolled", "agent", a.Name, "agent_id", a.ID, "host", host, "client_ip", remoteAddr)
	return agentwire.EnrollResponse{AgentID: a.ID, Name: a.Name, PortalKey: s.portalKey()}, nil
}

// stateOf tells an agent's state at now.
func stateOf(a store.Agent, now time.Time) State {
	switch {
	case a.RevokedMS != 0:
		return Revoked
	case a.ConnectedMS == 0:
		return Disconnected
	}
	seen := max(a.HeartbeatMS, a.ConnectedMS)
	if now.UnixMilli()-seen > agentwire.DeadAfter.Milliseconds() {
		return Disconnected
	}
	return Connected
}

func ms(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v).UTC()
}

func (s *Service) info(a store.Agent, now time.Time) Info {
	in := Info{ID: a.ID, Name: a.Name, State: stateOf(a, now), Host: a.Host, Version: a.Version,
		LastHeartbeat: ms(a.HeartbeatMS), OpsLastHour: a.OpsLastHour, LastError: a.LastError, LastErrorAt: ms(a.LastErrorMS),
		Directory: a.Directory, Configured: a.Configured, PasswordWriteback: a.PasswordWriteback, RemoteAddr: a.RemoteAddr,
		Fingerprint: agentwire.Public{SignKey: a.SignKey, SealKey: a.SealKey}.Fingerprint(),
		EnrolledAt:  ms(a.EnrolledMS), EnrolledBy: a.EnrolledBy, RevokedAt: ms(a.RevokedMS), RevokedBy: a.RevokedBy}
	if in.State == Connected {
		in.ConnectedSince = ms(a.ConnectedMS)
	}
	return in
}

// List returns every agent: those not revoked first, by name.
func (s *Service) List(ctx context.Context) ([]Info, error) {
	now := s.now()
	since := minute(now.Add(-OpsWindow)) + 60_000
	list, err := s.db.ListAgents(ctx, since)
	if err != nil {
		return nil, fmt.Errorf("agents: list: %w", err)
	}
	links, err := s.db.AgentLinks(ctx, stale(now))
	if err != nil {
		return nil, fmt.Errorf("agents: list: %w", err)
	}
	byAgent := map[string][]Connection{}
	for _, l := range links {
		byAgent[l.AgentID] = append(byAgent[l.AgentID], Connection{Replica: l.Replica, Host: l.Host, RemoteAddr: l.RemoteAddr,
			ConnectedSince: ms(l.ConnectedMS), LastHeartbeat: ms(l.HeartbeatMS)})
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Info, 0, len(list))
	for _, a := range list {
		for m, n := range s.ops[a.ID] {
			if m >= since {
				a.OpsLastHour += n
			}
		}
		in := s.info(a, now)
		in.Connections = []Connection{}
		if in.State == Connected && byAgent[a.ID] != nil {
			in.Connections = byAgent[a.ID]
		}
		out = append(out, in)
	}
	return out, nil
}

// ReplicaCoverage is one running replica of the portal and how many agents
// (not revoked) hold a connection to it.
type ReplicaCoverage struct {
	Replica string `json:"replica"`
	Host    string `json:"host"`
	Agents  int    `json:"agents"`
}

// Reached is how many of the running replicas in cover hold a connection
// of the agent.
func (in Info) Reached(cover []ReplicaCoverage) int {
	n := 0
	for _, c := range in.Connections {
		for _, r := range cover {
			if r.Replica == c.Replica {
				n++
				break
			}
		}
	}
	return n
}

// Name is the replica's ID with its host: "3f9c… (web-2)".
func (c ReplicaCoverage) Name() string {
	if c.Host == "" {
		return c.Replica
	}
	return c.Replica + " (" + c.Host + ")"
}

// Coverage lists the running replicas (on PostgreSQL; none on a single
// box) with how many of the agents in list (List's) are connected to each:
// a replica that no agent reaches cannot write back, and the resets the
// load balancer sends it fail. That happens when the balancer pins each
// client to one replica (IP hash, sticky sessions): every agent's
// connections then land on the same one.
func (s *Service) Coverage(ctx context.Context, list []Info) ([]ReplicaCoverage, error) {
	reps, err := s.db.Replicas(ctx, replicas.DefaultDeadAfter)
	if err != nil {
		return nil, fmt.Errorf("agents: coverage: %w", err)
	}
	n := map[string]int{}
	for _, in := range list {
		for _, c := range in.Connections {
			n[c.Replica]++
		}
	}
	var out []ReplicaCoverage
	for _, r := range reps {
		if r.Live {
			out = append(out, ReplicaCoverage{Replica: r.ID, Host: r.Host, Agents: n[r.ID]})
		}
	}
	return out, nil
}

// errNoAgent answers a revocation of a name no agent (not revoked) has.
func errNoAgent(name string) error {
	return errs.Ef(errs.NotFound, nil, "There is no enrolled agent called %s (or it is already revoked).", clean(name, MaxNameLen*4))
}

// Revoke revokes the agent (not revoked) called name: it is refused from
// now on, and cut off at once if connected.
func (s *Service) Revoke(ctx context.Context, actor audit.Actor, name string) (Info, error) {
	return s.revoke(ctx, actor, func(tx *store.Tx) (store.Agent, error) {
		a, err := tx.ActiveAgentByName(ctx, strings.TrimSpace(name))
		if errors.Is(err, store.ErrNotFound) {
			return a, errNoAgent(name)
		}
		return a, err
	})
}

// RevokeByID revokes the agent with this ID, as Revoke; the agents page
// names agents by ID so that a second agent given a revoked one's name is
// never revoked by a stale page.
func (s *Service) RevokeByID(ctx context.Context, actor audit.Actor, id string) (Info, error) {
	return s.revoke(ctx, actor, func(tx *store.Tx) (store.Agent, error) {
		a, err := tx.AgentByID(ctx, id)
		if errors.Is(err, store.ErrNotFound) || (err == nil && a.RevokedMS != 0) {
			return a, errs.E(errs.NotFound, "This agent does not exist or is already revoked.", err)
		}
		return a, err
	})
}

func (s *Service) revoke(ctx context.Context, actor audit.Actor, find func(*store.Tx) (store.Agent, error)) (Info, error) {
	now := s.now()
	var a store.Agent
	var was State
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		var err error
		if a, err = find(tx); err != nil {
			return err
		}
		was = stateOf(a, now)
		if err := tx.RevokeAgent(ctx, a.ID, actor.Name, now.UnixMilli()); err != nil {
			return err
		}
		a.RevokedMS, a.RevokedBy, a.ConnectedMS = now.UnixMilli(), actor.Name, 0
		_, err = audit.Record(ctx, tx, audit.Entry{Category: audit.CategoryDirectoryManagement, Activity: ActivityRevoke,
			Actor: actor, Target: target(a), Details: map[string]any{"host": a.Host, "was": string(was)}})
		return err
	})
	if k := errs.KindOf(err); k == errs.NotFound {
		return Info{}, err
	}
	if err != nil {
		return Info{}, fmt.Errorf("agents: revoke: %w", err)
	}
	s.mu.Lock()
	delete(s.conns, a.ID)
	delete(s.ops, a.ID)
	delete(s.statusErr, a.ID)
	delete(s.jobErr, a.ID)
	s.mu.Unlock()
	// After the commit: an agent cut off before it would only reconnect
	// and, still enrolled, be let in again.
	if d := s.disc.Load(); d != nil {
		(*d).Disconnect(a.ID)
	}
	s.log.InfoContext(ctx, "agent revoked", "agent", a.Name, "agent_id", a.ID, "was", string(was))
	return s.info(a, now), nil
}

// Agent returns an enrolled agent's name and public keys, and whether it is
// revoked; an unknown ID gives an error wrapping ErrUnknownAgent.
func (s *Service) Agent(ctx context.Context, id string) (string, agentwire.Public, bool, error) {
	a, err := s.db.AgentByID(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return "", agentwire.Public{}, false, fmt.Errorf("agents: agent %q: %w", clean(id, 64), ErrUnknownAgent)
	}
	if err != nil {
		return "", agentwire.Public{}, false, fmt.Errorf("agents: agent: %w", err)
	}
	return a.Name, agentwire.Public{SignKey: a.SignKey, SealKey: a.SealKey}, a.RevokedMS != 0, nil
}

func status(st agentwire.Status) store.AgentStatus {
	return store.AgentStatus{Version: clean(st.Version, maxVersion), Host: clean(st.Host, maxHost),
		Directory: clean(st.Directory, maxDirectory), Configured: st.Configured, PasswordWriteback: st.PasswordWriteback}
}

// Connected records that an agent's connection was accepted (after its
// proof), and audits it.
func (s *Service) Connected(ctx context.Context, id string, st agentwire.Status, remoteAddr string) error {
	now := s.now()
	ss := status(st)
	s.mu.Lock()
	replaced := s.conns[id]
	s.mu.Unlock()
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		a, err := tx.AgentByID(ctx, id)
		if err != nil {
			return err
		}
		if err := tx.AgentConnected(ctx, id, ss, clean(remoteAddr, 100), now.UnixMilli()); err != nil {
			return err
		}
		if err := tx.AgentLinkUp(ctx, id, s.replica, clean(remoteAddr, 100), now.UnixMilli(), stale(now)); err != nil {
			return err
		}
		if err := s.statusError(ctx, tx, id, st.LastError, now); err != nil {
			return err
		}
		_, err = audit.Record(ctx, tx, audit.Entry{Category: audit.CategoryDirectoryManagement, Activity: ActivityConnected,
			Actor: agentActor(id, a.Name, remoteAddr), Target: target(a),
			Details: s.withReplica(map[string]any{"host": ss.Host, "version": ss.Version, "directory": ss.Directory,
				"configured": ss.Configured, "password_writeback": ss.PasswordWriteback, "replaced_connection": replaced})})
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("agents: connected %q: %w", clean(id, 64), ErrUnknownAgent)
	}
	if err != nil {
		return fmt.Errorf("agents: connected: %w", err)
	}
	s.mu.Lock()
	s.conns[id] = true
	s.mu.Unlock()
	return nil
}

// statusError records the last error an agent reported, when it is new.
// Callers hold no lock.
func (s *Service) statusError(ctx context.Context, tx *store.Tx, id, text string, now time.Time) error {
	text = clean(text, maxError)
	s.mu.Lock()
	same := s.statusErr[id] == text
	s.statusErr[id] = text
	s.mu.Unlock()
	if text == "" || same {
		return nil
	}
	return tx.SetAgentError(ctx, id, text, now.UnixMilli())
}

// Heartbeat records an agent's heartbeat and status, and writes the
// operations it performed since the last one.
func (s *Service) Heartbeat(ctx context.Context, id string, st agentwire.Status) error {
	now := s.now()
	ops := s.takeOps(id)
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		if err := tx.AgentHeartbeat(ctx, id, status(st), now.UnixMilli()); err != nil {
			return err
		}
		if err := tx.AgentLinkBeat(ctx, id, s.replica, now.UnixMilli()); err != nil {
			return err
		}
		if err := s.statusError(ctx, tx, id, st.LastError, now); err != nil {
			return err
		}
		return s.writeOps(ctx, tx, id, ops, now)
	})
	if err != nil {
		s.putOps(id, ops)
		if errors.Is(err, store.ErrNotFound) {
			// Unknown, or revoked since it connected: which one?
			if _, _, revoked, aerr := s.Agent(ctx, id); aerr == nil && revoked {
				return fmt.Errorf("agents: heartbeat %q: %w", clean(id, 64), ErrRevoked)
			}
			return fmt.Errorf("agents: heartbeat %q: %w", clean(id, 64), ErrUnknownAgent)
		}
		return fmt.Errorf("agents: heartbeat: %w", err)
	}
	return nil
}

// WatchRevocations cuts off, every interval until ctx ends, the agents this
// process holds connections of that were revoked elsewhere: by
// `writeback agent revoke`, which runs in its own process and cannot reach
// the hub. (A revocation through this service disconnects at once.)
func (s *Service) WatchRevocations(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.CheckRevocations(ctx)
	}
}

// CheckRevocations is one round of WatchRevocations.
func (s *Service) CheckRevocations(ctx context.Context) {
	s.mu.Lock()
	ids := make([]string, 0, len(s.conns))
	for id := range s.conns {
		ids = append(ids, id)
	}
	s.mu.Unlock()
	for _, id := range ids {
		_, _, revoked, err := s.Agent(ctx, id)
		if err != nil {
			if ctx.Err() == nil {
				s.log.WarnContext(ctx, "check agent revocation", "agent_id", id, "err", err)
			}
			continue
		}
		if !revoked {
			continue
		}
		s.mu.Lock()
		delete(s.conns, id)
		s.mu.Unlock()
		if d := s.disc.Load(); d != nil {
			(*d).Disconnect(id)
		}
		s.log.InfoContext(ctx, "revoked agent cut off", "agent_id", id)
	}
}

// Disconnected records that an agent has no connection left (the hub
// does not report a connection another one replaced), and audits it with
// the reason.
func (s *Service) Disconnected(ctx context.Context, id, reason string) error {
	now := s.now()
	s.mu.Lock()
	delete(s.conns, id)
	delete(s.statusErr, id)
	s.mu.Unlock()
	ops := s.takeOps(id)
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		a, err := tx.AgentByID(ctx, id)
		if err != nil {
			return err
		}
		left := 0
		if a.RevokedMS == 0 {
			// The agent stays connected while another replica holds a
			// connection of it.
			if left, err = tx.AgentLinkDown(ctx, id, s.replica, stale(now)); err != nil {
				return err
			}
			if left == 0 {
				if err := tx.AgentDisconnected(ctx, id); err != nil {
					return err
				}
			}
		}
		if err := s.writeOps(ctx, tx, id, ops, now); err != nil {
			return err
		}
		d := s.withReplica(map[string]any{"revoked": a.RevokedMS != 0})
		if s.replica != LocalReplica {
			d["connections_left"] = left
		}
		if a.ConnectedMS != 0 {
			d["connected_since"] = ms(a.ConnectedMS).Format(audit.TimeFormat)
		}
		_, err = audit.Record(ctx, tx, audit.Entry{Category: audit.CategoryDirectoryManagement, Activity: ActivityDisconnected,
			Actor: agentActor(id, a.Name, a.RemoteAddr), Target: target(a), Reason: clean(reason, maxError), Details: d})
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("agents: disconnected %q: %w", clean(id, 64), ErrUnknownAgent)
	}
	if err != nil {
		s.putOps(id, ops)
		return fmt.Errorf("agents: disconnected: %w", err)
	}
	return nil
}

// JobDone counts one operation an agent performed. An error that is the
// agent's or the directory's (not the person's: a wrong password, a policy
// refusal) becomes the agent's last error at once; the count is written
// with the next heartbeat.
func (s *Service) JobDone(ctx context.Context, id, op string, err error) error {
	now := s.now()
	s.mu.Lock()
	m := s.ops[id]
	if m == nil {
		m = map[int64]int64{}
		s.ops[id] = m
	}
	m[minute(now)]++
	s.mu.Unlock()
	text, ok := operatorError(op, err)
	if !ok {
		return nil
	}
	// During an outage every job fails the same way: the error is written
	// once a minute, not once a job.
	s.mu.Lock()
	last := s.jobErr[id]
	if last.text == text && now.Sub(last.at) < time.Minute {
		s.mu.Unlock()
		return nil
	}
	s.jobErr[id] = jobError{text: text, at: now}
	s.mu.Unlock()
	werr := s.db.InTx(ctx, func(tx *store.Tx) error { return tx.SetAgentError(ctx, id, text, now.UnixMilli()) })
	if errors.Is(werr, store.ErrNotFound) {
		return fmt.Errorf("agents: job done %q: %w", clean(id, 64), ErrUnknownAgent)
	}
	if werr != nil {
		return fmt.Errorf("agents: job done: %w", werr)
	}
	return nil
}

// operatorError is the text an error leaves as an agent's last error, and
// whether it is one an operator should see.
func operatorError(op string, err error) (string, bool) {
	if err == nil {
		return "", false
	}
	var re *agentwire.RefusedError
	if errors.As(err, &re) {
		return clean(op+": "+re.Error(), maxError), true
	}
	switch errs.KindOf(err) {
	case errs.Unavailable, errs.Internal:
		return clean(op+": "+err.Error(), maxError), true
	}
	return "", false
}

// Flush writes the operation counts not written yet (at shutdown).
func (s *Service) Flush(ctx context.Context) error {
	s.mu.Lock()
	all := s.ops
	s.ops = map[string]map[int64]int64{}
	s.mu.Unlock()
	now := s.now()
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		for id, ops := range all {
			if err := s.writeOps(ctx, tx, id, ops, now); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("agents: flush: %w", err)
	}
	return nil
}

func minute(t time.Time) int64 { return t.UnixMilli() / 60_000 * 60_000 }

func (s *Service) takeOps(id string) map[int64]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.ops[id]
	delete(s.ops, id)
	return m
}

// putOps gives back counts a failed write did not store.
func (s *Service) putOps(id string, ops map[int64]int64) {
	if len(ops) == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.ops[id]
	if m == nil {
		m = map[int64]int64{}
		s.ops[id] = m
	}
	for k, v := range ops {
		m[k] += v
	}
}

// writeOps adds counts and prunes those out of the window.
func (s *Service) writeOps(ctx context.Context, tx *store.Tx, id string, ops map[int64]int64, now time.Time) error {
	cutoff := minute(now.Add(-OpsWindow))
	for m, n := range ops {
		if m <= cutoff {
			continue
		}
		if err := tx.AddAgentOps(ctx, id, m, n); err != nil {
			return err
		}
	}
	if len(ops) == 0 {
		return nil
	}
	return tx.PruneAgentOps(ctx, cutoff)
}
