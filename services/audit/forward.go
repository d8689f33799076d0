package audit

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
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

// Forwarder passes audit events on to a SIEM. Forward must never block the
// request that produced the event; register it with store.DB.OnAudit so it
// only sees committed events:
//
//	fwd, err := audit.NewSyslogForwarder("tls", "siem.example:6514", audit.SyslogOptions{Logger: log})
//	...
//	db.OnAudit(fwd.Forward)
//	defer fwd.Close(shutdownCtx) // sends what is queued, gives up when shutdownCtx ends
//
// Syslog goes over UDP, TCP or TLS (RFC 5425, verified like any TLS client).
type Forwarder interface {
	Forward(store.AuditEvent)
}

// DefaultQueueSize is how many events a forwarder holds while its
// destination is slow or away; beyond it new events are dropped and counted.
const DefaultQueueSize = 10_000

// queue is the non-blocking buffered channel behind every forwarder: Forward
// never waits, a single goroutine delivers in order, and what does not fit is
// counted as dropped and reported to the operator log.
type queue struct {
	ch      chan store.AuditEvent
	mu      sync.RWMutex // guards closed against a send on a closed channel
	closed  bool
	done    chan struct{}
	sent    atomic.Uint64
	dropped atomic.Uint64
	log     *slog.Logger
	name    string

	lastWarn      time.Time // deliver goroutine only
	warnedDropped uint64
}

func newQueue(size int, log *slog.Logger, name string) *queue {
	if size <= 0 {
		size = DefaultQueueSize
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &queue{ch: make(chan store.AuditEvent, size), done: make(chan struct{}), log: log, name: name}
}

func (q *queue) put(e store.AuditEvent) {
	q.mu.RLock()
	defer q.mu.RUnlock()
	if q.closed {
		q.dropped.Add(1)
		return
	}
	select {
	case q.ch <- e:
	default:
		q.dropped.Add(1)
	}
}

// run delivers queued events with deliver until the queue is closed and
// drained or stop is closed.
func (q *queue) run(deliver func(store.AuditEvent) bool, stop <-chan struct{}) {
	defer close(q.done)
	for {
		select {
		case e, ok := <-q.ch:
			if !ok {
				return
			}
			if deliver(e) {
				q.sent.Add(1)
			} else {
				q.dropped.Add(1)
			}
			q.warnDrops()
		case <-stop:
			return
		}
	}
}

// warnDrops tells the operator, at most once a minute, that events were lost.
func (q *queue) warnDrops() {
	d := q.dropped.Load()
	if d == q.warnedDropped || time.Since(q.lastWarn) < time.Minute {
		return
	}
	q.log.Warn("audit forwarder dropped events", "forwarder", q.name, "dropped_total", d, "dropped_new", d-q.warnedDropped)
	q.lastWarn, q.warnedDropped = time.Now(), d
}

// abortWait bounds how long Close waits, once its context has ended, for a
// delivery in progress to notice that it must stop. Deliveries that can be
// interrupted (the syslog connection) return at once; a writer that cannot
// (a stuck standard output) is left behind rather than holding up shutdown.
const abortWait = time.Second

// closeAndWait stops accepting events and lets run drain the queue until
// ctx ends. Then it calls abort, which must make run return soon (close its
// stop channel, interrupt a write in progress), and waits at most abortWait
// for that. What was left in the queue counts as dropped, and drops are
// reported to the operator log. It reports whether run has returned.
func (q *queue) closeAndWait(ctx context.Context, abort func()) bool {
	q.mu.Lock()
	if !q.closed {
		q.closed = true
		close(q.ch)
	}
	q.mu.Unlock()
	returned := true
	select {
	case <-q.done:
	case <-ctx.Done():
		abort()
		select {
		case <-q.done:
		case <-time.After(abortWait):
			returned = false
		}
	}
	for range q.ch {
		q.dropped.Add(1)
	}
	if d := q.dropped.Load(); d > 0 {
		// Always said at the end, even if a warning went out a moment ago:
		// this is the total the operator compares with the database.
		q.log.Warn("audit forwarder stopped; events were dropped (the audit log in the database has them all)",
			"forwarder", q.name, "dropped_total", d, "sent_total", q.sent.Load(), "delivery_stuck", !returned)
	}
	return returned
}

// StdoutForwarder writes each event as one JSON line (JSONEvent) to a
// writer, normally standard output for a container's log collector.
type StdoutForwarder struct {
	q        *queue
	bw       *bufio.Writer
	stop     chan struct{}
	stopOnce sync.Once
}

// ErrStuck is returned by Close when a delivery in progress could not be
// interrupted in time; the forwarder was abandoned (the process may exit).
var ErrStuck = errors.New("audit: forwarder still busy delivering when its close deadline passed")

// NewStdoutForwarder starts a forwarder writing to w; log (may be nil) hears
// about dropped events. Close it to flush.
func NewStdoutForwarder(w io.Writer, log *slog.Logger) *StdoutForwarder {
	f := &StdoutForwarder{q: newQueue(DefaultQueueSize, log, "stdout"), bw: bufio.NewWriter(w), stop: make(chan struct{})}
	enc := newJSONEncoder(f.bw)
	go f.q.run(func(e store.AuditEvent) bool {
		if err := enc.Encode(NewJSONEvent(e)); err != nil {
			return false
		}
		// Flush when nothing else is waiting, so a line is never held back.
		if len(f.q.ch) == 0 {
			return f.bw.Flush() == nil
		}
		return true
	}, f.stop)
	return f
}

// Forward queues e without blocking.
func (f *StdoutForwarder) Forward(e store.AuditEvent) { f.q.put(e) }

// Dropped returns how many events were lost because the queue was full.
func (f *StdoutForwarder) Dropped() uint64 { return f.q.dropped.Load() }

// Close writes what is queued, giving up when ctx ends, and stops. A write
// to w that blocks past ctx is abandoned and Close returns ErrStuck.
func (f *StdoutForwarder) Close(ctx context.Context) error {
	if !f.q.closeAndWait(ctx, func() { f.stopOnce.Do(func() { close(f.stop) }) }) {
		return ErrStuck // the writer goroutine still owns bw
	}
	return f.bw.Flush()
}

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
	QueueSize    int    // default DefaultQueueSize
	DialTimeout  time.Duration
	WriteTimeout time.Duration
	// MaxDatagram bounds a UDP message (default 8192 bytes); longer events
	// are sent with their details replaced by {"truncated":true}.
	MaxDatagram int
	Logger      *slog.Logger // operator log for connection problems and drops
}

// SyslogForwarder sends each event as an RFC 5424 message whose MSG is the
// event as JSON (JSONEvent): over UDP one message per datagram (RFC 5426),
// over TCP with octet-counting framing (RFC 6587), over TLS the same framing
// (RFC 5425). It reconnects with backoff; while the server is away events
// wait in the queue, and when the queue is full new ones are dropped and
// counted rather than slowing the portal. Delivery is at most once: an event
// written to a connection that then breaks can be lost.
type SyslogForwarder struct {
	network, addr string
	opt           SyslogOptions
	q             *queue
	// stopCtx ends when Close gives up: no more retries, and a dial or TLS
	// handshake in progress is cancelled.
	stopCtx    context.Context
	cancelStop context.CancelFunc
	mu         sync.Mutex // guards conn against Close interrupting a write
	conn       net.Conn
	pid        string
}

// ErrNetwork is returned for a network other than "tcp", "udp" or "tls".
var ErrNetwork = errors.New("audit: syslog network must be tcp, udp or tls")

// NewSyslogForwarder starts forwarding to a syslog server at addr
// ("host:port") over network "tcp", "udp" or "tls" (TCP with TLS, see
// SyslogOptions.TLS). It does not wait for the server: connecting happens,
// and is retried, in the background.
func NewSyslogForwarder(network, addr string, opt SyslogOptions) (*SyslogForwarder, error) {
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
	f := &SyslogForwarder{
		network: network, addr: addr, opt: opt,
		q:   newQueue(opt.QueueSize, opt.Logger, "syslog "+network+" "+addr),
		pid: strconv.Itoa(os.Getpid()),
	}
	f.stopCtx, f.cancelStop = context.WithCancel(context.Background())
	go f.q.run(f.deliver, f.stopCtx.Done())
	return f, nil
}

// Forward queues e without blocking.
func (f *SyslogForwarder) Forward(e store.AuditEvent) { f.q.put(e) }

// Sent returns how many events were written to the server.
func (f *SyslogForwarder) Sent() uint64 { return f.q.sent.Load() }

// Dropped returns how many events were lost: queue full, or closed before
// the server could take them.
func (f *SyslogForwarder) Dropped() uint64 { return f.q.dropped.Load() }

// Close sends what is queued, giving up when ctx ends, and closes the
// connection. Giving up interrupts a connection attempt or a write that is
// waiting for an unresponsive server, so Close returns soon after ctx ends;
// the events not sent are counted as dropped and logged.
func (f *SyslogForwarder) Close(ctx context.Context) error {
	f.q.closeAndWait(ctx, f.abort)
	f.cancelStop()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.conn != nil {
		err := f.conn.Close()
		f.conn = nil
		return err
	}
	return nil
}

// abort makes the deliver goroutine stop: no more retries, the dial in
// progress is cancelled and a blocked write fails at once.
func (f *SyslogForwarder) abort() {
	f.cancelStop()
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

// deliver writes one event, reconnecting with exponential backoff until it
// is written or the forwarder stops.
func (f *SyslogForwarder) deliver(e store.AuditEvent) bool {
	msg := f.format(e)
	backoff := minBackoff
	for {
		err := f.write(msg)
		if err == nil {
			return true
		}
		f.mu.Lock()
		if f.conn != nil {
			_ = f.conn.Close()
			f.conn = nil
		}
		f.mu.Unlock()
		if f.stopCtx.Err() != nil {
			return false
		}
		f.opt.logger().Warn("audit syslog forwarding failed", "network", f.network, "address", f.addr,
			"retry_in", backoff.String(), "err", err)
		// Events arriving meanwhile may overflow the queue: say so now, not
		// only after the server is back.
		f.q.warnDrops()
		select {
		case <-time.After(backoff):
		case <-f.stopCtx.Done():
			return false
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

// dial connects (and for TLS, handshakes) within DialTimeout; Close
// cancels it through stopCtx.
func (f *SyslogForwarder) dial() (net.Conn, error) {
	d := &net.Dialer{Timeout: f.opt.DialTimeout}
	if f.network == "tls" {
		return (&tls.Dialer{NetDialer: d, Config: f.opt.TLS}).DialContext(f.stopCtx, "tcp", f.addr)
	}
	return d.DialContext(f.stopCtx, f.network, f.addr)
}

func (f *SyslogForwarder) write(msg []byte) error {
	f.mu.Lock()
	c := f.conn
	f.mu.Unlock()
	if c == nil {
		var err error
		if c, err = f.dial(); err != nil {
			return err
		}
		f.mu.Lock()
		f.conn = c
		f.mu.Unlock()
	}
	if err := c.SetWriteDeadline(time.Now().Add(f.opt.WriteTimeout)); err != nil {
		return err
	}
	// abort cancels stopCtx before it sets its past deadline on conn: had it
	// given up before the deadline above replaced its own (while the dial
	// was finishing, or since), this sees it.
	if f.stopCtx.Err() != nil {
		return f.stopCtx.Err()
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

func (f *SyslogForwarder) isUDP() bool { return f.network[:3] == "udp" }

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
func (f *SyslogForwarder) format(e store.AuditEvent) []byte {
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
