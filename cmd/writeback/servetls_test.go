package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/writeback/writeback/testbed"
)

// testPKI is a throw-away CA that issues server certificates for one name.
type testPKI struct {
	t      *testing.T
	ca     *x509.Certificate
	caKey  *ecdsa.PrivateKey
	roots  *x509.CertPool
	serial int64
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "writeback test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), KeyUsage: x509.KeyUsageCertSign,
		BasicConstraintsValid: true, IsCA: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(der)
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	return &testPKI{t: t, ca: ca, caKey: key, roots: roots, serial: 1}
}

// issue returns the PEM of a new certificate for name (a host name or an IP
// address) and of its key; the serial number tells the certificates apart.
func (p *testPKI) issue(name string) (certPEM, keyPEM []byte, serial int64) {
	p.t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		p.t.Fatal(err)
	}
	p.serial++
	now := time.Now()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(p.serial), Subject: pkix.Name{CommonName: name},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	if ip := net.ParseIP(name); ip != nil {
		tmpl.IPAddresses = []net.IP{ip}
	} else {
		tmpl.DNSNames = []string{name}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &key.PublicKey, p.caKey)
	if err != nil {
		p.t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		p.t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), p.serial
}

// buildWriteback builds this command into dir and returns its path.
func buildWriteback(t *testing.T, dir string) string {
	t.Helper()
	out := filepath.Join(dir, "writeback")
	cmd := exec.Command("go", "build", "-o", out, ".")
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, msg)
	}
	return out
}

func replaceFile(t *testing.T, name string, b []byte) {
	t.Helper()
	// Written beside and renamed, as certbot and mounted secrets replace
	// files: a reload never reads half a file.
	if err := os.WriteFile(name+".new", b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(name+".new", name); err != nil {
		t.Fatal(err)
	}
}

// TestServeHTTPS is issue 12 item 8: `writeback serve --tls-cert --tls-key`,
// a real process, serves HTTPS (TLS 1.2 at least, secure cookies, HSTS) with
// a certificate a client verifies against the test's CA; after the files
// are replaced, SIGHUP serves the new certificate; a broken replacement is
// refused with a log line and the current certificate kept; the
// --http-redirect-listen address answers GET and HEAD with a 308 to the
// https base URL with the path and query kept, and refuses other methods.
func TestServeHTTPS(t *testing.T) {
	dir := t.TempDir()
	bin := buildWriteback(t, dir)
	pki := newTestPKI(t)
	const name = "portal.test"
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	certA, keyA, serialA := pki.issue(name)
	replaceFile(t, certFile, certA)
	replaceFile(t, keyFile, keyA)

	addr, redirectAddr := freeAddr(t), freeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	base := "https://" + name + ":" + port + "/password/"
	var logs testbed.SyncBuffer
	cmd := exec.Command(bin, "serve", "--listen", addr, "--data", filepath.Join(dir, "data"), "--base-url", base,
		"--tls-cert", certFile, "--tls-key", keyFile, "--http-redirect-listen", redirectAddr)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			t.Errorf("serve did not stop:\n%s", logs.String())
		}
	})

	// A client that checks the certificate against the test's CA, on a new
	// connection each time (so that each request shows the certificate
	// served now).
	get := func(tc *tls.Config, method, path string) (*http.Response, error) {
		if tc == nil {
			tc = &tls.Config{RootCAs: pki.roots, ServerName: name}
		}
		c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: tc, DisableKeepAlives: true},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		req, _ := http.NewRequest(method, "https://"+addr+path, nil)
		resp, err := c.Do(req)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		return resp, err
	}
	served := func() int64 {
		t.Helper()
		resp, err := get(nil, http.MethodGet, "/password/healthz")
		if err != nil {
			t.Fatalf("GET /password/healthz over HTTPS: %v\n%s", err, logs.String())
		}
		return resp.TLS.PeerCertificates[0].SerialNumber.Int64()
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		if _, err := get(nil, http.MethodGet, "/password/healthz"); err == nil {
			break
		}
		select {
		case err := <-exited:
			t.Fatalf("serve exited: %v\n%s", err, logs.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve did not answer over HTTPS:\n%s", logs.String())
		}
	}
	if got := served(); got != serialA {
		t.Errorf("serves certificate %d, want %d", got, serialA)
	}

	// TLS 1.2 at least; plain HTTP on the same port gets nothing useful.
	if _, err := get(&tls.Config{RootCAs: pki.roots, ServerName: name, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}, http.MethodGet, "/password/healthz"); err == nil {
		t.Error("a TLS 1.1 handshake succeeded")
	}
	// The session cookie is Secure, under the path; HSTS is sent.
	resp, err := get(nil, http.MethodGet, "/password/login")
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Strict-Transport-Security") == "" || len(resp.Cookies()) == 0 {
		t.Fatalf("GET /password/login: %d %v", resp.StatusCode, resp.Header)
	}
	for _, c := range resp.Cookies() {
		if !c.Secure || c.Path != "/password/" || !strings.HasPrefix(c.Name, "__Secure-") {
			t.Errorf("cookie %s: Secure %v, Path %q", c.Name, c.Secure, c.Path)
		}
	}
	// The Docker HEALTHCHECK's command over HTTPS.
	if code, out, errOut := cli(t, "", "healthcheck", "--listen", addr, "--tls-cert", certFile, "--base-url", base); code != 0 {
		t.Errorf("healthcheck: %d %s %s", code, out, errOut)
	}

	// A renewed certificate: the files replaced, then SIGHUP.
	certB, keyB, serialB := pki.issue(name)
	replaceFile(t, certFile, certB)
	replaceFile(t, keyFile, keyB)
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitLog(t, &logs, "TLS certificate reloaded")
	if got := served(); got != serialB {
		t.Errorf("after SIGHUP: serves certificate %d, want %d", got, serialB)
	}

	// Broken replacements: a certificate whose key is another's, then no
	// PEM at all. Each is refused with a log line; B is still served.
	certC, _, _ := pki.issue(name)
	for i, files := range [][2][]byte{{certC, keyB}, {[]byte("not a certificate\n"), keyB}} {
		replaceFile(t, certFile, files[0])
		replaceFile(t, keyFile, files[1])
		if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		waitCount(t, &logs, "TLS certificate not reloaded", i+1)
		if got := served(); got != serialB {
			t.Errorf("after a broken replacement: serves certificate %d, want %d (kept)", got, serialB)
		}
	}

	// The redirect listener: 308 to https on the base URL's host, path and
	// query kept; only GET and HEAD.
	plain := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, method := range []string{http.MethodGet, http.MethodHead} {
		req, _ := http.NewRequest(method, "http://"+redirectAddr+"/password/reset?x=1", nil)
		req.Host = "evil.example"
		resp, err := plain.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if want := "https://" + name + ":" + port + "/password/reset?x=1"; resp.StatusCode != http.StatusPermanentRedirect || resp.Header.Get("Location") != want {
			t.Errorf("%s over HTTP: %d %q, want 308 to %s", method, resp.StatusCode, resp.Header.Get("Location"), want)
		}
	}
	resp, err = plain.Post("http://"+redirectAddr+"/password/login", "application/x-www-form-urlencoded", strings.NewReader("email=a&password=b"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Location") != "" {
		t.Errorf("POST over HTTP: %d %q, want 405 and no redirect", resp.StatusCode, resp.Header.Get("Location"))
	}
}

// waitLog waits until the process's output contains want.
func waitLog(t *testing.T, logs *testbed.SyncBuffer, want string) {
	t.Helper()
	waitCount(t, logs, want, 1)
}

// waitCount waits until the process's output contains want n times.
func waitCount(t *testing.T, logs *testbed.SyncBuffer, want string, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for strings.Count(logs.String(), want) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d × %q not in the log:\n%s", n, want, logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestServeTLSFlags: the TLS flags' mistakes stop serve with one line.
func TestServeTLSFlags(t *testing.T) {
	dir := t.TempDir()
	pki := newTestPKI(t)
	certPEM, keyPEM, _ := pki.issue("portal.test")
	_, otherKey, _ := pki.issue("portal.test")
	cert, key, other := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem"), filepath.Join(dir, "o.pem")
	replaceFile(t, cert, certPEM)
	replaceFile(t, key, keyPEM)
	replaceFile(t, other, otherKey)
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--tls-cert", cert}, "--tls-cert and --tls-key go together"},
		{[]string{"--tls-key", key}, "--tls-cert and --tls-key go together"},
		{[]string{"--tls-cert", cert, "--tls-key", other}, "private key does not match public key"},
		{[]string{"--tls-cert", filepath.Join(dir, "missing.pem"), "--tls-key", key}, "missing.pem"},
		{[]string{"--tls-cert", cert, "--tls-key", key, "--base-url", "http://portal.test/"}, "want an https:// URL"},
		{[]string{"--http-redirect-listen", "127.0.0.1:0"}, "--http-redirect-listen needs --tls-cert"},
		{[]string{"--tls-cert", cert, "--tls-key", key, "--http-redirect-listen", "eighty"}, `--http-redirect-listen "eighty"`},
		{[]string{"--base-url", "https://intranet.example/pass%20word/"}, "the path may hold only"},
		{[]string{"--base-url", "https://intranet.example/a/../b/"}, "the path may hold only"},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			code, _, errOut := cli(t, "", append([]string{"serve", "--listen", "127.0.0.1:0", "--data", t.TempDir()}, tc.args...)...)
			if code != 2 || !strings.Contains(errOut, tc.want) || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
				t.Errorf("exit %d, stderr %q; want 2 and one line containing %q", code, errOut, tc.want)
			}
		})
	}
}
