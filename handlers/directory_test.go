package handlers_test

import (
	"bytes"
	"context"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/writeback/writeback/services/admins"
	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/testbed"
)

// directoryCase is one real directory of the test bed.
type directoryCase struct {
	name    string
	typ     string
	dir     testbed.Directory
	newUser func(t testing.TB, o testbed.UserOptions) testbed.TestUser
	lock    func(t testing.TB, u testbed.TestUser)
	locked  func(t testing.TB, u testbed.TestUser) bool
}

func directories(env testbed.Env) []directoryCase {
	return []directoryCase{
		{"ActiveDirectory", "ad", env.AD, env.NewADUser, env.LockAD, env.ADLocked},
		{"OpenLDAP", "openldap", env.LDAP, env.NewLDAPUser, env.LockLDAP, env.LDAPLocked},
	}
}

func connectionForm(env testbed.Env, d directoryCase, csrf, version string) url.Values {
	f := url.Values{
		"csrf_token": {csrf}, "version": {version}, "action": {"save"},
		"type": {d.typ}, "urls": {d.dir.URL}, "security": {"ldaps"}, "ca_pem": {env.CAPEM()},
		"bind_dn": {d.dir.BindDN}, "bind_password": {d.dir.BindPassword}, "base_dns": {d.dir.PeopleDN},
		"recovery_email_attribute": {"mail"}, "password_writeback": {"yes"},
	}
	if d.typ == "ad" {
		f.Set("login_attributes", "sAMAccountName, userPrincipalName, mail")
	} else {
		f.Set("login_attributes", "uid, mail")
	}
	return f
}

func connectionVersion(t *testing.T, h *harness) string {
	_, meta, err := h.wb.Connection(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return itoa(meta.Version)
}

// TestDirectoryAndHelpdeskAgainstRealDirectories is the "done when":
// a Global Administrator connects the real directory, the checklist is green,
// and a helpdesk administrator unlocks and resets a user whose new password
// then works for an LDAP bind.
func TestDirectoryAndHelpdeskAgainstRealDirectories(t *testing.T) {
	env := testbed.Load(t)
	for _, d := range directories(env) {
		t.Run(d.name, func(t *testing.T) {
			h := newHarness(t)
			global := h.client().signedIn(admins.GlobalAdmin)
			helpdesk := h.client().signedIn(admins.HelpdeskAdmin)
			reader := h.client().signedIn(admins.ReportsReader)

			// A Reports Reader may look but not save.
			if p := reader.get("/admin/directory"); p.Status != http.StatusOK || !strings.Contains(p.Body, `data-testid="read-only"`) {
				t.Errorf("reader GET directory: %d", p.Status)
			}
			if p := reader.post("/admin/directory", connectionForm(env, d, reader.csrf("/"), "0")); p.Status != http.StatusForbidden {
				t.Errorf("reader POST directory: %d", p.Status)
			}

			// Detect the type from the rootDSE.
			f := connectionForm(env, d, global.csrf("/"), "0")
			f.Set("action", "detect")
			f.Set("type", map[string]string{"ad": "openldap", "openldap": "ad"}[d.typ])
			p := global.post("/admin/directory", f)
			if p.Status != http.StatusOK || !strings.Contains(p.Body, `value="`+d.typ+`" selected`) {
				t.Errorf("detect: %d; detected line missing or wrong type", p.Status)
			}

			// Plain ldap:// with LDAPS chosen is refused with a reason; nothing saved.
			bad := connectionForm(env, d, global.csrf("/"), "0")
			bad.Set("urls", d.dir.PlainURL)
			if p := global.post("/admin/directory", bad); p.Status != http.StatusUnprocessableEntity || !strings.Contains(p.Body, "must start with ldaps://") {
				t.Errorf("scheme mismatch: %d", p.Status)
			}
			if v := connectionVersion(t, h); v != "0" {
				t.Fatalf("a refused form saved (version %s)", v)
			}

			// Save the connection.
			if p := global.post("/admin/directory", connectionForm(env, d, global.csrf("/"), "0")); p.Status != http.StatusSeeOther {
				t.Fatalf("save connection: %d\n%s", p.Status, p.Body)
			}
			p = global.get("/admin/directory")
			if strings.Contains(p.Body, d.dir.BindPassword) || !strings.Contains(p.Body, "A password is stored") {
				t.Error("the service password is shown, or its state is not")
			}
			var stored string
			h.db.SQL().QueryRow(`SELECT value FROM config WHERE name = 'directory'`).Scan(&stored)
			if stored == "" || strings.Contains(stored, d.dir.BindPassword) {
				t.Error("the service password is stored in clear")
			}
			// Saving again without a password keeps it.
			keep := connectionForm(env, d, global.csrf("/"), connectionVersion(t, h))
			keep.Set("bind_password", "")
			keep.Set("user_filter", "")
			if p := global.post("/admin/directory", keep); p.Status != http.StatusSeeOther {
				t.Fatalf("save without password: %d\n%s", p.Status, p.Body)
			}

			// Test connection: every check green, and the panel says Connected.
			user := d.newUser(t, testbed.UserOptions{})
			p = global.post("/admin/directory/test", url.Values{"csrf_token": {global.csrf("/")}, "login": {user.Login}})
			if !strings.Contains(p.Body, "Every check passed") {
				t.Errorf("checklist not green:\n%s", between(p.Body, `data-testid="checklist"`, "</section>"))
			}
			if p := helpdesk.get(onPremPath); !strings.Contains(p.Body, `data-testid="service-state">Connected`) {
				t.Error("On-premises integration panel does not say Connected")
			}

			// Writeback off: the helpdesk sees why and cannot act.
			p = helpdesk.get("/admin/users/" + url.PathEscape(user.Login))
			if p.Status != http.StatusOK || !strings.Contains(p.Body, `data-testid="why-not"`) || !strings.Contains(p.Body, "Write back passwords to your on-premises directory") {
				t.Errorf("user page with writeback off: %d", p.Status)
			}
			rp := helpdesk.post("/admin/users/"+url.PathEscape(user.Login)+"/unlock", url.Values{"csrf_token": {helpdesk.csrf("/")}})
			if rp.Status != http.StatusForbidden {
				t.Errorf("unlock with writeback off: %d", rp.Status)
			}

			// Turn writeback on.
			on := url.Values{"csrf_token": {global.csrf("/")}, "version": {currentVersion(t, h)}, "writeback": {"yes"}, "unlock": {"yes"}}
			if p := global.post(onPremPath, on); p.Status != http.StatusSeeOther {
				t.Fatalf("writeback on: %d", p.Status)
			}

			// Search finds the user.
			p = helpdesk.get("/admin/users?q=" + url.QueryEscape(user.Login))
			if !strings.Contains(p.Body, user.Login) || !strings.Contains(p.Body, "1 user found") {
				t.Errorf("search:\n%s", between(p.Body, "<main", "</main>"))
			}

			// Lock, see it, unlock, bind with the unchanged password.
			d.lock(t, user)
			p = helpdesk.get("/admin/users/" + url.PathEscape(user.Login))
			if !strings.Contains(between(p.Body, `data-testid="state"`, "</dd>"), "Locked") {
				t.Error("user page does not show Locked")
			}
			if p := helpdesk.post("/admin/users/"+url.PathEscape(user.Login)+"/unlock", url.Values{"csrf_token": {helpdesk.csrf("/")}}); p.Status != http.StatusSeeOther {
				t.Fatalf("unlock: %d\n%s", p.Status, between(p.Body, `data-testid="errors"`, "</div>"))
			}
			if d.locked(t, user) {
				t.Error("still locked after unlock")
			}
			if err := env.BindAs(t, d.dir, user.DN, user.Password); err != nil {
				t.Errorf("bind with the old password after unlock: %v", err)
			}

			// A too-short password: the rule, in plain words, and nothing changed.
			short := url.Values{"csrf_token": {helpdesk.csrf("/")}, "password": {"Ab1!"}, "confirm": {"Ab1!"}}
			p = helpdesk.post("/admin/users/"+url.PathEscape(user.Login)+"/reset", short)
			if p.Status != http.StatusUnprocessableEntity || !strings.Contains(p.Body, "too short: at least 7 characters") {
				t.Errorf("short password: %d\n%s", p.Status, between(p.Body, `data-testid="errors"`, "</div>"))
			}

			// Reset: the new password works for a bind.
			newPw := "N3w-" + testbed.RandomPassword()
			reset := url.Values{"csrf_token": {helpdesk.csrf("/")}, "password": {newPw}, "confirm": {newPw}}
			if p := helpdesk.post("/admin/users/"+url.PathEscape(user.Login)+"/reset", reset); p.Status != http.StatusSeeOther {
				t.Fatalf("reset: %d\n%s", p.Status, between(p.Body, `data-testid="errors"`, "</div>"))
			}
			if err := env.BindAs(t, d.dir, user.DN, newPw); err != nil {
				t.Errorf("bind with the new password: %v", err)
			}

			// Audit: success and failure rows with target and diagnostics, no password.
			rows, _ := h.db.RecentAudit(context.Background(), audit.ActivityResetByAdmin, 10)
			var okRow, failRow bool
			for _, r := range rows {
				if strings.Contains(r.Details, newPw) || strings.Contains(r.Details, "Ab1!") {
					t.Error("a password reached the audit log")
				}
				if r.TargetDN == user.DN && r.Result == "success" && strings.Contains(r.Details, `"server"`) {
					okRow = true
				}
				if r.Result == "failure" && strings.Contains(r.Reason, "too short") && strings.Contains(r.Details, `"ldap_result"`) {
					failRow = true
				}
			}
			if !okRow || !failRow {
				t.Errorf("reset audit rows: success %v, failure with diagnostic %v", okRow, failRow)
			}
			if rows, _ := h.db.RecentAudit(context.Background(), audit.ActivityUnlockByAdmin, 10); len(rows) < 2 {
				t.Errorf("unlock audit rows: %d", len(rows))
			}
			if strings.Contains(h.logs.String(), newPw) || strings.Contains(h.logs.String(), d.dir.BindPassword) {
				t.Error("a password reached the log")
			}

			// Protected and disabled accounts are refused.
			var protected testbed.TestUser
			if d.typ == "ad" {
				protected = d.newUser(t, testbed.UserOptions{AdminCount: true})
			} else {
				group := env.NewLDAPGroup(t, "wbprot"+testbed.RandomLogin())
				protected = d.newUser(t, testbed.UserOptions{Groups: []string{group}})
				f := connectionForm(env, d, global.csrf("/"), connectionVersion(t, h))
				f.Set("bind_password", "")
				f.Set("excluded_groups", group)
				if p := global.post("/admin/directory", f); p.Status != http.StatusSeeOther {
					t.Fatalf("add excluded group: %d", p.Status)
				}
			}
			p = helpdesk.post("/admin/users/"+url.PathEscape(protected.Login)+"/reset", reset)
			if p.Status != http.StatusForbidden || !strings.Contains(p.Body, "protected") {
				t.Errorf("protected reset: %d", p.Status)
			}
			if err := env.BindAs(t, d.dir, protected.DN, newPw); err == nil {
				t.Error("a protected account's password was changed")
			}
			disabled := d.newUser(t, testbed.UserOptions{Disabled: true})
			p = helpdesk.post("/admin/users/"+url.PathEscape(disabled.Login)+"/unlock", url.Values{"csrf_token": {helpdesk.csrf("/")}})
			if p.Status != http.StatusForbidden || !strings.Contains(p.Body, "disabled") {
				t.Errorf("disabled unlock: %d", p.Status)
			}
		})
	}
}

func TestDirectoryWrongCA(t *testing.T) {
	env := testbed.Load(t)
	h := newHarness(t)
	global := h.client().signedIn(admins.GlobalAdmin)
	d := directories(env)[0]
	f := connectionForm(env, d, global.csrf("/"), "0")
	f.Set("ca_pem", env.WrongCAPEM())
	if p := global.post("/admin/directory", f); p.Status != http.StatusSeeOther {
		t.Fatalf("save: %d", p.Status)
	}
	p := global.post("/admin/directory/test", url.Values{"csrf_token": {global.csrf("/")}})
	if !strings.Contains(p.Body, "Some checks failed") || !strings.Contains(strings.ToLower(p.Body), "certificate") {
		t.Errorf("wrong CA not reported:\n%s", between(p.Body, `data-testid="checklist"`, "</section>"))
	}
	if p := global.get(onPremPath); !strings.Contains(p.Body, `data-testid="service-state">Error`) {
		t.Error("panel does not show Error")
	}
}

// between returns the part of s from the first start marker to the next end marker.
func between(s, start, end string) string {
	i := strings.Index(s, start)
	if i < 0 {
		return "(" + start + " not found)"
	}
	s = s[i:]
	if j := strings.Index(s, end); j >= 0 {
		return s[:j]
	}
	return s
}

// TestDirectoryCAUpload: the trusted CA can come as an uploaded file.
func TestDirectoryCAUpload(t *testing.T) {
	env := testbed.Load(t)
	h := newHarness(t)
	g := h.client().signedIn(admins.GlobalAdmin)
	d := directories(env)[1]
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	for k, vs := range connectionForm(env, d, g.csrf("/"), "0") {
		if k == "ca_pem" {
			continue
		}
		mw.WriteField(k, vs[0])
	}
	fw, _ := mw.CreateFormFile("ca_file", "ca.pem")
	fw.Write([]byte(env.CAPEM()))
	mw.Close()
	req, _ := http.NewRequest(http.MethodPost, h.srv.URL+"/admin/directory", &body)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Origin", h.srv.URL)
	if p := g.do(req); p.Status != http.StatusSeeOther {
		t.Fatalf("upload: %d\n%s", p.Status, between(p.Body, `data-testid="errors"`, "</div>"))
	}
	c, _, err := h.wb.Connection(context.Background())
	if err != nil || !strings.Contains(c.CAPEM, "BEGIN CERTIFICATE") {
		t.Fatalf("uploaded CA not stored: %v", err)
	}
	d.newUser(t, testbed.UserOptions{}) // so the filter finds someone
	p := g.post("/admin/directory/test", url.Values{"csrf_token": {g.csrf("/")}})
	if !strings.Contains(p.Body, "Every check passed") {
		t.Errorf("checklist with the uploaded CA (%d):\n%s", p.Status, between(p.Body, `data-testid="checklist"`, "</section>"))
	}
}
