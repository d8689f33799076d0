package handlers_test

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/writeback/writeback/services/admins"
	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/directory"
	"github.com/writeback/writeback/services/mail"
	"github.com/writeback/writeback/services/selfservice"
	"github.com/writeback/writeback/services/settings"
	"github.com/writeback/writeback/services/writeback"
)

// connectDirectory saves a directory connection (nothing needs to answer
// at its address: saving validates, it does not connect).
func (h *harness) connectDirectory(t *testing.T, passwordWriteback bool) {
	t.Helper()
	_, meta, err := h.wb.Connection(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.wb.SaveConnection(context.Background(), audit.CommandLine, meta.Version, writeback.Input{
		Type: directory.TypeAD, URLs: []string{"ldaps://127.0.0.1:1"}, BindDN: "CN=svc,DC=example,DC=com", BindPassword: "service password",
		BaseDNs: []string{"OU=People,DC=example,DC=com"}, PasswordWriteback: passwordWriteback,
	}); err != nil {
		t.Fatal(err)
	}
}

// TestOnPremWritebackNeedsDirectory: with no directory connection, Yes is
// refused with the reason and a link to the Directory connection page, and
// nothing is saved; once a connection exists the same save works.
func TestOnPremWritebackNeedsDirectory(t *testing.T) {
	h := newHarness(t)
	c := h.client().signedIn(admins.GlobalAdmin)
	before := auditCount(t, h)
	p := c.post(onPremPath, url.Values{"csrf_token": {c.csrf(onPremPath)}, "version": {currentVersion(t, h)}, "writeback": {"yes"}, "unlock": {"yes"}})
	if p.Status != http.StatusUnprocessableEntity {
		t.Fatalf("status %d", p.Status)
	}
	for _, want := range []string{`id="writeback-error"`, "There is no directory connection yet", `id="unlock-error"`,
		`<a href="/admin/directory">Set up the directory connection</a>`, `href="#writeback"`,
		`id="writeback-yes" name="writeback" value="yes" checked`} {
		if !strings.Contains(p.Body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if o, _, _ := h.settings.OnPrem(context.Background()); o.Writeback || o.Unlock {
		t.Errorf("saved without a directory: %+v", o)
	}
	if auditCount(t, h) != before {
		t.Error("a refused save wrote audit rows")
	}
	// No is always fine.
	if p := c.post(onPremPath, url.Values{"csrf_token": {c.csrf(onPremPath)}, "version": {currentVersion(t, h)}, "writeback": {"no"}}); p.Status != http.StatusSeeOther {
		t.Errorf("writeback No without a directory: %d", p.Status)
	}
	h.connectDirectory(t, true)
	if p := c.post(onPremPath, url.Values{"csrf_token": {c.csrf(onPremPath)}, "version": {currentVersion(t, h)}, "writeback": {"yes"}, "unlock": {"yes"}}); p.Status != http.StatusSeeOther {
		t.Fatalf("with a directory: %d", p.Status)
	}
	if o, _, _ := h.settings.OnPrem(context.Background()); !o.Writeback || !o.Unlock {
		t.Errorf("not saved: %+v", o)
	}
}

var setupItemRE = regexp.MustCompile(`<li data-testid="setup-(\w+)" data-state="(\w+)">(.*?)</li>`)

type setupLine struct{ state, html string }

func setupOn(t *testing.T, c *client) (map[string]setupLine, []string, string) {
	t.Helper()
	p := c.get(onPremPath)
	items := map[string]setupLine{}
	var order []string
	for _, m := range setupItemRE.FindAllStringSubmatch(p.Body, -1) {
		items[m[1]] = setupLine{m[2], m[3]}
		order = append(order, m[1])
	}
	summary := regexp.MustCompile(`data-testid="setup-summary">(.*?)</p>`).FindStringSubmatch(p.Body)
	if p.Status != http.StatusOK || summary == nil {
		t.Fatalf("GET %s: %d, no checklist", onPremPath, p.Status)
	}
	return items, order, summary[1]
}

// TestOnPremSetupChecklist: the On-premises integration page lists what
// self-service still needs, each with a link to the page that fixes it, and
// ticks each off as it is configured.
func TestOnPremSetupChecklist(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	c := h.client().signedIn(admins.HelpdeskAdmin) // everyone who can read the page sees it

	items, order, summary := setupOn(t, c)
	if got := strings.Join(order, ","); got != "directory,properties,methods,mail,writeback" {
		t.Errorf("order %s", got)
	}
	for key, want := range map[string]struct{ state, link string }{
		"directory":  {"missing", `href="/admin/directory"`},
		"properties": {"missing", `href="/admin/password-reset/properties"`},
		"methods":    {"done", `href="/admin/password-reset/authentication-methods"`},
		"mail":       {"missing", `href="/admin/password-reset/mail-server"`},
		"writeback":  {"missing", `href="/admin/directory"`},
	} {
		if got := items[key]; got.state != want.state || !strings.Contains(got.html, want.link) {
			t.Errorf("fresh portal, %s: %+v, want %s with %s", key, got, want.state, want.link)
		}
	}
	if !strings.Contains(summary, "1 of 5 done") {
		t.Errorf("summary %q", summary)
	}

	// A connection saved but not tested yet, the portal's switch still No.
	h.connectDirectory(t, false)
	items, _, _ = setupOn(t, c)
	if got := items["directory"]; got.state != "missing" || !strings.Contains(got.html, "not tested yet") {
		t.Errorf("untested connection: %+v", got)
	}
	if got := items["writeback"]; got.state != "missing" || !strings.Contains(got.html, "is No") || !strings.Contains(got.html, `href="#writeback"`) {
		t.Errorf("writeback switch No: %+v", got)
	}

	// A connection whose test fails, with the connector switch off.
	if err := h.settings.SetStatus(ctx, settings.ServiceStatus{State: settings.StateError, Message: "Bind: the service account password is wrong.", CheckedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	_, meta, _ := h.settings.OnPrem(ctx)
	if _, _, err := h.settings.SaveOnPrem(ctx, audit.CommandLine, meta.Version, settings.OnPrem{Writeback: true}); err != nil {
		t.Fatal(err)
	}
	items, _, _ = setupOn(t, c)
	if got := items["directory"]; got.state != "failed" || !strings.Contains(got.html, "the service account password is wrong") {
		t.Errorf("failing test: %+v", got)
	}
	if got := items["writeback"]; got.state != "missing" || !strings.Contains(got.html, "off in the directory connection") || !strings.Contains(got.html, `href="/admin/directory"`) {
		t.Errorf("connector switch off: %+v", got)
	}

	// Everything in place.
	h.connectDirectory(t, true)
	if err := h.settings.SetStatus(ctx, settings.ServiceStatus{State: settings.StateConnected, Message: "Every check passed.", CheckedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	_, pm, _ := h.ss.Policy(ctx)
	if _, err := h.ss.SavePolicy(ctx, audit.CommandLine, pm.Version, "Properties", func(p *selfservice.Policy) {
		p.Enabled, p.Group = selfservice.EnabledGroup, "CN=SSPR Users,DC=example,DC=com"
	}); err != nil {
		t.Fatal(err)
	}
	items, _, _ = setupOn(t, c)
	if got := items["properties"]; got.state != "done" || !strings.Contains(got.html, "members of CN=SSPR Users,DC=example,DC=com") {
		t.Errorf("enabled for a group: %+v", got)
	}
	_, pm, _ = h.ss.Policy(ctx)
	if _, err := h.ss.SavePolicy(ctx, audit.CommandLine, pm.Version, "Properties", func(p *selfservice.Policy) { p.Enabled = selfservice.EnabledAll }); err != nil {
		t.Fatal(err)
	}
	_, mm, _ := h.ss.MailSettings(ctx)
	if _, err := h.ss.SaveMail(ctx, audit.CommandLine, mm.Version, selfservice.MailInput{Host: "127.0.0.1", Port: 2525, TLS: mail.TLSNone, From: "portal@example.com"}); err != nil {
		t.Fatal(err)
	}
	items, _, summary = setupOn(t, c)
	for key, it := range items {
		if it.state != "done" {
			t.Errorf("configured portal, %s: %+v", key, it)
		}
	}
	if !strings.Contains(summary, "Everything is in place") {
		t.Errorf("summary %q", summary)
	}

	// Without e-mail codes no mail server is needed.
	h2 := newHarness(t)
	_, pm, _ = h2.ss.Policy(ctx)
	if _, err := h2.ss.SavePolicy(ctx, audit.CommandLine, pm.Version, "Authentication methods", func(p *selfservice.Policy) {
		p.Methods = selfservice.Methods{App: true}
	}); err != nil {
		t.Fatal(err)
	}
	items, _, _ = setupOn(t, h2.client().signedIn(admins.GlobalAdmin))
	if got := items["mail"]; got.state != "done" || !strings.Contains(got.html, "Not needed") {
		t.Errorf("mail without e-mail codes: %+v", got)
	}
}
