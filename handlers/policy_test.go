package handlers_test

import (
	"context"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/writeback/writeback/services/admins"
	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/mail"
	"github.com/writeback/writeback/services/mail/mailtest"
	"github.com/writeback/writeback/services/selfservice"
)

var lastChangedRE = regexp.MustCompile(`data-testid="last-changed">([^<]*)`)

func lastChangedOn(t *testing.T, c *client, path string) string {
	t.Helper()
	p := c.get(path)
	m := lastChangedRE.FindStringSubmatch(p.Body)
	if p.Status != http.StatusOK || m == nil {
		t.Fatalf("GET %s: %d, no last-changed line", path, p.Status)
	}
	return m[1]
}

// TestPolicyPagesOwnLastChanged: each policy page names the last change
// to its own settings, not the last save of any policy page.
func TestPolicyPagesOwnLastChanged(t *testing.T) {
	h := newHarness(t)
	const base = "/admin/password-reset/"
	ada := h.client().signedIn(admins.GlobalAdmin) // shown as "global-admin"
	h.addAdmin("grace@example.com", admins.GlobalAdmin)
	grace := h.client()
	grace.login("grace@example.com")

	if got := lastChangedOn(t, ada, base+"properties"); !strings.Contains(got, "Not changed yet") {
		t.Errorf("fresh Properties: %q", got)
	}
	save := func(c *client, page string, form url.Values) {
		t.Helper()
		form.Set("csrf_token", c.csrf(base+page))
		form.Set("version", versionOn(t, c, base+page))
		if p := c.post(base+page, form); p.Status != http.StatusSeeOther {
			t.Fatalf("save %s: %d\n%s", page, p.Status, p.Body)
		}
	}
	save(ada, "properties", url.Values{"enabled": {"all"}})
	save(grace, "notifications", url.Values{"notify_users": {"yes"}, "notify_admins": {"yes"}})
	// The command line changes Customization.
	_, meta, _ := h.ss.Policy(context.Background())
	if _, err := h.ss.SavePolicy(context.Background(), audit.CommandLine, meta.Version, "command line",
		func(p *selfservice.Policy) { p.OrgName = "Example Ltd" }); err != nil {
		t.Fatal(err)
	}
	// An unchanged save of Properties by Grace changes nothing, so Ada stays.
	save(grace, "properties", url.Values{"enabled": {"all"}})

	for page, want := range map[string]string{
		"properties":             "Last changed by global-admin",
		"notifications":          "Last changed by grace",
		"customization":          "Last changed by command line",
		"registration":           "No change to this page is recorded",
		"authentication-methods": "No change to this page is recorded",
	} {
		if got := lastChangedOn(t, ada, base+page); !strings.Contains(got, want) {
			t.Errorf("%s says %q, want %q", page, got, want)
		}
	}
}

// TestMailPageServerChangeNeedsPassword: on the Mail server page, moving
// to another server without typing the password again is refused next to
// the password field, and the stored settings stay.
func TestMailPageServerChangeNeedsPassword(t *testing.T) {
	h := newHarness(t)
	c := h.client().signedIn(admins.GlobalAdmin)
	const path = "/admin/password-reset/mail-server"
	form := func(host, password string) url.Values {
		return url.Values{"csrf_token": {c.csrf(path)}, "version": {versionOn(t, c, path)}, "host": {host}, "port": {"2525"},
			"tls": {"none"}, "from": {"portal@example.com"}, "username": {"portal"}, "password": {password}}
	}
	if p := c.post(path, form("127.0.0.1", "old-secret-Pa55")); p.Status != http.StatusSeeOther {
		t.Fatalf("first save: %d", p.Status)
	}
	p := c.post(path, form("localhost", ""))
	if p.Status != http.StatusUnprocessableEntity || !strings.Contains(p.Body, `id="password-error"`) || !strings.Contains(p.Body, "The mail server changed") {
		t.Errorf("server change without password: %d", p.Status)
	}
	if !strings.Contains(p.Body, `value="localhost"`) {
		t.Error("the typed host was not kept")
	}
	if m, _, _ := h.ss.MailSettings(context.Background()); m.Host != "127.0.0.1" || m.PasswordSealed == "" {
		t.Errorf("settings changed: %+v", m)
	}
	if p := c.post(path, form("localhost", "new-secret-Pa55")); p.Status != http.StatusSeeOther {
		t.Errorf("server change with its password: %d", p.Status)
	}
}

var mailStatusAtRE = regexp.MustCompile(`<p class="meta"[^>]*>\s*([^<]*?)\s*<time datetime="([^"]+)"`)

// TestMailStatusTime: the Mail server page's delivery panel says what its
// time means. A good delivery is recorded only when it ends a failure (or
// is the first), so after several good mails the time is when sending
// started to work, not the last attempt; after a failure it is the failed
// attempt.
func TestMailStatusTime(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	c := h.client().signedIn(admins.GlobalAdmin)
	const path = "/admin/password-reset/mail-server"
	status := func() (string, time.Time) {
		t.Helper()
		m := mailStatusAtRE.FindStringSubmatch(between(c.get(path).Body, `data-testid="mail-status"`, "</section>"))
		if m == nil {
			t.Fatal("no delivery time on the Mail server page")
		}
		at, err := time.Parse(time.RFC3339, m[2])
		if err != nil {
			t.Fatal(err)
		}
		return m[1], at
	}
	useServer := func(port int) {
		t.Helper()
		_, meta, _ := h.ss.MailSettings(ctx)
		if _, err := h.ss.SaveMail(ctx, audit.CommandLine, meta.Version, selfservice.MailInput{Host: "127.0.0.1", Port: port, TLS: mail.TLSNone, From: "portal@example.com"}); err != nil {
			t.Fatal(err)
		}
	}
	sink := mailtest.Start(t, mailtest.Options{})
	_, port := sink.Addr()
	useServer(port)
	if err := h.ss.SendTestMail(ctx, audit.CommandLine, "ada@example.com"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond) // the page shows whole seconds
	second := time.Now().Truncate(time.Second)
	if err := h.ss.SendTestMail(ctx, audit.CommandLine, "ada@example.com"); err != nil {
		t.Fatal(err)
	}
	if label, at := status(); label != "No failed mail since" || !at.Before(second) {
		t.Errorf("after two good mails: %q %s (the second was sent at %s)", label, at, second)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().(*net.TCPAddr).Port
	ln.Close() // nothing listens there now
	useServer(dead)
	failed := time.Now().Truncate(time.Second)
	if err := h.ss.SendTestMail(ctx, audit.CommandLine, "ada@example.com"); err == nil {
		t.Fatal("a mail to a closed port was sent")
	}
	if label, at := status(); label != "Last attempt" || at.Before(failed) {
		t.Errorf("after a failed mail: %q %s (it failed at %s)", label, at, failed)
	}
}

// TestMailFailureForgottenOnSave: a failed delivery is news about the
// mail server it went to. Once the settings are saved again (the fix), the
// Mail server page and the setup checklist stop reporting it until a mail
// to the new settings fails too.
func TestMailFailureForgottenOnSave(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	c := h.client().signedIn(admins.GlobalAdmin)
	useServer := func(port int) {
		t.Helper()
		_, meta, _ := h.ss.MailSettings(ctx)
		if _, err := h.ss.SaveMail(ctx, audit.CommandLine, meta.Version, selfservice.MailInput{Host: "127.0.0.1", Port: port, TLS: mail.TLSNone, From: "portal@example.com"}); err != nil {
			t.Fatal(err)
		}
	}
	failing := func() (page, checklist bool) {
		t.Helper()
		p := c.get("/admin/password-reset/mail-server")
		items, _, _ := setupOn(t, c)
		return strings.Contains(between(p.Body, `data-testid="mail-status"`, "</section>"), "could not be sent"), items["mail"].state == "failed"
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	useServer(dead)
	if err := h.ss.SendTestMail(ctx, audit.CommandLine, "ada@example.com"); err == nil {
		t.Fatal("a mail to a closed port was sent")
	}
	if page, list := failing(); !page || !list {
		t.Fatalf("after the failure: page shows it %v, checklist %v", page, list)
	}
	sink := mailtest.Start(t, mailtest.Options{})
	_, port := sink.Addr()
	useServer(port)
	if page, list := failing(); page || list {
		t.Errorf("after saving another server: page still shows the old failure %v, checklist %v", page, list)
	}
	if err := h.ss.SendTestMail(ctx, audit.CommandLine, "ada@example.com"); err != nil {
		t.Fatal(err)
	}
	if p := c.get("/admin/password-reset/mail-server"); !strings.Contains(between(p.Body, `data-testid="mail-status"`, "</section>"), "Sending works") {
		t.Errorf("after a good mail:\n%s", between(p.Body, "<main", "</main>"))
	}
}

// TestPolicyPasskeyMethod: the Authentication methods page has a Passkey
// checkbox that saves the method (audited with the others); on a portal
// without passkeys (the harness's base URL is an IP address) the page says
// they are not offered.
func TestPolicyPasskeyMethod(t *testing.T) {
	h := newHarness(t)
	const page = "/admin/password-reset/authentication-methods"
	ada := h.client().signedIn(admins.GlobalAdmin)
	p := ada.get(page)
	if !strings.Contains(p.Body, `id="method_passkey"`) || !strings.Contains(p.Body, `<label for="method_passkey"`) {
		t.Fatalf("no Passkey checkbox:\n%s", between(p.Body, "<main", "</main>"))
	}
	if !strings.Contains(p.Body, `data-testid="passkeys-off"`) {
		t.Error("the page does not say passkeys are off on an IP address")
	}
	form := url.Values{"csrf_token": {ada.csrf(page)}, "version": {versionOn(t, ada, page)}, "method_email": {"yes"}, "method_passkey": {"yes"},
		"required": {"2"}, "questions_to_register": {"3"}, "questions_to_answer": {"3"}, "questions": {strings.Join(selfservice.DefaultPolicy().Questions, "\n")}}
	if p := ada.post(page, form); p.Status != http.StatusSeeOther {
		t.Fatalf("save: %d\n%s", p.Status, between(p.Body, "<main", "</main>"))
	}
	pol, _, err := h.ss.Policy(context.Background())
	if err != nil || !pol.Methods.Passkey || !pol.Methods.Email || pol.Methods.App || pol.Required != 2 {
		t.Errorf("saved %+v %v", pol.Methods, err)
	}
	rows, err := h.db.RecentAudit(context.Background(), audit.ActivityUpdateSSPRPolicy, 1)
	if err != nil || len(rows) != 1 || !strings.Contains(rows[0].Details, "email,passkey") {
		t.Errorf("audit %+v %v", rows, err)
	}
	if !strings.Contains(ada.get(page).Body, `id="method_passkey" name="method_passkey" value="yes" checked`) {
		t.Error("the saved Passkey box is not ticked")
	}
}
