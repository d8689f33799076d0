package audit

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/writeback/writeback/testbed"
)

// testCA is a throw-away CA with one server certificate for 127.0.0.1.
type testCA struct {
	pool   *x509.CertPool
	server tls.Certificate
}

func newTestCA(t *testing.T) testCA {
	t.Helper()
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	now := time.Now()
	caKey := newKey()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "audit test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	srvKey := newKey()
	srvTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "siem.test"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, caCert, &srvKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	return testCA{pool: pool, server: tls.Certificate{Certificate: [][]byte{srvDER}, PrivateKey: srvKey}}
}

// tlsServer is tcpServer behind TLS with the CA's server certificate; handshake errors go to handshakeErrs.
func tlsServer(t *testing.T, ca testCA) (addr string, frames chan []byte, handshakeErrs chan error) {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{ca.server}, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	frames, handshakeErrs = make(chan []byte, 100), make(chan error, 100)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				if err := c.(*tls.Conn).Handshake(); err != nil {
					handshakeErrs <- err
					return
				}
				r := bufio.NewReader(c)
				for {
					msg, err := readFrame(r)
					if err != nil {
						return
					}
					frames <- msg
				}
			}()
		}
	}()
	return ln.Addr().String(), frames, handshakeErrs
}

func testLogger() (*slog.Logger, *testbed.SyncBuffer) {
	var b testbed.SyncBuffer
	return slog.New(slog.NewTextHandler(&b, nil)), &b
}

// TestSyslogTLS: tls:// delivers RFC 5425 (octet-counted) messages to a server whose certificate the given CA
// verifies, and refuses a server it does not (here: the system roots do not know the test CA).
func TestSyslogTLS(t *testing.T) {
	ca := newTestCA(t)
	addr, frames, _ := tlsServer(t, ca)
	f := newSender(t, "tls", addr, SyslogOptions{TLS: &tls.Config{RootCAs: ca.pool}})
	sendOne(t, f, testEvent(7, Success))
	if m := parseSyslog(t, receive(t, frames)); m.event.ID != 7 {
		t.Errorf("got event %d", m.event.ID)
	}

	log, logBuf := testLogger()
	addr2, frames2, hsErrs := tlsServer(t, ca)
	f2 := newSender(t, "tls", addr2, SyslogOptions{Logger: log})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	sent := make(chan error, 1)
	go func() { sent <- f2.send(ctx, testEvent(8, Success)) }()
	select {
	case <-hsErrs: // the client hung up during the handshake: it did not trust the server
	case m := <-frames2:
		t.Fatalf("an event reached a server the system roots do not verify: %q", m)
	case <-time.After(5 * time.Second):
		t.Fatal("no handshake attempt")
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(logBuf.String(), "certificate") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(logBuf.String(), "certificate signed by unknown authority") {
		t.Errorf("the refusal is not logged with its reason:\n%s", logBuf.String())
	}
	if err := <-sent; err == nil {
		t.Error("the event counts as sent to a server that was not trusted")
	}
}

func TestSyslogTLSOptionsRefused(t *testing.T) {
	if _, err := newSyslogSender("tls", "127.0.0.1:6514", SyslogOptions{TLS: &tls.Config{InsecureSkipVerify: true}}); err == nil {
		t.Error("InsecureSkipVerify accepted")
	}
	if _, err := newSyslogSender("tcp", "127.0.0.1:514", SyslogOptions{TLS: &tls.Config{}}); err == nil {
		t.Error("a TLS configuration for plain tcp accepted (it would silently not be used)")
	}
}

// silentListener accepts connections and never reads from them or writes to them: a SIEM that hangs. Its tiny
// receive buffer makes a sender's writes block soon.
func silentListener(t *testing.T) string {
	t.Helper()
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 1) })
		if err != nil {
			return err
		}
		return serr
	}}
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var held []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		for _, c := range held {
			c.Close()
		}
	})
	return ln.Addr().String()
}

// closeWithin closes f with a context of grace and fails when Close takes much longer.
func closeWithin(t *testing.T, f *Forwarder, grace time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	start := time.Now()
	_ = f.Close(ctx)
	if el := time.Since(start); el > grace+2*time.Second {
		t.Fatalf("Close took %v with a %v grace period", el, grace)
	}
}

// TestSyslogCloseInterruptsStuckWrite: a SIEM that accepts and then never reads fills the socket buffers, and the
// forwarder's write blocks (here for up to a minute). Close must interrupt it when its context ends and say in the
// log how many events wait for the next start.
func TestSyslogCloseInterruptsStuckWrite(t *testing.T) {
	db := newDB(t)
	log, logBuf := testLogger()
	pad := strings.Repeat("x", 256<<10)
	ctx := context.Background()
	for range 60 { // 15 MB: more than the socket buffers take
		record(t, db, Entry{Category: CategoryPolicy, Activity: ActivityUpdateSSPRPolicy, Actor: System, Details: map[string]any{"pad": pad}})
	}
	// The cursor starts at the newest event: move it back so the 60 are sent.
	if _, err := db.EnsureForwardCursor(ctx, "syslog"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.SQL().Exec(`UPDATE audit_forward_cursors SET last_id = 0 WHERE name = 'syslog'`); err != nil {
		t.Fatal(err)
	}
	f, err := NewSyslogForwarder(ctx, db, "tcp", silentListener(t), SyslogOptions{Logger: log, WriteTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	// Wait until the writer is stuck: Sent stops moving.
	last, still := f.Sent(), 0
	for still < 5 {
		time.Sleep(100 * time.Millisecond)
		if n := f.Sent(); n == last {
			still++
		} else {
			last, still = n, 0
		}
	}
	if last >= 60 {
		t.Skip("every event fitted into the socket buffers; cannot provoke a blocked write here")
	}
	closeWithin(t, f, 300*time.Millisecond)
	if out := logBuf.String(); !strings.Contains(out, "not yet forwarded") || !strings.Contains(out, fmt.Sprintf("pending=%d", 60-f.Sent())) {
		t.Errorf("no pending-events warning (%d sent) in the log:\n%s", f.Sent(), out)
	}
}

// TestSyslogCloseInterruptsHandshake: over TLS, a SIEM that accepts and never answers stalls the handshake (here
// for up to a minute); Close must cancel it.
func TestSyslogCloseInterruptsHandshake(t *testing.T) {
	db := newDB(t)
	log, logBuf := testLogger()
	f, err := NewSyslogForwarder(context.Background(), db, "tls", silentListener(t), SyslogOptions{Logger: log, DialTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	record(t, db, Entry{Category: CategoryPolicy, Activity: ActivityUpdateSSPRPolicy, Actor: System})
	time.Sleep(200 * time.Millisecond) // the handshake is under way
	closeWithin(t, f, 300*time.Millisecond)
	if f.Sent() != 0 {
		t.Errorf("sent %d, want 0", f.Sent())
	}
	if !strings.Contains(logBuf.String(), "pending=1") {
		t.Errorf("no pending-events warning in the log:\n%s", logBuf.String())
	}
}
