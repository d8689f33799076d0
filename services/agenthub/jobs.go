package agenthub

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/writeback/writeback/services/agentwire"
	"github.com/writeback/writeback/services/directory"
	"github.com/writeback/writeback/services/errs"
	"github.com/writeback/writeback/services/i18n"
)

var _ directory.Directory = (*Hub)(nil)

// What people see when no agent answered.
var (
	msgUnreachable = directory.MsgNotReached
	msgLostInWrite = i18n.Key("The connection to your organisation's directory was lost during the change; it may or may not have been applied. Check the account before trying again.")
)

// retryable tells the ops that may go to another agent when the first one
// went away before answering: pure reads. Writes may have been applied;
// authenticate_login sends the person's password to the directory, which
// counts it against the lockout, and its attempt was counted already.
func retryable(op string) bool {
	switch op {
	case agentwire.OpFind, agentwire.OpGet, agentwire.OpSearch, agentwire.OpMemberOf, agentwire.OpPolicy, agentwire.OpTest:
		return true
	}
	return false
}

// call is one directory operation for an agent.
type call struct {
	op      string
	job     agentwire.Job
	secrets map[string]string // field → password, sealed per agent
	admit   directory.Admit
}

// answer is how a call ended.
type answer struct {
	res   agentwire.Result
	agent string // the agent's name; empty when none was picked
	host  string
	// cand is the Candidate the caller's admit saw, when it ran.
	cand *directory.Candidate
	err  error
}

func (a answer) result() directory.Result {
	return directory.Result{Server: a.res.Server, Agent: a.agent}
}

// run sends c to one agent and waits for its result, within the caller's
// deadline capped at MaxWait. A read whose agent went away before
// answering goes to another agent while time is left; a write never does.
func (h *Hub) run(ctx context.Context, c call) answer {
	parent := ctx
	deadline := time.Now().Add(orDefault(h.MaxWait, DefaultMaxWait))
	callers := false // the deadline is the caller's, not the hub's cap
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline, callers = d, true
	}
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	tried := map[*agentConn]bool{}
	var last answer
	for {
		a := h.pick(c.op, tried)
		if a == nil {
			if last.agent != "" {
				return h.outage(parent, callers && ctx.Err() != nil, c.op, last)
			}
			return h.outage(parent, false, c.op, h.noAgent(c.op))
		}
		tried[a] = true
		ans, sent, wentAway := h.attempt(ctx, a, c, deadline)
		if !wentAway && !callers && ctx.Err() != nil && parent.Err() == nil {
			// The hub's deadline ran out on this agent: send it nothing
			// more until it speaks, so that the next operation does not
			// wait the whole deadline on it again.
			a.stalled.Store(true)
		}
		if wentAway && (!sent || retryable(c.op)) && ctx.Err() == nil {
			h.log.Warn("agent went away during a read; trying another agent", "agent", a.name, "op", c.op, "reason", a.why)
			last = ans
			continue
		}
		return h.outage(parent, callers && ctx.Err() != nil, c.op, ans)
	}
}

// outage calls the OnOutage function when ans means the directory could not
// be used through the agents, and returns ans. Operations the caller gave
// up on (its context ended, or its own deadline ran out) do not count.
func (h *Hub) outage(parent context.Context, callerEnded bool, op string, ans answer) answer {
	f := h.onOutage.Load()
	if f == nil || ans.err == nil || op == agentwire.OpTest || parent.Err() != nil || callerEnded {
		return ans
	}
	var oe *directory.OpError
	if errors.As(ans.err, &oe) {
		switch oe.Code {
		case directory.CodeUnavailable, directory.CodeCertificate, directory.CodeServiceAccount:
			var re *agentwire.RefusedError
			if errors.As(ans.err, &re) && re.Reason == agentwire.RefusedRateLimit {
				return ans // the agent is busy, not out
			}
			(*f)(ans.err)
		}
	}
	return ans
}

// noAgent is the answer when no agent can take the job.
func (h *Hub) noAgent(op string) answer {
	h.mu.Lock()
	n, stalled := 0, 0
	for _, a := range h.agents {
		if !a.gone() {
			n++
			if a.stalled.Load() {
				stalled++
			}
		}
	}
	h.mu.Unlock()
	cause := ErrNoAgent
	switch {
	case stalled > 0:
		cause = fmt.Errorf("%w: %d connected, %d of them not answering since a job's wait ran out", ErrNoAgent, n, stalled)
	case n > 0:
		cause = fmt.Errorf("%w: %d connected, none with a directory connection", ErrNoAgent, n)
	}
	return answer{err: errs.E(errs.Unavailable, msgUnreachable,
		&directory.OpError{Op: agentwire.DirectoryOp(op), Code: directory.CodeUnavailable, Err: fmt.Errorf("%w (%w)", cause, directory.ErrNotReached)})}
}

// pick chooses the agent for op among those not tried yet: connected, not
// stalled, with a directory configured (any connected agent for a test),
// for writes password writeback on first; then the fewest jobs in flight, then the one
// picked longest ago. It counts the job in flight.
func (h *Hub) pick(op string, tried map[*agentConn]bool) *agentConn {
	h.mu.Lock()
	defer h.mu.Unlock()
	write, test := agentwire.IsWrite(op), op == agentwire.OpTest
	score := func(a *agentConn) int {
		s := 0
		if write && !a.status.PasswordWriteback {
			s++
		}
		if test && !a.status.Configured {
			s++
		}
		return s
	}
	var best *agentConn
	for _, a := range h.agents {
		if tried[a] || a.gone() || !a.ready.Load() || a.stalled.Load() || (!test && !a.status.Configured) {
			continue
		}
		if best == nil {
			best = a
			continue
		}
		sa, sb := score(a), score(best)
		if sa < sb || sa == sb && (a.inflight < best.inflight || a.inflight == best.inflight && a.picked < best.picked) {
			best = a
		}
	}
	if best != nil {
		h.seq++
		best.picked = h.seq
		best.inflight++
	}
	return best
}

// newJobID is 16 random bytes, base64url.
func newJobID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// agentDeadline is the deadline a job carries to the agent: earlier than
// the hub's own by a fifth of the time left (at most 2 s), so that the agent
// stops the operation (its directory client closes the socket at the
// deadline) and its answer arrives while the hub still waits. The hub's
// timeout, and its "Nothing was changed", is then left for an agent or a
// network that stopped answering altogether.
func agentDeadline(deadline, now time.Time) time.Time {
	return deadline.Add(-min(2*time.Second, deadline.Sub(now)/5))
}

// attempt runs c on a. sent tells that the job may have reached the agent;
// wentAway that the connection ended before the agent answered.
func (h *Hub) attempt(ctx context.Context, a *agentConn, c call, deadline time.Time) (ans answer, sent, wentAway bool) {
	h.mu.Lock()
	ans.agent, ans.host = a.name, a.status.Host
	h.mu.Unlock()
	id := newJobID()
	ch := make(chan agentwire.Envelope, 4)
	a.jmu.Lock()
	a.jobs[id] = ch
	a.jmu.Unlock()
	start := time.Now()
	defer func() {
		a.jmu.Lock()
		delete(a.jobs, id)
		a.jmu.Unlock()
		h.mu.Lock()
		a.inflight--
		h.mu.Unlock()
		if sent {
			h.jobDone(a, c.op, ans.err)
		}
		h.log.Debug("agent job done", "agent", a.name, "op", c.op, "job", id, "duration_ms", time.Since(start).Milliseconds(), "err", ans.err)
	}()

	j := c.job
	j.Op, j.Deadline = c.op, agentDeadline(deadline, time.Now()).UnixMilli()
	if len(c.secrets) > 0 {
		j.Sealed = make(map[string][]byte, len(c.secrets))
		for f, pw := range c.secrets {
			sealed, err := a.sess.Seal(id, f, []byte(pw))
			if err != nil {
				ans.err = errs.E(errs.Internal, "", &directory.OpError{Op: agentwire.DirectoryOp(c.op), Code: directory.CodeInternal, Server: "agent " + a.name,
					Err: fmt.Errorf("seal the %s for agent %s: %w", f, a.name, err)})
				return ans, false, false
			}
			j.Sealed[f] = sealed
		}
	}
	if err := a.write(ctx, agentwire.TypeJob, id, j); err != nil {
		if errors.Is(err, errNotSent) {
			ans.err = h.lost(c.op, a, false)
			return ans, false, true
		}
		// Part of the job may have left: for a write, as good as sent.
		sent = true
		if ctx.Err() != nil {
			ans.err = h.timedOut(ctx, c.op, a, start)
			return ans, sent, false
		}
		ans.err = h.lost(c.op, a, true)
		return ans, sent, true
	}
	sent = true

	admitted := false
	var admitErr error
	for {
		var env agentwire.Envelope
		select {
		case env = <-ch:
		case <-ctx.Done():
			ans.err = h.timedOut(ctx, c.op, a, start)
			return ans, sent, false
		case <-a.done:
			select { // an answer that came just before the end still counts
			case env = <-ch:
			default:
				ans.err = h.lost(c.op, a, true)
				return ans, sent, true
			}
		}
		switch env.Type {
		case agentwire.TypeAdmit:
			var ad agentwire.Admit
			err := agentwire.DecodeBody(env, &ad)
			switch {
			case err != nil:
			case c.admit == nil || admitted:
				err = errors.New("agenthub: admit outside its place in a job")
			default:
				admitted = true
				cand := candidateFromWire(ad.Candidate)
				ans.cand = &cand
				admitErr = c.admit(cand, ad.NotFound.Err())
				err = admitErr
			}
			if werr := a.write(ctx, agentwire.TypeAdmitResult, env.ID, agentwire.AdmitResult{Error: agentwire.EncodeError(err)}); werr != nil {
				h.log.Warn("admit result not sent", "agent", a.name, "job", id, "err", werr)
			}
		case agentwire.TypeResult:
			if err := agentwire.DecodeBody(env, &ans.res); err != nil {
				ans.err = errs.E(errs.Internal, "", &directory.OpError{Op: agentwire.DirectoryOp(c.op), Code: directory.CodeInternal, Server: "agent " + a.name, Err: err})
				return ans, sent, false
			}
			ans.err = ans.res.Error.Err()
			if admitErr != nil {
				// The caller's own refusal, as its admit returned it: the
				// agent stopped there.
				ans.err = admitErr
			}
			return ans, sent, false
		}
	}
}

// timedOut is the answer when a's job did not end in time.
func (h *Hub) timedOut(ctx context.Context, op string, a *agentConn, start time.Time) error {
	why := fmt.Sprintf("agent %s (%s) did not answer the %s job within %s", a.name, a.remote, op, time.Since(start).Round(time.Millisecond))
	if errors.Is(context.Cause(ctx), context.Canceled) {
		why = fmt.Sprintf("the request ended before agent %s (%s) answered the %s job", a.name, a.remote, op)
	}
	h.log.Warn("agent job timed out", "agent", a.name, "op", op, "reason", why)
	return errs.E(errs.Unavailable, msgUnreachable, &directory.OpError{Op: agentwire.DirectoryOp(op), Code: directory.CodeUnavailable,
		Server: "agent " + a.name, Err: fmt.Errorf("%s: %w (%w)", why, ctx.Err(), directory.ErrNotReached)})
}

// lost is the answer when a's connection ended before it answered; sent
// says that the job may have been applied.
func (h *Hub) lost(op string, a *agentConn, sent bool) error {
	why := fmt.Sprintf("agent %s (%s) disconnected before answering the %s job: %s", a.name, a.remote, op, a.why)
	if sent && agentwire.IsWrite(op) {
		return errs.E(errs.Unavailable, msgLostInWrite, &directory.OpError{Op: agentwire.DirectoryOp(op), Code: directory.CodeUnavailable,
			Server: "agent " + a.name, Err: errors.New(why)})
	}
	return errs.E(errs.Unavailable, msgUnreachable, &directory.OpError{Op: agentwire.DirectoryOp(op), Code: directory.CodeUnavailable,
		Server: "agent " + a.name, Err: fmt.Errorf("%s (%w)", why, directory.ErrNotReached)})
}

// jobDone tells the Registry, in the background: it is bookkeeping for the
// agents page and must not add to the person's wait.
func (h *Hub) jobDone(a *agentConn, op string, err error) {
	h.bg.Add(1)
	go func() {
		defer h.bg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), registryTimeout)
		defer cancel()
		if rerr := h.reg.JobDone(ctx, a.id, op, err); rerr != nil {
			h.log.Error("record agent job", "agent", a.name, "err", rerr)
		}
	}()
}

func candidateFromWire(c agentwire.Candidate) directory.Candidate {
	return directory.Candidate{User: c.User, Policy: c.Policy, PolicyErr: c.PolicyErr.Err(), Failures: c.Failures}
}

func userOf(res agentwire.Result) directory.User {
	if res.User == nil {
		return directory.User{}
	}
	return *res.User
}

// Find looks a user up through an agent.
func (h *Hub) Find(ctx context.Context, login string) (directory.User, directory.Result, error) {
	a := h.run(ctx, call{op: agentwire.OpFind, job: agentwire.Job{Login: login}})
	return userOf(a.res), a.result(), a.err
}

// Get re-reads a user by DN through an agent.
func (h *Hub) Get(ctx context.Context, dn string) (directory.User, directory.Result, error) {
	a := h.run(ctx, call{op: agentwire.OpGet, job: agentwire.Job{DN: dn}})
	return userOf(a.res), a.result(), a.err
}

// Search lists users through an agent.
func (h *Hub) Search(ctx context.Context, q string, limit int) ([]directory.User, error) {
	a := h.run(ctx, call{op: agentwire.OpSearch, job: agentwire.Job{Query: q, Limit: limit}})
	return a.res.Users, a.err
}

// Expiring lists the accounts whose password expires before until through
// an agent (one message: about 2,000 accounts at most).
func (h *Hub) Expiring(ctx context.Context, groupDN string, until time.Time) ([]directory.User, error) {
	a := h.run(ctx, call{op: agentwire.OpExpiring, job: agentwire.Job{GroupDN: groupDN, Until: until.UnixMilli()}})
	return a.res.Users, a.err
}

// InScope calls f with every account in scope, listed by an agent in one
// message (about 4,000 accounts at most: the agent sends only the ID, DN,
// login, name and mail address of each).
func (h *Hub) InScope(ctx context.Context, groupDN string, f func(directory.User) error) error {
	a := h.run(ctx, call{op: agentwire.OpInScope, job: agentwire.Job{GroupDN: groupDN}})
	if a.err != nil {
		return a.err
	}
	for _, u := range a.res.Users {
		if err := f(u); err != nil {
			return err
		}
	}
	return nil
}

// MemberOf asks an agent whether u is in the group.
func (h *Hub) MemberOf(ctx context.Context, u directory.User, groupDN string) (bool, error) {
	a := h.run(ctx, call{op: agentwire.OpMemberOf, job: agentwire.Job{User: &u, GroupDN: groupDN}})
	return a.res.Member, a.err
}

// Policy reads u's password policy through an agent.
func (h *Hub) Policy(ctx context.Context, u directory.User) (directory.Policy, error) {
	a := h.run(ctx, call{op: agentwire.OpPolicy, job: agentwire.Job{User: &u}})
	if a.res.Policy == nil {
		return directory.Policy{}, a.err
	}
	return *a.res.Policy, a.err
}

// ResetUser has an agent reset u's password (sealed to that agent).
func (h *Hub) ResetUser(ctx context.Context, u directory.User, newPassword string, opt directory.ResetOptions) (directory.User, directory.Result, error) {
	a := h.run(ctx, call{op: agentwire.OpResetUser, job: agentwire.Job{User: &u, Reset: opt},
		secrets: map[string]string{agentwire.FieldPassword: newPassword}})
	return userOf(a.res), a.result(), a.err
}

// ResetLogin has an agent find login and reset its password.
func (h *Hub) ResetLogin(ctx context.Context, login, newPassword string, opt directory.ResetOptions) (directory.User, directory.Result, error) {
	a := h.run(ctx, call{op: agentwire.OpResetLogin, job: agentwire.Job{Login: login, Reset: opt},
		secrets: map[string]string{agentwire.FieldPassword: newPassword}})
	return userOf(a.res), a.result(), a.err
}

// Unlock has an agent end u's lockout.
func (h *Hub) Unlock(ctx context.Context, u directory.User) (directory.Result, error) {
	a := h.run(ctx, call{op: agentwire.OpUnlock, job: agentwire.Job{User: &u}})
	return a.result(), a.err
}

// UnlockLogin has an agent find login and end its lockout.
func (h *Hub) UnlockLogin(ctx context.Context, login string) (directory.User, directory.Result, error) {
	a := h.run(ctx, call{op: agentwire.OpUnlockLogin, job: agentwire.Job{Login: login}})
	return userOf(a.res), a.result(), a.err
}

// candidateOf is the Candidate of a change or authentication: the agent's,
// else the one the caller's admit saw.
func candidateOf(a answer) directory.Candidate {
	if a.res.Candidate != nil {
		return candidateFromWire(*a.res.Candidate)
	}
	if a.cand != nil {
		return *a.cand
	}
	return directory.Candidate{}
}

// ChangeLogin has an agent resolve login, runs admit here when the agent
// asks, and lets the agent change the password with the current one.
func (h *Hub) ChangeLogin(ctx context.Context, login, oldPassword, newPassword string, admit directory.Admit) (directory.Candidate, directory.Result, error) {
	a := h.run(ctx, call{op: agentwire.OpChangeLogin, job: agentwire.Job{Login: login}, admit: admit,
		secrets: map[string]string{agentwire.FieldOldPassword: oldPassword, agentwire.FieldPassword: newPassword}})
	return candidateOf(a), a.result(), a.err
}

// AuthenticateLogin has an agent resolve login, runs admit here when the
// agent asks, and lets the agent check the person's password.
func (h *Hub) AuthenticateLogin(ctx context.Context, login, password string, admit directory.Admit) (directory.Candidate, directory.Result, error) {
	a := h.run(ctx, call{op: agentwire.OpAuthenticateLogin, job: agentwire.Job{Login: login}, admit: admit,
		secrets: map[string]string{agentwire.FieldPassword: password}})
	return candidateOf(a), a.result(), a.err
}

// Test runs the connection checklist on an agent; its first line names the
// agent. With no agent connected the checklist's one failed line says so.
func (h *Hub) Test(ctx context.Context, login string) directory.Checklist {
	a := h.run(ctx, call{op: agentwire.OpTest, job: agentwire.Job{Login: login}})
	if a.agent == "" {
		return directory.Checklist{Items: []directory.Check{checkLine(errs.Textf("Writeback agent"), false,
			errs.Textf("No writeback agent is connected. Start `writeback-agent run` on a server inside your network; the Writeback agents page lists the enrolled agents."),
			errText(a.err))}}
	}
	ran := errs.Textf("Agent %s (%s) ran these checks.", a.agent, a.host)
	if a.host == "" {
		ran = errs.Textf("Agent %s (host unknown) ran these checks.", a.agent)
	}
	l := directory.Checklist{Items: []directory.Check{checkLine(errs.Textf("Writeback agent"), true, ran, "")}}
	switch {
	case a.err != nil:
		l.Items = append(l.Items, checkLine(errs.Textf("Directory"), false, errs.TextOf(a.err), a.err.Error()))
	case a.res.Checklist == nil:
		l.Items = append(l.Items, checkLine(errs.Textf("Directory"), false, errs.Textf("The agent sent no checklist."), ""))
	default:
		l.Items = append(l.Items, a.res.Checklist.Items...)
	}
	l.OK = true
	for _, c := range l.Items {
		l.OK = l.OK && c.OK
	}
	return l
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// checkLine is a checklist line of the hub's own, its detail kept as a
// Text for the reader's language.
func checkLine(name errs.Text, ok bool, detail errs.Text, diagnostic string) directory.Check {
	return directory.Check{Name: name.String(), Title: name, OK: ok, Detail: detail.String(), Text: detail, Diagnostic: diagnostic}
}
