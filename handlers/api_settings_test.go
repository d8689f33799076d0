package handlers_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/writeback/writeback/services/admins"
	"github.com/writeback/writeback/services/apitokens"
	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/testbed"
)

// TestAPISelfServicePolicy: the self-service policy read by any token,
// replaced by a Global Administrator's with the pages' checks; a body that
// leaves a field out, a bad value or a stale version changes nothing.
func TestAPISelfServicePolicy(t *testing.T) {
	h := newHarness(t)
	ga := h.client().signedIn(admins.GlobalAdmin)
	gaTok := ga.createToken("config", admins.GlobalAdmin, "30")
	rrTok := ga.createToken("reader", admins.ReportsReader, "30")
	const path = "/api/v1/settings/self-service-policy"

	a := api(t, h.srv.URL, http.MethodGet, path, rrTok, nil)
	if a.Status != http.StatusOK {
		t.Fatalf("read as a Reports Reader: %d %s", a.Status, a.Body)
	}
	cur := apiDecode[map[string]any](t, a)
	want, _, err := h.ss.Policy(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if cur["enabled"] != want.Enabled || cur["required"] != float64(want.Required) || cur["version"] == nil {
		t.Fatalf("read: %s, want the stored policy %+v", a.Body, want)
	}
	put := func(tok string, change func(map[string]any)) apiAnswer {
		b := map[string]any{}
		for k, v := range cur {
			switch k {
			case "updated_by", "updated_at", "changed", "$schema":
			default:
				b[k] = v
			}
		}
		change(b)
		return api(t, h.srv.URL, http.MethodPut, path, tok, b)
	}
	unchanged := func(what string) {
		t.Helper()
		p, _, err := h.ss.Policy(context.Background())
		if err != nil || p.Helpdesk != want.Helpdesk || p.Required != want.Required || p.Methods != want.Methods {
			t.Errorf("%s changed the policy: %+v %v", what, p, err)
		}
	}
	if a := put(rrTok, func(b map[string]any) { b["helpdesk"] = "x" }); a.Status != http.StatusForbidden {
		t.Errorf("save as a Reports Reader: %d", a.Status)
	}
	a = put(gaTok, func(b map[string]any) { b["required"] = 3 })
	if _, _, f := a.problem(t); a.Status != http.StatusUnprocessableEntity || f["required"] != "Choose 1 or 2." {
		t.Errorf("3 methods required: %d %s", a.Status, a.Body)
	}
	unchanged("a bad value")
	// A body that does not match the schema is refused by huma, in the
	// services' words: the kind as the title, no value echoed back.
	a = put(gaTok, func(b map[string]any) { delete(b, "methods"); b["org_name"] = 7 })
	if title, detail, f := a.problem(t); a.Status != http.StatusUnprocessableEntity || title != "invalid" ||
		detail != "Some values need your attention." || !strings.Contains(string(a.Body), "methods") || f["org_name"] == "" ||
		strings.Contains(string(a.Body), `"value"`) || strings.Contains(string(a.Body), "In what city") {
		t.Errorf("methods left out, a number for a text: %d %s", a.Status, a.Body)
	}
	unchanged("a body without methods")

	const helpdesk = "https://help.example.com/extension-4321"
	a = put(gaTok, func(b map[string]any) { b["helpdesk"] = helpdesk })
	got := apiDecode[map[string]any](t, a)
	if a.Status != http.StatusOK || got["helpdesk"] != helpdesk || got["changed"] != true || got["version"].(float64) <= cur["version"].(float64) {
		t.Fatalf("save: %d %s", a.Status, a.Body)
	}
	if p, _, _ := h.ss.Policy(context.Background()); p.Helpdesk != helpdesk {
		t.Errorf("stored helpdesk text %q", p.Helpdesk)
	}
	// The page shows what the API saved.
	if p := ga.get("/admin/password-reset/customization"); !strings.Contains(p.Body, "extension-4321") {
		t.Error("the Customization page does not show the API's save")
	}
	rows, err := h.db.RecentAudit(context.Background(), audit.ActivityUpdateSSPRPolicy, 5)
	if err != nil || len(rows) != 1 || rows[0].ActorName != "config" || rows[0].ActorType != apitokens.ActorType || !strings.Contains(rows[0].Details, "helpdesk") {
		t.Errorf("policy events: %+v %v", rows, err)
	}
	// The version read before that save is stale now.
	a = put(gaTok, func(b map[string]any) { b["helpdesk"] = "Another text." })
	if title, _, _ := a.problem(t); a.Status != http.StatusConflict || title != "conflict" {
		t.Errorf("stale version: %d %s", a.Status, a.Body)
	}
	if p, _, _ := h.ss.Policy(context.Background()); p.Helpdesk != helpdesk {
		t.Errorf("a stale save changed the helpdesk text to %q", p.Helpdesk)
	}
}

// TestAPIPasswordProtection: the banned terms saved through the API are
// the ones the page shows; the page's checks apply.
func TestAPIPasswordProtection(t *testing.T) {
	h := newHarness(t)
	ga := h.client().signedIn(admins.GlobalAdmin)
	gaTok := ga.createToken("config", admins.GlobalAdmin, "30")
	hdTok := ga.createToken("helpdesk", admins.HelpdeskAdmin, "30")
	const path = "/api/v1/settings/password-protection"
	type body struct {
		Common, Personal bool
		Custom           []string
		Version          int64
		Changed          bool
	}
	a := api(t, h.srv.URL, http.MethodGet, path, hdTok, nil)
	cur := apiDecode[body](t, a)
	if a.Status != http.StatusOK || !cur.Common || !cur.Personal || cur.Custom == nil || len(cur.Custom) != 0 {
		t.Fatalf("read: %d %s", a.Status, a.Body)
	}
	if a := api(t, h.srv.URL, http.MethodPut, path, hdTok, map[string]any{"common": true, "personal": true, "custom": []string{"contoso"}, "version": cur.Version}); a.Status != http.StatusForbidden {
		t.Errorf("save as a Helpdesk Administrator: %d", a.Status)
	}
	a = api(t, h.srv.URL, http.MethodPut, path, gaTok, map[string]any{"common": true, "personal": false, "custom": []string{"contoso", "fabrikam"}, "version": cur.Version})
	got := apiDecode[body](t, a)
	if a.Status != http.StatusOK || !got.Changed || got.Personal || strings.Join(got.Custom, ",") != "contoso,fabrikam" {
		t.Fatalf("save: %d %s", a.Status, a.Body)
	}
	if p := ga.get("/admin/password-reset/password-protection"); !strings.Contains(p.Body, "fabrikam") {
		t.Error("the page does not show the API's terms")
	}
	a = api(t, h.srv.URL, http.MethodPut, path, gaTok, map[string]any{"common": true, "personal": true, "custom": []string{}, "version": cur.Version})
	if a.Status != http.StatusConflict {
		t.Errorf("stale version: %d %s", a.Status, a.Body)
	}
}

// TestAPIMailServer: the mail server saved through the API; its password
// is sealed, never returned, never logged or audited; a bad port is
// refused with the page's words and changes nothing.
func TestAPIMailServer(t *testing.T) {
	h := newHarness(t)
	ga := h.client().signedIn(admins.GlobalAdmin)
	gaTok := ga.createToken("config", admins.GlobalAdmin, "30")
	const path = "/api/v1/settings/mail-server"
	type body struct {
		Host        string
		Port        int
		TLS         string
		From        string
		Username    string
		PasswordSet bool `json:"password_set"`
		Version     int64
		Changed     bool
	}
	cur := apiDecode[body](t, api(t, h.srv.URL, http.MethodGet, path, gaTok, nil))
	const secret = "Mail-Relay-Secret-8813"
	in := map[string]any{"host": "smtp.example.com", "port": 0, "tls": "starttls", "from": "reset@example.com",
		"username": "relay", "ca_pem": "", "password": secret, "version": cur.Version}
	a := api(t, h.srv.URL, http.MethodPut, path, gaTok, in)
	if _, _, f := a.problem(t); a.Status != http.StatusUnprocessableEntity || f["port"] == "" {
		t.Errorf("port 0: %d %s", a.Status, a.Body)
	}
	if m, _, _ := h.ss.MailSettings(context.Background()); m.Host == "smtp.example.com" {
		t.Error("a refused save was stored")
	}
	in["port"] = 587
	a = api(t, h.srv.URL, http.MethodPut, path, gaTok, in)
	got := apiDecode[body](t, a)
	if a.Status != http.StatusOK || !got.Changed || got.Host != "smtp.example.com" || !got.PasswordSet || got.Port != 587 {
		t.Fatalf("save: %d %s", a.Status, a.Body)
	}
	if strings.Contains(string(a.Body), secret) {
		t.Error("the answer holds the password")
	}
	m, _, err := h.ss.MailSettings(context.Background())
	if err != nil || m.PasswordSealed == "" || strings.Contains(m.PasswordSealed, secret) {
		t.Errorf("stored password not sealed: %v", err)
	}
	// Saving again without a password keeps it.
	delete(in, "password")
	in["version"] = got.Version
	a = api(t, h.srv.URL, http.MethodPut, path, gaTok, in)
	if got := apiDecode[body](t, a); a.Status != http.StatusOK || !got.PasswordSet {
		t.Errorf("save without the password: %d %s", a.Status, a.Body)
	}
	wantNowhere(t, h, secret)
}

// TestAPIDirectoryConnection: the directory connection saved through the
// API with the page's checks: the security must match the URLs; the
// service account's password is sealed, never returned.
func TestAPIDirectoryConnection(t *testing.T) {
	env := testbed.Load(t)
	h := newHarness(t)
	ga := h.client().signedIn(admins.GlobalAdmin)
	gaTok := ga.createToken("config", admins.GlobalAdmin, "30")
	rrTok := ga.createToken("reader", admins.ReportsReader, "30")
	const path = "/api/v1/settings/directory-connection"
	type body struct {
		Mode, Type, Security string
		URLs                 []string
		BindDN               string `json:"bind_dn"`
		PasswordSet          bool   `json:"bind_password_set"`
		Version              int64
		Changed              bool
	}
	cur := apiDecode[body](t, api(t, h.srv.URL, http.MethodGet, path, rrTok, nil))
	if cur.Mode != "direct" || cur.PasswordSet {
		t.Fatalf("read before any save: %+v", cur)
	}
	in := map[string]any{"mode": "direct", "type": "ad", "urls": []string{env.AD.URL}, "security": "starttls", "ca_pem": env.CAPEM(),
		"bind_dn": env.AD.BindDN, "bind_password": env.AD.BindPassword, "base_dns": []string{env.AD.PeopleDN}, "user_filter": "",
		"login_attributes": []string{"sAMAccountName", "userPrincipalName"}, "recovery_email_attribute": "mail", "excluded_groups": []string{},
		"password_writeback": true, "version": cur.Version}
	a := api(t, h.srv.URL, http.MethodPut, path, gaTok, in)
	if _, _, f := a.problem(t); a.Status != http.StatusUnprocessableEntity || !strings.HasPrefix(f["urls"], "With the chosen connection security every URL must start with ldap://") {
		t.Errorf("StartTLS with ldaps:// URLs: %d %s", a.Status, a.Body)
	}
	if c, _, _ := h.wb.Connection(context.Background()); c.Configured() {
		t.Fatal("a refused save was stored")
	}
	if a := api(t, h.srv.URL, http.MethodPut, path, rrTok, in); a.Status != http.StatusForbidden {
		t.Errorf("save as a Reports Reader: %d", a.Status)
	}
	in["security"] = "ldaps"
	a = api(t, h.srv.URL, http.MethodPut, path, gaTok, in)
	got := apiDecode[body](t, a)
	if a.Status != http.StatusOK || !got.Changed || !got.PasswordSet || got.Security != "ldaps" || got.BindDN != env.AD.BindDN {
		t.Fatalf("save: %d %s", a.Status, a.Body)
	}
	if strings.Contains(string(a.Body), env.AD.BindPassword) {
		t.Error("the answer holds the service account's password")
	}
	if p := ga.get("/admin/directory"); !strings.Contains(p.Body, env.AD.PeopleDN) {
		t.Error("the Directory connection page does not show the API's save")
	}
	rows, err := h.db.RecentAudit(context.Background(), "", 50)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range rows {
		found = found || (e.ActorName == "config" && e.ActorType == apitokens.ActorType && strings.Contains(strings.ToLower(e.Activity), "directory"))
	}
	if !found {
		t.Error("no audit event of the API's directory save with the token as actor")
	}
	wantNowhere(t, h, env.AD.BindPassword)
}
