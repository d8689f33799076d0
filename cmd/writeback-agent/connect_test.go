package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/writeback/writeback/cmd/internal/cmdline"
	"github.com/writeback/writeback/services/connector"
	"github.com/writeback/writeback/testbed"
)

// runAgent starts "writeback-agent run" and returns its stderr and a
// channel with its exit code.
func runAgent(t *testing.T, ctx context.Context, data string) (*testbed.SyncBuffer, chan int) {
	t.Helper()
	errOut := &testbed.SyncBuffer{}
	done := make(chan int, 1)
	ctx, cancel := context.WithCancel(ctx)
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		done <- run(ctx, []string{"run", "--data", data}, noenv, cmdline.IO{In: strings.NewReader(""), Out: errOut, Err: errOut})
	}()
	t.Cleanup(func() { cancel(); <-exited })
	return errOut, done
}

// waitRow waits until a row of "status" has the prefix want.
func waitRow(t *testing.T, data, key, want string) string {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		rows, _ := statusRows(t, data)
		got := rows[key]
		if strings.HasPrefix(got, want) {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("status %s is %q, want %q", key, got, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestRunConnectsAndStopsWhenRevoked: run dials wss:// on the portal's URL
// with the agent's ID, trusts the CA given at enrolment, answers the
// challenge with the enrolled key; status says connected; a revocation
// stops it with a clear line and status says so.
func TestRunConnectsAndStopsWhenRevoked(t *testing.T) {
	p := newFakePortal(t)
	data := filepath.Join(t.TempDir(), "agent-data")
	enrol(t, p, data)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errOut, done := runAgent(t, ctx, data)
	got := waitRow(t, data, "run", "connected since ")
	if !strings.Contains(got, "(pid ") {
		t.Errorf("run row %q", got)
	}
	p.mu.Lock()
	if len(p.connects) != 1 || p.connects[0] != "agent-0001" || len(p.helloErrs) != 1 || p.helloErrs[0] != nil {
		t.Errorf("connections %q, hello proofs %v", p.connects, p.helloErrs)
	}
	p.mu.Unlock()
	if code, out, errOut := cli(t, "", "status", "--data", data, "--connected"); code != 0 {
		t.Errorf("status --connected while connected: %d %q %q", code, out, errOut)
	}

	close(p.revoke)
	select {
	case code := <-done:
		if code != 1 || !strings.Contains(errOut.String(), "writeback-agent run: the portal revoked this agent: enrol it again") {
			t.Errorf("after revocation: exit %d, output:\n%s", code, errOut.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("run did not stop after the revocation:\n%s", errOut.String())
	}
	if got := statusRow(t, data, "run"); !strings.HasPrefix(got, "stopped: the portal revoked this agent") {
		t.Errorf("run row after revocation %q", got)
	}
}

// TestRunUnreachableAndStopped: with the portal down, run keeps trying and
// status shows why it is not connected; Ctrl-C (ctx) ends it with exit 0.
func TestRunUnreachableAndStopped(t *testing.T) {
	p := newFakePortal(t)
	data := filepath.Join(t.TempDir(), "agent-data")
	enrol(t, p, data)
	p.srv.Close()

	ctx, cancel := context.WithCancel(context.Background())
	errOut, done := runAgent(t, ctx, data)
	waitRow(t, data, "last error", "cannot reach the portal at "+p.srv.URL)
	if got := statusRow(t, data, "run"); !strings.HasPrefix(got, "running (pid ") {
		t.Errorf("run row while unreachable %q", got)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("stopped: exit %d, output:\n%s", code, errOut.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("run did not stop")
	}
	if got := statusRow(t, data, "run"); !strings.HasPrefix(got, "not running (last run ended") {
		t.Errorf("run row after stop %q", got)
	}
}

// TestRunOnePerDataFolder: a second run on a data folder whose run is alive
// is refused (the two would replace each other's connection forever); the
// file of a run that died is no obstacle, and status does not call it
// running.
func TestRunOnePerDataFolder(t *testing.T) {
	p := newFakePortal(t)
	data := filepath.Join(t.TempDir(), "agent-data")
	enrol(t, p, data)
	other := exec.Command("sleep", "30")
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Process.Kill(); other.Wait() })
	fake := func(pid int) {
		b, _ := json.Marshal(runStatus{PID: pid, State: stateConnected, ConnectedSince: time.Now(), UpdatedAt: time.Now()})
		if err := writeFile(data, statusFile, b); err != nil {
			t.Fatal(err)
		}
	}
	fake(other.Process.Pid)
	code, _, errOut := cli(t, "", "run", "--data", data)
	if code != 1 || !strings.Contains(errOut, fmt.Sprintf("another writeback-agent run (pid %d) is using", other.Process.Pid)) || !oneLine(errOut) {
		t.Errorf("second run: %d %q", code, errOut)
	}
	if got := statusRow(t, data, "run"); !strings.HasPrefix(got, "connected since") {
		t.Errorf("run row with a live run %q", got)
	}

	other.Process.Kill()
	other.Wait()
	if got := statusRow(t, data, "run"); !strings.HasPrefix(got, "not running") {
		t.Errorf("run row after its process died %q", got)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	runAgent(t, ctx, data)
	waitRow(t, data, "run", "connected since ")
}

func TestRunNotEnrolled(t *testing.T) {
	data := filepath.Join(t.TempDir(), "agent-data")
	code, _, errOut := cli(t, "", "run", "--data", data)
	if code != 1 || !strings.Contains(errOut, "this agent is not enrolled: run 'writeback-agent enroll") || !oneLine(errOut) {
		t.Errorf("run before enrol: %d %q", code, errOut)
	}
}

func TestConnectURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://reset.example.com":            "wss://reset.example.com/agent/v1/connect",
		"https://reset.example.com:8443/sspr/": "wss://reset.example.com:8443/sspr/agent/v1/connect",
	} {
		if got, err := connectURL(in); err != nil || got != want {
			t.Errorf("connectURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := connectURL("http://reset.example.com"); err == nil {
		t.Error("an http:// portal gave a connect URL")
	}
}

// TestKeepaliveDropsASilentPortal: a portal that stops answering (here: it
// accepts the WebSocket and never reads, so no pong comes back) is
// dropped after one ping interval, with the reason in the status file,
// rather than when the operating system gives up on the socket.
// TestPingNoticesASilentPortal: the agent's connection can ping (the
// connector does after each heartbeat); a portal that answers passes, one
// that went silent fails the ping, and the status file says why.
func TestPingNoticesASilentPortal(t *testing.T) {
	for _, answers := range []bool{true, false} {
		silent := make(chan struct{})
		srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, err := websocket.Accept(w, r, nil)
			if err != nil {
				return
			}
			defer c.CloseNow()
			if answers {
				// A portal reads its connection, which answers pings.
				for {
					if _, _, err := c.Read(r.Context()); err != nil {
						return
					}
				}
			}
			select {
			case <-silent:
			case <-r.Context().Done():
			}
		}))
		client := srv.Client()
		client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		data := t.TempDir()
		tr := newTracker(data, slog.New(slog.DiscardHandler))
		dial, err := dialer(agentConfig{Portal: srv.URL, AgentID: "agent-0001"}, client, tr)
		if err != nil {
			t.Fatal(err)
		}
		c, err := dial(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		p, ok := c.(connector.Pinger)
		if !ok {
			t.Fatal("the agent's connection cannot ping: a silent portal would go unnoticed")
		}
		// The connector reads the connection all along; pongs arrive there.
		go c.Read(context.Background())
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		err = p.Ping(ctx)
		cancel()
		st, _ := readStatus(data)
		switch {
		case answers && err != nil:
			t.Errorf("a ping to a portal that answers: %v", err)
		case !answers && err == nil:
			t.Error("a ping to a silent portal succeeded")
		case !answers && !strings.Contains(st.LastError, "the portal did not answer a ping"):
			t.Errorf("status file's last error %q", st.LastError)
		}
		c.Close(1000, "done")
		close(silent)
		srv.Close()
	}
}
