package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/coder/websocket"

	"github.com/writeback/writeback/cmd/internal/cmdline"
	"github.com/writeback/writeback/services/agentwire"
	"github.com/writeback/writeback/services/connector"
	"github.com/writeback/writeback/services/directory"
	"github.com/writeback/writeback/services/errs"
	"github.com/writeback/writeback/services/settings"
)

// dialTimeout bounds one attempt to open the connection (TCP, TLS and the
// WebSocket handshake); connector.Run waits and tries again after it.
const dialTimeout = 30 * time.Second

// Run states in agent-status.json.
const (
	stateConnecting   = "connecting"
	stateConnected    = "connected"
	stateDisconnected = "disconnected"
	stateStopped      = "stopped"
	stateRevoked      = "revoked"
)

// runStatus is agent-status.json: what the running `run` says of itself,
// for `status`.
type runStatus struct {
	PID            int       `json:"pid"`
	StartedAt      time.Time `json:"started_at"`
	State          string    `json:"state"`
	ConnectedSince time.Time `json:"connected_since,omitzero"`
	// Connections counts the welcomed connections: one per portal replica.
	Connections int       `json:"connections,omitempty"`
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
	UpdatedAt   time.Time `json:"updated_at"`
}

func readStatus(dir string) (runStatus, bool) {
	var st runStatus
	b, err := os.ReadFile(filepath.Join(dir, statusFile))
	if err != nil || json.Unmarshal(b, &st) != nil {
		return st, false
	}
	return st, true
}

// alive tells whether a process with this ID runs (and so whether a
// status file whose run did not end cleanly is still being kept).
func alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	p, err := os.FindProcess(pid)
	if err != nil {
		return false
	}
	err = p.Signal(syscall.Signal(0))
	return err == nil || errors.Is(err, syscall.EPERM)
}

// running tells whether st is the file of a run that is still going.
func (st runStatus) running() bool {
	return st.State != stateStopped && st.State != stateRevoked && alive(st.PID)
}

// tracker keeps agent-status.json up to date as the connection comes and
// goes.
type tracker struct {
	dir string
	log *slog.Logger
	now func() time.Time

	mu sync.Mutex
	st runStatus
}

func newTracker(dir string, log *slog.Logger) *tracker {
	t := &tracker{dir: dir, log: log, now: func() time.Time { return time.Now().UTC().Truncate(time.Second) }}
	t.st = runStatus{PID: os.Getpid(), StartedAt: t.now(), State: stateConnecting}
	t.save()
	return t
}

// save writes the file; the caller holds mu or is the only user.
func (t *tracker) save() {
	t.st.UpdatedAt = t.now()
	b, _ := json.MarshalIndent(t.st, "", "  ")
	if err := writeFile(t.dir, statusFile, append(b, '\n')); err != nil {
		t.log.Warn("writeback agent: cannot write the status file", "err", err)
	}
}

func (t *tracker) update(f func(st *runStatus)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	f(&t.st)
	t.save()
}

// connected counts a welcomed connection; the first makes the agent
// connected.
func (t *tracker) connected() {
	t.update(func(st *runStatus) {
		if st.Connections++; st.Connections == 1 {
			st.State, st.ConnectedSince = stateConnected, t.now()
		}
	})
}

// failed records a dial that failed (err) or a connection that ended
// (welcomed: one that counted in connected). The agent is disconnected
// once no connection is left; err, when not nil, is the last error.
func (t *tracker) failed(err error) { t.ended(false, err) }

func (t *tracker) ended(welcomed bool, err error) {
	t.update(func(st *runStatus) {
		if welcomed && st.Connections > 0 {
			st.Connections--
		}
		if st.Connections == 0 {
			if st.State != stateConnecting {
				st.State = stateDisconnected
			}
			st.ConnectedSince = time.Time{}
		}
		if err == nil {
			return
		}
		msg := err.Error()
		if errs.KindOf(err) != errs.Internal {
			msg = errs.MessageOf(err) // the one-line explanation, without its cause again
		}
		st.LastError, st.LastErrorAt = safeLine(msg), t.now()
	})
}

func (t *tracker) stopped(state string) {
	t.update(func(st *runStatus) { st.State, st.ConnectedSince, st.Connections = state, time.Time{}, 0 })
}

// wsConn is the WebSocket as connector.Conn: messages are JSON text
// frames, and a close frame from the portal is a *connector.CloseError so
// that the connector tells a revocation from a network failure. Until the
// portal's welcome it looks at each message's type, to tell the tracker
// when the agent is connected.
type wsConn struct {
	c        *websocket.Conn
	t        *tracker
	mu       sync.Mutex
	welcomed bool
	ended    bool
}

// Ping checks that the portal still answers (connector.Pinger: the
// connector pings after each heartbeat and drops a connection whose portal
// went silent, a dead proxy or a half-open TCP connection, in seconds
// rather than when the operating system gives up on the socket). A ping
// not answered is the connection's end, and why, for the status file.
func (w *wsConn) Ping(ctx context.Context) error {
	err := w.c.Ping(ctx)
	if err != nil {
		w.end(fmt.Errorf("the portal did not answer a ping: %w", err))
	}
	return err
}

func (w *wsConn) Read(ctx context.Context) ([]byte, error) {
	_, b, err := w.c.Read(ctx)
	if err != nil {
		var ce websocket.CloseError
		if errors.As(err, &ce) {
			err = &connector.CloseError{Code: int(ce.Code), Reason: ce.Reason}
		}
		if ce.Code == agentwire.CloseDuplicate {
			// A replica this agent is connected to already: not an error;
			// Run dials again for another one.
			w.end(nil)
		} else {
			w.end(err)
		}
		return nil, err
	}
	w.mu.Lock()
	seen := w.welcomed
	w.mu.Unlock()
	if !seen {
		if env, err := agentwire.Decode(b); err == nil && env.Type == agentwire.TypeWelcome {
			w.mu.Lock()
			w.welcomed = true
			w.mu.Unlock()
			w.t.connected()
		}
	}
	return b, nil
}

func (w *wsConn) Write(ctx context.Context, msg []byte) error {
	return w.c.Write(ctx, websocket.MessageText, msg)
}

func (w *wsConn) Close(code int, reason string) error {
	var err error
	if code != int(websocket.StatusNormalClosure) && code != int(websocket.StatusGoingAway) {
		err = fmt.Errorf("the agent closed the connection (code %d: %s)", code, reason)
	}
	w.end(err)
	return w.c.Close(websocket.StatusCode(code), reason)
}

// end tells the tracker once that this connection is over, and why (nil:
// the agent is stopping).
func (w *wsConn) end(err error) {
	w.mu.Lock()
	first, welcomed := !w.ended, w.welcomed
	w.ended = true
	w.mu.Unlock()
	if first {
		w.t.ended(welcomed, err)
	}
}

// connectURL is the WebSocket URL of the portal: wss:// on the portal's
// https:// URL, with its path prefix.
func connectURL(portal string) (string, error) {
	u, err := parsePortal(portal)
	if err != nil {
		return "", fmt.Errorf("%s holds a portal URL that is not https://: enrol again: %w", configFile, err)
	}
	u.Scheme = "wss"
	return u.String() + agentwire.PathConnect, nil
}

// dialer opens one connection to the portal.
func dialer(cfg agentConfig, client *http.Client, t *tracker) (func(context.Context) (connector.Conn, error), error) {
	wsURL, err := connectURL(cfg.Portal)
	if err != nil {
		return nil, err
	}
	header := http.Header{}
	header.Set(agentwire.HeaderAgentID, cfg.AgentID)
	return func(ctx context.Context) (connector.Conn, error) {
		ctx, cancel := context.WithTimeout(ctx, dialTimeout)
		defer cancel()
		c, resp, err := websocket.Dial(ctx, wsURL, &websocket.DialOptions{HTTPClient: client, HTTPHeader: header})
		if err != nil {
			if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
				err = fmt.Errorf("the portal answered %s at %s: %w", resp.Status, wsURL, err)
			} else {
				err = reachError(cfg.Portal, err)
			}
			t.failed(err)
			return nil, err
		}
		c.SetReadLimit(agentwire.MaxMessage)
		return &wsConn{c: c, t: t}, nil
	}, nil
}

// connectorConfig is the agent's side of the protocol over its own data
// folder: the directory is the stored connection's client (built anew when
// `directory set` changed it), and the status reads the password writeback
// switch each time, so `set --password-writeback off` applies to the next
// job of a running `run`.
func connectorConfig(a *app, cfg agentConfig, id *agentwire.Identity, log *slog.Logger) connector.Config {
	host, _ := os.Hostname()
	return connector.Config{
		AgentID:   cfg.AgentID,
		Identity:  id,
		PortalKey: cfg.PortalKey,
		Directory: func(ctx context.Context) (directory.Directory, []string, error) {
			cl, conn, err := a.wb.Client(ctx)
			if err != nil {
				return nil, nil, err
			}
			return cl, conn.BaseDNs, nil
		},
		Status: func(ctx context.Context) agentwire.Status {
			st := agentwire.Status{Version: version, Host: host}
			conn, _, err := a.wb.Connection(ctx)
			if err != nil {
				st.LastError = errs.MessageOf(err)
				return st
			}
			st.PasswordWriteback, st.Configured = conn.PasswordWriteback, conn.Configured()
			if st.Configured {
				st.Directory = directorySummary(conn.Type, conn.URLs)
			}
			if s, err := a.settings.Status(ctx); err == nil && s.State == settings.StateError {
				st.LastError = s.Message
			}
			return st
		},
		WritesPerMinute: cfg.writesPerMinute(),
		Log:             log,
	}
}

// directorySummary names a directory for the portal's agents page and for
// status: its type and servers.
func directorySummary(typ directory.Type, urls []string) string {
	name := "Active Directory"
	if typ == directory.TypeOpenLDAP {
		name = "OpenLDAP"
	}
	return name + " " + strings.Join(urls, " ")
}

func cmdRun(ctx context.Context, args []string, getenv cmdline.Env, io cmdline.IO) error {
	fs := cmdline.NewFlags(program+" run", io.Out)
	data := dataFlag(fs, getenv)
	if err := cmdline.Parse(fs, args); err != nil {
		return err
	}
	if *data == "" {
		return cmdline.Usagef("--data must not be empty")
	}
	cfg, err := readConfig(*data)
	if err != nil {
		return err
	}
	if !cfg.enrolled() {
		return errs.E(errs.Unavailable, fmt.Sprintf("this agent is not enrolled: run '%s enroll --portal URL --token TOKEN' first", program), nil)
	}
	id, err := readIdentity(*data)
	if err != nil {
		return err
	}
	if st, ok := readStatus(*data); ok && st.running() && st.PID != os.Getpid() {
		return errs.E(errs.Conflict, fmt.Sprintf("another %s run (pid %d) is using %s: one run per data folder", program, st.PID, *data), nil)
	}
	client, err := portalClient(cfg.CAPEM)
	if err != nil {
		return fmt.Errorf("the CA in %s: %w", configFile, err)
	}
	a, err := openApp(ctx, *data, io.Err, slog.LevelInfo)
	if err != nil {
		return err
	}
	defer a.Close()
	t := newTracker(*data, a.log)
	dial, err := dialer(cfg, client, t)
	if err != nil {
		return err
	}
	a.log.Info("writeback agent: starting", "name", cfg.Name, "portal", cfg.Portal, "agent_id", cfg.AgentID, "version", version)
	if conn, _, err := a.wb.Connection(ctx); err == nil && !conn.Configured() {
		a.log.Warn("writeback agent: no directory connection yet: the portal sees this agent as not configured and sends it no work; run '" + program + " directory set'")
	}
	err = connector.New(connectorConfig(a, cfg, id, a.log)).Run(ctx, dial)
	switch {
	case errors.Is(err, connector.ErrRevoked):
		t.stopped(stateRevoked)
		return errs.E(errs.Forbidden, fmt.Sprintf("the portal revoked this agent: enrol it again with a new token (%s enroll --force)", program), err)
	case errors.Is(err, connector.ErrNoPortalKey):
		t.stopped(stateStopped)
		return errs.E(errs.Invalid, fmt.Sprintf("this agent was enrolled without the portal's signing key: enrol it again with a new token (%s enroll --force)", program), err)
	case err == nil || ctx.Err() != nil:
		t.stopped(stateStopped)
		a.log.Info("writeback agent: stopped")
		return nil
	}
	t.stopped(stateStopped)
	return err
}
