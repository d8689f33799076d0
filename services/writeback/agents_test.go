package writeback_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/writeback/writeback/services/agentwire"
	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/directory"
	"github.com/writeback/writeback/services/errs"
	"github.com/writeback/writeback/services/settings"
	"github.com/writeback/writeback/services/writeback"
	"github.com/writeback/writeback/store"
)

// fakeAgents is writeback.Agents from function fields; an operation whose
// field is nil fails the test that calls it.
type fakeAgents struct {
	t          testing.TB
	connected  func() (int, int)
	resetLogin func(login, pw string, opt directory.ResetOptions) (directory.User, directory.Result, error)
	unlock     func(login string) (directory.User, directory.Result, error)
	find       func(login string) (directory.User, directory.Result, error)
	test       func(login string) directory.Checklist

	mu        sync.Mutex
	outage    func(error)
	onConnect func()
}

var _ writeback.Agents = (*fakeAgents)(nil)

func (a *fakeAgents) missing(op string) error {
	a.t.Helper()
	a.t.Errorf("unexpected %s through the agents", op)
	return errors.New("unexpected " + op)
}

func (a *fakeAgents) Connected() (int, int) {
	if a.connected == nil {
		return 0, 0
	}
	return a.connected()
}

func (a *fakeAgents) Find(_ context.Context, login string) (directory.User, directory.Result, error) {
	if a.find == nil {
		return directory.User{}, directory.Result{}, a.missing("find")
	}
	return a.find(login)
}

func (a *fakeAgents) Get(context.Context, string) (directory.User, directory.Result, error) {
	return directory.User{}, directory.Result{}, a.missing("get")
}

func (a *fakeAgents) Search(context.Context, string, int) ([]directory.User, error) {
	return nil, a.missing("search")
}

func (a *fakeAgents) Expiring(context.Context, string, time.Time) ([]directory.User, error) {
	return nil, a.missing("expiring")
}

func (a *fakeAgents) InScope(context.Context, string, func(directory.User) error) error {
	return a.missing("in_scope")
}

func (a *fakeAgents) MemberOf(context.Context, directory.User, string) (bool, error) {
	return false, a.missing("member_of")
}

func (a *fakeAgents) Policy(context.Context, directory.User) (directory.Policy, error) {
	return directory.Policy{}, a.missing("policy")
}

func (a *fakeAgents) ResetUser(context.Context, directory.User, string, directory.ResetOptions) (directory.User, directory.Result, error) {
	return directory.User{}, directory.Result{}, a.missing("reset_user")
}

func (a *fakeAgents) ResetLogin(_ context.Context, login, pw string, opt directory.ResetOptions) (directory.User, directory.Result, error) {
	if a.resetLogin == nil {
		return directory.User{}, directory.Result{}, a.missing("reset_login")
	}
	return a.resetLogin(login, pw, opt)
}

func (a *fakeAgents) Unlock(context.Context, directory.User) (directory.Result, error) {
	return directory.Result{}, a.missing("unlock")
}

func (a *fakeAgents) UnlockLogin(_ context.Context, login string) (directory.User, directory.Result, error) {
	if a.unlock == nil {
		return directory.User{}, directory.Result{}, a.missing("unlock_login")
	}
	return a.unlock(login)
}

func (a *fakeAgents) ChangeLogin(context.Context, string, string, string, directory.Admit) (directory.Candidate, directory.Result, error) {
	return directory.Candidate{}, directory.Result{}, a.missing("change_login")
}

func (a *fakeAgents) AuthenticateLogin(context.Context, string, string, directory.Admit) (directory.Candidate, directory.Result, error) {
	return directory.Candidate{}, directory.Result{}, a.missing("authenticate_login")
}

func (a *fakeAgents) Test(_ context.Context, login string) directory.Checklist {
	if a.test == nil {
		a.missing("test")
		return directory.Checklist{}
	}
	return a.test(login)
}

func (a *fakeAgents) OnOutage(f func(error)) {
	a.mu.Lock()
	a.outage = f
	a.mu.Unlock()
}

func (a *fakeAgents) OnConnect(f func()) {
	a.mu.Lock()
	a.onConnect = f
	a.mu.Unlock()
}

func (a *fakeAgents) Close() error { return nil }

// directInput is a direct connection to servers that need not exist:
// saving validates it without connecting.
func directInput() writeback.Input {
	return writeback.Input{Type: directory.TypeAD, URLs: []string{"ldaps://dc1.example.com"}, StartTLS: false,
		CAPEM: "", BindDN: "CN=svc,DC=example,DC=com", BindPassword: "Service-Secret-1",
		BaseDNs: []string{"OU=People,DC=example,DC=com"}, PasswordWriteback: true}
}

// agentsMode makes a fixture in agents mode with agents a (none when nil)
// and both portal switches as given.
func agentsMode(t *testing.T, a writeback.Agents, writebackOn bool) fixture {
	t.Helper()
	ctx := context.Background()
	f := newFixture(t)
	if a != nil {
		f.wb.UseAgents(a)
	}
	if _, err := f.wb.SaveConnection(ctx, audit.CommandLine, 0, writeback.Input{Mode: writeback.ModeAgents}); err != nil {
		t.Fatalf("save agents mode: %v", err)
	}
	if writebackOn {
		if _, _, err := f.set.SaveOnPrem(ctx, audit.CommandLine, 0, settings.OnPrem{Writeback: true, Unlock: true}); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// lastAudit is the newest audit row of an activity, its details decoded.
func lastAudit(t *testing.T, db *store.DB, activity string) (store.AuditEvent, map[string]any) {
	t.Helper()
	rows, err := db.RecentAudit(context.Background(), activity, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) == 0 {
		t.Fatalf("no %q audit row", activity)
	}
	d := map[string]any{}
	if err := json.Unmarshal([]byte(rows[0].Details), &d); err != nil {
		t.Fatalf("details %q: %v", rows[0].Details, err)
	}
	return rows[0], d
}

// TestSaveAgentsMode: saving agents mode needs no server or service
// account, and clears what a direct connection stored of them; the other
// fields keep what was stored; a mode that is neither is refused with
// nothing changed.
func TestSaveAgentsMode(t *testing.T) {
	ctx := context.Background()

	t.Run("from nothing", func(t *testing.T) {
		f := newFixture(t)
		if _, err := f.wb.SaveConnection(ctx, audit.CommandLine, 0, writeback.Input{Mode: writeback.ModeAgents}); err != nil {
			t.Fatalf("save: %v", err)
		}
		c, _, err := f.wb.Connection(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !c.Agents() || !c.Configured() || c.ModeOrDefault() != writeback.ModeAgents {
			t.Errorf("stored %+v: want agents mode, configured", c)
		}
	})

	t.Run("from a direct connection", func(t *testing.T) {
		f := newFixture(t)
		if _, err := f.wb.SaveConnection(ctx, audit.CommandLine, 0, directInput()); err != nil {
			t.Fatal(err)
		}
		in := directInput() // what a form still holds: all of it ignored but the mode
		in.Mode, in.BaseDNs, in.UserFilter = "Agents ", []string{"DC=other"}, "(bad"
		if _, err := f.wb.SaveConnection(ctx, audit.CommandLine, f.version(t), in); err != nil {
			t.Fatalf("save: %v", err)
		}
		c, _, err := f.wb.Connection(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if c.Mode != writeback.ModeAgents || len(c.URLs) != 0 || c.BindDN != "" || c.HasPassword() || c.CAPEM != "" || c.StartTLS {
			t.Errorf("stored %+v: want agents mode without servers, CA or service account", c)
		}
		if len(c.BaseDNs) != 1 || c.BaseDNs[0] != "OU=People,DC=example,DC=com" || c.UserFilter != "" {
			t.Errorf("search bases %q, filter %q: want what was stored", c.BaseDNs, c.UserFilter)
		}
		row, d := lastAudit(t, f.db, audit.ActivityUpdateDirectory)
		if row.TargetName != "writeback agents" || d["bind_password"] != "cleared" || d["mode"] == nil || d["urls"] == nil || d["bind_dn"] == nil {
			t.Errorf("audit row %q %v", row.TargetName, d)
		}
		if strings.Contains(row.Details, "Service-Secret-1") {
			t.Error("the audit row holds the password")
		}

		// Back to direct: the servers and the password are needed again.
		_, err = f.wb.SaveConnection(ctx, audit.CommandLine, f.version(t), writeback.Input{Mode: writeback.ModeDirect, Type: directory.TypeAD, BaseDNs: c.BaseDNs})
		if fields := errs.FieldsOf(err); fields["urls"] == "" || fields["bind_password"] == "" {
			t.Errorf("direct without servers: %v (fields %v)", err, fields)
		}
	})

	t.Run("an unknown mode", func(t *testing.T) {
		f := newFixture(t)
		if _, err := f.wb.SaveConnection(ctx, audit.CommandLine, 0, directInput()); err != nil {
			t.Fatal(err)
		}
		v := f.version(t)
		in := directInput()
		in.Mode = "relay"
		_, err := f.wb.SaveConnection(ctx, audit.CommandLine, v, in)
		if msg := errs.FieldsOf(err)["mode"]; msg != "Choose Direct or Through writeback agents." {
			t.Fatalf("save: %v (mode %q)", err, msg)
		}
		if f.version(t) != v {
			t.Error("a refused save changed the connection")
		}
	})

	t.Run("an empty mode is direct", func(t *testing.T) {
		f := newFixture(t)
		if _, err := f.wb.SaveConnection(ctx, audit.CommandLine, 0, directInput()); err != nil {
			t.Fatal(err)
		}
		c, _, _ := f.wb.Connection(ctx)
		if c.Agents() || c.ModeOrDefault() != writeback.ModeDirect || writeback.InputOf(c).Mode != writeback.ModeDirect {
			t.Errorf("stored mode %q", c.Mode)
		}
		// Saving it again as "direct" is no change.
		in := writeback.InputOf(c)
		in.Mode = writeback.ModeDirect
		if changed, err := f.wb.SaveConnection(ctx, audit.CommandLine, f.version(t), in); err != nil || changed {
			t.Errorf("save as direct: changed %v, %v", changed, err)
		}
	})
}

// TestClientRouting: Client hands out the LDAP client in direct mode and
// the injected agents in agents mode, or a clear Unavailable error when
// this process has none.
func TestClientRouting(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	a := &fakeAgents{t: t}
	f.wb.UseAgents(a)
	if _, err := f.wb.SaveConnection(ctx, audit.CommandLine, 0, directInput()); err != nil {
		t.Fatal(err)
	}
	d, _, err := f.wb.Client(ctx)
	if _, ok := d.(*directory.Client); err != nil || !ok {
		t.Fatalf("direct mode: %T, %v", d, err)
	}
	if _, err := f.wb.SaveConnection(ctx, audit.CommandLine, f.version(t), writeback.Input{Mode: writeback.ModeAgents}); err != nil {
		t.Fatal(err)
	}
	d, c, err := f.wb.Client(ctx)
	if err != nil || d != writeback.Agents(a) || !c.Agents() {
		t.Fatalf("agents mode: %T %v, %v", d, c.Mode, err)
	}

	// A process without agents (a command) cannot reach the directory.
	g := agentsMode(t, nil, true)
	_, _, err = g.wb.Client(ctx)
	if errs.KindOf(err) != errs.Unavailable || !errors.Is(err, writeback.ErrNoAgents) ||
		!strings.Contains(errs.MessageOf(err), "writeback agents") {
		t.Errorf("agents mode without agents: %v", err)
	}
}

// TestStateAgentsMode: in agents mode writeback is on when the portal
// switch is on and a connected agent has its own switch on; the stored
// connector switch means nothing there.
func TestStateAgentsMode(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name                string
		agents              bool // UseAgents was called
		portal              bool
		connected, wb       int
		writeback, outage   bool
		reason              string
		wantConnected, want int
	}{
		{"no agent connected", true, true, 0, 0, false, true, writeback.ReasonNoAgent, 0, 0},
		{"no agents in this process", false, true, 0, 0, false, true, writeback.ReasonNoAgent, 0, 0},
		{"the agent's switch off", true, true, 1, 0, false, false, writeback.ReasonAgentOff, 1, 0},
		{"every agent's switch off", true, true, 3, 0, false, false, writeback.ReasonAgentsOff, 3, 0},
		{"one of two agents on", true, true, 2, 1, true, false, "", 2, 1},
		{"the portal switch off", true, false, 2, 2, false, false, "Password writeback is off: \"Write back passwords", 2, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var a writeback.Agents
			if tt.agents {
				a = &fakeAgents{t: t, connected: func() (int, int) { return tt.connected, tt.wb }}
			}
			f := agentsMode(t, a, tt.portal)
			st, err := f.wb.State(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if st.Writeback != tt.writeback || st.Unlock != tt.writeback || st.Outage != tt.outage || !st.Agents || !st.Configured ||
				!strings.HasPrefix(st.Reason, tt.reason) || (tt.reason == "" && st.Reason != "") ||
				st.AgentsConnected != tt.wantConnected || st.AgentsWriteback != tt.want {
				t.Errorf("state %+v", st)
			}
		})
	}

	// Direct mode is as before: the connector switch counts, agents don't.
	f := newFixture(t)
	f.wb.UseAgents(&fakeAgents{t: t, connected: func() (int, int) { return 0, 0 }})
	in := directInput()
	in.PasswordWriteback = false
	if _, err := f.wb.SaveConnection(ctx, audit.CommandLine, 0, in); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.set.SaveOnPrem(ctx, audit.CommandLine, 0, settings.OnPrem{Writeback: true}); err != nil {
		t.Fatal(err)
	}
	st, err := f.wb.State(ctx)
	if err != nil || st.Writeback || st.Agents || st.Outage || !strings.Contains(st.Reason, "Optional features") {
		t.Errorf("direct, connector off: %+v %v", st, err)
	}
}

// TestHelpdeskThroughAgents: the helpdesk's reset and unlock go to the
// agents in agents mode, and their audit rows name the agent that did
// them, on a failure too; with no agent connected nothing is sent.
func TestHelpdeskThroughAgents(t *testing.T) {
	ctx := context.Background()
	actor := audit.Actor{Type: "admin", ID: "1", Name: "helpdesk@example.com"}
	alice := directory.User{DN: "CN=Alice,OU=People,DC=example,DC=com", ID: "0f0e", Login: "alice", DisplayName: "Alice", Locked: true}
	res := directory.Result{Server: "ldaps://dc1.corp.example.com", Agent: "agent-berlin"}
	refused := errs.E(errs.Policy, "The password does not meet the password policy.",
		&directory.OpError{Op: "reset", Code: directory.CodePolicy, Server: "ldaps://dc1.corp.example.com", LDAPResult: 19})

	t.Run("reset", func(t *testing.T) {
		var got []string
		a := &fakeAgents{t: t, connected: func() (int, int) { return 1, 1 },
			resetLogin: func(login, pw string, opt directory.ResetOptions) (directory.User, directory.Result, error) {
				got = append(got, login)
				if !opt.Unlock || !opt.MustChange || pw != "New-Password-1" {
					t.Errorf("reset of %s with %+v", login, opt)
				}
				return alice, res, nil
			}}
		f := agentsMode(t, a, true)
		if _, err := f.wb.AdminReset(ctx, actor, " alice ", "New-Password-1", true); err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0] != "alice" {
			t.Errorf("resets sent: %q", got)
		}
		row, d := lastAudit(t, f.db, audit.ActivityResetByAdmin)
		if row.Result != audit.Success || d["agent"] != "agent-berlin" || d["server"] != res.Server || row.TargetDN != alice.DN {
			t.Errorf("audit row %s %s %v", row.Result, row.TargetDN, d)
		}
	})

	t.Run("a refused reset", func(t *testing.T) {
		a := &fakeAgents{t: t, connected: func() (int, int) { return 1, 1 },
			resetLogin: func(string, string, directory.ResetOptions) (directory.User, directory.Result, error) {
				return alice, res, refused
			}}
		f := agentsMode(t, a, true)
		if _, err := f.wb.AdminReset(ctx, actor, "alice", "weak", false); errs.KindOf(err) != errs.Policy {
			t.Fatalf("reset: %v", err)
		}
		row, d := lastAudit(t, f.db, audit.ActivityResetByAdmin)
		if row.Result != audit.Failure || d["agent"] != "agent-berlin" || d["ldap_result"] != float64(19) {
			t.Errorf("audit row %s %v", row.Result, d)
		}
	})

	t.Run("an unlock the agent refused before finding anyone", func(t *testing.T) {
		// An agent refuses, say, a DN outside its search bases: no account,
		// but the row still names the agent that answered.
		a := &fakeAgents{t: t, connected: func() (int, int) { return 1, 1 },
			unlock: func(string) (directory.User, directory.Result, error) {
				return directory.User{}, directory.Result{Agent: "agent-berlin"}, errs.E(errs.Forbidden, "The agent refused the operation.", nil)
			}}
		f := agentsMode(t, a, true)
		if _, err := f.wb.AdminUnlock(ctx, actor, "alice"); errs.KindOf(err) != errs.Forbidden {
			t.Fatalf("unlock: %v", err)
		}
		row, d := lastAudit(t, f.db, audit.ActivityUnlockByAdmin)
		if row.Result != audit.Failure || d["agent"] != "agent-berlin" || row.TargetName != "alice" {
			t.Errorf("audit row %s %q %v", row.Result, row.TargetName, d)
		}
	})

	t.Run("unlock", func(t *testing.T) {
		a := &fakeAgents{t: t, connected: func() (int, int) { return 2, 1 },
			unlock: func(string) (directory.User, directory.Result, error) { return alice, res, nil }}
		f := agentsMode(t, a, true)
		u, err := f.wb.AdminUnlock(ctx, actor, "alice")
		if err != nil || u.Locked {
			t.Fatalf("unlock: %+v %v", u, err)
		}
		_, d := lastAudit(t, f.db, audit.ActivityUnlockByAdmin)
		if d["agent"] != "agent-berlin" || d["server"] != res.Server || d["was_locked"] != true {
			t.Errorf("audit details %v", d)
		}
	})

	t.Run("no agent connected", func(t *testing.T) {
		a := &fakeAgents{t: t, connected: func() (int, int) { return 0, 0 }} // any operation fails the test
		f := agentsMode(t, a, true)
		_, err := f.wb.AdminReset(ctx, actor, "alice", "New-Password-1", false)
		if errs.KindOf(err) != errs.Unavailable || errs.MessageOf(err) != writeback.ReasonNoAgent {
			t.Fatalf("reset: %v", err)
		}
		row, _ := lastAudit(t, f.db, audit.ActivityResetByAdmin)
		if row.Result != audit.Failure || row.Reason != writeback.ReasonNoAgent {
			t.Errorf("audit row %s %q", row.Result, row.Reason)
		}
	})

	// The agent's refusals and the hub's own failures (a timeout, a lost
	// connection) carry no directory diagnostic: the row keeps the error
	// chain, which says which agent and why, and the agent's reason.
	for _, tc := range []struct {
		name    string
		err     error
		want    string
		refused string
	}{
		{"a reset the agent did not answer in time", errs.E(errs.Unavailable, "Your organisation's directory could not be reached. Nothing was changed.",
			&directory.OpError{Op: "reset", Code: directory.CodeUnavailable, Server: "agent agent-berlin",
				Err: fmt.Errorf("agent agent-berlin (10.0.0.7) did not answer the reset_login job within 15s: %w", context.DeadlineExceeded)}),
			"did not answer the reset_login job within 15s", ""},
		{"a reset the agent refused", &errs.Error{Kind: errs.Forbidden, Message: "The writeback agent has password writeback turned off.",
			Cause: &directory.OpError{Op: "reset", Code: directory.CodeNotPermitted, Server: "agent",
				Err: &agentwire.RefusedError{Reason: agentwire.RefusedWritebackOff, Detail: "password writeback is off on this agent"}}},
			"password writeback is off on this agent", agentwire.RefusedWritebackOff},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := &fakeAgents{t: t, connected: func() (int, int) { return 1, 1 },
				resetLogin: func(string, string, directory.ResetOptions) (directory.User, directory.Result, error) {
					return directory.User{}, directory.Result{Agent: "agent-berlin"}, tc.err
				}}
			f := agentsMode(t, a, true)
			if _, err := f.wb.AdminReset(ctx, actor, "alice", "New-Password-1", false); err == nil {
				t.Fatal("reset succeeded")
			}
			row, d := lastAudit(t, f.db, audit.ActivityResetByAdmin)
			why, _ := d["error"].(string)
			if row.Result != audit.Failure || d["agent"] != "agent-berlin" || !strings.Contains(why, tc.want) {
				t.Errorf("audit row %s %v: want the agent and %q", row.Result, d, tc.want)
			}
			if got, _ := d["agent_refused"].(string); got != tc.refused {
				t.Errorf("agent_refused %q, want %q", got, tc.refused)
			}
			if strings.Contains(row.Details, "New-Password-1") {
				t.Error("the password is in the audit row")
			}
		})
	}

	t.Run("a direct connection's rows name no agent", func(t *testing.T) {
		details := writeback.AddResult(nil, directory.Result{Server: "ldaps://dc1"})
		if _, ok := details["agent"]; ok || details["server"] != "ldaps://dc1" {
			t.Errorf("details %v", details)
		}
	})
}

// TestHealthThroughAgents: the connection test and the status monitor run
// the agents' checklist in agents mode, and an outage the agents report
// reaches the status panel.
func TestHealthThroughAgents(t *testing.T) {
	ctx := context.Background()
	var logins []string
	var mu sync.Mutex
	a := &fakeAgents{t: t, connected: func() (int, int) { return 1, 1 },
		test: func(login string) directory.Checklist {
			mu.Lock()
			logins = append(logins, login)
			mu.Unlock()
			return directory.Checklist{OK: true, Items: []directory.Check{{Name: "Agent agent-berlin (dc-host)", OK: true, Detail: "connected"}}}
		}}
	f := agentsMode(t, a, true)
	list, err := f.wb.Test(ctx, audit.CommandLine, " bob ")
	if err != nil || !list.OK || len(list.Items) != 1 {
		t.Fatalf("test: %+v %v", list, err)
	}
	st, err := f.set.Status(ctx)
	if err != nil || st.State != settings.StateConnected || len(st.Details) != 1 || !strings.Contains(st.Details[0], "Agent agent-berlin") {
		t.Errorf("status after the test: %+v %v", st, err)
	}
	f.wb.RefreshStatus(ctx)
	mu.Lock()
	if len(logins) != 2 || logins[0] != "bob" || logins[1] != "" {
		t.Errorf("checklists run for %q", logins)
	}
	mu.Unlock()

	// The agents report an outage (say every agent went away mid-job).
	a.mu.Lock()
	outage := a.outage
	a.mu.Unlock()
	if outage == nil {
		t.Fatal("UseAgents did not register for outages")
	}
	outage(errs.E(errs.Unavailable, "Your organisation's directory could not be reached. Nothing was changed.",
		&directory.OpError{Op: "reset", Code: directory.CodeUnavailable, Server: "agent agent-berlin"}))
	st = waitStatus(t, f, settings.StateError, 2*time.Second)
	if !strings.Contains(st.Message, "could not be reached") {
		t.Errorf("status %+v", st)
	}
}

// TestModeChangeRefreshesStatus: switching to agents mode makes the
// monitor check through the agents soon, not at its next periodic check,
// so the panel stops telling of the direct connection.
func TestModeChangeRefreshesStatus(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	// Neither the periodic check nor the re-check while failing comes
	// within the test: only the mode change can make the monitor check.
	writeback.SetMonitorTimings(f.wb, time.Hour, 10*time.Millisecond)
	f.wb.UseAgents(&fakeAgents{t: t, connected: func() (int, int) { return 1, 1 },
		test: func(string) directory.Checklist {
			return directory.Checklist{OK: true, Items: []directory.Check{{Name: "Agent agent-berlin (dc-host)", OK: true}}}
		}})
	in := directInput()
	in.URLs = []string{"ldaps://127.0.0.1:1"} // refused at once
	if _, err := f.wb.SaveConnection(ctx, audit.CommandLine, 0, in); err != nil {
		t.Fatal(err)
	}
	mctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { f.wb.Monitor(mctx, time.Hour); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	waitStatus(t, f, settings.StateError, 10*time.Second)
	if _, err := f.wb.SaveConnection(ctx, audit.CommandLine, f.version(t), writeback.Input{Mode: writeback.ModeAgents}); err != nil {
		t.Fatal(err)
	}
	st := waitStatus(t, f, settings.StateConnected, 3*time.Second)
	if len(st.Details) != 1 || !strings.Contains(st.Details[0], "agent-berlin") {
		t.Errorf("status %+v", st)
	}
}

// TestAgentConnectRefreshesStatus: an agent that connects makes the status
// panel check again at once, not at the monitor's next interval.
func TestAgentConnectRefreshesStatus(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	writeback.SetMonitorTimings(f.wb, time.Hour, 10*time.Millisecond)
	var up atomic.Bool
	ag := &fakeAgents{t: t, connected: func() (int, int) {
		if up.Load() {
			return 1, 1
		}
		return 0, 0
	}, test: func(string) directory.Checklist {
		if up.Load() {
			return directory.Checklist{OK: true, Items: []directory.Check{{Name: "Agent agent-berlin (dc-host)", OK: true}}}
		}
		return directory.Checklist{Items: []directory.Check{{Name: "Writeback agents", Detail: "No writeback agent is connected."}}}
	}}
	f.wb.UseAgents(ag)
	if _, err := f.wb.SaveConnection(ctx, audit.CommandLine, 0, writeback.Input{Mode: writeback.ModeAgents}); err != nil {
		t.Fatal(err)
	}
	mctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { f.wb.Monitor(mctx, time.Hour); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	waitStatus(t, f, settings.StateError, 10*time.Second)
	up.Store(true)
	ag.mu.Lock()
	connected := ag.onConnect
	ag.mu.Unlock()
	if connected == nil {
		t.Fatal("UseAgents registered nothing for an agent's connection")
	}
	connected()
	waitStatus(t, f, settings.StateConnected, 3*time.Second)
}
