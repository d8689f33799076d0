package agentwire_test

import (
	"bytes"
	"testing"

	"github.com/writeback/writeback/services/agentwire"
)

// sessionPair is one connection's session on both ends.
func sessionPair(t *testing.T, id *agentwire.Identity, agentID string, pn, an []byte) (portal, agent *agentwire.Session) {
	t.Helper()
	portal, enc, err := agentwire.NewPortalSession(id.Public(), agentID, pn, an)
	if err != nil {
		t.Fatal(err)
	}
	agent, err = id.OpenSession(agentID, pn, an, enc)
	if err != nil {
		t.Fatal(err)
	}
	return portal, agent
}

func nonce(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }

func TestSessionSealOpensOnlyOnItsConnectionJobAndField(t *testing.T) {
	id, other := newIdentity(t), newIdentity(t)
	portal, agent := sessionPair(t, id, "agent-1", nonce(1), nonce(2))
	sealed, err := portal.Seal("job-1", agentwire.FieldPassword, []byte("Winter-2026!x"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte("Winter")) {
		t.Fatal("the sealed value holds the password in clear")
	}
	if pt, err := agent.Open("job-1", agentwire.FieldPassword, sealed); err != nil || string(pt) != "Winter-2026!x" {
		t.Fatalf("Open = %q, %v", pt, err)
	}
	again, err := portal.Seal("job-1", agentwire.FieldPassword, []byte("Winter-2026!x"))
	if err != nil || bytes.Equal(again, sealed) {
		t.Fatalf("two seals of one value are alike (nonce reused?): %v", err)
	}

	// The same agent's next connection (fresh nonces), another agent.
	_, nextConn := sessionPair(t, id, "agent-1", nonce(3), nonce(4))
	_, otherAgent := sessionPair(t, other, "agent-1", nonce(1), nonce(2))
	for name, open := range map[string]func() ([]byte, error){
		"another job":        func() ([]byte, error) { return agent.Open("job-2", agentwire.FieldPassword, sealed) },
		"another field":      func() ([]byte, error) { return agent.Open("job-1", agentwire.FieldOldPassword, sealed) },
		"another connection": func() ([]byte, error) { return nextConn.Open("job-1", agentwire.FieldPassword, sealed) },
		"another agent":      func() ([]byte, error) { return otherAgent.Open("job-1", agentwire.FieldPassword, sealed) },
		"too short":          func() ([]byte, error) { return agent.Open("job-1", agentwire.FieldPassword, sealed[:10]) },
		"tampered": func() ([]byte, error) {
			b := bytes.Clone(sealed)
			b[len(b)-1] ^= 1
			return agent.Open("job-1", agentwire.FieldPassword, b)
		},
	} {
		if _, err := open(); err == nil {
			t.Errorf("%s: Open succeeded", name)
		}
	}
}

func TestSessionOpensOnlyForTheNoncesItWasMadeFor(t *testing.T) {
	id, other := newIdentity(t), newIdentity(t)
	portal, enc, err := agentwire.NewPortalSession(id.Public(), "agent-1", nonce(1), nonce(2))
	if err != nil {
		t.Fatal(err)
	}
	sealed, _ := portal.Seal("j", agentwire.FieldPassword, []byte("x"))
	for name, tc := range map[string]struct {
		id      *agentwire.Identity
		agentID string
		pn, an  []byte
	}{
		"another agent nonce":  {id, "agent-1", nonce(1), nonce(9)},
		"another portal nonce": {id, "agent-1", nonce(9), nonce(2)},
		"another agent ID":     {id, "agent-2", nonce(1), nonce(2)},
		"another key":          {other, "agent-1", nonce(1), nonce(2)},
	} {
		s, err := tc.id.OpenSession(tc.agentID, tc.pn, tc.an, enc)
		if err != nil {
			continue // refused outright: fine
		}
		if _, err := s.Open("j", agentwire.FieldPassword, sealed); err == nil {
			t.Errorf("%s: a session for other parameters opens the password", name)
		}
	}
	for _, short := range [][]byte{nil, make([]byte, agentwire.MinNonce-1)} {
		if _, _, err := agentwire.NewPortalSession(id.Public(), "agent-1", nonce(1), short); err == nil {
			t.Errorf("NewPortalSession took an agent nonce of %d bytes", len(short))
		}
		if _, err := id.OpenSession("agent-1", short, nonce(2), enc); err == nil {
			t.Errorf("OpenSession took a portal nonce of %d bytes", len(short))
		}
	}
	if _, err := id.OpenSession("agent-1", nonce(1), nonce(2), []byte("garbage")); err == nil {
		t.Error("OpenSession took a garbage encapsulation")
	}
}

func TestSessionMACsEachDirectionAndMessage(t *testing.T) {
	id := newIdentity(t)
	portal, agent := sessionPair(t, id, "agent-1", nonce(1), nonce(2))
	_, nextConn := sessionPair(t, id, "agent-1", nonce(3), nonce(4))
	decode := func(b []byte, err error) agentwire.Envelope {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		e, err := agentwire.Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	job := decode(portal.EncodeToAgent(agentwire.TypeJob, "job-1", agentwire.Job{Op: agentwire.OpUnlockLogin, Login: "ann"}))
	if err := agent.VerifyFromPortal(job); err != nil {
		t.Fatalf("the portal's job does not verify on the agent: %v", err)
	}
	res := decode(agent.EncodeToPortal(agentwire.TypeResult, "job-1", agentwire.Result{Server: "ldaps://dc1"}))
	if err := portal.VerifyFromAgent(res); err != nil {
		t.Fatalf("the agent's result does not verify on the portal: %v", err)
	}

	changed := func(e agentwire.Envelope, f func(*agentwire.Envelope)) agentwire.Envelope {
		f(&e)
		return e
	}
	for name, check := range map[string]func() error{
		"job on another connection":    func() error { return nextConn.VerifyFromPortal(job) },
		"job sent back as the agent's": func() error { return portal.VerifyFromAgent(job) },
		"result sent back":             func() error { return agent.VerifyFromPortal(res) },
		"another job ID": func() error {
			return agent.VerifyFromPortal(changed(job, func(e *agentwire.Envelope) { e.ID = "job-2" }))
		},
		"another type": func() error {
			return agent.VerifyFromPortal(changed(job, func(e *agentwire.Envelope) { e.Type = agentwire.TypeAdmitResult }))
		},
		"another body": func() error {
			return agent.VerifyFromPortal(changed(job, func(e *agentwire.Envelope) { e.Body = []byte(`{"op":"unlock_login","login":"bob"}`) }))
		},
		"no MAC": func() error {
			return agent.VerifyFromPortal(changed(job, func(e *agentwire.Envelope) { e.MAC = nil }))
		},
		"plain message": func() error {
			return agent.VerifyFromPortal(decode(agentwire.Encode(agentwire.TypeJob, "job-1", agentwire.Job{Op: agentwire.OpUnlockLogin, Login: "ann"})))
		},
	} {
		if err := check(); err == nil {
			t.Errorf("%s: verified", name)
		}
	}
}

// BenchmarkSessionSealOpen is the per-job cost of a password on a
// connection's session, beside BenchmarkHPKESetup, the once-per-connection
// cost that per-job HPKE used to pay for every password.
func BenchmarkSessionSealOpen(b *testing.B) {
	id, _ := agentwire.NewIdentity()
	portal, enc, _ := agentwire.NewPortalSession(id.Public(), "agent-1", nonce(1), nonce(2))
	agent, err := id.OpenSession("agent-1", nonce(1), nonce(2), enc)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		sealed, _ := portal.Seal("job-1", agentwire.FieldPassword, []byte("Winter-2026!x"))
		if _, err := agent.Open("job-1", agentwire.FieldPassword, sealed); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkHPKESetup(b *testing.B) {
	id, _ := agentwire.NewIdentity()
	for b.Loop() {
		_, enc, _ := agentwire.NewPortalSession(id.Public(), "agent-1", nonce(1), nonce(2))
		if _, err := id.OpenSession("agent-1", nonce(1), nonce(2), enc); err != nil {
			b.Fatal(err)
		}
	}
}
