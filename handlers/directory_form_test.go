package handlers_test

import (
	"context"
	"html"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/writeback/writeback/services/admins"
	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/directory"
	"github.com/writeback/writeback/testbed"
)

// offlineForm is a valid AD connection form that needs no server (saving does
// not connect).
func offlineForm(csrf, version string) url.Values {
	return url.Values{
		"csrf_token": {csrf}, "version": {version}, "action": {"save"},
		"type": {"ad"}, "urls": {"ldaps://dc1.example.com"}, "security": {"ldaps"},
		"bind_dn": {"CN=svc,OU=Service,DC=example,DC=com"}, "bind_password": {"Service-Secret-1"},
		"base_dns": {"OU=People,DC=example,DC=com"}, "login_attributes": {"sAMAccountName, userPrincipalName, mail"},
		"recovery_email_attribute": {"mail"},
	}
}

func inputValue(body, id string) string {
	v := between(body, `id="`+id+`"`, ">")
	i := strings.Index(v, `value="`)
	if i < 0 {
		return "(no value)"
	}
	v = v[i+len(`value="`):]
	return html.UnescapeString(v[:strings.Index(v, `"`)])
}

func textareaValue(body, id string) string {
	v := between(body, `<textarea id="`+id+`"`, "</textarea>")
	return html.UnescapeString(v[strings.Index(v, ">")+1:])
}

// TestDirectoryLoginAttributesRoundTrip: the login attributes read back as
// typed, through a refused save, a save and a page view, and saving the page
// again as shown changes nothing.
func TestDirectoryLoginAttributesRoundTrip(t *testing.T) {
	h := newHarness(t)
	g := h.client().signedIn(admins.GlobalAdmin)
	const attrs = "sAMAccountName, userPrincipalName, mail"

	f := offlineForm(g.csrf("/"), "0")
	f.Set("base_dns", "")
	p := g.post("/admin/directory", f)
	if p.Status != http.StatusUnprocessableEntity || inputValue(p.Body, "login_attributes") != attrs {
		t.Fatalf("refused save: %d, login attributes shown as %q", p.Status, inputValue(p.Body, "login_attributes"))
	}
	f = offlineForm(g.csrf("/"), "0")
	f.Set("login_attributes", inputValue(p.Body, "login_attributes"))
	if p := g.post("/admin/directory", f); p.Status != http.StatusSeeOther {
		t.Fatalf("save: %d\n%s", p.Status, between(p.Body, `data-testid="errors"`, "</div>"))
	}
	for i := 0; i < 2; i++ {
		p = g.get("/admin/directory")
		shown := inputValue(p.Body, "login_attributes")
		if shown != attrs {
			t.Fatalf("round trip %d: login attributes shown as %q", i, shown)
		}
		f = offlineForm(g.csrf("/"), connectionVersion(t, h))
		f.Set("bind_password", "")
		f.Set("login_attributes", shown)
		f.Set("user_filter", inputValue(p.Body, "user_filter"))
		f.Set("excluded_groups", textareaValue(p.Body, "excluded_groups"))
		if p := g.post("/admin/directory", f); p.Status != http.StatusSeeOther {
			t.Fatalf("save again: %d\n%s", p.Status, between(p.Body, `data-testid="errors"`, "</div>"))
		}
	}
	c, _, _ := h.wb.Connection(context.Background())
	if !slices.Equal(c.LoginAttributes, []string{"sAMAccountName", "userPrincipalName", "mail"}) {
		t.Errorf("stored login attributes %q", c.LoginAttributes)
	}
	if rows, _ := h.db.RecentAudit(context.Background(), audit.ActivityUpdateDirectory, 10); len(rows) != 1 {
		t.Errorf("%d update rows; saving the page as shown must change nothing", len(rows))
	}
}

// TestDirectoryTypeSwitchKeepsProtectedGroups: switching a connection to AD
// on the page fills in AD's protected groups and AD's login attributes in
// place of OpenLDAP's (the command line does the same: see cmd/writeback).
func TestDirectoryTypeSwitchKeepsProtectedGroups(t *testing.T) {
	h := newHarness(t)
	g := h.client().signedIn(admins.GlobalAdmin)
	f := offlineForm(g.csrf("/"), "0")
	f.Set("type", "openldap")
	f.Set("urls", "ldaps://ldap.example.com")
	f.Set("bind_dn", "cn=svc,dc=example,dc=com")
	f.Set("base_dns", "ou=people,dc=example,dc=com")
	f.Set("login_attributes", "uid, mail")
	f.Set("user_filter", directory.DefaultOpenLDAPUserFilter)
	if p := g.post("/admin/directory", f); p.Status != http.StatusSeeOther {
		t.Fatalf("save OpenLDAP: %d\n%s", p.Status, between(p.Body, `data-testid="errors"`, "</div>"))
	}
	if c, _, _ := h.wb.Connection(context.Background()); len(c.ExcludedGroups) != 0 {
		t.Fatalf("OpenLDAP got excluded groups %q", c.ExcludedGroups)
	}
	// The same form, now for AD; the OpenLDAP defaults still in it.
	f.Set("version", connectionVersion(t, h))
	f.Set("type", "ad")
	f.Set("urls", "ldaps://dc1.example.com")
	f.Set("bind_dn", "CN=svc,OU=Service,DC=example,DC=com")
	f.Set("base_dns", "OU=People,DC=example,DC=com")
	if p := g.post("/admin/directory", f); p.Status != http.StatusSeeOther {
		t.Fatalf("switch to AD: %d\n%s", p.Status, between(p.Body, `data-testid="errors"`, "</div>"))
	}
	c, _, _ := h.wb.Connection(context.Background())
	if want := directory.DefaultADExcludedGroups("DC=example,DC=com"); !slices.Equal(c.ExcludedGroups, want) {
		t.Errorf("excluded groups after the switch: %q, want AD's protected groups %q", c.ExcludedGroups, want)
	}
	ad := directory.Defaults(directory.TypeAD, "")
	if !slices.Equal(c.LoginAttributes, ad.LoginAttributes) || c.UserFilter != ad.UserFilter {
		t.Errorf("after the switch: login attributes %q, filter %q", c.LoginAttributes, c.UserFilter)
	}
}

// TestDirectoryRawErrorsNotShown: what a library says about a bad CA
// certificate stays out of the page; the page says it in its own words.
func TestDirectoryRawErrorsNotShown(t *testing.T) {
	h := newHarness(t)
	g := h.client().signedIn(admins.GlobalAdmin)
	f := offlineForm(g.csrf("/"), "0")
	f.Set("ca_pem", "-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQgZ2FyYmFnZQ==\n-----END CERTIFICATE-----\n")
	p := g.post("/admin/directory", f)
	if p.Status != http.StatusUnprocessableEntity || !strings.Contains(p.Body, "not a valid X.509 certificate") {
		t.Fatalf("bad CA: %d\n%s", p.Status, between(p.Body, `id="ca_pem-error"`, "</p>"))
	}
	if strings.Contains(p.Body, "x509:") || strings.Contains(p.Body, "asn1:") {
		t.Errorf("a library's error text reached the page: %s", between(p.Body, `id="ca_pem-error"`, "</p>"))
	}
}

// listener counts the connections made to it and answers none of them.
type listener struct {
	ln    net.Listener
	count atomic.Int32
}

func newListener(t *testing.T) *listener {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &listener{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			l.count.Add(1)
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return l
}

// TestDirectoryPasswordStaysWithItsServer: pointing the saved connection at
// another server (or another CA or TLS setting) without the service password
// is refused, and Test connection then still talks to the old server only:
// the stored password never reaches a server of the administrator's choosing.
func TestDirectoryPasswordStaysWithItsServer(t *testing.T) {
	env := testbed.Load(t)
	d := directories(env)[0]
	h := newHarness(t)
	g := h.client().signedIn(admins.GlobalAdmin)
	if p := g.post("/admin/directory", connectionForm(env, d, g.csrf("/"), "0")); p.Status != http.StatusSeeOther {
		t.Fatalf("save: %d", p.Status)
	}
	d.newUser(t, testbed.UserOptions{}) // so the user filter finds someone
	evil := newListener(t)
	const msg = "Enter the service account password again: the server changed"
	for _, tt := range []struct {
		name string
		set  func(url.Values)
	}{
		{"URL", func(f url.Values) { f.Set("urls", "ldaps://"+evil.ln.Addr().String()) }},
		{"URL added", func(f url.Values) { f.Set("urls", d.dir.URL+"\nldaps://"+evil.ln.Addr().String()) }},
		{"CA", func(f url.Values) { f.Set("ca_pem", env.WrongCAPEM()) }},
		{"TLS mode", func(f url.Values) { f.Set("urls", d.dir.StartTLSURL); f.Set("security", "starttls") }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			v := connectionVersion(t, h)
			f := connectionForm(env, d, g.csrf("/"), v)
			f.Set("bind_password", "")
			tt.set(f)
			p := g.post("/admin/directory", f)
			if p.Status != http.StatusUnprocessableEntity || !strings.Contains(between(p.Body, `id="bind_password-error"`, "</p>"), msg) {
				t.Fatalf("save without the password: %d, bind_password error %q", p.Status, between(p.Body, `id="bind_password-error"`, "</p>"))
			}
			if connectionVersion(t, h) != v {
				t.Fatal("the refused save changed the connection")
			}
			p = g.post("/admin/directory/test", url.Values{"csrf_token": {g.csrf("/")}})
			if !strings.Contains(p.Body, "Every check passed") {
				t.Errorf("Test connection after the refused save:\n%s", between(p.Body, `data-testid="checklist"`, "</section>"))
			}
		})
	}
	if n := evil.count.Load(); n != 0 {
		t.Fatalf("the other server was contacted %d times", n)
	}

	// With the password typed again, the change is saved (and Test goes there).
	f := connectionForm(env, d, g.csrf("/"), connectionVersion(t, h))
	f.Set("urls", "ldaps://"+evil.ln.Addr().String())
	if p := g.post("/admin/directory", f); p.Status != http.StatusSeeOther {
		t.Fatalf("save with the password: %d\n%s", p.Status, between(p.Body, `data-testid="errors"`, "</div>"))
	}
	g.post("/admin/directory/test", url.Values{"csrf_token": {g.csrf("/")}})
	deadline := time.Now().Add(2 * time.Second)
	for evil.count.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if evil.count.Load() == 0 {
		t.Error("the new server was not tried after the password was given")
	}
}
