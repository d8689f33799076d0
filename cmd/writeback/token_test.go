package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/writeback/writeback/services/apitokens"
	"github.com/writeback/writeback/store"
)

// getAPI calls the REST API of a running serve with a bearer token.
func getAPI(t *testing.T, addr, path, token string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestTokenCommands: `token create` prints the token alone on its last
// line and stores only its hash; serve accepts it on the REST API and
// records the call under its name; `token list` shows it with its last
// use; serve's --rate-limit-api limits it; `token revoke` ends it (401 from then on); bad input is a usage
// error that creates nothing.
func TestTokenCommands(t *testing.T) {
	data := t.TempDir()
	for _, args := range [][]string{
		{"--name", "ci"},
		{"--name", "ci", "--role", "owner"},
		{"--name", "ci", "--role", "global-admin", "--expires", "0"},
		{"--name", "bad/name", "--role", "global-admin"},
	} {
		code, out, errOut := cli(t, "", append([]string{"token", "create", "--data", data}, args...)...)
		if code != 2 || out != "" || errOut == "" {
			t.Errorf("create %v: %d %q %q, want a usage error", args, code, out, errOut)
		}
	}
	code, out, errOut := cli(t, "", "token", "create", "--data", data, "--name", "nightly export", "--role", "reports-reader", "--expires", "30")
	if code != 0 {
		t.Fatalf("create: %d %s %s", code, out, errOut)
	}
	tok := lastLine(out)
	if !strings.HasPrefix(tok, apitokens.Prefix) || len(tok) != len(apitokens.Prefix)+43 || !strings.Contains(out, "Reports Reader") {
		t.Fatalf("last line %q is not the token alone\n%s", tok, out)
	}
	db, err := store.Open(context.Background(), data+"/"+store.FileName)
	if err != nil {
		t.Fatal(err)
	}
	stored, err := db.APITokenByHash(context.Background(), apitokens.Hash(tok))
	db.Close()
	if err != nil || stored.Name != "nightly export" || stored.Role != "reports-reader" || stored.Hash == tok {
		t.Fatalf("stored: %+v %v", stored, err)
	}
	if code, _, errOut := cli(t, "", "token", "create", "--data", data, "--name", "Nightly Export", "--role", "global-admin"); code == 0 ||
		!strings.Contains(errOut, "exists already") {
		t.Errorf("a second token of that name: %d %q", code, errOut)
	}

	s := startServer(t, data, "--rate-limit-api", "3")
	if code, body := getAPI(t, s.addr, "/api/v1/directory/status", tok); code != http.StatusOK || !strings.Contains(body, `"state"`) {
		t.Errorf("API with the token: %d %s", code, body)
	}
	if code, body := getAPI(t, s.addr, "/api/v1/settings/on-premises-integration", tok); code != http.StatusOK {
		t.Errorf("settings with the token: %d %s", code, body)
	}
	code, body := getAPI(t, s.addr, "/api/v1/audit?actor=nightly&activity="+strings.ReplaceAll(apitokens.ActivityCall, " ", "+"), tok)
	var page struct {
		Events []struct {
			ActorName string `json:"actor_name"`
			ActorType string `json:"actor_type"`
		}
	}
	if code != http.StatusOK || json.Unmarshal([]byte(body), &page) != nil || len(page.Events) != 2 ||
		page.Events[0].ActorName != "nightly export" || page.Events[0].ActorType != apitokens.ActorType {
		t.Errorf("the calls in the audit log: %d %s", code, body)
	}
	// --rate-limit-api 3: the fourth call in a minute is refused.
	if code, body := getAPI(t, s.addr, "/api/v1/directory/status", tok); code != http.StatusTooManyRequests || !strings.Contains(body, "Too many requests") {
		t.Errorf("fourth call with --rate-limit-api 3: %d %s", code, body)
	}

	code, out, _ = cli(t, "", "token", "list", "--data", data)
	if code != 0 || !strings.HasPrefix(out, "NAME") || !strings.Contains(out, "nightly export") || !strings.Contains(out, "active") ||
		strings.Contains(out, tok) {
		t.Errorf("list: %d\n%s", code, out)
	}
	code, out, _ = cli(t, "", "token", "list", "--data", data, "--json")
	var rows []struct {
		Name, Role, State string
		LastUsedAt        *string `json:"last_used_at"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &rows) != nil || len(rows) != 1 || rows[0].State != "active" || rows[0].LastUsedAt == nil ||
		strings.Contains(out, tok) {
		t.Errorf("list --json: %d %s", code, out)
	}

	if code, _, errOut := cli(t, "", "token", "revoke", "--data", data, "weekly"); code == 0 || !strings.Contains(errOut, "no API token") {
		t.Errorf("revoke unknown: %d %q", code, errOut)
	}
	code, out, errOut = cli(t, "", "token", "revoke", "--data", data, "NIGHTLY EXPORT")
	if code != 0 || !strings.Contains(out, "revoked the API token nightly export") {
		t.Fatalf("revoke: %d %q %q", code, out, errOut)
	}
	if code, body := getAPI(t, s.addr, "/api/v1/directory/status", tok); code != http.StatusUnauthorized {
		t.Errorf("API after revoke: %d %s", code, body)
	}
	s.stop(t)
	if strings.Contains(s.out.String(), tok) {
		t.Error("serve's log holds the token")
	}
}
