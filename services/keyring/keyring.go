// Package keyring holds the portal's master key: a random key file in the
// data folder from which the cookie keys and the key that encrypts secrets
// at rest are derived.
package keyring

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
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
//
// The file appears complete or not at all: the key is written to a temporary
// file in dir, synced, and then linked into place, and dir is synced. A crash
// or a full disk never leaves an empty or half-written key file that would
// stop the next start (or, worse, be taken for a key), and of two processes
// starting at once exactly one creates the key and both use it.
func LoadOrCreate(dir string) (k *Keyring, created bool, err error) {
	path := filepath.Join(dir, FileName)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		master := make([]byte, 32)
		if _, err := rand.Read(master); err != nil {
			return nil, false, fmt.Errorf("keyring: generate key: %w", err)
		}
		err := writeNew(dir, path, []byte(hex.EncodeToString(master)+"\n"))
		if errors.Is(err, fs.ErrExist) { // another process won the race: use its key
			return LoadOrCreate(dir)
		}
		if err != nil {
			return nil, false, fmt.Errorf("keyring: create %s: %w", path, err)
		}
		return &Keyring{master: master}, true, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("keyring: read %s: %w", path, err)
	}
	k, err = parse(path, b)
	return k, false, err
}

// LoadFile reads the key file at path, in the format LoadOrCreate writes
// (64 hex characters and a newline), and never creates one: a key shared by
// several replicas (a mounted secret) is made once, by whoever sets them
// up, and a replica that made its own would not read what the others wrote.
// A file that does not exist is an error wrapping fs.ErrNotExist.
func LoadFile(path string) (*Keyring, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err // the path is named once, below
		}
		return nil, fmt.Errorf("keyring: read %s: %w", path, err)
	}
	return parse(path, b)
}

func parse(path string, b []byte) (*Keyring, error) {
	master, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(master) != 32 {
		return nil, fmt.Errorf("keyring: %s is not a 64-character hex key (make one with: openssl rand -hex 32)", path)
	}
	return &Keyring{master: master}, nil
}

// beforePublish, when set (tests), runs after the temporary file is written
// and synced, before it becomes the key file; an error aborts the write as
// a crash or a failed sync would.
var beforePublish func(tmp string) error

// writeNew creates path with data atomically and without replacing an
// existing file (fs.ErrExist then): temporary file in the same directory,
// fsync, hard link to path (which, unlike rename, fails when path exists),
// fsync of the directory. The temporary file is removed in every case.
func writeNew(dir, path string, data []byte) (err error) {
	tmp, err := os.CreateTemp(dir, "."+FileName+"-*.tmp") // mode 0600
	if err != nil {
		return err
	}
	defer func() {
		tmp.Close()
		if rmErr := os.Remove(tmp.Name()); rmErr != nil && err == nil && !errors.Is(rmErr, fs.ErrNotExist) {
			err = rmErr
		}
	}()
	if err := tmp.Chmod(0o600); err != nil { // whatever the umask
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if beforePublish != nil {
		if err := beforePublish(tmp.Name()); err != nil {
			return err
		}
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return err
		}
		// Some file systems (certain network and container volumes) have no
		// hard links: fall back to rename, refusing to replace a key that
		// exists by now (a race only two simultaneous first starts can lose).
		if _, statErr := os.Lstat(path); statErr == nil {
			return fs.ErrExist
		}
		if err := os.Rename(tmp.Name(), path); err != nil {
			return err
		}
	}
	return syncDir(dir)
}

// syncDir makes the new directory entry durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
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

// checkLabel is what Check authenticates. Changing it would make every
// database refuse the key it was set up with.
const checkLabel = "writeback database key check v1"

// Check returns a value that identifies the master key without revealing
// it or any key derived for another purpose: the HMAC-SHA256 of a fixed
// label under a key derived only for this (hex, 64 characters). A database
// records it on first use, so that a process started with another key file
// is told so at once instead of failing to read sessions and secrets later.
func (k *Keyring) Check() string {
	mac := hmac.New(sha256.New, k.Derive("database-key-check"))
	mac.Write([]byte(checkLabel))
	return hex.EncodeToString(mac.Sum(nil))
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
