package mail_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/writeback/writeback/services/errs"
	"github.com/writeback/writeback/services/i18n"
	"github.com/writeback/writeback/services/mail"
	"github.com/writeback/writeback/services/mail/mailtest"
)

const (
	smtpUser     = "portal-relay"
	smtpPassword = "Relay-Pa55word-0f-the-portal"
	from         = "Password portal <portal@example.com>"
)

// logBuffer collects a Sender's log so tests can search it.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func newSender(t *testing.T, cfg mail.Config) (*mail.Sender, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	return mail.NewSender(cfg, log), logs
}

func sinkConfig(s *mailtest.Sink, mode mail.TLSMode) mail.Config {
	host, port := s.Addr()
	return mail.Config{Host: host, Port: port, TLS: mode, From: from, CAPEM: s.CAPEM()}
}

func send(t *testing.T, s *mail.Sender, m mail.Message) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	return s.Send(ctx, m)
}

// assertUnavailable checks err is the safe Unavailable error with message
// want, and that neither it nor the log reveals the SMTP password.
func assertUnavailable(t *testing.T, err error, want string, logs *logBuffer) {
	t.Helper()
	if err == nil {
		t.Fatal("Send() = nil, want an error")
	}
	t.Logf("error: %v", err)
	if k := errs.KindOf(err); k != errs.Unavailable {
		t.Errorf("KindOf = %v, want %v (err: %v)", k, errs.Unavailable, err)
	}
	if got := errs.MessageOf(err); got != want {
		t.Errorf("MessageOf = %q, want %q", got, want)
	}
	if strings.Contains(err.Error(), smtpPassword) {
		t.Errorf("err.Error() contains the password: %q", err.Error())
	}
	if strings.Contains(logs.String(), smtpPassword) {
		t.Errorf("the log contains the password:\n%s", logs)
	}
	if !strings.Contains(logs.String(), "mail not sent") {
		t.Errorf("the failure was not logged:\n%s", logs)
	}
}

func TestSendPlainLoopback(t *testing.T) {
	sink := mailtest.Start(t, mailtest.Options{})
	sender, logs := newSender(t, sinkConfig(sink, mail.TLSNone))

	m := mail.TestMessage(i18n.English, "Ada <ada@example.com>", "Example Corp")
	if err := send(t, sender, m); err != nil {
		t.Fatalf("Send() = %v", err)
	}
	r := sink.WaitFor(t, "ada@example.com", 5*time.Second)
	if r.From != "portal@example.com" {
		t.Errorf("envelope from = %q", r.From)
	}
	if len(r.To) != 1 || r.To[0] != "ada@example.com" {
		t.Errorf("envelope to = %q", r.To)
	}
	if r.Subject != m.Subject {
		t.Errorf("Subject = %q, want %q", r.Subject, m.Subject)
	}
	if r.Text != m.Text {
		t.Errorf("Text differs after transfer:\n got %q\nwant %q", r.Text, m.Text)
	}
	if r.HTML != m.HTML {
		t.Errorf("HTML differs after transfer:\n got %q\nwant %q", r.HTML, m.HTML)
	}
	if r.TLS {
		t.Error("TLS = true on a plain connection")
	}
	if !bytes.Contains(r.Raw, []byte("multipart/alternative")) {
		t.Errorf("not multipart/alternative:\n%s", r.Raw)
	}
	if !bytes.Contains(r.Raw, []byte("Auto-Submitted: auto-generated")) {
		t.Errorf("no Auto-Submitted header:\n%s", r.Raw)
	}
	if !strings.Contains(logs.String(), "mail sent") {
		t.Errorf("success not logged:\n%s", logs)
	}
}

func TestSendStartTLSWithAuth(t *testing.T) {
	sink := mailtest.Start(t, mailtest.Options{TLS: true, Username: smtpUser, Password: smtpPassword})
	for _, host := range []string{"127.0.0.1", "localhost"} {
		t.Run(host, func(t *testing.T) {
			cfg := sinkConfig(sink, mail.TLSStartTLS)
			cfg.Host, cfg.Username, cfg.Password = host, smtpUser, smtpPassword
			sender, logs := newSender(t, cfg)

			to := "grace-" + host + "@example.com"
			code := "48213907"
			if err := send(t, sender, mail.VerificationCode(i18n.English, to, "Example Corp", code, 10*time.Minute)); err != nil {
				t.Fatalf("Send() = %v\nlog:\n%s", err, logs)
			}
			r := sink.WaitFor(t, to, 5*time.Second)
			if !r.TLS {
				t.Error("message did not arrive over TLS")
			}
			if r.Username != smtpUser {
				t.Errorf("authenticated as %q, want %q", r.Username, smtpUser)
			}
			if !strings.Contains(r.Text, code) || !strings.Contains(r.HTML, code) {
				t.Errorf("code missing from a part:\ntext: %s\nhtml: %s", r.Text, r.HTML)
			}
			if bytes.Contains(r.Raw, []byte(smtpPassword)) {
				t.Error("the message contains the SMTP password")
			}
			if strings.Contains(logs.String(), smtpPassword) || strings.Contains(logs.String(), code) {
				t.Errorf("the log contains the password or the code:\n%s", logs)
			}
		})
	}
}

func TestSendImplicitTLS(t *testing.T) {
	sink := mailtest.Start(t, mailtest.Options{ImplicitTLS: true, Username: smtpUser, Password: smtpPassword})
	cfg := sinkConfig(sink, mail.TLSImplicit)
	cfg.Username, cfg.Password = smtpUser, smtpPassword
	sender, logs := newSender(t, cfg)

	if err := send(t, sender, mail.TestMessage(i18n.English, "ada@example.com", "Example Corp")); err != nil {
		t.Fatalf("Send() = %v\nlog:\n%s", err, logs)
	}
	r := sink.WaitFor(t, "ada@example.com", 5*time.Second)
	if !r.TLS || r.Username != smtpUser {
		t.Errorf("TLS = %v, Username = %q; want true, %q", r.TLS, r.Username, smtpUser)
	}
}

func TestSendRejectsUntrustedCertificate(t *testing.T) {
	sink := mailtest.Start(t, mailtest.Options{TLS: true, Username: smtpUser, Password: smtpPassword})
	otherCA := mailtest.Start(t, mailtest.Options{TLS: true}).CAPEM()

	tests := []struct {
		name  string
		mode  mail.TLSMode
		caPEM string
	}{
		{"starttls, another CA", mail.TLSStartTLS, otherCA},
		{"starttls, system roots only", mail.TLSStartTLS, ""},
	}
	implicit := mailtest.Start(t, mailtest.Options{ImplicitTLS: true})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := sinkConfig(sink, tt.mode)
			cfg.CAPEM, cfg.Username, cfg.Password = tt.caPEM, smtpUser, smtpPassword
			sender, logs := newSender(t, cfg)
			err := send(t, sender, mail.TestMessage(i18n.English, "ada@example.com", "Example Corp"))
			assertUnavailable(t, err, "The mail server could not be reached.", logs)
		})
	}
	t.Run("implicit tls, another CA", func(t *testing.T) {
		cfg := sinkConfig(implicit, mail.TLSImplicit)
		cfg.CAPEM = otherCA
		sender, logs := newSender(t, cfg)
		err := send(t, sender, mail.TestMessage(i18n.English, "ada@example.com", "Example Corp"))
		assertUnavailable(t, err, "The mail server could not be reached.", logs)
	})
	if n := len(sink.Messages()) + len(implicit.Messages()); n != 0 {
		t.Errorf("%d messages were delivered over an unverified connection", n)
	}
}

func TestSendRequiresStartTLS(t *testing.T) {
	// A server that does not offer STARTTLS must not get the message, nor the
	// credentials, in the clear.
	sink := mailtest.Start(t, mailtest.Options{Username: smtpUser, Password: smtpPassword})
	cfg := sinkConfig(sink, mail.TLSStartTLS)
	cfg.Username, cfg.Password = smtpUser, smtpPassword
	sender, logs := newSender(t, cfg)

	err := send(t, sender, mail.TestMessage(i18n.English, "ada@example.com", "Example Corp"))
	assertUnavailable(t, err, "The mail server could not be reached.", logs)
	if n := len(sink.Messages()); n != 0 {
		t.Errorf("%d messages delivered without STARTTLS", n)
	}
}

func TestSendRefused(t *testing.T) {
	sink := mailtest.Start(t, mailtest.Options{TLS: true, Username: smtpUser, Password: smtpPassword})
	cfg := sinkConfig(sink, mail.TLSStartTLS)
	cfg.Username, cfg.Password = smtpUser, smtpPassword
	sender, logs := newSender(t, cfg)

	sink.Fail(true)
	err := send(t, sender, mail.TestMessage(i18n.English, "ada@example.com", "Example Corp"))
	assertUnavailable(t, err, "The mail server refused the message.", logs)
	if n := len(sink.Messages()); n != 0 {
		t.Errorf("%d messages kept by a failing sink", n)
	}

	sink.Fail(false)
	if err := send(t, sender, mail.TestMessage(i18n.English, "ada@example.com", "Example Corp")); err != nil {
		t.Fatalf("Send() after Fail(false) = %v", err)
	}
	sink.WaitFor(t, "ada@example.com", 5*time.Second)
}

func TestSendWrongPassword(t *testing.T) {
	sink := mailtest.Start(t, mailtest.Options{TLS: true, Username: smtpUser, Password: "the-right-one"})
	cfg := sinkConfig(sink, mail.TLSStartTLS)
	cfg.Username, cfg.Password = smtpUser, smtpPassword
	sender, logs := newSender(t, cfg)

	err := send(t, sender, mail.TestMessage(i18n.English, "ada@example.com", "Example Corp"))
	assertUnavailable(t, err, "The mail server could not be reached.", logs)
}

func TestSendBoundToContext(t *testing.T) {
	// A server that accepts connections and then never says a word.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
	)
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	addr := ln.Addr().(*net.TCPAddr)
	sender, logs := newSender(t, mail.Config{Host: "127.0.0.1", Port: addr.Port, TLS: mail.TLSNone, From: from})

	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = sender.Send(ctx, mail.TestMessage(i18n.English, "ada@example.com", "Example Corp"))
	if elapsed := time.Since(start); elapsed > 3*time.Second {
		t.Errorf("Send took %s with a 300ms context", elapsed)
	}
	assertUnavailable(t, err, "The mail server could not be reached.", logs)
}

func TestSendCancelledMidway(t *testing.T) {
	// The context ends while the server is reading the greeting reply;
	// Send must return promptly rather than wait out its own timeout.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = c.Write([]byte("220 localhost ESMTP\r\n"))
		// Read the EHLO and whatever follows, never answering, until the
		// client gives up and closes the connection.
		_, _ = io.Copy(io.Discard, c)
	}()
	addr := ln.Addr().(*net.TCPAddr)
	sender, logs := newSender(t, mail.Config{Host: "127.0.0.1", Port: addr.Port, TLS: mail.TLSNone, From: from})

	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(300*time.Millisecond, cancel)
	start := time.Now()
	err = sender.Send(ctx, mail.TestMessage(i18n.English, "ada@example.com", "Example Corp"))
	if elapsed := time.Since(start); elapsed > 3*time.Second {
		t.Errorf("Send took %s after its context was cancelled at 300ms", elapsed)
	}
	assertUnavailable(t, err, "The mail server could not be reached.", logs)
}

func TestSendInvalidSettings(t *testing.T) {
	sender, logs := newSender(t, mail.Config{Host: "mail.example.com", Port: 25, TLS: mail.TLSNone, From: from,
		Username: smtpUser, Password: smtpPassword})
	err := send(t, sender, mail.TestMessage(i18n.English, "ada@example.com", "Example Corp"))
	if k := errs.KindOf(err); k != errs.Unavailable {
		t.Fatalf("KindOf = %v, want %v (err: %v)", k, errs.Unavailable, err)
	}
	if strings.Contains(err.Error(), smtpPassword) || strings.Contains(logs.String(), smtpPassword) {
		t.Error("the password leaked into the error or the log")
	}
}

func TestSendInvalidRecipient(t *testing.T) {
	sink := mailtest.Start(t, mailtest.Options{})
	sender, _ := newSender(t, sinkConfig(sink, mail.TLSNone))
	for _, to := range []string{"", "not an address", "ada@example.com\r\nBcc: eve@example.com"} {
		err := send(t, sender, mail.TestMessage(i18n.English, to, "Example Corp"))
		if k := errs.KindOf(err); k != errs.Invalid {
			t.Errorf("Send(to %q): KindOf = %v, want %v", to, k, errs.Invalid)
		}
		if errs.FieldsOf(err)["to"] == "" {
			t.Errorf("Send(to %q): no message for the field \"to\"", to)
		}
	}
	if n := len(sink.Messages()); n != 0 {
		t.Errorf("%d messages delivered to invalid recipients", n)
	}
}

func TestSinkWaitForReturnsEachMessageOnce(t *testing.T) {
	sink := mailtest.Start(t, mailtest.Options{})
	sender, _ := newSender(t, sinkConfig(sink, mail.TLSNone))
	for _, code := range []string{"11111111", "22222222"} {
		if err := send(t, sender, mail.VerificationCode(i18n.English, "ada@example.com", "Example Corp", code, 10*time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	first := sink.WaitFor(t, "ADA@example.com", 5*time.Second)
	second := sink.WaitFor(t, "ada@example.com", 5*time.Second)
	if !strings.Contains(first.Text, "11111111") || !strings.Contains(second.Text, "22222222") {
		t.Errorf("WaitFor order: first %q, second %q", first.Text, second.Text)
	}
	if n := len(sink.Messages()); n != 2 {
		t.Errorf("Messages() has %d, want 2", n)
	}
}
