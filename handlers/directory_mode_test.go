package handlers_test

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/writeback/writeback/services/admins"
	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/directory"
	"github.com/writeback/writeback/services/writeback"
	"github.com/writeback/writeback/testbed/browser"
)

// fakeAgents is writeback.Agents whose counts the test sets; the pages here
// run no directory operation, so any other method panics (the nil embedded
// Directory) and fails the test.
type fakeAgents struct {
	directory.Directory
	connected, writeback atomic.Int32
}

func (a *fakeAgents) Connected() (int, int) { return int(a.connected.Load()), int(a.writeback.Load()) }
func (a *fakeAgents) OnOutage(func(error))  {}
func (a *fakeAgents) OnConnect(func())      {}

// TestDirectoryModeSwitch: the Directory connection page offers Direct and
// Through writeback agents as labelled radios and links to the agents page;
// saving agents mode needs no server or service account and clears them; a
// bad mode is refused with the input kept and nothing saved; the CSRF check
// stands.
func TestDirectoryModeSwitch(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t)
	g := h.client().signedIn(admins.GlobalAdmin)

	p := g.get("/admin/directory")
	for _, want := range []string{
		`<input type="radio" id="mode-direct" name="mode" value="direct" checked>`, `<label for="mode-direct">Direct</label>`,
		`<input type="radio" id="mode-agents" name="mode" value="agents">`, `<label for="mode-agents">Through writeback agents</label>`,
		`<a href="/admin/agents" data-testid="agents-link">Writeback agents</a>`, `id="direct-fields-note"`,
	} {
		if !strings.Contains(p.Body, want) {
			t.Errorf("page lacks %s", want)
		}
	}

	f := offlineForm(g.csrf("/"), "0")
	f.Set("mode", "direct")
	f.Set("ca_pem", "")
	if p := g.post("/admin/directory", f); p.Status != http.StatusSeeOther {
		t.Fatalf("save direct: %d\n%s", p.Status, between(p.Body, `data-testid="errors"`, "</div>"))
	}
	v := connectionVersion(t, h)

	// A mode that is neither: 422, what was typed kept, nothing saved.
	f = offlineForm(g.csrf("/"), v)
	f.Set("mode", "relay")
	f.Set("urls", "ldaps://dc9.example.com")
	f.Set("bind_dn", "CN=other,DC=example,DC=com")
	p = g.post("/admin/directory", f)
	if p.Status != http.StatusUnprocessableEntity || !strings.Contains(p.Body, `id="mode-error" role="alert">Choose Direct or Through writeback agents.`) {
		t.Fatalf("bad mode: %d\n%s", p.Status, between(p.Body, `id="mode"`, "</fieldset>"))
	}
	if got := textareaValue(p.Body, "urls"); got != "ldaps://dc9.example.com" {
		t.Errorf("URLs shown as %q after a refused save", got)
	}
	if got := inputValue(p.Body, "bind_dn"); got != "CN=other,DC=example,DC=com" {
		t.Errorf("bind DN shown as %q after a refused save", got)
	}
	if strings.Contains(p.Body, "Service-Secret-1") {
		t.Error("the refused page shows the password")
	}
	if connectionVersion(t, h) != v {
		t.Fatal("a refused save changed the connection")
	}

	// Without the CSRF token nothing changes.
	f = offlineForm("not-the-token", v)
	f.Set("mode", "agents")
	if p := g.post("/admin/directory", f); p.Status != http.StatusForbidden {
		t.Errorf("without the CSRF token: %d", p.Status)
	}
	if connectionVersion(t, h) != v {
		t.Fatal("a save without the CSRF token changed the connection")
	}

	// Agents mode, the direct fields still in the form (with a security
	// choice that does not match them: they are ignored).
	f = offlineForm(g.csrf("/"), v)
	f.Set("mode", "agents")
	f.Set("security", "starttls")
	f.Set("bind_password", "")
	p = g.post("/admin/directory", f)
	if p.Status != http.StatusSeeOther {
		t.Fatalf("save agents mode: %d\n%s", p.Status, between(p.Body, `data-testid="errors"`, "</div>"))
	}
	c, _, err := h.wb.Connection(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !c.Agents() || len(c.URLs) != 0 || c.BindDN != "" || c.HasPassword() || c.CAPEM != "" {
		t.Errorf("stored %+v: want agents mode without servers or service account", c)
	}
	p = g.get("/admin/directory")
	if !strings.Contains(p.Body, "through writeback agents, and the portal holds no server URL") {
		t.Errorf("no confirmation of agents mode:\n%s", between(p.Body, `<main`, "</form>"))
	}
	if !strings.Contains(p.Body, `id="mode-agents" name="mode" value="agents" checked`) || textareaValue(p.Body, "urls") != "" ||
		inputValue(p.Body, "bind_dn") != "" || !strings.Contains(p.Body, "No password is stored yet") {
		t.Errorf("agents mode shown as:\n%s", between(p.Body, `id="mode"`, `id="base_dns"`))
	}
	if rows, _ := h.db.RecentAudit(ctx, audit.ActivityUpdateDirectory, 1); len(rows) != 1 || !strings.Contains(rows[0].Details, `"mode"`) ||
		!strings.Contains(rows[0].Details, `"bind_password":"cleared"`) {
		t.Errorf("audit row %+v", rows)
	}

	// Back to direct needs the servers and the password again; what was
	// typed is kept.
	f = offlineForm(g.csrf("/"), connectionVersion(t, h))
	f.Set("mode", "direct")
	f.Set("bind_password", "")
	p = g.post("/admin/directory", f)
	if p.Status != http.StatusUnprocessableEntity || !strings.Contains(p.Body, `id="bind_password-error"`) ||
		textareaValue(p.Body, "urls") != "ldaps://dc1.example.com" || !strings.Contains(p.Body, `id="mode-direct" name="mode" value="direct" checked`) {
		t.Errorf("direct without a password: %d\n%s", p.Status, between(p.Body, `id="mode"`, `id="base_dns"`))
	}
	if c, _, _ := h.wb.Connection(ctx); !c.Agents() {
		t.Error("a refused save left agents mode")
	}
}

// TestOnPremAgentsPanel: in agents mode the On-premises integration page's
// writeback panel shows how many agents are connected and write, and says
// why writeback is unavailable when no agent can write.
func TestOnPremAgentsPanel(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t)
	a := &fakeAgents{}
	h.wb.UseAgents(a)
	if _, err := h.wb.SaveConnection(ctx, audit.CommandLine, 0, writeback.Input{Mode: writeback.ModeAgents}); err != nil {
		t.Fatal(err)
	}
	c := h.client().signedIn(admins.GlobalAdmin)
	if p := c.post(onPremPath, map[string][]string{"csrf_token": {c.csrf(onPremPath)}, "version": {currentVersion(t, h)}, "writeback": {"yes"}, "unlock": {"yes"}}); p.Status != http.StatusSeeOther {
		t.Fatalf("writeback on in agents mode: %d", p.Status)
	}
	for _, tt := range []struct {
		name                 string
		connected, writeback int32
		unavailable, summary string
		setup                string // the writeback setup item's state
	}{
		{"none connected", 0, 0, "Writeback unavailable: no agent connected.", "No writeback agent is connected.", "missing"},
		{"the agent's switch off", 1, 0, "Writeback unavailable: the agent has password writeback turned off.", "1 writeback agent is connected, with password writeback off.", "missing"},
		{"every agent's switch off", 2, 0, "Writeback unavailable: the agents have password writeback turned off.", "2 writeback agents are connected, 0 of them with password writeback on.", "missing"},
		{"one of two writes", 2, 1, "", "2 writeback agents are connected, 1 of them with password writeback on.", "done"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a.connected.Store(tt.connected)
			a.writeback.Store(tt.writeback)
			p := c.get(onPremPath)
			if p.Status != http.StatusOK {
				t.Fatalf("status %d", p.Status)
			}
			panel := between(p.Body, `data-testid="agents-state"`, "</div>")
			if !strings.Contains(panel, tt.summary) || !strings.Contains(panel, `<a href="/admin/agents">Writeback agents</a>`) {
				t.Errorf("agents line %q", panel)
			}
			if got := between(panel, `data-testid="agents-unavailable">`, "</strong>"); tt.unavailable != "" && !strings.Contains(got, tt.unavailable) {
				t.Errorf("unavailable %q, want %q", got, tt.unavailable)
			}
			if tt.unavailable == "" && strings.Contains(panel, "agents-unavailable") {
				t.Errorf("says unavailable: %q", panel)
			}
			items, _, _ := setupOn(t, c)
			if items["writeback"].state != tt.setup || (tt.unavailable != "" && !strings.Contains(items["writeback"].html, tt.unavailable)) {
				t.Errorf("writeback setup item %+v", items["writeback"])
			}
		})
	}

	// Direct mode shows no agents line.
	h2 := newHarness(t)
	h2.connectDirectory(t, true)
	if p := h2.client().signedIn(admins.GlobalAdmin).get(onPremPath); strings.Contains(p.Body, `data-testid="agents-state"`) {
		t.Error("an agents line in direct mode")
	}
}

// TestBrowserDirectoryModeHidesDirectFields: with JavaScript, choosing
// Through writeback agents hides the direct settings (they are ignored) and
// Direct shows them again, without a page load; saving agents mode from the
// browser stores it without servers or service account.
func TestBrowserDirectoryModeHidesDirectFields(t *testing.T) {
	h := newHarness(t)
	h.addAdmin("ada@example.com", admins.GlobalAdmin)
	h.connectDirectory(t, true)
	ctx := browser.New(t)
	hidden := `document.getElementById('direct-fields').hidden`
	browser.Step(t, ctx, "sign in",
		chromedp.Navigate(h.srv.URL+"/admin/directory"),
		chromedp.WaitVisible(chromedp.ID("email")),
		chromedp.SendKeys(chromedp.ID("email"), "ada@example.com"),
		chromedp.SendKeys(chromedp.ID("password"), testPassword),
		chromedp.Click(chromedp.CSS(`[data-testid=sign-in]`)),
		chromedp.WaitVisible(chromedp.ID("mode")),
	)
	if browser.Eval[bool](t, ctx, hidden) || !browser.Eval[bool](t, ctx, `document.getElementById('direct-fields-note').hidden`) {
		t.Fatal("direct mode: the direct settings are hidden, or the note shows")
	}
	browser.Step(t, ctx, "choose agents", chromedp.Click(chromedp.CSS(`label[for=mode-agents]`)), chromedp.WaitNotVisible(chromedp.ID("urls")))
	browser.Shot(t, ctx, "directory-agents-mode")
	if !browser.Eval[bool](t, ctx, hidden) {
		t.Fatal("agents chosen: the direct settings still show")
	}
	browser.Step(t, ctx, "choose direct again", chromedp.Click(chromedp.CSS(`label[for=mode-direct]`)), chromedp.WaitVisible(chromedp.ID("urls")))
	browser.Step(t, ctx, "save agents mode",
		chromedp.Click(chromedp.CSS(`label[for=mode-agents]`)),
		chromedp.WaitNotVisible(chromedp.ID("urls")),
		chromedp.Click(chromedp.CSS(`[data-testid=save]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=flash]`)),
	)
	c, _, err := h.wb.Connection(context.Background())
	if err != nil || !c.Agents() || len(c.URLs) != 0 || c.HasPassword() {
		t.Errorf("stored %+v, %v", c, err)
	}
	// The stored agents mode shows with the direct settings hidden.
	if !browser.Eval[bool](t, ctx, `document.getElementById('mode-agents').checked`) || !browser.Eval[bool](t, ctx, hidden) {
		t.Error("after the save: agents not chosen, or the direct settings show")
	}
	// No agent is connected (this portal has none): the writeback panel
	// says so.
	browser.Step(t, ctx, "on-premises integration", chromedp.Navigate(h.srv.URL+onPremPath), chromedp.WaitVisible(chromedp.CSS(`[data-testid=agents-state]`)))
	browser.Shot(t, ctx, "onprem-no-agent")
	if got := browser.Text(t, ctx, `[data-testid=agents-state]`); !strings.Contains(got, "Writeback unavailable: no agent connected.") {
		t.Errorf("agents line %q", got)
	}
}
