// Package agentwire is the protocol between the portal and its writeback
// agents: the agent's identity keys, the proofs it signs to enrol and to
// connect, the session set up with HPKE on each connection (which seals
// passwords and authenticates messages), and the messages of the
// one long-lived connection the agent opens to the portal. Both programs
// import it; neither side's logic lives here.
package agentwire

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hpke"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
)

// Identity is an agent's private key pair: an Ed25519 key that signs its
// proofs and an X25519 key that the portal seals passwords to. It never
// leaves the agent's data folder.
type Identity struct {
	sign ed25519.PrivateKey
	seal *ecdh.PrivateKey
}

// Public is the public half of an Identity, as the portal stores it.
type Public struct {
	// SignKey verifies the agent's proofs (Ed25519, 32 bytes).
	SignKey []byte `json:"sign_key"`
	// SealKey is the HPKE recipient key (X25519, 32 bytes).
	SealKey []byte `json:"seal_key"`
}

// NewIdentity creates a fresh key pair.
func NewIdentity() (*Identity, error) {
	_, sk, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("agentwire: create signing key: %w", err)
	}
	xk, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("agentwire: create sealing key: %w", err)
	}
	return &Identity{sign: sk, seal: xk}, nil
}

// identityFile is how an Identity is kept on disk (see MarshalIdentity).
type identityFile struct {
	SignSeed []byte `json:"sign_seed"`
	SealKey  []byte `json:"seal_key"`
}

// MarshalJSON encodes the private keys for the agent's data folder.
func (id *Identity) MarshalJSON() ([]byte, error) {
	return json.Marshal(identityFile{SignSeed: id.sign.Seed(), SealKey: id.seal.Bytes()})
}

// ParseIdentity decodes what MarshalJSON wrote.
func ParseIdentity(b []byte) (*Identity, error) {
	var f identityFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("agentwire: read identity: %w", err)
	}
	if len(f.SignSeed) != ed25519.SeedSize {
		return nil, errors.New("agentwire: read identity: the signing key is damaged")
	}
	xk, err := ecdh.X25519().NewPrivateKey(f.SealKey)
	if err != nil {
		return nil, fmt.Errorf("agentwire: read identity: the sealing key is damaged: %w", err)
	}
	return &Identity{sign: ed25519.NewKeyFromSeed(f.SignSeed), seal: xk}, nil
}

// Public returns the public keys.
func (id *Identity) Public() Public {
	return Public{SignKey: []byte(id.sign.Public().(ed25519.PublicKey)), SealKey: id.seal.PublicKey().Bytes()}
}

// Valid checks that both public keys have the right form.
func (p Public) Valid() error {
	if len(p.SignKey) != ed25519.PublicKeySize {
		return errors.New("agentwire: the signing key must be 32 bytes")
	}
	if _, err := ecdh.X25519().NewPublicKey(p.SealKey); err != nil {
		return fmt.Errorf("agentwire: the sealing key is not an X25519 key: %w", err)
	}
	return nil
}

// Fingerprint is a short, stable name of the public keys, for the agents
// page and log lines (the first 16 bytes of the signing key, base64url).
func (p Public) Fingerprint() string {
	if len(p.SignKey) < 16 {
		return ""
	}
	return base64.RawURLEncoding.EncodeToString(p.SignKey[:16])
}

// The HPKE suite of a connection's session (session.go): DHKEM(X25519,
// HKDF-SHA256) (the key type) and HKDF-SHA256, export only.
var suiteKDF = hpke.HKDFSHA256()
