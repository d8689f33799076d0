// Package keyring holds the portal's master key: a random key file in the
// data folder from which the cookie keys and the key that encrypts secrets
// at rest are derived.
package keyring

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// FileName is the key file inside the data folder.
const FileName = "writeback.key"

// Keyring derives purpose-specific keys from one master key.
type Keyring struct {
	master []byte
}

// LoadOrCreate reads the key file in dir, creating it (mode 0600) with a
// fresh random key when it does not exist yet. created reports a new key.
func LoadOrCreate(dir string) (k *Keyring, created bool, err error) {
	path := filepath.Join(dir, FileName)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		master := make([]byte, 32)
		if _, err := rand.Read(master); err != nil {
			return nil, false, fmt.Errorf("keyring: generate key: %w", err)
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			if errors.Is(err, fs.ErrExist) { // another process won the race
				return LoadOrCreate(dir)
			}
			return nil, false, fmt.Errorf("keyring: create %s: %w", path, err)
		}
		if _, err := f.WriteString(hex.EncodeToString(master) + "\n"); err != nil {
			f.Close()
			return nil, false, fmt.Errorf("keyring: write %s: %w", path, err)
		}
		if err := f.Close(); err != nil {
			return nil, false, fmt.Errorf("keyring: write %s: %w", path, err)
		}
		return &Keyring{master: master}, true, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("keyring: read %s: %w", path, err)
	}
	master, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(master) != 32 {
		return nil, false, fmt.Errorf("keyring: %s is not a 64-character hex key", path)
	}
	return &Keyring{master: master}, false, nil
}

// New builds a keyring from a 32-byte master key (tests).
func New(master []byte) *Keyring { return &Keyring{master: append([]byte(nil), master...)} }

// Derive returns a 32-byte key for one purpose.
func (k *Keyring) Derive(purpose string) []byte {
	key, err := hkdf.Key(sha256.New, k.master, nil, "writeback:"+purpose, 32)
	if err != nil {
		panic("keyring: hkdf: " + err.Error()) // only for invalid lengths, which we never ask for
	}
	return key
}

// ErrDecrypt means a sealed value could not be opened: wrong key file or
// a tampered value.
var ErrDecrypt = errors.New("keyring: cannot decrypt secret (was the key file replaced?)")

// Seal encrypts a secret with AES-256-GCM. context binds the ciphertext to
// its place (e.g. "directory.bind_password") so it cannot be moved.
func (k *Keyring) Seal(context string, plaintext []byte) (string, error) {
	aead, err := k.aead()
	if err != nil {
		return "", err
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("keyring: nonce: %w", err)
	}
	out := aead.Seal(nonce, nonce, plaintext, []byte(context))
	return "v1:" + base64.RawStdEncoding.EncodeToString(out), nil
}

// Open decrypts a value made by Seal with the same context.
func (k *Keyring) Open(context, sealed string) ([]byte, error) {
	raw, ok := strings.CutPrefix(sealed, "v1:")
	if !ok {
		return nil, ErrDecrypt
	}
	b, err := base64.RawStdEncoding.DecodeString(raw)
	if err != nil {
		return nil, ErrDecrypt
	}
	aead, err := k.aead()
	if err != nil {
		return nil, err
	}
	if len(b) < aead.NonceSize() {
		return nil, ErrDecrypt
	}
	pt, err := aead.Open(nil, b[:aead.NonceSize()], b[aead.NonceSize():], []byte(context))
	if err != nil {
		return nil, ErrDecrypt
	}
	return pt, nil
}

func (k *Keyring) aead() (cipher.AEAD, error) {
	block, err := aes.NewCipher(k.Derive("secrets-at-rest"))
	if err != nil {
		return nil, fmt.Errorf("keyring: cipher: %w", err)
	}
	return cipher.NewGCM(block)
}
