package agentwire

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/writeback/writeback/services/directory"
)

// Where the portal answers agents: both on its public listener, so that an
// agent reaches it through the same proxies as the pages.
const (
	// PathEnroll takes an EnrollRequest (JSON, POST) and answers an
	// EnrollResponse, or an EnrollError with a 4xx status.
	PathEnroll = "/agent/v1/enroll"
	// PathConnect is the WebSocket an enrolled agent keeps open.
	PathConnect = "/agent/v1/connect"
	// HeaderAgentID names the agent opening PathConnect.
	HeaderAgentID = "Writeback-Agent-Id"
	// Version is the protocol version; hello carries it and the portal
	// refuses another one (CloseVersion). 2: a session per connection
	// (Session) instead of a signature and an HPKE setup per job.
	Version = 2
	// MaxMessage bounds one message in either direction.
	MaxMessage = 1 << 20
)

// WebSocket close codes the portal uses, so that the agent can tell a
// revocation (stop trying) from a network failure (try again).
const (
	CloseRevoked      = 4001 // the agent was revoked; it will be refused from now on
	CloseUnauthorized = 4002 // unknown agent, or its proof did not verify
	CloseVersion      = 4003 // the agent speaks another protocol version
	CloseReplaced     = 4004 // the same agent connected again; this connection is the old one
	// CloseDuplicate refuses a new connection to a portal replica that the
	// agent is connected to already (its hello's Have names it): the agent
	// dials again, for another replica.
	CloseDuplicate = 4005
)

// MaxClockSkew bounds how far the portal's clock (the challenge's Now) may
// be from the agent's: jobs' deadlines are judged on the portal's clock, so
// a challenge from further away is refused (and with it a replayed one).
const MaxClockSkew = 5 * time.Minute

// Heartbeat timing: the agent sends a heartbeat every HeartbeatEvery; the
// portal counts an agent that sent nothing for DeadAfter as disconnected.
const (
	HeartbeatEvery = 10 * time.Second
	DeadAfter      = 3 * HeartbeatEvery
)

// EnrollRequest is what `writeback-agent enroll` posts.
type EnrollRequest struct {
	Token   string `json:"token"`
	Public  Public `json:"public"`
	Proof   []byte `json:"proof"` // Identity.SignEnroll(Token)
	Host    string `json:"host"`
	Version string `json:"version"` // the agent program's version
}

// EnrollResponse is the identity the portal gives an enrolled agent.
type EnrollResponse struct {
	AgentID string `json:"agent_id"`
	Name    string `json:"name"`
	// PortalKey is the portal's Ed25519 public key, which signs the
	// challenge and the welcome of every connection (VerifyPortal); the
	// welcome carries the session that authenticates the jobs.
	PortalKey []byte `json:"portal_key"`
}

// EnrollError is the body of a refused enrolment: one line, safe to print.
type EnrollError struct {
	Error string `json:"error"`
}

// Message types on the connection.
const (
	TypeChallenge   = "challenge"    // portal → agent, first message: Challenge
	TypeHello       = "hello"        // agent → portal, answer: Hello
	TypeWelcome     = "welcome"      // portal → agent: Welcome; jobs may follow
	TypeHeartbeat   = "heartbeat"    // agent → portal: Status
	TypeJob         = "job"          // portal → agent: Job
	TypeAdmit       = "admit"        // agent → portal, within a job: Admit
	TypeAdmitResult = "admit_result" // portal → agent: AdmitResult
	TypeResult      = "result"       // agent → portal, ends a job: Result
	TypeReplicas    = "replicas"     // portal → agent: Replicas, when their number changed
)

// Envelope is one message: its type, the job it belongs to (for job,
// admit, admit_result and result) and its body.
type Envelope struct {
	Type string          `json:"type"`
	ID   string          `json:"id,omitempty"`
	Body json.RawMessage `json:"body,omitempty"`
	// Sig is the portal's signature of a challenge or a welcome (see
	// EncodeSigned): the session the agent accepts must come from the
	// portal it enrolled with, not from a proxy between them.
	Sig []byte `json:"sig,omitempty"`
	// MAC authenticates every later message under the session's key for
	// its direction (Session.EncodeToAgent, Session.EncodeToPortal).
	MAC []byte `json:"mac,omitempty"`
}

// Encode builds one message.
func Encode(typ, id string, body any) ([]byte, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("agentwire: encode %s: %w", typ, err)
	}
	return json.Marshal(Envelope{Type: typ, ID: id, Body: b})
}

// Decode reads one message; its body is decoded with DecodeBody.
func Decode(b []byte) (Envelope, error) {
	var e Envelope
	if len(b) > MaxMessage {
		return e, fmt.Errorf("agentwire: message of %d bytes is over the limit", len(b))
	}
	if err := json.Unmarshal(b, &e); err != nil {
		return e, fmt.Errorf("agentwire: decode message: %w", err)
	}
	return e, nil
}

// DecodeBody decodes e's body into v.
func DecodeBody(e Envelope, v any) error {
	if err := json.Unmarshal(e.Body, v); err != nil {
		return fmt.Errorf("agentwire: decode %s: %w", e.Type, err)
	}
	return nil
}

// Challenge opens a connection: the nonce to sign, and the portal's clock
// (Unix milliseconds) so that the agent can judge job deadlines on the
// portal's time.
type Challenge struct {
	Nonce []byte `json:"nonce"`
	Now   int64  `json:"now"`
}

// Hello answers the challenge.
type Hello struct {
	AgentID  string `json:"agent_id"`
	Proof    []byte `json:"proof"` // Identity.SignConnect(AgentID, Nonce)
	Protocol int    `json:"protocol"`
	Status   Status `json:"status"`
	// Nonce is the agent's fresh contribution to this connection's
	// session (at least MinNonce bytes): a welcome recorded on another
	// connection does not match it.
	Nonce []byte `json:"nonce"`
	// Have names the portal replicas (Welcome.Replica) the agent is
	// connected to already; a replica named here refuses the connection
	// (CloseDuplicate) rather than replace the one it has.
	Have []string `json:"have,omitempty"`
}

// Welcome accepts the agent.
type Welcome struct {
	Name string `json:"name"`
	// Nonce repeats the hello's, under the portal's signature.
	Nonce []byte `json:"nonce"`
	// Session is the HPKE encapsulation of this connection's session to
	// the agent's sealing key (NewPortalSession, Identity.OpenSession).
	Session []byte `json:"session"`
	// Confirm is Session.Confirm of that session.
	Confirm []byte `json:"confirm"`
	// Replica names the portal process (one of several replicas on one
	// database) that holds this connection; Replicas is how many are
	// running. An agent keeps one connection to each, since a job is
	// sent by the replica that took the person's request.
	Replica  string `json:"replica,omitempty"`
	Replicas int    `json:"replicas,omitempty"`
}

// Replicas tells a connected agent that the number of portal replicas
// changed.
type Replicas struct {
	Replicas int `json:"replicas"`
}

// MaxReplicas bounds the connections an agent keeps, whatever a portal
// says.
const MaxReplicas = 16

// Status is what an agent reports of itself, in hello and every heartbeat.
type Status struct {
	Version string `json:"version"`
	Host    string `json:"host"`
	// PasswordWriteback is the agent's own switch (`writeback-agent set
	// --password-writeback`); off, it refuses every write.
	PasswordWriteback bool `json:"password_writeback"`
	// Configured tells whether the agent has a directory connection.
	Configured bool `json:"configured"`
	// Directory names the directory type and servers, for the agents page.
	Directory string `json:"directory,omitempty"`
	// LastError is the agent's last directory failure, for administrators.
	LastError string `json:"last_error,omitempty"`
}

// The operations a job asks for: one per method of directory.Directory.
const (
	OpFind              = "find"
	OpGet               = "get"
	OpSearch            = "search"
	OpExpiring          = "expiring"
	OpInScope           = "in_scope"
	OpMemberOf          = "member_of"
	OpPolicy            = "policy"
	OpResetUser         = "reset_user"
	OpResetLogin        = "reset_login"
	OpUnlock            = "unlock"
	OpUnlockLogin       = "unlock_login"
	OpChangeLogin       = "change_login"
	OpAuthenticateLogin = "authenticate_login"
	OpTest              = "test"
)

// Names of the sealed fields of a job.
const (
	FieldPassword    = "password"     // the new password (reset) or the one typed to sign in (authenticate)
	FieldOldPassword = "old_password" // the current password (change)
)

// Job is one directory operation for an agent. Passwords travel only in
// Sealed (Session.Seal, with the job's ID and the field's name);
// an agent refuses a job that asks for a password without one.
type Job struct {
	Op string `json:"op"`
	// Deadline is the portal's clock (Unix milliseconds) after which the
	// agent must not start the job.
	Deadline int64 `json:"deadline"`

	Login   string          `json:"login,omitempty"`
	DN      string          `json:"dn,omitempty"`
	User    *directory.User `json:"user,omitempty"`
	GroupDN string          `json:"group_dn,omitempty"`
	Query   string          `json:"query,omitempty"`
	Limit   int             `json:"limit,omitempty"`
	// Until is Expiring's end of the window (Unix milliseconds).
	Until  int64                  `json:"until,omitempty"`
	Reset  directory.ResetOptions `json:"reset"`
	Sealed map[string][]byte      `json:"sealed,omitempty"`
}

// Candidate is directory.Candidate on the wire.
type Candidate struct {
	User      directory.User   `json:"user"`
	Policy    directory.Policy `json:"policy"`
	PolicyErr *Error           `json:"policy_err,omitempty"`
	Failures  int              `json:"failures"`
}

// Admit asks the portal, inside a change_login or authenticate_login job,
// whether to go on once the login is resolved (directory.Admit).
type Admit struct {
	Candidate Candidate `json:"candidate"`
	NotFound  *Error    `json:"not_found,omitempty"`
}

// AdmitResult is the portal's answer: nil Error means go on.
type AdmitResult struct {
	Error *Error `json:"error,omitempty"`
}

// Result ends a job: what the operation returned, or Error.
type Result struct {
	User      *directory.User      `json:"user,omitempty"`
	Users     []directory.User     `json:"users,omitempty"`
	Candidate *Candidate           `json:"candidate,omitempty"`
	Policy    *directory.Policy    `json:"policy,omitempty"`
	Member    bool                 `json:"member,omitempty"`
	Checklist *directory.Checklist `json:"checklist,omitempty"`
	// Server is the directory server the agent used (directory.Result).
	Server string `json:"server,omitempty"`
	Error  *Error `json:"error,omitempty"`
}

// IsWrite tells the ops that change the directory: the portal prefers
// agents with password writeback on for them and never sends one to a
// second agent once the first may have applied it; the agent refuses them
// with its switch off and counts them against its rate limit.
func IsWrite(op string) bool {
	switch op {
	case OpResetUser, OpResetLogin, OpUnlock, OpUnlockLogin, OpChangeLogin:
		return true
	}
	return false
}

// DirectoryOp is the directory.OpError.Op of a job's op: what a direct
// connection calls the same operation, so that audit rows and error
// mapping read alike in both modes.
func DirectoryOp(op string) string {
	switch op {
	case OpMemberOf:
		return "member-of"
	case OpInScope:
		return "in-scope"
	case OpResetUser, OpResetLogin:
		return "reset"
	case OpUnlock, OpUnlockLogin:
		return "unlock"
	case OpChangeLogin:
		return "change"
	case OpAuthenticateLogin:
		return "authenticate"
	}
	return op // find, get, search, expiring, policy, test
}

// KnownOp tells whether op is one of the Op* operations.
func KnownOp(op string) bool {
	switch op {
	case OpFind, OpGet, OpSearch, OpExpiring, OpInScope, OpMemberOf, OpPolicy, OpResetUser, OpResetLogin,
		OpUnlock, OpUnlockLogin, OpChangeLogin, OpAuthenticateLogin, OpTest:
		return true
	}
	return false
}
