package connector_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/writeback/writeback/services/agentwire"
	"github.com/writeback/writeback/services/connector"
	"github.com/writeback/writeback/services/connector/conntest"
	"github.com/writeback/writeback/services/directory"
	"github.com/writeback/writeback/services/errs"
)

// dir is the agent's directory for these tests: only ResetLogin and Find
// do anything, and every call is counted.
type dir struct {
	directory.Directory // nil: other methods are not called here
	calls               atomic.Int32
	lastPw              atomic.Value
	lastDeadline        atomic.Value
}

func (d *dir) ResetLogin(ctx context.Context, login, pw string, opt directory.ResetOptions) (directory.User, directory.Result, error) {
	d.calls.Add(1)
	d.lastPw.Store(pw)
	dl, _ := ctx.Deadline()
	d.lastDeadline.Store(dl)
	if err := ctx.Err(); err != nil {
		return directory.User{}, directory.Result{}, err
	}
	return directory.User{Login: login, DN: "uid=" + login + ",ou=people,dc=writeback,dc=test"}, directory.Result{Server: "ldaps://dc1"}, nil
}

func (d *dir) Find(ctx context.Context, login string) (directory.User, directory.Result, error) {
	d.calls.Add(1)
	return directory.User{Login: login}, directory.Result{Server: "ldaps://dc1"}, nil
}

// testPortalKey signs what the hand-driven portal sends.
var testPortalKey, _ = agentwire.NewPortalKey(bytes.Repeat([]byte{9}, 32))

func testPortalPub() []byte { return []byte(testPortalKey.Public().(ed25519.PublicKey)) }

// portal is the portal's end, driven by hand.
type portal struct {
	t     *testing.T
	end   *conntest.End
	ident *agentwire.Identity
	now   time.Time          // the portal's clock at the challenge
	sess  *agentwire.Session // the connection's, from the welcome on
	// sent is every message the portal wrote, as a proxy would record it.
	sent [][]byte
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// start runs an agent over a pipe and completes the handshake with the
// portal's clock at portalNow.
func start(t *testing.T, cfg connector.Config, portalNow time.Time) (*portal, chan error) {
	t.Helper()
	ident, _ := agentwire.NewIdentity()
	cfg.AgentID, cfg.Identity = "id-1", ident
	if cfg.PortalKey == nil {
		cfg.PortalKey = testPortalPub()
	}
	if cfg.Status == nil {
		cfg.Status = func(context.Context) agentwire.Status {
			return agentwire.Status{PasswordWriteback: true, Configured: true}
		}
	}
	p, ag := conntest.Pipe()
	errc := make(chan error, 1)
	go func() { errc <- connector.New(cfg).Serve(ctxT(t), ag) }()
	pt := &portal{t: t, end: p, ident: ident, now: portalNow}
	nonce := bytes.Repeat([]byte{3}, 32)
	pt.send(agentwire.TypeChallenge, "", agentwire.Challenge{Nonce: nonce, Now: portalNow.UnixMilli()})
	h := pt.hello(nonce)
	sess, enc, err := agentwire.NewPortalSession(ident.Public(), "id-1", nonce, h.Nonce)
	if err != nil {
		t.Fatal(err)
	}
	pt.send(agentwire.TypeWelcome, "", agentwire.Welcome{Name: "agent-1", Nonce: h.Nonce, Session: enc, Confirm: sess.Confirm()})
	pt.sess = sess
	return pt, errc
}

// hello reads the agent's answer to the challenge with nonce.
func (p *portal) hello(nonce []byte) agentwire.Hello {
	p.t.Helper()
	env := p.read()
	var h agentwire.Hello
	if env.Type != agentwire.TypeHello || agentwire.DecodeBody(env, &h) != nil {
		p.t.Fatalf("want hello, got %+v", env)
	}
	if err := agentwire.VerifyConnect("id-1", nonce, p.ident.Public(), h.Proof); err != nil || h.Protocol != agentwire.Version || len(h.Nonce) != 32 {
		p.t.Fatalf("hello: proof %v, protocol %d, nonce %x", err, h.Protocol, h.Nonce)
	}
	return h
}

// send sends one message: signed by the portal until the welcome, with
// the session's MAC after it.
func (p *portal) send(typ, id string, body any) {
	p.t.Helper()
	var b []byte
	var err error
	if p.sess == nil {
		b, err = agentwire.EncodeSigned(testPortalKey, "id-1", typ, id, body)
	} else {
		b, err = p.sess.EncodeToAgent(typ, id, body)
	}
	if err != nil {
		p.t.Fatal(err)
	}
	p.sent = append(p.sent, b)
	if err := p.end.Write(ctxT(p.t), b); err != nil {
		p.t.Fatal(err)
	}
}

func (p *portal) read() agentwire.Envelope {
	p.t.Helper()
	b, err := p.end.Read(ctxT(p.t))
	if err != nil {
		p.t.Fatal(err)
	}
	env, err := agentwire.Decode(b)
	if err != nil {
		p.t.Fatal(err)
	}
	if p.sess != nil {
		if err := p.sess.VerifyFromAgent(env); err != nil {
			p.t.Fatalf("the agent's %s does not carry the session's MAC: %v", env.Type, err)
		}
	}
	return env
}

// job sends a raw job body and returns the agent's result.
func (p *portal) job(id string, body any) agentwire.Result {
	p.t.Helper()
	p.send(agentwire.TypeJob, id, body)
	for {
		env := p.read()
		if env.Type == agentwire.TypeResult && env.ID == id {
			var r agentwire.Result
			if err := agentwire.DecodeBody(env, &r); err != nil {
				p.t.Fatal(err)
			}
			return r
		}
	}
}

func (p *portal) seal(id, field, pw string) []byte {
	b, err := p.sess.Seal(id, field, []byte(pw))
	if err != nil {
		p.t.Fatal(err)
	}
	return b
}

func wantRefused(t *testing.T, r agentwire.Result, reason string) {
	t.Helper()
	var re *agentwire.RefusedError
	if err := r.Error.Err(); !errors.As(err, &re) || re.Reason != reason {
		t.Fatalf("want refusal %q, got %+v", reason, r.Error)
	}
}

func cfgWith(d *dir) connector.Config {
	return connector.Config{Directory: func(context.Context) (directory.Directory, []string, error) {
		return d, []string{"ou=people,dc=writeback,dc=test"}, nil
	}}
}

func TestLateJobsDropped(t *testing.T) {
	skew := 4 * time.Minute // within agentwire.MaxClockSkew
	for _, tc := range []struct {
		name     string
		skew     time.Duration // the portal's clock minus the agent's
		deadline time.Duration // after the portal's now
		late     bool
	}{
		{"in time", 0, 5 * time.Second, false},
		{"passed", 0, -time.Second, true},
		// The agent judges by the portal's clock: a portal minutes ahead
		// sends deadlines minutes ahead of the agent's clock, in time.
		{"portal clock ahead, in time", skew, 5 * time.Second, false},
		{"portal clock behind, passed", -skew, -time.Second, true},
		{"portal clock behind, in time", -skew, 5 * time.Second, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := &dir{}
			now := time.Now().Add(tc.skew)
			p, _ := start(t, cfgWith(d), now)
			r := p.job("j1", agentwire.Job{Op: agentwire.OpResetLogin, Login: "ann", Deadline: now.Add(tc.deadline).UnixMilli(),
				Sealed: map[string][]byte{agentwire.FieldPassword: p.seal("j1", agentwire.FieldPassword, "Winter-2026!x")}})
			if tc.late {
				wantRefused(t, r, agentwire.RefusedLate)
				if d.calls.Load() != 0 {
					t.Fatal("a late job reached the directory")
				}
				if errs.MessageOf(r.Error.Err()) != "Your organisation's directory could not be reached. Nothing was changed." {
					t.Fatalf("message %q", r.Error.Message)
				}
				return
			}
			if r.Error != nil || d.calls.Load() != 1 || d.lastPw.Load() != "Winter-2026!x" {
				t.Fatalf("result %+v, calls %d", r.Error, d.calls.Load())
			}
			// The job runs under its deadline, translated to the agent's clock.
			if dl := d.lastDeadline.Load().(time.Time); time.Until(dl) < 3*time.Second || time.Until(dl) > 6*time.Second {
				t.Fatalf("the job ran with %s left, want about 5 s", time.Until(dl))
			}
		})
	}
}

func TestPasswordsMustBeSealed(t *testing.T) {
	d := &dir{}
	now := time.Now()
	p, _ := start(t, cfgWith(d), now)
	dl := now.Add(5 * time.Second).UnixMilli()
	other, _ := agentwire.NewIdentity()
	otherSess, _, _ := agentwire.NewPortalSession(other.Public(), "id-1", bytes.Repeat([]byte{3}, 32), bytes.Repeat([]byte{4}, 32))
	otherSealed, _ := otherSess.Seal("j3", agentwire.FieldPassword, []byte("Winter-2026!x"))
	for id, body := range map[string]any{
		"j1": agentwire.Job{Op: agentwire.OpResetLogin, Login: "ann", Deadline: dl},
		// A password in clear beside the job's fields is refused, not ignored.
		"j2": map[string]any{"op": agentwire.OpResetLogin, "login": "ann", "deadline": dl, "new_password": "Winter-2026!x",
			"sealed": map[string][]byte{agentwire.FieldPassword: p.seal("j2", agentwire.FieldPassword, "Winter-2026!x")}},
		// Sealed to another agent, or for another job or field.
		"j3": agentwire.Job{Op: agentwire.OpResetLogin, Login: "ann", Deadline: dl, Sealed: map[string][]byte{agentwire.FieldPassword: otherSealed}},
		"j4": agentwire.Job{Op: agentwire.OpResetLogin, Login: "ann", Deadline: dl, Sealed: map[string][]byte{agentwire.FieldPassword: p.seal("j1", agentwire.FieldPassword, "Winter-2026!x")}},
		"j5": agentwire.Job{Op: agentwire.OpChangeLogin, Login: "ann", Deadline: dl, Sealed: map[string][]byte{agentwire.FieldPassword: p.seal("j5", agentwire.FieldPassword, "Winter-2026!x")}},
	} {
		wantRefused(t, p.job(id, body), agentwire.RefusedNotSealed)
	}
	if d.calls.Load() != 0 {
		t.Fatalf("the directory was called %d times", d.calls.Load())
	}
}

func TestWritebackSwitchReadAtEachJob(t *testing.T) {
	d := &dir{}
	var on atomic.Bool
	on.Store(true)
	cfg := cfgWith(d)
	cfg.Status = func(context.Context) agentwire.Status {
		return agentwire.Status{PasswordWriteback: on.Load(), Configured: true}
	}
	now := time.Now()
	p, _ := start(t, cfg, now)
	reset := func(id string) agentwire.Result {
		return p.job(id, agentwire.Job{Op: agentwire.OpResetLogin, Login: "ann", Deadline: time.Now().Add(5 * time.Second).UnixMilli(),
			Sealed: map[string][]byte{agentwire.FieldPassword: p.seal(id, agentwire.FieldPassword, "Winter-2026!x")}})
	}
	if r := reset("j1"); r.Error != nil {
		t.Fatal(r.Error)
	}
	on.Store(false)
	wantRefused(t, reset("j2"), agentwire.RefusedWritebackOff)
	if r := p.job("j3", agentwire.Job{Op: agentwire.OpFind, Login: "ann", Deadline: time.Now().Add(5 * time.Second).UnixMilli()}); r.Error != nil {
		t.Fatalf("a read with the switch off: %+v", r.Error)
	}
	if d.calls.Load() != 2 {
		t.Fatalf("directory calls %d, want the first reset and the find", d.calls.Load())
	}
}

func TestNotConfigured(t *testing.T) {
	cfg := connector.Config{Directory: func(context.Context) (directory.Directory, []string, error) {
		return nil, nil, errors.New("no directory connection saved")
	}}
	p, _ := start(t, cfg, time.Now())
	wantRefused(t, p.job("j1", agentwire.Job{Op: agentwire.OpFind, Login: "ann", Deadline: time.Now().Add(5 * time.Second).UnixMilli()}), agentwire.RefusedNotConfigured)
	r := p.job("j2", agentwire.Job{Op: agentwire.OpTest, Deadline: time.Now().Add(5 * time.Second).UnixMilli()})
	if r.Checklist == nil || r.Checklist.OK || len(r.Checklist.Items) != 1 {
		t.Fatalf("test without a directory: %+v", r)
	}
}

// logBuf collects log lines.
type logBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestRunBacksOffAndStopsWhenRevoked(t *testing.T) {
	logs := &logBuf{}
	ident, _ := agentwire.NewIdentity()
	cfg := connector.Config{AgentID: "id-1", Identity: ident, PortalKey: testPortalPub(), Log: slog.New(slog.NewJSONHandler(logs, nil)),
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 80 * time.Millisecond,
		Status: func(context.Context) agentwire.Status { return agentwire.Status{} }}
	var mu sync.Mutex
	var dials []time.Time
	const failures = 5
	done := make(chan error, 1)
	go func() {
		done <- connector.New(cfg).Run(ctxT(t), func(ctx context.Context) (connector.Conn, error) {
			mu.Lock()
			dials = append(dials, time.Now())
			n := len(dials)
			mu.Unlock()
			if n <= failures {
				return nil, errors.New("dial tcp 192.0.2.1:443: connect: connection refused")
			}
			// Then a portal that revokes the agent at once.
			p, ag := conntest.Pipe()
			go func() {
				b, _ := agentwire.EncodeSigned(testPortalKey, "id-1", agentwire.TypeChallenge, "", agentwire.Challenge{Nonce: make([]byte, 32), Now: time.Now().UnixMilli()})
				p.Write(ctx, b)
				p.Read(ctx)
				p.Close(agentwire.CloseRevoked, "revoked")
			}()
			return ag, nil
		})
	}()
	var err error
	select {
	case err = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not stop")
	}
	if !errors.Is(err, connector.ErrRevoked) {
		t.Fatalf("Run = %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(dials) != failures+1 {
		t.Fatalf("%d dials, want %d", len(dials), failures+1)
	}
	// Waits double from 20 ms to the 80 ms cap, each between half and all of it.
	want := []time.Duration{20, 40, 80, 80, 80}
	for i := 1; i < len(dials); i++ {
		gap, w := dials[i].Sub(dials[i-1]), want[i-1]*time.Millisecond
		if gap < w/2 || gap > w+500*time.Millisecond {
			t.Errorf("wait %d: %s, want between %s and %s", i, gap, w/2, w)
		}
	}
	out := logs.String()
	if strings.Count(out, "the portal is unreachable") != failures || !strings.Contains(out, "connection refused") || !strings.Contains(out, "revoked this agent") {
		t.Fatalf("log lines:\n%s", out)
	}
}

func TestJobFieldsMatchTheWire(t *testing.T) {
	// The agent's list of known job fields must follow agentwire.Job: a
	// field added there and not here would be refused as unknown.
	b, _ := json.Marshal(agentwire.Job{Op: "x", Deadline: 1, Login: "x", DN: "x", User: &directory.User{}, GroupDN: "x", Query: "x", Limit: 1,
		Sealed: map[string][]byte{"x": {1}}})
	var m map[string]json.RawMessage
	json.Unmarshal(b, &m)
	now := time.Now()
	p, _ := start(t, cfgWith(&dir{}), now)
	m["op"], _ = json.Marshal(agentwire.OpFind)
	m["deadline"], _ = json.Marshal(now.Add(5 * time.Second).UnixMilli())
	delete(m, "sealed")
	delete(m, "user")
	r := p.job("j1", m)
	if r.Error != nil {
		t.Fatalf("a job with every field refused: %+v", r.Error)
	}
}

// TestSilentPortalDropped: a portal that stops answering (packets dropped
// on the way) is noticed at the next heartbeat's ping, and the connection
// ends so that Run dials again.
func TestSilentPortalDropped(t *testing.T) {
	cfg := cfgWith(&dir{})
	cfg.HeartbeatEvery = 30 * time.Millisecond
	p, errc := start(t, cfg, time.Now())
	p.read() // the first heartbeat: the portal was there
	p.end.Freeze()
	select {
	case err := <-errc:
		if err == nil {
			t.Fatal("Serve returned nil")
		}
	case <-time.After(2 * time.Second):
		t.Fatal("the agent did not notice the silent portal")
	}
}

// TestOnlyThePortalsSignedJobsRun: a job without this connection's MAC
// from the enrolled portal (a proxy between them, another portal, or one
// recorded on another connection) is refused before the directory is
// asked, and a job sent a second time is refused too.
func TestOnlyThePortalsSignedJobsRun(t *testing.T) {
	d := &dir{}
	p, _ := start(t, cfgWith(d), time.Now())
	job := agentwire.Job{Op: agentwire.OpResetLogin, Login: "ann", Deadline: time.Now().Add(5 * time.Second).UnixMilli(),
		Sealed: map[string][]byte{agentwire.FieldPassword: p.seal("j1", agentwire.FieldPassword, "Winter-2026!x")}}
	// The same agent's key, another connection's nonces: what a proxy
	// recorded earlier.
	earlier, _, _ := agentwire.NewPortalSession(p.ident.Public(), "id-1", bytes.Repeat([]byte{5}, 32), bytes.Repeat([]byte{6}, 32))
	for name, b := range map[string]func() []byte{
		"unsigned": func() []byte { b, _ := agentwire.Encode(agentwire.TypeJob, "forged-1", job); return b },
		"signed by the portal's key, no MAC": func() []byte {
			b, _ := agentwire.EncodeSigned(testPortalKey, "id-1", agentwire.TypeJob, "forged-2", job)
			return b
		},
		"another connection's MAC": func() []byte {
			b, _ := earlier.EncodeToAgent(agentwire.TypeJob, "forged-3", job)
			return b
		},
	} {
		msg := b()
		env, _ := agentwire.Decode(msg)
		if err := p.end.Write(ctxT(t), msg); err != nil {
			t.Fatal(err)
		}
		for {
			r := p.read()
			if r.Type == agentwire.TypeResult && r.ID == env.ID {
				var res agentwire.Result
				if err := agentwire.DecodeBody(r, &res); err != nil {
					t.Fatal(err)
				}
				wantRefused(t, res, agentwire.RefusedNotSigned)
				break
			}
		}
		if d.calls.Load() != 0 {
			t.Fatalf("%s: the job reached the directory", name)
		}
	}
	if r := p.job("j1", job); r.Error != nil {
		t.Fatalf("the portal's own job: %+v", r.Error)
	}
	wantRefused(t, p.job("j1", job), agentwire.RefusedReplayed)
	if d.calls.Load() != 1 {
		t.Fatalf("directory calls %d, want the signed job once", d.calls.Load())
	}
}

// TestHandshakeNeedsThePortalsClock: the challenge must be signed by the
// enrolled portal and its clock near the agent's; without a portal key the
// agent does not start.
func TestHandshakeNeedsThePortalsClock(t *testing.T) {
	ident, _ := agentwire.NewIdentity()
	cfg := cfgWith(&dir{})
	cfg.AgentID, cfg.Identity, cfg.PortalKey = "id-1", ident, testPortalPub()
	cfg.Status = func(context.Context) agentwire.Status { return agentwire.Status{} }
	other, _ := agentwire.NewPortalKey(bytes.Repeat([]byte{8}, 32))
	for name, challenge := range map[string]func() []byte{
		"unsigned": func() []byte {
			b, _ := agentwire.Encode(agentwire.TypeChallenge, "", agentwire.Challenge{Nonce: make([]byte, 32), Now: time.Now().UnixMilli()})
			return b
		},
		"another portal": func() []byte {
			b, _ := agentwire.EncodeSigned(other, "id-1", agentwire.TypeChallenge, "", agentwire.Challenge{Nonce: make([]byte, 32), Now: time.Now().UnixMilli()})
			return b
		},
		"clock far away": func() []byte {
			b, _ := agentwire.EncodeSigned(testPortalKey, "id-1", agentwire.TypeChallenge, "",
				agentwire.Challenge{Nonce: make([]byte, 32), Now: time.Now().Add(agentwire.MaxClockSkew + time.Minute).UnixMilli()})
			return b
		},
	} {
		p, ag := conntest.Pipe()
		errc := make(chan error, 1)
		go func() { errc <- connector.New(cfg).Serve(ctxT(t), ag) }()
		if err := p.Write(ctxT(t), challenge()); err != nil {
			t.Fatal(err)
		}
		if err := <-errc; err == nil || errors.Is(err, connector.ErrRevoked) {
			t.Errorf("%s: Serve = %v, want a handshake failure", name, err)
		}
	}
	cfg.PortalKey = nil
	_, ag := conntest.Pipe()
	if err := connector.New(cfg).Serve(ctxT(t), ag); !errors.Is(err, connector.ErrNoPortalKey) {
		t.Fatalf("without a portal key: %v", err)
	}
}

// TestWelcomeMustBeThePortalsForThisConnection: the welcome that carries
// the session is refused unless the enrolled portal signed it for the
// nonce of this hello, and its session opens with this agent's key.
func TestWelcomeMustBeThePortalsForThisConnection(t *testing.T) {
	other, _ := agentwire.NewPortalKey(bytes.Repeat([]byte{8}, 32))
	stranger, _ := agentwire.NewIdentity()
	for name, welcome := range map[string]func(p *portal, pn []byte, h agentwire.Hello) []byte{
		"unsigned": func(p *portal, pn []byte, h agentwire.Hello) []byte {
			_, enc, _ := agentwire.NewPortalSession(p.ident.Public(), "id-1", pn, h.Nonce)
			b, _ := agentwire.Encode(agentwire.TypeWelcome, "", agentwire.Welcome{Name: "x", Nonce: h.Nonce, Session: enc})
			return b
		},
		"another portal": func(p *portal, pn []byte, h agentwire.Hello) []byte {
			_, enc, _ := agentwire.NewPortalSession(p.ident.Public(), "id-1", pn, h.Nonce)
			b, _ := agentwire.EncodeSigned(other, "id-1", agentwire.TypeWelcome, "", agentwire.Welcome{Name: "x", Nonce: h.Nonce, Session: enc})
			return b
		},
		"another hello's nonce (recorded)": func(p *portal, pn []byte, h agentwire.Hello) []byte {
			old := bytes.Repeat([]byte{6}, 32)
			_, enc, _ := agentwire.NewPortalSession(p.ident.Public(), "id-1", pn, old)
			b, _ := agentwire.EncodeSigned(testPortalKey, "id-1", agentwire.TypeWelcome, "", agentwire.Welcome{Name: "x", Nonce: old, Session: enc})
			return b
		},
		"a session for another agent's key": func(p *portal, pn []byte, h agentwire.Hello) []byte {
			s, enc, _ := agentwire.NewPortalSession(stranger.Public(), "id-1", pn, h.Nonce)
			b, _ := agentwire.EncodeSigned(testPortalKey, "id-1", agentwire.TypeWelcome, "", agentwire.Welcome{Name: "x", Nonce: h.Nonce, Session: enc, Confirm: s.Confirm()})
			return b
		},
		"no key confirmation": func(p *portal, pn []byte, h agentwire.Hello) []byte {
			_, enc, _ := agentwire.NewPortalSession(p.ident.Public(), "id-1", pn, h.Nonce)
			b, _ := agentwire.EncodeSigned(testPortalKey, "id-1", agentwire.TypeWelcome, "", agentwire.Welcome{Name: "x", Nonce: h.Nonce, Session: enc})
			return b
		},
	} {
		t.Run(name, func(t *testing.T) {
			d := &dir{}
			ident, _ := agentwire.NewIdentity()
			cfg := cfgWith(d)
			cfg.AgentID, cfg.Identity, cfg.PortalKey = "id-1", ident, testPortalPub()
			cfg.Status = func(context.Context) agentwire.Status { return agentwire.Status{} }
			end, ag := conntest.Pipe()
			errc := make(chan error, 1)
			go func() { errc <- connector.New(cfg).Serve(ctxT(t), ag) }()
			p := &portal{t: t, end: end, ident: ident}
			pn := bytes.Repeat([]byte{3}, 32)
			p.send(agentwire.TypeChallenge, "", agentwire.Challenge{Nonce: pn, Now: time.Now().UnixMilli()})
			h := p.hello(pn)
			if err := end.Write(ctxT(t), welcome(p, pn, h)); err != nil {
				t.Fatal(err)
			}
			if err := <-errc; err == nil || !strings.Contains(err.Error(), "welcome") {
				t.Fatalf("Serve = %v, want the welcome refused", err)
			}
		})
	}
}

// TestRecordedConnectionReplayedToARestartedAgent: a proxy that recorded a
// whole connection (challenge, welcome, job) and plays it to the agent
// after a restart (which forgot the job IDs it saw) gets no job run: the
// restarted agent's hello has a new nonce, so the recorded welcome is not
// for it.
func TestRecordedConnectionReplayedToARestartedAgent(t *testing.T) {
	d := &dir{}
	now := time.Now()
	p, _ := start(t, cfgWith(d), now)
	job := agentwire.Job{Op: agentwire.OpResetLogin, Login: "ann", Deadline: now.Add(5 * time.Second).UnixMilli(),
		Sealed: map[string][]byte{agentwire.FieldPassword: p.seal("j1", agentwire.FieldPassword, "Winter-2026!x")}}
	if r := p.job("j1", job); r.Error != nil {
		t.Fatalf("the first connection's job: %+v", r.Error)
	}
	recorded := p.sent // challenge, welcome, job
	if len(recorded) != 3 {
		t.Fatalf("recorded %d messages", len(recorded))
	}

	// A new agent process with the same identity and an empty memory.
	cfg := cfgWith(d)
	cfg.AgentID, cfg.Identity, cfg.PortalKey = "id-1", p.ident, testPortalPub()
	cfg.Status = func(context.Context) agentwire.Status {
		return agentwire.Status{PasswordWriteback: true, Configured: true}
	}
	end, ag := conntest.Pipe()
	errc := make(chan error, 1)
	go func() { errc <- connector.New(cfg).Serve(ctxT(t), ag) }()
	end.Write(ctxT(t), recorded[0])
	(&portal{t: t, end: end, ident: p.ident}).hello(bytes.Repeat([]byte{3}, 32))
	end.Write(ctxT(t), recorded[1])
	end.Write(ctxT(t), recorded[2])
	if err := <-errc; err == nil || !strings.Contains(err.Error(), "welcome is not for this connection") {
		t.Fatalf("Serve = %v, want the recorded welcome refused", err)
	}
	if n := d.calls.Load(); n != 1 {
		t.Fatalf("directory calls %d, want the first connection's job only", n)
	}
}
