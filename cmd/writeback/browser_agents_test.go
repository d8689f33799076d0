package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/writeback/writeback/services/agents"
	"github.com/writeback/writeback/services/agentwire"
	"github.com/writeback/writeback/testbed/browser"
)

// TestBrowserAddAndRevokeAgent: a Global Administrator adds an agent on the
// Writeback agents page, copies the token shown once, the agent enrols with
// it, the page lists it, and Revoke (after its confirmation step) revokes it.
func TestBrowserAddAndRevokeAgent(t *testing.T) {
	data := t.TempDir()
	if code, _, errOut := cli(t, "a long admin password\n", "admin", "create", "--data", data, "--email", "ada@example.com", "--name", "Ada", "--role", "global-admin"); code != 0 {
		t.Fatal(errOut)
	}
	s := startServer(t, data)
	ctx := browser.New(t)
	browser.Step(t, ctx, "sign in",
		chromedp.Navigate("http://"+s.addr+"/admin/agents"),
		chromedp.WaitVisible(chromedp.ID("email")),
		chromedp.SendKeys(chromedp.ID("email"), "ada@example.com"),
		chromedp.SendKeys(chromedp.ID("password"), "a long admin password"),
		chromedp.Click(chromedp.CSS(`[data-testid=sign-in]`)),
	)
	secondStep(t, ctx, &secondFactor{}, `[data-testid=add-agent]`)
	if got := browser.Text(t, ctx, "h1"); !strings.Contains(got, "Hybrid management | Writeback agents") {
		t.Errorf("heading %q", got)
	}
	if !browser.Eval[bool](t, ctx, `!!document.querySelector('nav.side a[href="/admin/agents"][aria-current=page]')`) {
		t.Error("Writeback agents is not the current navigation entry")
	}
	browser.Step(t, ctx, "add an agent",
		chromedp.SendKeys(chromedp.ID("name"), "Paris DC"),
		chromedp.Click(chromedp.CSS(`[data-testid=add-agent]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=agent-token]`)),
	)
	browser.Shot(t, ctx, "01-token")
	tok := browser.Eval[string](t, ctx, `document.querySelector('[data-testid=agent-token]').value`)
	if !strings.HasPrefix(tok, agents.TokenPrefix) {
		t.Fatalf("token %q", tok)
	}
	if url := browser.Eval[string](t, ctx, `location.href`); strings.Contains(url, strings.TrimPrefix(tok, agents.TokenPrefix)) {
		t.Errorf("the token is in the address %s", url)
	}
	if cmd := browser.Text(t, ctx, `[data-testid=agent-command]`); !strings.Contains(cmd, "writeback-agent enroll --portal http://"+s.addr+" --token "+tok) {
		t.Errorf("command %q", cmd)
	}

	id, err := agentwire.NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(agentwire.EnrollRequest{Token: tok, Public: id.Public(), Proof: id.SignEnroll(tok), Host: "paris-srv", Version: "1.0"})
	resp, err := http.Post("http://"+s.addr+agentwire.PathEnroll, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("enrol: %d", resp.StatusCode)
	}

	browser.Step(t, ctx, "back to the list",
		chromedp.Navigate("http://"+s.addr+"/admin/agents"),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=agent]`)),
	)
	browser.Shot(t, ctx, "02-list")
	if got := browser.Text(t, ctx, `[data-testid=agent-name]`); got != "Paris DC" {
		t.Errorf("name %q", got)
	}
	if got := browser.Text(t, ctx, `[data-testid=agent-state]`); got != "Disconnected" {
		t.Errorf("state %q", got)
	}
	if strings.Contains(browser.Eval[string](t, ctx, `document.body.innerHTML`), strings.TrimPrefix(tok, agents.TokenPrefix)) {
		t.Error("the token is shown again")
	}
	browser.Step(t, ctx, "revoke",
		chromedp.Click(chromedp.CSS(`[data-testid=revoke]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=confirm-revoke]`)),
	)
	browser.Shot(t, ctx, "03-confirm")
	browser.Step(t, ctx, "confirm",
		chromedp.Click(chromedp.CSS(`[data-testid=confirm-revoke]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=flash]`)),
	)
	browser.Shot(t, ctx, "04-revoked")
	if got := browser.Text(t, ctx, `[data-testid=agent-state]`); got != "Revoked" {
		t.Errorf("state after revoking %q", got)
	}
	_, out, _ := cli(t, "", "agent", "list", "--data", data, "--json")
	if !strings.Contains(out, `"state": "revoked"`) {
		t.Errorf("list after revoking: %s", out)
	}
}
