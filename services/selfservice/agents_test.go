package selfservice

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/directory"
	"github.com/writeback/writeback/services/errs"
	"github.com/writeback/writeback/services/writeback"
	"github.com/writeback/writeback/store"
)

// fakeAgents is writeback.Agents for the sign-ins with a directory password
// (/change, /register), which take the writeback service's directory: the
// two sign-in operations from function fields. Any other operation is not
// expected here and panics (the nil embedded Directory).
type fakeAgents struct {
	directory.Directory
	change func(login, old, next string, admit directory.Admit) (directory.Candidate, directory.Result, error)
	auth   func(login, password string, admit directory.Admit) (directory.Candidate, directory.Result, error)
}

func (a *fakeAgents) Connected() (int, int) { return 1, 1 }
func (a *fakeAgents) OnOutage(func(error))  {}
func (a *fakeAgents) OnConnect(func())      {}
func (a *fakeAgents) ChangeLogin(_ context.Context, login, old, next string, admit directory.Admit) (directory.Candidate, directory.Result, error) {
	return a.change(login, old, next, admit)
}
func (a *fakeAgents) AuthenticateLogin(_ context.Context, login, password string, admit directory.Admit) (directory.Candidate, directory.Result, error) {
	return a.auth(login, password, admit)
}

// throughAgents puts the fixture's writeback service in agents mode with a.
func (fx *fixture) throughAgents(a writeback.Agents) {
	fx.t.Helper()
	fx.s.wb.UseAgents(a)
	if _, err := fx.s.wb.SaveConnection(context.Background(), audit.CommandLine, 0, writeback.Input{Mode: writeback.ModeAgents}); err != nil {
		fx.t.Fatal(err)
	}
}

func details(t *testing.T, row store.AuditEvent) map[string]any {
	t.Helper()
	d := map[string]any{}
	if err := json.Unmarshal([]byte(row.Details), &d); err != nil {
		t.Fatalf("details %q: %v", row.Details, err)
	}
	return d
}

// verified starts a flow of kind for alice and verifies it with the app.
func (fx *fixture) verified(kind string) string {
	fx.t.Helper()
	fx.registerApp(alice, appSecret)
	id := fx.start(kind, "alice", "b")
	fx.choose(id, "b", MethodApp)
	code, _ := totp.GenerateCode(appSecret, time.Now())
	if err := fx.s.Verify(context.Background(), id, "b", MethodApp, code, nil, audit.Actor{}); err != nil && kind == KindReset {
		fx.t.Fatal(err)
	}
	return id
}

// TestAuditNamesTheAgent: a self-service reset, unlock and change that an
// agent performed name it in their audit rows, a failed one too.
func TestAuditNamesTheAgent(t *testing.T) {
	ctx := context.Background()
	byAgent := directory.Result{Server: "ldaps://dc1.corp.example.test", Agent: "agent-berlin"}
	refused := errs.E(errs.Forbidden, "The portal's service account lacks the right to do this in the directory.",
		&directory.OpError{Op: "reset", Code: directory.CodeNotPermitted, LDAPResult: 50, Server: byAgent.Server})

	for _, tc := range []struct {
		name string
		err  error
	}{{"reset", nil}, {"failed reset", refused}} {
		t.Run(tc.name, func(t *testing.T) {
			fx := newFixture(t, Methods{App: true}, alice)
			fx.dir.reset = func(directory.User, string) (directory.Result, error) { return byAgent, tc.err }
			id := fx.verified(KindReset)
			err := fx.s.SetPassword(ctx, id, "b", "Passw0rd!x", "Passw0rd!x", audit.Actor{})
			if (err == nil) != (tc.err == nil) {
				t.Fatalf("set password: %v", err)
			}
			rows := fx.audit(audit.ActivityResetSelfService)
			if len(rows) != 1 {
				t.Fatalf("%d rows", len(rows))
			}
			if d := details(t, rows[0]); d["agent"] != "agent-berlin" || d["server"] != byAgent.Server {
				t.Errorf("audit details %v", d)
			}
		})
	}

	t.Run("unlock", func(t *testing.T) {
		fx := newFixture(t, Methods{App: true}, alice)
		fx.dir.unlock = func(directory.User) (directory.Result, error) { return byAgent, nil }
		fx.verified(KindUnlock) // the last verification unlocks
		rows := fx.audit(audit.ActivityUnlockSelfService)
		if len(rows) != 1 || rows[0].Result != audit.Success {
			t.Fatalf("rows %+v", rows)
		}
		if d := details(t, rows[0]); d["agent"] != "agent-berlin" || d["server"] != byAgent.Server {
			t.Errorf("audit details %v", d)
		}
	})

	t.Run("a direct connection names no agent", func(t *testing.T) {
		fx := newFixture(t, Methods{App: true}, alice)
		id := fx.verified(KindReset)
		if err := fx.s.SetPassword(ctx, id, "b", "Passw0rd!x", "Passw0rd!x", audit.Actor{}); err != nil {
			t.Fatal(err)
		}
		if d := details(t, fx.audit(audit.ActivityResetSelfService)[0]); d["server"] != "ldaps://fake" || d["agent"] != nil {
			t.Errorf("audit details %v", d)
		}
	})

	wrong := errs.E(errs.Unauthorized, "The user name or password is not right.",
		&directory.OpError{Op: "change", Code: directory.CodeBadPassword, LDAPResult: 49, Server: byAgent.Server})
	for _, tc := range []struct {
		name   string
		err    error
		result string
	}{{"change", nil, audit.Success}, {"change with a wrong password", wrong, audit.Failure}} {
		t.Run(tc.name, func(t *testing.T) {
			fx := newFixture(t, Methods{App: true}, alice)
			var sent []string
			fx.throughAgents(&fakeAgents{change: func(login, old, next string, admit directory.Admit) (directory.Candidate, directory.Result, error) {
				cand := directory.Candidate{User: alice}
				if err := admit(cand, nil); err != nil {
					return cand, byAgent, err
				}
				sent = append(sent, login)
				return cand, byAgent, tc.err
			}})
			err := fx.s.Change(ctx, "alice", "Old-Passw0rd", "New-Passw0rd", "New-Passw0rd", audit.Actor{ClientIP: "192.0.2.7"})
			if (err == nil) != (tc.err == nil) {
				t.Fatalf("change: %v", err)
			}
			if len(sent) != 1 || sent[0] != "alice" {
				t.Errorf("changes sent to the agents: %q", sent)
			}
			rows := fx.audit(audit.ActivityChangeSelfService)
			if len(rows) != 1 || rows[0].Result != tc.result {
				t.Fatalf("rows %+v", rows)
			}
			if d := details(t, rows[0]); d["agent"] != "agent-berlin" || d["server"] != byAgent.Server {
				t.Errorf("audit details %v", d)
			}
			if strings.Contains(rows[0].Details, "Passw0rd") {
				t.Error("a password in the audit row")
			}
		})
	}

	t.Run("register sign-in", func(t *testing.T) {
		fx := newFixture(t, Methods{App: true}, alice)
		fx.throughAgents(&fakeAgents{auth: func(login, password string, admit directory.Admit) (directory.Candidate, directory.Result, error) {
			cand := directory.Candidate{User: alice}
			if err := admit(cand, nil); err != nil {
				return cand, byAgent, err
			}
			return cand, byAgent, wrong
		}})
		if _, err := fx.s.StartRegister(ctx, "alice", "Wrong-Passw0rd", "b", audit.Actor{ClientIP: "192.0.2.7"}); errs.KindOf(err) != errs.Unauthorized {
			t.Fatalf("sign in: %v", err)
		}
		rows := fx.audit(audit.ActivityRegisterSecurity)
		if len(rows) == 0 || details(t, rows[0])["agent"] != "agent-berlin" {
			t.Errorf("rows %+v", rows)
		}
	})
}

// TestNoAgentConnected: with no writeback agent connected, self-service is
// unavailable with the plain words that the directory could not be reached
// and nothing was changed, and a reset already verified is refused the same
// way, its audit row saying why.
func TestNoAgentConnected(t *testing.T) {
	ctx := context.Background()
	fx := newFixture(t, Methods{App: true}, alice)
	id := fx.verified(KindReset)
	fx.dir.state = func() (writeback.State, error) {
		return writeback.State{Configured: true, Agents: true, Outage: true, Reason: writeback.ReasonNoAgent}, nil
	}
	av, err := fx.s.Available(ctx, KindReset)
	if err != nil || av.OK || av.Reason != directory.MsgNotReached {
		t.Errorf("available: %+v %v", av, err)
	}
	err = fx.s.SetPassword(ctx, id, "b", "Passw0rd!x", "Passw0rd!x", audit.Actor{})
	if err = EmployeeError(err); errs.KindOf(err) != errs.Unavailable || errs.MessageOf(err) != directory.MsgNotReached {
		t.Errorf("set password: %v", err)
	}
	if n := fx.dir.count("reset"); n != 0 {
		t.Errorf("%d resets sent", n)
	}
	rows := fx.audit(audit.ActivityResetSelfService)
	if len(rows) != 1 || rows[0].Reason != writeback.ReasonNoAgent {
		t.Errorf("audit rows %+v", rows)
	}
	// The agents' switch off is a setting, said as today's portal switch.
	fx.dir.state = func() (writeback.State, error) {
		return writeback.State{Configured: true, Agents: true, AgentsConnected: 1, Reason: writeback.ReasonAgentOff}, nil
	}
	if av, _ := fx.s.Available(ctx, KindReset); av.OK || !strings.Contains(av.Reason, "has not turned on writing passwords") {
		t.Errorf("available with the agent's switch off: %+v", av)
	}
}
