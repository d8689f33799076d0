package certfile

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// selfSigned writes a certificate valid for an hour and its key to dir and
// returns the two files.
func selfSigned(t *testing.T, dir string, serial int64) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "portal.test"},
		DNSNames: []string{"portal.test"}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600)
	return certFile, keyFile
}

func serial(p *Pair) int64 { return p.Current().Leaf.SerialNumber.Int64() }

// TestReloadKeepsTheCurrentPair: a good new pair replaces the one served; an
// expired one, a key of another certificate or a file that is not PEM is
// refused with the reason, and the pair served so far stays.
func TestReloadKeepsTheCurrentPair(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := selfSigned(t, dir, 1)
	p, err := Load(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if c, _ := p.GetCertificate(nil); c.Leaf.SerialNumber.Int64() != 1 || p.Config().MinVersion != 0x0303 {
		t.Fatalf("serving %d, min version %x", c.Leaf.SerialNumber.Int64(), p.Config().MinVersion)
	}
	selfSigned(t, dir, 2)
	if err := p.Reload(); err != nil || serial(p) != 2 {
		t.Fatalf("reload: %v, serving %d", err, serial(p))
	}

	other := t.TempDir()
	_, otherKey := selfSigned(t, other, 3)
	cases := []struct {
		name, want string
		prepare    func()
	}{
		{"expired", "expired on", func() {
			selfSigned(t, dir, 4)
			p.now = func() time.Time { return time.Now().Add(2 * time.Hour) }
		}},
		{"another key", "private key does not match", func() {
			selfSigned(t, dir, 5)
			b, _ := os.ReadFile(otherKey)
			os.WriteFile(keyFile, b, 0o600)
		}},
		{"not PEM", "failed to find any PEM data", func() { os.WriteFile(certFile, []byte("nothing\n"), 0o600) }},
	}
	for _, tc := range cases {
		p.now = time.Now
		tc.prepare()
		err := p.Reload()
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), certFile) {
			t.Errorf("%s: %v, want an error naming %s and saying %q", tc.name, err, certFile, tc.want)
		}
		if serial(p) != 2 {
			t.Errorf("%s: serving %d, want 2 kept", tc.name, serial(p))
		}
	}
	if _, err := Load(certFile, keyFile); err == nil {
		t.Error("Load accepted a file that is not PEM")
	}
}
