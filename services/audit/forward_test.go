package audit

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/writeback/writeback/store"
	"github.com/writeback/writeback/testbed"
)

func testEvent(id int64, result string) store.AuditEvent {
	return store.AuditEvent{
		ID: id, TimeMS: 1_767_225_600_123 + id, Category: CategoryUserManagement, Activity: ActivityResetSelfService,
		ActorType: "user", ActorID: "u1", ActorName: "Zoë\nNew line", Result: result, Details: `{"server":"dc1","note":"a\nb"}`,
		PrevHash: store.GenesisHash, Hash: strings.Repeat("f", 64),
	}
}

// rfc5424 matches the header this forwarder writes: PRI, version 1,
// timestamp, host, app, procid, msgid, no structured data, then the JSON.
var rfc5424 = regexp.MustCompile(`^<(\d{1,3})>1 (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) (\S{1,255}) (\S{1,48}) (\S{1,128}) (\S{1,32}) - (\{.*\})$`)

type syslogMsg struct {
	pri   int
	time  string
	host  string
	msgID string
	event JSONEvent
}

func parseSyslog(t *testing.T, msg []byte) syslogMsg {
	t.Helper()
	m := rfc5424.FindSubmatch(msg)
	if m == nil {
		t.Fatalf("not an RFC 5424 message as expected: %q", msg)
	}
	pri, _ := strconv.Atoi(string(m[1]))
	var j JSONEvent
	if err := json.Unmarshal(m[7], &j); err != nil {
		t.Fatalf("MSG is not JSON: %v: %q", err, m[7])
	}
	return syslogMsg{pri: pri, time: string(m[2]), host: string(m[3]), msgID: string(m[6]), event: j}
}

// readFrame reads one RFC 6587 octet-counted frame: "LEN SP MSG".
func readFrame(r *bufio.Reader) ([]byte, error) {
	lenStr, err := r.ReadString(' ')
	if err != nil {
		return nil, err
	}
	n, err := strconv.Atoi(strings.TrimSuffix(lenStr, " "))
	if err != nil || n <= 0 {
		return nil, fmt.Errorf("bad frame length %q", lenStr)
	}
	msg := make([]byte, n)
	_, err = io.ReadFull(r, msg)
	return msg, err
}

// tcpServer accepts connections and sends every frame it reads to frames;
// each accepted connection is announced on conns.
func tcpServer(t *testing.T) (addr string, frames chan []byte, conns chan net.Conn, ln net.Listener) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	frames, conns = make(chan []byte, 100), make(chan net.Conn, 10)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns <- c
			go func() {
				defer c.Close()
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
	return ln.Addr().String(), frames, conns, ln
}

func receive(t *testing.T, ch chan []byte) []byte {
	t.Helper()
	select {
	case m := <-ch:
		return m
	case <-time.After(5 * time.Second):
		t.Fatal("no message within 5s")
		return nil
	}
}

// sendOne sends e through s as a forwarder would, within 5 s.
func sendOne(t *testing.T, s sender, e store.AuditEvent) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.send(ctx, e); err != nil {
		t.Fatalf("send event %d: %v", e.ID, err)
	}
}

func newSender(t *testing.T, network, addr string, opt SyslogOptions) *syslogSender {
	t.Helper()
	s, err := newSyslogSender(network, addr, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.close() })
	return s
}

func closeFwd(t *testing.T, f interface{ Close(context.Context) error }) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := f.Close(ctx); err != nil {
		t.Error(err)
	}
}

func TestSyslogTCP(t *testing.T) {
	addr, frames, _, _ := tcpServer(t)
	f := newSender(t, "tcp", addr, SyslogOptions{Hostname: "portal 1", Facility: FacilityLogAudit})
	sendOne(t, f, testEvent(1, Success))
	sendOne(t, f, testEvent(2, Failure))
	for i, want := range []struct {
		id  int64
		pri int
	}{{1, 13*8 + 6}, {2, 13*8 + 4}} {
		m := parseSyslog(t, receive(t, frames))
		if m.event.ID != want.id || m.pri != want.pri || m.host != "portal1" || m.msgID != CategoryUserManagement ||
			m.time != "2026-01-01T00:00:00."+fmt.Sprintf("%03d", 123+want.id)+"Z" {
			t.Errorf("message %d = %+v", i, m)
		}
		if m.event.Event() != testEvent(want.id, m.event.Result) {
			t.Errorf("message %d event = %+v", i, m.event)
		}
	}
}

func TestSyslogUDP(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	f := newSender(t, "udp", pc.LocalAddr().String(), SyslogOptions{MaxDatagram: 1200})
	big := testEvent(2, Success)
	big.Details = `{"blob":"` + strings.Repeat("x", 5000) + `"}`
	sendOne(t, f, testEvent(1, Success))
	sendOne(t, f, big)
	buf := make([]byte, 65536)
	for _, id := range []int64{1, 2} {
		_ = pc.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, _, err := pc.ReadFrom(buf)
		if err != nil {
			t.Fatal(err)
		}
		if n > 1200 {
			t.Errorf("datagram of %d bytes, max 1200", n)
		}
		m := parseSyslog(t, buf[:n])
		if m.event.ID != id || m.pri != FacilityAuthPriv*8+6 {
			t.Errorf("datagram %d = %+v", id, m)
		}
		if id == 2 && string(m.event.Details) != `{"truncated":true}` {
			t.Errorf("oversized details = %s", m.event.Details)
		}
	}
}

// TestSyslogReconnects: the server drops the connection; later events
// arrive over a new one.
func TestSyslogReconnects(t *testing.T) {
	addr, frames, conns, _ := tcpServer(t)
	f := newSender(t, "tcp", addr, SyslogOptions{})
	sendOne(t, f, testEvent(1, Success))
	if m := parseSyslog(t, receive(t, frames)); m.event.ID != 1 {
		t.Fatalf("first = %d", m.event.ID)
	}
	first := <-conns
	first.Close()
	// The first write after the close may still vanish into the dead
	// connection (delivery is at most once); keep sending until one arrives.
	deadline := time.Now().Add(10 * time.Second)
	for id := int64(2); ; id++ {
		if time.Now().After(deadline) {
			t.Fatal("no event after the reconnect")
		}
		sendOne(t, f, testEvent(id, Success))
		select {
		case msg := <-frames:
			if m := parseSyslog(t, msg); m.event.ID < 2 {
				t.Fatalf("got %d again", m.event.ID)
			}
			select {
			case <-conns:
			case <-time.After(time.Second):
				t.Fatal("delivered without a new connection")
			}
			return
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// TestSyslogServerAway: while the server is unreachable the events wait in
// the database, none is dropped; once it is back every one is sent, in
// order, once. (The old forwarder queued 5 here and dropped the rest.)
func TestSyslogServerAway(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nobody listens: connection refused

	db := newDB(t)
	log, logBuf := testLogger()
	f, err := NewSyslogForwarder(context.Background(), db, "tcp", addr, SyslogOptions{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer closeFwd(t, f)
	start := time.Now()
	var want []int64
	for range 100 {
		want = append(want, record(t, db, Entry{Category: CategoryPolicy, Activity: ActivityUpdateSSPRPolicy, Actor: System})[0].ID)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("100 events took %v to record: forwarding holds them up", el)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(logBuf.String(), "audit syslog forwarding failed") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(logBuf.String(), "audit syslog forwarding failed") {
		t.Errorf("no warning while the SIEM is away:\n%s", logBuf.String())
	}
	ln2, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skip("address taken meanwhile:", err)
	}
	defer ln2.Close()
	got := make(chan int64, 200)
	go func() {
		c, err := ln2.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		r := bufio.NewReader(c)
		for {
			msg, err := readFrame(r)
			if err != nil {
				return
			}
			got <- parseSyslog(t, msg).event.ID
		}
	}()
	for i, id := range want {
		select {
		case g := <-got:
			if g != id {
				t.Fatalf("message %d is event %d, want %d (in order, none twice)", i, g, id)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("only %d of %d events delivered after the server came back", i, len(want))
		}
	}
	// The forwarder counts a message once its write returned, which may be
	// after the server read it.
	for deadline := time.Now().Add(5 * time.Second); f.Sent() < 100 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if f.Sent() != 100 {
		t.Errorf("sent %d, want 100", f.Sent())
	}
}

// TestSyslogCloseGivesUp: Close returns soon after its context ends while
// the server is away, and says in the log that the event waits for the next
// start.
func TestSyslogCloseGivesUp(t *testing.T) {
	db := newDB(t)
	log, logBuf := testLogger()
	f, err := NewSyslogForwarder(context.Background(), db, "tcp", "127.0.0.1:1", SyslogOptions{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	record(t, db, Entry{Category: CategoryPolicy, Activity: ActivityUpdateSSPRPolicy, Actor: System})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_ = f.Close(ctx)
	if time.Since(start) > 3*time.Second || f.Sent() != 0 {
		t.Fatalf("close took %v, sent %d", time.Since(start), f.Sent())
	}
	if !strings.Contains(logBuf.String(), "not yet forwarded") || !strings.Contains(logBuf.String(), "pending=1") {
		t.Errorf("no pending-events warning in the log:\n%s", logBuf.String())
	}
}

func TestNewSyslogForwarderRejects(t *testing.T) {
	if _, err := newSyslogSender("unix", "/tmp/x", SyslogOptions{}); !errors.Is(err, ErrNetwork) {
		t.Errorf("unix: %v", err)
	}
	if _, err := newSyslogSender("tcp", "no-port", SyslogOptions{}); err == nil {
		t.Error("address without port accepted")
	}
}

// TestForwardAfterCommit wires forwarders to the store as the portal does:
// committed events reach stdout and syslog, rolled-back ones never do.
func TestForwardAfterCommit(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	var out testbed.SyncBuffer
	stdout, err := NewStdoutForwarder(ctx, db, &out, nil)
	if err != nil {
		t.Fatal(err)
	}
	addr, frames, _, _ := tcpServer(t)
	sys, err := NewSyslogForwarder(ctx, db, "tcp", addr, SyslogOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer closeFwd(t, sys)
	_ = db.InTx(ctx, func(tx *store.Tx) error {
		_, _ = Record(ctx, tx, Entry{Category: CategoryPolicy, Activity: ActivityUpdateSSPRPolicy, Actor: System})
		return errors.New("roll back")
	})
	ev := record(t, db, Entry{Category: CategoryAuthentication, Activity: ActivityAdminSignIn, Actor: Actor{Type: "admin", ID: "1", Name: "Ada"}})[0]

	m := parseSyslog(t, receive(t, frames))
	if m.event.Event() != ev {
		t.Fatalf("syslog got %+v, want %+v", m.event, ev)
	}
	closeFwd(t, stdout)
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 1 {
		t.Fatalf("stdout lines = %q", lines)
	}
	var j JSONEvent
	if err := json.Unmarshal([]byte(lines[0]), &j); err != nil || j.Event() != ev {
		t.Fatalf("stdout line %s: %v", lines[0], err)
	}
	if stdout.Sent() != 1 {
		t.Errorf("stdout sent %d", stdout.Sent())
	}
}
