package agentwire

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
)

// ErrBadProof means a signature does not verify with the agent's key.
var ErrBadProof = errors.New("agentwire: the agent's signature does not verify")

// TokenHash is how the portal stores an enrolment token: SHA-256, hex. The
// enrolment proof signs it rather than the token itself.
func TokenHash(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

// enrollMessage is what an agent signs to enrol: the token's hash and both
// public keys, so that the keys the portal stores are the ones whose
// private halves signed, for this token only.
func enrollMessage(token string, pub Public) []byte {
	b := []byte("writeback agent enroll v1\x00" + TokenHash(token) + "\x00")
	b = append(b, pub.SignKey...)
	b = append(b, 0)
	return append(b, pub.SealKey...)
}

// connectMessage is what an agent signs to connect: its ID and the nonce
// the portal sent on this connection.
func connectMessage(agentID string, nonce []byte) []byte {
	b := []byte("writeback agent connect v1\x00" + agentID + "\x00")
	return append(b, nonce...)
}

// SignEnroll proves possession of the identity for an enrolment.
func (id *Identity) SignEnroll(token string) []byte {
	return ed25519.Sign(id.sign, enrollMessage(token, id.Public()))
}

// VerifyEnroll checks an enrolment proof.
func VerifyEnroll(token string, pub Public, sig []byte) error {
	if err := pub.Valid(); err != nil {
		return err
	}
	if !ed25519.Verify(ed25519.PublicKey(pub.SignKey), enrollMessage(token, pub), sig) {
		return ErrBadProof
	}
	return nil
}

// SignConnect answers the portal's challenge on a new connection.
func (id *Identity) SignConnect(agentID string, nonce []byte) []byte {
	return ed25519.Sign(id.sign, connectMessage(agentID, nonce))
}

// portalMessage is what the portal signs of a message to one agent: the
// agent's ID, the type, the job ID and the body as sent, so that a signed
// job can neither be sent to another agent nor changed on the way.
func portalMessage(agentID string, e Envelope) []byte {
	b := []byte("writeback portal message v1\x00" + agentID + "\x00" + e.Type + "\x00" + e.ID + "\x00")
	return append(b, e.Body...)
}

// NewPortalKey derives the portal's signing key from 32 bytes of key
// material (the portal's key file), so that restarts and replicas sign with
// the same key.
func NewPortalKey(seed []byte) (ed25519.PrivateKey, error) {
	if len(seed) != ed25519.SeedSize {
		return nil, errors.New("agentwire: the portal key seed must be 32 bytes")
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

// EncodeSigned is Encode with the portal's signature for agentID: how the
// portal sends jobs and admit results.
func EncodeSigned(key ed25519.PrivateKey, agentID, typ, id string, body any) ([]byte, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("agentwire: encode %s: %w", typ, err)
	}
	e := Envelope{Type: typ, ID: id, Body: b}
	e.Sig = ed25519.Sign(key, portalMessage(agentID, e))
	return json.Marshal(e)
}

// VerifyPortal checks the portal's signature of a message to agentID.
func VerifyPortal(portalKey []byte, agentID string, e Envelope) error {
	if len(portalKey) != ed25519.PublicKeySize || len(e.Sig) != ed25519.SignatureSize {
		return ErrBadProof
	}
	if !ed25519.Verify(ed25519.PublicKey(portalKey), portalMessage(agentID, e), e.Sig) {
		return ErrBadProof
	}
	return nil
}

// VerifyConnect checks the answer to a challenge.
func VerifyConnect(agentID string, nonce []byte, pub Public, sig []byte) error {
	if len(pub.SignKey) != ed25519.PublicKeySize || len(nonce) < 16 {
		return ErrBadProof
	}
	if !ed25519.Verify(ed25519.PublicKey(pub.SignKey), connectMessage(agentID, nonce), sig) {
		return ErrBadProof
	}
	return nil
}
