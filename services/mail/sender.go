package mail

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	netmail "net/mail"
	"strconv"
	"strings"
	"sync"
	"time"

	gomail "github.com/wneessen/go-mail"

	"github.com/writeback/writeback/services/errs"
	"github.com/writeback/writeback/services/i18n"
)

// The safe messages a failed Send carries. They say nothing about the
// server, the recipient or the account, so they can be shown to anyone.
var (
	msgUnreachable = i18n.Key("The mail server could not be reached.")
	msgRefused     = i18n.Key("The mail server refused the message.")
	msgNotSetUp    = i18n.Key("Mail is not set up correctly.")
)

// defaultTimeout bounds a whole delivery when the caller's context has no
// deadline, so a silent server cannot hold a request forever.
const defaultTimeout = 30 * time.Second

// Message is one e-mail to one recipient. Text is required; HTML, when set,
// is sent as the alternative the recipient's mail program prefers.
type Message struct {
	To      string // recipient address, e.g. "ada@example.com"
	Subject string
	Text    string // plain-text body
	HTML    string // HTML body
}

// Sender delivers messages through the configured mail server. It opens one
// connection per message and is safe for concurrent use.
type Sender struct {
	cfg       Config
	log       *slog.Logger
	tlsConfig *tls.Config // nil when cfg is invalid
	cfgErr    error       // why cfg cannot be used, from Validate
}

// NewSender returns a Sender for cfg that logs to log (nil discards). It does
// not connect; an invalid cfg makes every Send fail with errs.Unavailable.
func NewSender(cfg Config, log *slog.Logger) *Sender {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Sender{cfg: cfg, log: log.With("component", "mail")}
	if err := cfg.Validate(); err != nil {
		s.cfgErr = err
		return s
	}
	roots, err := x509.SystemCertPool()
	if err != nil {
		// Without system roots only CAPEM can vouch for the server; that is
		// still verified TLS, just with a smaller trust store.
		roots = x509.NewCertPool()
	}
	if strings.TrimSpace(cfg.CAPEM) != "" {
		roots.AppendCertsFromPEM([]byte(cfg.CAPEM))
	}
	s.tlsConfig = &tls.Config{
		ServerName: cfg.Host,
		RootCAs:    roots,
		MinVersion: tls.VersionTLS12,
	}
	return s
}

// Send delivers m. The whole exchange (connect, TLS, authentication and
// transfer) ends when ctx is done, or after 30 seconds if ctx has no
// deadline.
//
// A bad recipient address gives an *errs.Error of Kind errs.Invalid with the
// field "to". Every delivery failure gives Kind errs.Unavailable with the
// message "The mail server could not be reached." (nothing was handed over:
// connection, TLS verification or authentication failed) or "The mail server
// refused the message." (the server said no after we were connected); the
// cause is kept for operators and never contains the SMTP password. A
// Sender made from settings that fail Validate answers every Send with Kind
// errs.Unavailable and "Mail is not set up correctly.".
func (s *Sender) Send(ctx context.Context, m Message) error {
	if s.cfgErr != nil {
		s.log.ErrorContext(ctx, "mail not sent: invalid settings", "fields", errs.FieldsOf(s.cfgErr))
		return errs.E(errs.Unavailable, msgNotSetUp, s.cfgErr)
	}
	to, err := netmail.ParseAddress(m.To)
	if err != nil || hasControl(m.To) {
		return &errs.Error{
			Kind:    errs.Invalid,
			Message: "Enter a valid e-mail address.",
			Fields:  map[string]string{"to": "Enter a valid e-mail address, such as ada@example.com."},
		}
	}
	if m.Text == "" {
		return errs.E(errs.Internal, "", errors.New("mail: message has no text part"))
	}

	msg, err := s.build(m, to)
	if err != nil {
		return errs.E(errs.Internal, "", fmt.Errorf("mail: build message: %w", err))
	}

	start := time.Now()
	stage, err := s.deliver(ctx, msg)
	attrs := []any{
		"smtp_host", s.cfg.Host, "smtp_port", s.cfg.Port, "tls_mode", string(s.cfg.TLS),
		"duration_ms", time.Since(start).Milliseconds(),
	}
	if err != nil {
		err = s.redact(err)
		safe := msgRefused
		if stage == stageConnect || ctx.Err() != nil {
			safe = msgUnreachable
		}
		s.log.ErrorContext(ctx, "mail not sent", append(attrs, "stage", stage, "error", err.Error())...)
		return errs.E(errs.Unavailable, safe, fmt.Errorf("mail: %s: %w", stage, err))
	}
	s.log.InfoContext(ctx, "mail sent", attrs...)
	return nil
}

// The two stages of a delivery, which decide the safe message and appear in
// the operator log as "stage".
const (
	stageConnect = "connect" // TCP, TLS, EHLO, STARTTLS, AUTH
	stageSend    = "send"    // MAIL FROM, RCPT TO, DATA
)

func (s *Sender) build(m Message, to *netmail.Address) (*gomail.Msg, error) {
	msg := gomail.NewMsg(gomail.WithNoDefaultUserAgent())
	if err := msg.From(s.cfg.From); err != nil {
		return nil, err
	}
	msg.ToMailAddress(to)
	msg.Subject(m.Subject)
	msg.SetDate()
	msg.SetMessageIDWithValue(messageID(s.cfg.From))
	// Ask auto-responders (out-of-office, RFC 3834) not to answer a
	// machine-sent notice.
	msg.SetGenHeader(gomail.Header("Auto-Submitted"), "auto-generated")
	msg.SetGenHeader(gomail.HeaderXAutoResponseSuppress, "All")
	msg.SetBodyString(gomail.TypeTextPlain, m.Text)
	if m.HTML != "" {
		msg.AddAlternativeString(gomail.TypeTextHTML, m.HTML)
	}
	return msg, nil
}

// deliver connects, sends msg and says at which stage it failed.
func (s *Sender) deliver(ctx context.Context, msg *gomail.Msg) (stage string, err error) {
	timeout := defaultTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	if timeout <= 0 || ctx.Err() != nil {
		return stageConnect, context.Cause(ctx)
	}

	var (
		mu    sync.Mutex
		stops []func() bool
	)
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		for _, stop := range stops {
			stop()
		}
	}()
	// go-mail applies ctx only while dialling and then relies on its own
	// deadline; closing the connection when ctx ends binds every later step
	// to ctx as well. The address is built here, not taken from go-mail,
	// so IPv6 literals are bracketed.
	dial := func(dctx context.Context, _, _ string) (net.Conn, error) {
		addr := net.JoinHostPort(s.cfg.Host, strconv.Itoa(s.cfg.Port))
		nd := &net.Dialer{}
		var conn net.Conn
		var err error
		if s.cfg.TLS == TLSImplicit {
			// The *tls.Conn is returned unwrapped: go-mail looks at the
			// concrete type to know the session is encrypted.
			conn, err = (&tls.Dialer{NetDialer: nd, Config: s.tlsConfig.Clone()}).DialContext(dctx, "tcp", addr)
		} else {
			conn, err = nd.DialContext(dctx, "tcp", addr)
		}
		if err != nil {
			return nil, err
		}
		mu.Lock()
		stops = append(stops, context.AfterFunc(ctx, func() { _ = conn.Close() }))
		mu.Unlock()
		return conn, nil
	}

	opts := []gomail.Option{
		gomail.WithPort(s.cfg.Port),
		gomail.WithTimeout(timeout),
		gomail.WithDialContextFunc(dial),
		gomail.WithTLSConfig(s.tlsConfig.Clone()),
	}
	switch s.cfg.TLS {
	case TLSImplicit:
		opts = append(opts, gomail.WithSSL())
	case TLSStartTLS:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory))
	default: // TLSNone, which Validate allows only on a loopback host
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
	}
	if s.cfg.Username != "" {
		// PLAIN, else LOGIN; go-mail falls back to discovering another
		// mechanism (SCRAM, CRAM-MD5) when the server offers neither. Over
		// TLS go-mail refuses to send these in the clear to a remote host;
		// in "none" mode the host is loopback, which Validate made sure of.
		plain, login := gomail.SMTPAuthPlain, gomail.SMTPAuthLogin
		if s.cfg.TLS == TLSNone {
			plain, login = gomail.SMTPAuthPlainNoEnc, gomail.SMTPAuthLoginNoEnc
		}
		opts = append(opts,
			gomail.WithOpportunisticSMTPAuth(plain, login),
			gomail.WithUsername(s.cfg.Username),
			gomail.WithPassword(s.cfg.Password),
		)
	}

	client, err := gomail.NewClient(s.cfg.Host, opts...)
	if err != nil {
		return stageConnect, err
	}
	conn, err := client.DialToSMTPClientWithContext(ctx)
	if err != nil {
		return stageConnect, err
	}
	if err := client.SendWithSMTPClient(conn, msg); err != nil {
		_ = client.CloseWithSMTPClient(conn)
		return stageSend, err
	}
	// The message was accepted once DATA ended with 250; a failed QUIT does
	// not undo that, so it is only logged.
	if err := client.CloseWithSMTPClient(conn); err != nil {
		s.log.DebugContext(ctx, "mail: closing the connection failed", "error", s.redact(err).Error())
	}
	return "", nil
}

// redact keeps the SMTP password out of an error's text. Neither go-mail nor
// servers normally echo it, but an error text ends up in logs, so this is
// made certain rather than assumed.
func (s *Sender) redact(err error) error {
	if err == nil || s.cfg.Password == "" || !strings.Contains(err.Error(), s.cfg.Password) {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), s.cfg.Password, "[redacted]"))
}

// messageID makes a Message-ID under the sender's domain, so the ID does not
// reveal the portal host's name as go-mail's default would.
func messageID(from string) string {
	domain := "localhost"
	if a, err := netmail.ParseAddress(from); err == nil {
		if i := strings.LastIndexByte(a.Address, '@'); i >= 0 && i < len(a.Address)-1 {
			domain = a.Address[i+1:]
		}
	}
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:]) + "@" + domain
}
