package agentwire_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"testing"

	"github.com/writeback/writeback/services/agentwire"
	"github.com/writeback/writeback/services/directory"
	"github.com/writeback/writeback/services/errs"
)

func newIdentity(t *testing.T) *agentwire.Identity {
	t.Helper()
	id, err := agentwire.NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestIdentityRoundTrip(t *testing.T) {
	id := newIdentity(t)
	b, err := json.Marshal(id)
	if err != nil {
		t.Fatal(err)
	}
	back, err := agentwire.ParseIdentity(b)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(back.Public().SignKey, id.Public().SignKey) || !bytes.Equal(back.Public().SealKey, id.Public().SealKey) {
		t.Fatal("the parsed identity has other keys")
	}
	if _, err := agentwire.ParseIdentity([]byte(`{"sign_seed":"AAAA","seal_key":"AAAA"}`)); err == nil {
		t.Fatal("a damaged identity parsed")
	}
}

func TestProofs(t *testing.T) {
	id, other := newIdentity(t), newIdentity(t)
	sig := id.SignEnroll("tok")
	if err := agentwire.VerifyEnroll("tok", id.Public(), sig); err != nil {
		t.Fatalf("valid enrolment proof refused: %v", err)
	}
	if err := agentwire.VerifyEnroll("other", id.Public(), sig); !errors.Is(err, agentwire.ErrBadProof) {
		t.Errorf("proof for another token: %v", err)
	}
	// Someone who saw the request cannot swap in keys of their own.
	mixed := agentwire.Public{SignKey: id.Public().SignKey, SealKey: other.Public().SealKey}
	if err := agentwire.VerifyEnroll("tok", mixed, sig); !errors.Is(err, agentwire.ErrBadProof) {
		t.Errorf("proof with a swapped sealing key: %v", err)
	}
	nonce := bytes.Repeat([]byte{7}, 32)
	c := id.SignConnect("agent-1", nonce)
	if err := agentwire.VerifyConnect("agent-1", nonce, id.Public(), c); err != nil {
		t.Fatalf("valid connect proof refused: %v", err)
	}
	if err := agentwire.VerifyConnect("agent-2", nonce, id.Public(), c); err == nil {
		t.Error("connect proof accepted for another agent ID")
	}
	if err := agentwire.VerifyConnect("agent-1", bytes.Repeat([]byte{8}, 32), id.Public(), c); err == nil {
		t.Error("connect proof accepted for another nonce")
	}
	if err := agentwire.VerifyConnect("agent-1", nonce, other.Public(), c); err == nil {
		t.Error("connect proof accepted with another agent's key")
	}
}

func TestErrorRoundTrip(t *testing.T) {
	orig := errs.E(errs.Policy, "The new password does not meet the password policy.",
		&directory.OpError{Op: "reset", Code: directory.CodePolicy, Rule: "length", LDAPResult: 19, Diagnostic: "0000052D: Constraint violation", Server: "ldaps://dc1"})
	b, err := json.Marshal(agentwire.EncodeError(orig))
	if err != nil {
		t.Fatal(err)
	}
	var w agentwire.Error
	if err := json.Unmarshal(b, &w); err != nil {
		t.Fatal(err)
	}
	back := w.Err()
	if errs.KindOf(back) != errs.Policy || errs.MessageOf(back) != errs.MessageOf(orig) {
		t.Fatalf("kind/message = %v %q", errs.KindOf(back), errs.MessageOf(back))
	}
	var oe *directory.OpError
	if !errors.As(back, &oe) || oe.Code != directory.CodePolicy || oe.Rule != "length" || oe.Diagnostic != "0000052D: Constraint violation" || oe.Server != "ldaps://dc1" {
		t.Fatalf("OpError = %+v", oe)
	}

	refused := agentwire.EncodeError(errs.E(errs.Forbidden, "Password writeback is turned off on the agent.",
		&agentwire.RefusedError{Reason: agentwire.RefusedWritebackOff}))
	var re *agentwire.RefusedError
	if err := refused.Err(); !errors.As(err, &re) || re.Reason != agentwire.RefusedWritebackOff || errs.KindOf(err) != errs.Forbidden {
		t.Fatalf("refusal = %v", err)
	}
	if agentwire.EncodeError(nil) != nil || (*agentwire.Error)(nil).Err() != nil {
		t.Fatal("nil does not stay nil")
	}
}

func TestOps(t *testing.T) {
	ops := []string{agentwire.OpFind, agentwire.OpGet, agentwire.OpSearch, agentwire.OpMemberOf, agentwire.OpPolicy,
		agentwire.OpResetUser, agentwire.OpResetLogin, agentwire.OpUnlock, agentwire.OpUnlockLogin,
		agentwire.OpChangeLogin, agentwire.OpAuthenticateLogin, agentwire.OpTest}
	writes := map[string]bool{agentwire.OpResetUser: true, agentwire.OpResetLogin: true, agentwire.OpUnlock: true,
		agentwire.OpUnlockLogin: true, agentwire.OpChangeLogin: true}
	names := map[string]string{agentwire.OpMemberOf: "member-of", agentwire.OpResetLogin: "reset", agentwire.OpUnlockLogin: "unlock",
		agentwire.OpChangeLogin: "change", agentwire.OpAuthenticateLogin: "authenticate", agentwire.OpFind: "find"}
	for _, op := range ops {
		if !agentwire.KnownOp(op) {
			t.Errorf("%s is not known", op)
		}
		if agentwire.IsWrite(op) != writes[op] {
			t.Errorf("IsWrite(%s) = %v", op, !writes[op])
		}
		if want, ok := names[op]; ok && agentwire.DirectoryOp(op) != want {
			t.Errorf("DirectoryOp(%s) = %q, want %q", op, agentwire.DirectoryOp(op), want)
		}
	}
	if agentwire.KnownOp("drop_tables") || agentwire.IsWrite("drop_tables") {
		t.Error("an unknown op is known or a write")
	}
}

func TestPortalSignature(t *testing.T) {
	key, err := agentwire.NewPortalKey(bytes.Repeat([]byte{3}, 32))
	if err != nil {
		t.Fatal(err)
	}
	pub := []byte(key.Public().(ed25519.PublicKey))
	b, err := agentwire.EncodeSigned(key, "agent-1", agentwire.TypeJob, "job-1", agentwire.Job{Op: agentwire.OpUnlockLogin, Login: "ann"})
	if err != nil {
		t.Fatal(err)
	}
	e, err := agentwire.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := agentwire.VerifyPortal(pub, "agent-1", e); err != nil {
		t.Fatalf("a signed job does not verify: %v", err)
	}
	other, _ := agentwire.NewPortalKey(bytes.Repeat([]byte{4}, 32))
	changed := e
	changed.Body = []byte(`{"op":"unlock_login","login":"root"}`)
	moved := e
	moved.ID = "job-2"
	unsigned := e
	unsigned.Sig = nil
	for name, tc := range map[string]struct {
		pub   []byte
		agent string
		e     agentwire.Envelope
	}{
		"another agent":      {pub, "agent-2", e},
		"changed body":       {pub, "agent-1", changed},
		"another job ID":     {pub, "agent-1", moved},
		"unsigned":           {pub, "agent-1", unsigned},
		"another portal key": {[]byte(other.Public().(ed25519.PublicKey)), "agent-1", e},
		"no portal key":      {nil, "agent-1", e},
	} {
		if err := agentwire.VerifyPortal(tc.pub, tc.agent, tc.e); !errors.Is(err, agentwire.ErrBadProof) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
