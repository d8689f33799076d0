// Package certfile serves a TLS certificate and key read from two PEM files
// and reads them again on request (writeback serve does on SIGHUP), keeping
// the pair it has when the new one is unusable.
package certfile

import (
	"crypto/tls"
	"fmt"
	"sync/atomic"
	"time"
)

// Pair is a certificate and its key from CertFile and KeyFile.
type Pair struct {
	CertFile, KeyFile string
	cur               atomic.Pointer[tls.Certificate]
	now               func() time.Time
}

// Load reads the pair; an unusable one is an error naming the files.
func Load(certFile, keyFile string) (*Pair, error) {
	p := &Pair{CertFile: certFile, KeyFile: keyFile, now: time.Now}
	c, err := p.read()
	if err != nil {
		return nil, err
	}
	p.cur.Store(c)
	return p, nil
}

// Reload reads the files again. When they do not hold a usable pair (not
// PEM, a key that is not the certificate's, an expired certificate), the
// error says why and the pair served so far stays.
func (p *Pair) Reload() error {
	c, err := p.read()
	if err != nil {
		return err
	}
	p.cur.Store(c)
	return nil
}

// Current is the pair being served.
func (p *Pair) Current() *tls.Certificate { return p.cur.Load() }

// GetCertificate serves the current pair (tls.Config.GetCertificate).
func (p *Pair) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return p.cur.Load(), nil
}

// Config is the server's TLS configuration: TLS 1.2 at least, the current
// pair on every handshake.
func (p *Pair) Config() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: p.GetCertificate}
}

func (p *Pair) read() (*tls.Certificate, error) {
	c, err := tls.LoadX509KeyPair(p.CertFile, p.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("TLS certificate %s with key %s: %w", p.CertFile, p.KeyFile, err)
	}
	if c.Leaf == nil {
		return nil, fmt.Errorf("TLS certificate %s: no certificate", p.CertFile)
	}
	if now := p.now(); now.After(c.Leaf.NotAfter) {
		return nil, fmt.Errorf("TLS certificate %s expired on %s", p.CertFile, c.Leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	return &c, nil
}
