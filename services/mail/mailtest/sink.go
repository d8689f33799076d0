// Package mailtest runs a real SMTP server inside a test process, built on
// github.com/emersion/go-smtp, so code that sends mail can be tested end to
// end: it listens on 127.0.0.1, optionally requires STARTTLS (or implicit
// TLS) with a generated certificate and SMTP AUTH, parses every message it
// accepts into its text and HTML parts, and can be told to refuse messages.
package mailtest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	netmail "net/mail"
	"net/textproto"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Options configure a Sink.
type Options struct {
	// TLS makes the sink offer STARTTLS with a freshly generated self-signed
	// certificate (valid for 127.0.0.1, ::1 and localhost; see Sink.CAPEM)
	// and refuse mail and authentication until the client has upgraded.
	TLS bool
	// ImplicitTLS makes the sink speak TLS from the first byte, as on port
	// 465, with the same kind of certificate. It implies TLS.
	ImplicitTLS bool
	// Username and Password, when Username is set, make the sink offer
	// AUTH PLAIN and refuse mail from clients that have not authenticated
	// with exactly these credentials.
	Username, Password string
}

// Received is one message the sink accepted.
type Received struct {
	From    string   // envelope sender (MAIL FROM)
	To      []string // envelope recipients (RCPT TO)
	Subject string   // decoded Subject header
	Text    string   // decoded text/plain part, line endings as "\n"
	HTML    string   // decoded text/html part, line endings as "\n"
	Raw     []byte   // the message exactly as transferred with DATA
	// TLS reports whether the message arrived over an encrypted connection.
	TLS bool
	// Username is the user the client authenticated as, or "".
	Username string
}

// Sink is a running in-process SMTP server. Its methods are safe for
// concurrent use.
type Sink struct {
	opts  Options
	ln    net.Listener
	caPEM string

	mu      sync.Mutex
	msgs    []Received
	taken   []bool        // messages already returned by WaitFor
	changed chan struct{} // closed and replaced whenever msgs grows
	fail    bool
}

// Start runs a sink on 127.0.0.1 with a free port and stops it when the test
// ends.
func Start(t testing.TB, opts Options) *Sink {
	t.Helper()
	if opts.ImplicitTLS {
		opts.TLS = true
	}
	s := &Sink{opts: opts, changed: make(chan struct{})}

	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &session{sink: s, conn: c}, nil
	}))
	srv.Domain = "localhost"
	srv.ReadTimeout = 30 * time.Second
	srv.WriteTimeout = 30 * time.Second
	srv.MaxMessageBytes = 10 << 20
	srv.MaxRecipients = 50
	srv.ErrorLog = log.New(io.Discard, "", 0)
	// Without TLS the sink is reached over loopback only, where plain AUTH
	// is what a local relay would accept too.
	srv.AllowInsecureAuth = !opts.TLS

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("mailtest: listen: %v", err)
	}
	if opts.TLS {
		cert, caPEM, err := selfSigned()
		if err != nil {
			_ = ln.Close()
			t.Fatalf("mailtest: certificate: %v", err)
		}
		s.caPEM = caPEM
		cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		if opts.ImplicitTLS {
			ln = tls.NewListener(ln, cfg)
		} else {
			srv.TLSConfig = cfg
		}
	}
	s.ln = ln

	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln) // returns once Close is called
	}()
	t.Cleanup(func() {
		_ = srv.Close()
		// Close only closes listeners Serve has registered; when the test is
		// over before the goroutine got that far, closing ln ends Serve.
		_ = ln.Close()
		<-done
	})
	return s
}

// Addr returns the host and port the sink listens on.
func (s *Sink) Addr() (host string, port int) {
	a := s.ln.Addr().(*net.TCPAddr)
	return a.IP.String(), a.Port
}

// CAPEM returns the PEM of the sink's self-signed certificate, which a client
// must trust to verify the sink, or "" when the sink has no TLS.
func (s *Sink) CAPEM() string { return s.caPEM }

// Fail makes the sink refuse (true) or accept (false) the messages that
// follow: their DATA is answered with a permanent 554 error.
func (s *Sink) Fail(fail bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail = fail
}

// Messages returns every message accepted so far, oldest first.
func (s *Sink) Messages() []Received {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Received, len(s.msgs))
	for i, m := range s.msgs {
		out[i] = m.clone()
	}
	return out
}

// WaitFor returns the oldest message for the recipient to that no earlier
// WaitFor returned, waiting up to timeout for one to arrive; it fails the
// test if none does. Calling it twice for the same address therefore yields
// two different messages, which is what a test of "a new code voids the old
// one" needs. Addresses are compared without regard to case.
func (s *Sink) WaitFor(t testing.TB, to string, timeout time.Duration) Received {
	t.Helper()
	if a, err := netmail.ParseAddress(to); err == nil {
		to = a.Address
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		s.mu.Lock()
		for i, m := range s.msgs {
			if !s.taken[i] && slices.ContainsFunc(m.To, func(r string) bool { return strings.EqualFold(r, to) }) {
				s.taken[i] = true
				r := m.clone()
				s.mu.Unlock()
				return r
			}
		}
		changed := s.changed
		s.mu.Unlock()

		select {
		case <-changed:
		case <-timer.C:
			t.Fatalf("mailtest: no new message to %s within %s", to, timeout)
			return Received{}
		}
	}
}

func (s *Sink) add(r Received) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.msgs = append(s.msgs, r)
	s.taken = append(s.taken, false)
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *Sink) failing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fail
}

func (r Received) clone() Received {
	r.To = slices.Clone(r.To)
	r.Raw = bytes.Clone(r.Raw)
	return r
}

// session is one SMTP connection's state.
type session struct {
	sink *Sink
	conn *smtp.Conn
	user string
	from string
	to   []string
}

var _ smtp.AuthSession = (*session)(nil)

func (ss *session) encrypted() bool {
	_, ok := ss.conn.TLSConnectionState()
	return ok
}

func (ss *session) AuthMechanisms() []string {
	if ss.sink.opts.Username == "" {
		return nil
	}
	return []string{sasl.Plain}
}

func (ss *session) Auth(mech string) (sasl.Server, error) {
	if mech != sasl.Plain || ss.sink.opts.Username == "" {
		return nil, smtp.ErrAuthUnknownMechanism
	}
	return sasl.NewPlainServer(func(identity, username, password string) error {
		if (identity != "" && identity != username) ||
			username != ss.sink.opts.Username || password != ss.sink.opts.Password {
			return smtp.ErrAuthFailed
		}
		ss.user = username
		return nil
	}), nil
}

func (ss *session) Mail(from string, _ *smtp.MailOptions) error {
	if ss.sink.opts.TLS && !ss.encrypted() {
		return &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "Must issue a STARTTLS command first"}
	}
	if ss.sink.opts.Username != "" && ss.user == "" {
		return smtp.ErrAuthRequired
	}
	ss.from = from
	ss.to = nil
	return nil
}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	ss.to = append(ss.to, to)
	return nil
}

func (ss *session) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if ss.sink.failing() {
		return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "Message refused by the test sink"}
	}
	subject, text, html, err := parse(raw)
	if err != nil {
		// Refusing makes a malformed message fail the sending test loudly
		// instead of arriving with empty parts.
		return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: "Malformed message: " + err.Error()}
	}
	ss.sink.add(Received{
		From: ss.from, To: slices.Clone(ss.to), Subject: subject, Text: text, HTML: html,
		Raw: raw, TLS: ss.encrypted(), Username: ss.user,
	})
	return nil
}

func (ss *session) Reset() {
	ss.from = ""
	ss.to = nil
}

func (ss *session) Logout() error { return nil }

// parse reads a MIME message and returns its decoded subject and its first
// text/plain and text/html parts, however deeply they are nested in
// multipart containers.
func parse(raw []byte) (subject, text, html string, err error) {
	msg, err := netmail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return "", "", "", fmt.Errorf("header: %w", err)
	}
	subject, err = new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
	if err != nil {
		return "", "", "", fmt.Errorf("subject: %w", err)
	}
	var parts bodies
	if err := parts.walk(textproto.MIMEHeader(msg.Header), msg.Body, 0); err != nil {
		return "", "", "", err
	}
	return subject, parts.text, parts.html, nil
}

type bodies struct {
	text, html         string
	haveText, haveHTML bool
}

func (b *bodies) walk(h textproto.MIMEHeader, body io.Reader, depth int) error {
	if depth > 10 {
		return errors.New("multipart nested too deeply")
	}
	ct := h.Get("Content-Type")
	if ct == "" {
		ct = "text/plain; charset=us-ascii" // RFC 2045 default
	}
	mediaType, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return fmt.Errorf("content type %q: %w", ct, err)
	}
	if strings.HasPrefix(mediaType, "multipart/") {
		if params["boundary"] == "" {
			return fmt.Errorf("%s without boundary", mediaType)
		}
		mr := multipart.NewReader(body, params["boundary"])
		for {
			// NextRawPart leaves Content-Transfer-Encoding to decode below,
			// the same way for every part.
			p, err := mr.NextRawPart()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return fmt.Errorf("%s: %w", mediaType, err)
			}
			if err := b.walk(p.Header, p, depth+1); err != nil {
				return err
			}
		}
	}
	if mediaType != "text/plain" && mediaType != "text/html" {
		return nil // attachments and the like are not looked at
	}
	switch cs := strings.ToLower(params["charset"]); cs {
	case "", "utf-8", "us-ascii":
	default:
		return fmt.Errorf("unsupported charset %q", cs)
	}
	decoded, err := decode(h.Get("Content-Transfer-Encoding"), body)
	if err != nil {
		return fmt.Errorf("%s: %w", mediaType, err)
	}
	s := strings.ReplaceAll(string(decoded), "\r\n", "\n")
	switch {
	case mediaType == "text/plain" && !b.haveText:
		b.text, b.haveText = s, true
	case mediaType == "text/html" && !b.haveHTML:
		b.html, b.haveHTML = s, true
	}
	return nil
}

func decode(cte string, body io.Reader) ([]byte, error) {
	switch strings.ToLower(strings.TrimSpace(cte)) {
	case "", "7bit", "8bit", "binary":
		return io.ReadAll(body)
	case "quoted-printable":
		return io.ReadAll(quotedprintable.NewReader(body))
	case "base64":
		// The decoder skips the line breaks base64 bodies are wrapped with.
		return io.ReadAll(base64.NewDecoder(base64.StdEncoding, body))
	default:
		return nil, fmt.Errorf("unsupported transfer encoding %q", cte)
	}
}

// selfSigned makes a short-lived ECDSA certificate for the loopback names
// that is its own CA, and returns it with its PEM for clients to trust.
func selfSigned() (tls.Certificate, string, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, "", err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return tls.Certificate{}, "", err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "mailtest sink"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, "", err
	}
	caPEM := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, caPEM, nil
}
