package agentwire

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/hmac"
	"crypto/hpke"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
)

// Session holds one connection's keys. The portal sets them up with HPKE to
// the agent's sealing key when it welcomes the agent (NewPortalSession), the
// agent opens the same ones with its private key (Identity.OpenSession):
//
//   - every password of a job is sealed with the session's AEAD key, bound
//     to the job and the field (Seal, Open), so that only the holder of the
//     agent's private key reads it, whatever a proxy between them sees;
//   - every message after the welcome carries a MAC under the key of its
//     direction (EncodeToAgent / VerifyFromPortal, EncodeToPortal /
//     VerifyFromAgent): the agent acts only on what the portal it enrolled
//     with sent on this connection, and the portal believes only answers of
//     the agent it authenticated.
//
// The HPKE context is bound to both sides' nonces of this connection (the
// challenge's and the hello's), and the welcome that carries it is signed
// by the portal: a recorded welcome, job or result is worthless on any other
// connection, including one of the same agent after a restart. The cost per
// job is one AEAD and two MACs instead of an HPKE setup and a signature.
type Session struct {
	agentID  string
	aead     cipher.AEAD
	toAgent  []byte // MAC key, portal → agent
	toPortal []byte // MAC key, agent → portal
}

// ErrBadMAC means a message does not carry this session's MAC.
var ErrBadMAC = errors.New("agentwire: the message does not carry this connection's MAC")

// sessionInfo binds a session to its agent and to both nonces of the
// connection.
func sessionInfo(agentID string, portalNonce, agentNonce []byte) []byte {
	b := []byte("writeback agent session v2\x00" + agentID + "\x00")
	b = append(b, portalNonce...)
	b = append(b, 0)
	return append(b, agentNonce...)
}

// MinNonce is the least length of either side's connection nonce.
const MinNonce = 16

// NewPortalSession sets up a session to the agent whose public keys are to:
// enc goes to the agent in the welcome (Welcome.Session).
func NewPortalSession(to Public, agentID string, portalNonce, agentNonce []byte) (s *Session, enc []byte, err error) {
	if len(portalNonce) < MinNonce || len(agentNonce) < MinNonce {
		return nil, nil, errors.New("agentwire: session: a connection nonce is too short")
	}
	xk, err := ecdh.X25519().NewPublicKey(to.SealKey)
	if err != nil {
		return nil, nil, fmt.Errorf("agentwire: session: %w", err)
	}
	pk, err := hpke.NewDHKEMPublicKey(xk)
	if err != nil {
		return nil, nil, fmt.Errorf("agentwire: session: %w", err)
	}
	enc, sender, err := hpke.NewSender(pk, suiteKDF, hpke.ExportOnly(), sessionInfo(agentID, portalNonce, agentNonce))
	if err != nil {
		return nil, nil, fmt.Errorf("agentwire: session: %w", err)
	}
	s, err = newSession(agentID, sender.Export)
	return s, enc, err
}

// OpenSession opens, on the agent, the session whose enc the portal's
// welcome carried, for the nonces of this connection.
func (id *Identity) OpenSession(agentID string, portalNonce, agentNonce, enc []byte) (*Session, error) {
	if len(portalNonce) < MinNonce || len(agentNonce) < MinNonce {
		return nil, errors.New("agentwire: session: a connection nonce is too short")
	}
	k, err := hpke.NewDHKEMPrivateKey(id.seal)
	if err != nil {
		return nil, fmt.Errorf("agentwire: session: %w", err)
	}
	r, err := hpke.NewRecipient(enc, k, suiteKDF, hpke.ExportOnly(), sessionInfo(agentID, portalNonce, agentNonce))
	if err != nil {
		return nil, fmt.Errorf("agentwire: session: %w", err)
	}
	return newSession(agentID, r.Export)
}

// newSession derives the session's keys from the HPKE context's exporter.
func newSession(agentID string, export func(string, int) ([]byte, error)) (*Session, error) {
	keys := make([][]byte, 3)
	for i, label := range []string{"writeback seal", "writeback mac to agent", "writeback mac to portal"} {
		k, err := export(label, 32)
		if err != nil {
			return nil, fmt.Errorf("agentwire: session: %w", err)
		}
		keys[i] = k
	}
	block, err := aes.NewCipher(keys[0])
	if err != nil {
		return nil, fmt.Errorf("agentwire: session: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("agentwire: session: %w", err)
	}
	return &Session{agentID: agentID, aead: aead, toAgent: keys[1], toPortal: keys[2]}, nil
}

// fieldAD binds a sealed value to its job and field, so that a sealed
// password can be neither replayed in another job nor moved to another
// field of the same one.
func fieldAD(jobID, field string) []byte {
	return []byte("writeback agent field v2\x00" + jobID + "\x00" + field)
}

// Seal encrypts plaintext for one field of one job: a random nonce, then
// the AEAD's output.
func (s *Session) Seal(jobID, field string, plaintext []byte) ([]byte, error) {
	nonce := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(plaintext)+s.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("agentwire: seal: %w", err)
	}
	return s.aead.Seal(nonce, nonce, plaintext, fieldAD(jobID, field)), nil
}

// Open decrypts what Seal made on the other end of this session, for the
// same job and field.
func (s *Session) Open(jobID, field string, sealed []byte) ([]byte, error) {
	n := s.aead.NonceSize()
	if len(sealed) < n+s.aead.Overhead() {
		return nil, fmt.Errorf("agentwire: open %s: too short", field)
	}
	pt, err := s.aead.Open(nil, sealed[:n], sealed[n:], fieldAD(jobID, field))
	if err != nil {
		return nil, fmt.Errorf("agentwire: open %s: %w", field, err)
	}
	return pt, nil
}

// sessionMessage is what a MAC covers: the direction, the agent, the type,
// the job ID and the body as sent.
func sessionMessage(dir, agentID string, e Envelope) []byte {
	b := []byte("writeback session message v2\x00" + dir + "\x00" + agentID + "\x00" + e.Type + "\x00" + e.ID + "\x00")
	return append(b, e.Body...)
}

func (s *Session) mac(key []byte, dir string, e Envelope) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(sessionMessage(dir, s.agentID, e))
	return m.Sum(nil)
}

func (s *Session) encode(key []byte, dir, typ, id string, body any) ([]byte, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("agentwire: encode %s: %w", typ, err)
	}
	e := Envelope{Type: typ, ID: id, Body: b}
	e.MAC = s.mac(key, dir, e)
	return json.Marshal(e)
}

func (s *Session) verify(key []byte, dir string, e Envelope) error {
	if len(e.MAC) != sha256.Size || !hmac.Equal(e.MAC, s.mac(key, dir, e)) {
		return ErrBadMAC
	}
	return nil
}

// Confirm is the portal's key confirmation, sent in the welcome: the agent
// compares it with its own (CheckConfirm) and so learns at once that it
// opened the session the portal set up, not one for another key.
func (s *Session) Confirm() []byte {
	m := hmac.New(sha256.New, s.toAgent)
	m.Write([]byte("writeback session confirm v2\x00" + s.agentID))
	return m.Sum(nil)
}

// CheckConfirm tells whether c is this session's Confirm.
func (s *Session) CheckConfirm(c []byte) bool { return hmac.Equal(c, s.Confirm()) }

// EncodeToAgent is Encode with the MAC of the portal's side: how the portal
// sends jobs and admit results.
func (s *Session) EncodeToAgent(typ, id string, body any) ([]byte, error) {
	return s.encode(s.toAgent, "to agent", typ, id, body)
}

// VerifyFromPortal checks, on the agent, a message's MAC.
func (s *Session) VerifyFromPortal(e Envelope) error { return s.verify(s.toAgent, "to agent", e) }

// EncodeToPortal is Encode with the MAC of the agent's side: how the agent
// sends heartbeats, admits and results.
func (s *Session) EncodeToPortal(typ, id string, body any) ([]byte, error) {
	return s.encode(s.toPortal, "to portal", typ, id, body)
}

// VerifyFromAgent checks, on the portal, a message's MAC.
func (s *Session) VerifyFromAgent(e Envelope) error { return s.verify(s.toPortal, "to portal", e) }
