package audit

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/writeback/writeback/store"
)

// NewStdoutForwarder forwards each event as one JSON line (JSONEvent) to w,
// normally standard output for a container's log collector; log (may be
// nil) hears about problems. See Forwarder for what is sent and when; Close
// it to stop.
func NewStdoutForwarder(ctx context.Context, db *store.DB, w io.Writer, log *slog.Logger) (*Forwarder, error) {
	bw := bufio.NewWriter(w)
	f, err := newForwarder(ctx, db, "stdout", &stdoutSender{bw: bw, enc: newJSONEncoder(bw)}, log)
	if err != nil {
		return nil, err
	}
	return f.start(), nil
}

// stdoutSender writes and flushes one line per event: the cursor moves
// only past what reached w.
type stdoutSender struct {
	bw  *bufio.Writer
	enc *json.Encoder
}

func (s *stdoutSender) send(ctx context.Context, e store.AuditEvent) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.enc.Encode(NewJSONEvent(e)); err != nil {
		return err
	}
	return s.bw.Flush()
}

// interrupt cannot stop a write to a pipe nobody reads; Close abandons it.
func (s *stdoutSender) interrupt() {}

func (s *stdoutSender) close() error { return s.bw.Flush() }

// Syslog facilities worth choosing (RFC 5424 section 6.2.1).
const (
	FacilityAuthPriv = 10 // security/authorization messages
	FacilityLogAudit = 13 // log audit
	FacilityLocal0   = 16
)

// SyslogOptions tunes NewSyslogForwarder. The zero value works.
type SyslogOptions struct {
	// TLS is the client configuration for network "tls" (default: the
	// system roots, the host of addr as server name, TLS 1.2 or later).
	// Certificate verification cannot be switched off: a configuration with
	// InsecureSkipVerify is refused.
	TLS          *tls.Config
	Facility     int    // default FacilityAuthPriv
	Hostname     string // default os.Hostname()
	AppName      string // default "writeback"
	DialTimeout  time.Duration
	WriteTimeout time.Duration
	// MaxDatagram bounds a UDP message (default 8192 bytes); longer events
	// are sent with their details replaced by {"truncated":true}.
	MaxDatagram int
	Logger      *slog.Logger // operator log for connection problems and drops
}

// syslogSender sends each event as an RFC 5424 message whose MSG is the
// event as JSON (JSONEvent): over UDP one message per datagram (RFC 5426),
// over TCP with octet-counting framing (RFC 6587), over TLS the same framing
// (RFC 5425). It reconnects with backoff until the event is written; while
// the server is away the events wait in the database (see Forwarder).
type syslogSender struct {
	network, addr string
	opt           SyslogOptions
	mu            sync.Mutex // guards conn against interrupt during a write
	conn          net.Conn
	pid           string
	// stopped is set by interrupt: a dial or write in progress fails, and
	// no new one starts.
	stopped atomic.Bool
}

// ErrNetwork is returned for a network other than "tcp", "udp" or "tls".
var ErrNetwork = errors.New("audit: syslog network must be tcp, udp or tls")

// NewSyslogForwarder forwards the audit log to a syslog server at addr
// ("host:port") over network "tcp", "udp" or "tls" (TCP with TLS, see
// SyslogOptions.TLS). It does not wait for the server: connecting happens,
// and is retried, in the background. See Forwarder for what is sent and
// when; Close it to stop.
func NewSyslogForwarder(ctx context.Context, db *store.DB, network, addr string, opt SyslogOptions) (*Forwarder, error) {
	s, err := newSyslogSender(network, addr, opt)
	if err != nil {
		return nil, err
	}
	f, err := newForwarder(ctx, db, "syslog", s, opt.Logger)
	if err != nil {
		return nil, err
	}
	return f.start(), nil
}

func newSyslogSender(network, addr string, opt SyslogOptions) (*syslogSender, error) {
	switch network {
	case "tcp", "tcp4", "tcp6", "udp", "udp4", "udp6", "tls":
	default:
		return nil, fmt.Errorf("%w: %q", ErrNetwork, network)
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("audit: syslog address %q: %w", addr, err)
	}
	if network == "tls" {
		var c *tls.Config
		if opt.TLS != nil {
			if opt.TLS.InsecureSkipVerify {
				return nil, errors.New("audit: syslog over TLS always verifies the server certificate (InsecureSkipVerify is refused)")
			}
			c = opt.TLS.Clone()
		} else {
			c = &tls.Config{}
		}
		if c.ServerName == "" {
			c.ServerName = host
		}
		c.MinVersion = max(c.MinVersion, tls.VersionTLS12)
		opt.TLS = c
	} else if opt.TLS != nil {
		return nil, fmt.Errorf("audit: a TLS configuration was given for network %q (use \"tls\")", network)
	}
	if opt.Facility == 0 {
		opt.Facility = FacilityAuthPriv
	}
	if opt.Hostname == "" {
		opt.Hostname, _ = os.Hostname()
	}
	if opt.AppName == "" {
		opt.AppName = "writeback"
	}
	if opt.DialTimeout <= 0 {
		opt.DialTimeout = 5 * time.Second
	}
	if opt.WriteTimeout <= 0 {
		opt.WriteTimeout = 10 * time.Second
	}
	if opt.MaxDatagram <= 0 {
		opt.MaxDatagram = 8192
	}
	return &syslogSender{network: network, addr: addr, opt: opt, pid: strconv.Itoa(os.Getpid())}, nil
}

// close closes the connection.
func (f *syslogSender) close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.conn != nil {
		err := f.conn.Close()
		f.conn = nil
		return err
	}
	return nil
}

// interrupt makes a send in progress fail at once: a blocked write gets a
// past deadline (the dial ends with the send's context).
func (f *syslogSender) interrupt() {
	f.stopped.Store(true)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.conn != nil {
		_ = f.conn.SetDeadline(time.Unix(1, 0))
	}
}

const (
	minBackoff = 100 * time.Millisecond
	maxBackoff = 30 * time.Second
)

// send writes one event, reconnecting with exponential backoff until it is
// written or ctx ends.
func (f *syslogSender) send(ctx context.Context, e store.AuditEvent) error {
	msg := f.format(e)
	backoff := minBackoff
	for {
		err := f.write(ctx, msg)
		if err == nil {
			return nil
		}
		f.mu.Lock()
		if f.conn != nil {
			_ = f.conn.Close()
			f.conn = nil
		}
		f.mu.Unlock()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		f.opt.logger().Warn("audit syslog forwarding failed", "network", f.network, "address", f.addr,
			"retry_in", backoff.String(), "err", err)
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return ctx.Err()
		}
		backoff = min(backoff*2, maxBackoff)
	}
}

func (o SyslogOptions) logger() *slog.Logger {
	if o.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return o.Logger
}

// dial connects (and for TLS, handshakes) within DialTimeout, or until
// ctx ends (Close giving up).
func (f *syslogSender) dial(ctx context.Context) (net.Conn, error) {
	d := &net.Dialer{Timeout: f.opt.DialTimeout}
	if f.network == "tls" {
		return (&tls.Dialer{NetDialer: d, Config: f.opt.TLS}).DialContext(ctx, "tcp", f.addr)
	}
	return d.DialContext(ctx, f.network, f.addr)
}

func (f *syslogSender) write(ctx context.Context, msg []byte) error {
	f.mu.Lock()
	c := f.conn
	f.mu.Unlock()
	if c == nil {
		var err error
		if c, err = f.dial(ctx); err != nil {
			return err
		}
		f.mu.Lock()
		f.conn = c
		f.mu.Unlock()
	}
	if err := c.SetWriteDeadline(time.Now().Add(f.opt.WriteTimeout)); err != nil {
		return err
	}
	// interrupt sets stopped before it sets its past deadline on conn: had
	// it come before the deadline above replaced its own (while the dial
	// was finishing, or since), this sees it.
	if f.stopped.Load() {
		return context.Canceled
	}
	if f.isUDP() {
		_, err := c.Write(msg)
		return err
	}
	// RFC 6587 octet counting: "MSG-LEN SP SYSLOG-MSG", no trailer, so a
	// message may contain newlines.
	frame := make([]byte, 0, len(msg)+8)
	frame = strconv.AppendInt(frame, int64(len(msg)), 10)
	frame = append(frame, ' ')
	frame = append(frame, msg...)
	_, err := c.Write(frame)
	return err
}

func (f *syslogSender) isUDP() bool { return f.network[:3] == "udp" }

// Severities used (RFC 5424 section 6.2.1).
const (
	severityWarning = 4
	severityInfo    = 6
)

// format builds an RFC 5424 message:
//
//	<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID - MSG
//
// MSGID is the category; there is no structured data ("-") because MSG
// carries the whole event as JSON, which SIEMs parse more readily.
func (f *syslogSender) format(e store.AuditEvent) []byte {
	sev := severityInfo
	if e.Result == Failure {
		sev = severityWarning
	}
	var b bytes.Buffer
	b.WriteByte('<')
	b.WriteString(strconv.Itoa(f.opt.Facility*8 + sev))
	b.WriteString(">1 ")
	b.WriteString(formatTime(e.TimeMS))
	b.WriteByte(' ')
	b.WriteString(headerField(f.opt.Hostname, 255))
	b.WriteByte(' ')
	b.WriteString(headerField(f.opt.AppName, 48))
	b.WriteByte(' ')
	b.WriteString(headerField(f.pid, 128))
	b.WriteByte(' ')
	b.WriteString(headerField(e.Category, 32))
	b.WriteString(" - ")
	head := b.Len()
	j := NewJSONEvent(e)
	_ = newJSONEncoder(&b).Encode(j)
	b.Truncate(b.Len() - 1) // Encode's newline
	if f.isUDP() && b.Len() > f.opt.MaxDatagram {
		b.Truncate(head)
		j.Details = []byte(`{"truncated":true}`)
		_ = newJSONEncoder(&b).Encode(j)
		b.Truncate(b.Len() - 1)
		if b.Len() > f.opt.MaxDatagram {
			b.Truncate(f.opt.MaxDatagram)
		}
	}
	return b.Bytes()
}

// headerField makes s a valid RFC 5424 header field: printable US-ASCII
// without spaces, at most n characters, "-" (the nil value) when empty.
func headerField(s string, n int) string {
	out := make([]byte, 0, min(len(s), n))
	for i := 0; i < len(s) && len(out) < n; i++ {
		if c := s[i]; c > 32 && c < 127 {
			out = append(out, c)
		}
	}
	if len(out) == 0 {
		return "-"
	}
	return string(out)
}
