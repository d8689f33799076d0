package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/writeback/writeback/services/agents"
	"github.com/writeback/writeback/services/agentwire"
	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/store"
	"github.com/writeback/writeback/testbed"
)

// enrollWith enrols an agent with token straight through the service, as
// the portal's enrol endpoint would.
func enrollWith(t *testing.T, data, token string) agentwire.EnrollResponse {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, filepath.Join(data, store.FileName))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	id, err := agentwire.NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	resp, err := agents.New(db, slog.New(slog.NewTextHandler(io.Discard, nil))).Enroll(ctx,
		agentwire.EnrollRequest{Token: token, Public: id.Public(), Proof: id.SignEnroll(token), Host: "srv-dc1", Version: "1.0"}, "")
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return lines[len(lines)-1]
}

func TestAgentCommands(t *testing.T) {
	data := t.TempDir()
	code, out, errOut := cli(t, "", "agent", "add", "--data", data, "--name", "Paris DC", "--base-url", "https://reset.example.com")
	if code != 0 {
		t.Fatalf("add: %d %s %s", code, out, errOut)
	}
	tok := lastLine(out)
	if !strings.HasPrefix(tok, agents.TokenPrefix) || strings.ContainsAny(tok, " \t") || len(tok) != len(agents.TokenPrefix)+43 {
		t.Fatalf("last line %q is not the token alone\n%s", tok, out)
	}
	if !strings.Contains(out, "writeback-agent enroll --portal https://reset.example.com --token "+tok+"\n") || strings.Count(out, "\n") < 3 {
		t.Errorf("no enroll hint or explanation:\n%s", out)
	}

	// Empty list, as JSON: an array.
	code, out, _ = cli(t, "", "agent", "list", "--data", data, "--json")
	var rows []map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &rows) != nil || rows == nil || len(rows) != 0 {
		t.Fatalf("list --json before enrolment: %d %q", code, out)
	}

	resp := enrollWith(t, data, tok)
	code, out, _ = cli(t, "", "agent", "list", "--data", data)
	if code != 0 || !strings.Contains(out, "Paris DC") || !strings.Contains(out, "disconnected") || !strings.Contains(out, "srv-dc1") ||
		!strings.HasPrefix(out, "NAME") {
		t.Errorf("list: %d\n%s", code, out)
	}
	code, out, _ = cli(t, "", "agent", "list", "--data", data, "--json")
	var list []struct {
		Name, State, Host, Version, ID string
		ConnectedSince                 *string `json:"connected_since"`
		Ops                            *int64  `json:"operations_last_hour"`
		LastError                      *string `json:"last_error"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &list) != nil || len(list) != 1 {
		t.Fatalf("list --json: %d %q", code, out)
	}
	if l := list[0]; l.Name != "Paris DC" || l.State != "disconnected" || l.Host != "srv-dc1" || l.ID != resp.AgentID ||
		l.ConnectedSince != nil || l.Ops == nil || *l.Ops != 0 || l.LastError == nil {
		t.Errorf("row %+v", l)
	}

	// Revoke: unknown name → one line, non-zero, nothing changed.
	code, out, errOut = cli(t, "", "agent", "revoke", "Lyon", "--data", data)
	if code == 0 || strings.Count(strings.TrimSpace(errOut), "\n") != 0 || !strings.Contains(errOut, "Lyon") || out != "" {
		t.Errorf("revoke unknown: %d %q %q", code, out, errOut)
	}
	code, out, errOut = cli(t, "", "agent", "revoke", "--data", data, "paris dc")
	if code != 0 || !strings.Contains(out, "revoked the writeback agent Paris DC") {
		t.Fatalf("revoke: %d %q %q", code, out, errOut)
	}
	_, out, _ = cli(t, "", "agent", "list", "--data", data, "--json")
	if json.Unmarshal([]byte(out), &list) != nil || len(list) != 1 || list[0].State != "revoked" {
		t.Errorf("after revoke: %s", out)
	}
	if code, _, errOut := cli(t, "", "agent", "revoke", "--data", data, "Paris DC"); code == 0 || !strings.Contains(errOut, "already revoked") {
		t.Errorf("second revoke: %d %q", code, errOut)
	}
}

func TestAgentBadInput(t *testing.T) {
	data := t.TempDir()
	if code, _, errOut := cli(t, "", "agent", "add", "--data", data, "--name", "Taken"); code != 0 {
		t.Fatal(errOut)
	}
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"agent", "add", "--data", data}, "--name is required"},
		{[]string{"agent", "add", "--data", data, "--name", "a/b"}, "Use only letters"},
		{[]string{"agent", "add", "--data", data, "--name", strings.Repeat("x", 65)}, "1 to 64"},
		{[]string{"agent", "add", "--data", data, "--name", "ok", "--base-url", "ftp://x"}, `--base-url "ftp://x"`},
		{[]string{"agent", "add", "--data", data, "--name", "taken"}, "already enrolled or has a token waiting"},
		{[]string{"agent", "revoke", "--data", data}, "name the agent to revoke"},
		{[]string{"agent", "revoke", "--data", data, "a", "b"}, `unexpected argument "b"`},
		{[]string{"agent", "list", "--data", data, "extra"}, `unexpected argument "extra"`},
		{[]string{"agent", "nope"}, `unknown subcommand "nope"`},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args[1:], " "), func(t *testing.T) {
			code, out, errOut := cli(t, "", tc.args...)
			if code == 0 || out != "" {
				t.Fatalf("exit %d, stdout %q", code, out)
			}
			if !strings.Contains(errOut, tc.want) || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
				t.Errorf("stderr %q, want one line containing %q", errOut, tc.want)
			}
		})
	}
	// Nothing changed: still one token, no agents.
	db, err := store.Open(context.Background(), filepath.Join(data, store.FileName))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.SQL().QueryRow(`SELECT count(*) FROM agent_tokens`).Scan(&n); err != nil || n != 1 {
		t.Errorf("%d tokens after the refusals, want 1 (%v)", n, err)
	}
}

// TestServeEnrolsAgentsAddedOnTheCommandLine: a token from `writeback agent
// add` enrols an agent through the running portal's endpoint, and `agent
// list` shows it.
func TestServeEnrolsAgentsAddedOnTheCommandLine(t *testing.T) {
	data := t.TempDir()
	s := startServer(t, data)
	code, out, errOut := cli(t, "", "agent", "add", "--data", data, "--name", "Branch", "--base-url", "http://"+s.addr)
	if code != 0 {
		t.Fatalf("add: %s", errOut)
	}
	tok := lastLine(out)
	id, err := agentwire.NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(agentwire.EnrollRequest{Token: tok, Public: id.Public(), Proof: id.SignEnroll(tok), Host: "branch-srv", Version: "1.0"})
	post := func() (int, string) {
		resp, err := http.Post("http://"+s.addr+agentwire.PathEnroll, "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	status, got := post()
	var resp agentwire.EnrollResponse
	if status != http.StatusOK || json.Unmarshal([]byte(got), &resp) != nil || resp.Name != "Branch" {
		t.Fatalf("enrol: %d %s", status, got)
	}
	if status, got := post(); status != http.StatusUnauthorized || !strings.Contains(got, "not valid") {
		t.Errorf("the same token again: %d %s", status, got)
	}
	_, out, _ = cli(t, "", "agent", "list", "--data", data, "--json")
	var list []struct{ ID, Name, Host string }
	if json.Unmarshal([]byte(out), &list) != nil || len(list) != 1 || list[0].ID != resp.AgentID || list[0].Host != "branch-srv" {
		t.Errorf("list: %s", out)
	}
	if strings.Contains(s.out.String(), strings.TrimPrefix(tok, agents.TokenPrefix)) {
		t.Error("the token is in the portal's output")
	}
}

// TestAgentListReplicas: on PostgreSQL `agent list` says how many of the
// running replicas each agent is connected to (and --json which ones), and
// warns about a running replica no agent reaches.
func TestAgentListReplicas(t *testing.T) {
	ctx := context.Background()
	url := testbed.Load(t).NewPostgresDB(t)
	db, err := store.OpenDatabase(ctx, url, "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	for _, r := range []string{"a", "b"} {
		if _, err := db.Heartbeat(ctx, r, "web-"+r, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	svc := agents.New(db, slog.New(slog.NewTextHandler(io.Discard, nil)))
	svc.SetReplica("a")
	tok, err := svc.Add(ctx, audit.CommandLine, "Paris DC")
	if err != nil {
		t.Fatal(err)
	}
	id, _ := agentwire.NewIdentity()
	resp, err := svc.Enroll(ctx, agentwire.EnrollRequest{Token: tok.Token, Public: id.Public(), Proof: id.SignEnroll(tok.Token), Host: "srv-dc1"}, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Connected(ctx, resp.AgentID, agentwire.Status{Host: "srv-dc1"}, "198.51.100.9"); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := cli(t, "", "agent", "list", "--database", url)
	if code != 0 || !strings.Contains(strings.SplitN(out, "\n", 2)[0], "REPLICAS") || !strings.Contains(out, "1 of 2") ||
		!strings.Contains(out, "Warning: replica b (web-b) has no agent connected") || strings.Contains(out, "replica a (web-a)") {
		t.Errorf("list: %d %s\n%s", code, errOut, out)
	}
	_, out, _ = cli(t, "", "agent", "list", "--database", url, "--json")
	var rows []struct {
		Connections []struct{ Replica, RemoteAddr string } `json:"connections"`
	}
	if err := json.Unmarshal([]byte(out), &rows); err != nil || len(rows) != 1 || len(rows[0].Connections) != 1 ||
		rows[0].Connections[0].Replica != "a" {
		t.Errorf("list --json: %v\n%s", err, out)
	}
}
