package e2e

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// testCA makes a CA and a server certificate for 127.0.0.1 issued by it;
// it returns the certificate and the path of the CA's PEM file.
func testCA(t *testing.T) (tls.Certificate, string) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "writeback e2e proxy CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "proxy-ca.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, path
}

// tapConn is one connection from the proxy to the portal, with a copy of
// every byte each way.
type tapConn struct {
	net.Conn
	mu       sync.Mutex
	toPortal bytes.Buffer
	toAgent  bytes.Buffer
}

func (c *tapConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.mu.Lock()
	c.toAgent.Write(p[:n])
	c.mu.Unlock()
	return n, err
}

func (c *tapConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.mu.Lock()
	c.toPortal.Write(p[:n])
	c.mu.Unlock()
	return n, err
}

func (c *tapConn) bytes() (toPortal, toAgent []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return bytes.Clone(c.toPortal.Bytes()), bytes.Clone(c.toAgent.Bytes())
}

// proxy is a TLS-terminating reverse proxy in front of the portal, as a
// company's DMZ has: the agents' HTTPS ends here and goes on as plain HTTP.
// It keeps every byte it forwards.
type proxy struct {
	url    string // https://127.0.0.1:PORT
	caFile string
	mu     sync.Mutex
	conns  []*tapConn
}

func startProxy(t *testing.T, portal string) *proxy {
	t.Helper()
	cert, caFile := testCA(t)
	target, err := url.Parse(portal)
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{caFile: caFile}
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			r.SetXForwarded()
		},
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				c, err := dialer.DialContext(ctx, network, addr)
				if err != nil {
					return nil, err
				}
				tc := &tapConn{Conn: c}
				p.mu.Lock()
				p.conns = append(p.conns, tc)
				p.mu.Unlock()
				return tc, nil
			},
			DisableCompression: true,
		},
		ErrorLog: log.New(io.Discard, "", 0),
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: rp, ErrorLog: log.New(io.Discard, "", 0),
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}}
	go srv.Serve(tls.NewListener(ln, srv.TLSConfig))
	t.Cleanup(func() { srv.Close() })
	p.url = "https://" + ln.Addr().String()
	return p
}

// captured returns every forwarded connection's bytes.
func (p *proxy) captured() []*tapConn {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]*tapConn(nil), p.conns...)
}

// wsPayloads decodes the WebSocket frames that follow the HTTP upgrade on
// one direction of a connection: client frames are masked, so a password
// sent in clear by the agent would not show in the raw bytes; this unmasks
// them. It returns the payloads concatenated, or nil when the stream holds
// no upgrade. A compressed frame (RSV1) fails: its payload could hide text.
func wsPayloads(stream []byte) ([]byte, error) {
	i := bytes.Index(stream, []byte("\r\n\r\n"))
	if i < 0 || !bytes.Contains(bytes.ToLower(stream[:i]), []byte("upgrade: websocket")) {
		return nil, nil
	}
	b := stream[i+4:]
	var out []byte
	for len(b) > 0 {
		if len(b) < 2 {
			return out, nil // a frame cut off at the end of the capture
		}
		if b[0]&0x40 != 0 {
			return nil, fmt.Errorf("a compressed WebSocket frame (RSV1): its bytes cannot be checked")
		}
		masked := b[1]&0x80 != 0
		n := uint64(b[1] & 0x7f)
		h := 2
		switch n {
		case 126:
			if len(b) < 4 {
				return out, nil
			}
			n, h = uint64(binary.BigEndian.Uint16(b[2:])), 4
		case 127:
			if len(b) < 10 {
				return out, nil
			}
			n, h = binary.BigEndian.Uint64(b[2:]), 10
		}
		var key []byte
		if masked {
			if len(b) < h+4 {
				return out, nil
			}
			key, h = b[h:h+4], h+4
		}
		if uint64(len(b)-h) < n {
			return out, nil
		}
		payload := bytes.Clone(b[h : h+int(n)])
		for j := range payload {
			if masked {
				payload[j] ^= key[j%4]
			}
		}
		out = append(out, payload...)
		b = b[h+int(n):]
	}
	return out, nil
}
