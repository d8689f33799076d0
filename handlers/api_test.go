package handlers_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/pb33f/libopenapi"
	"github.com/pb33f/libopenapi/datamodel"

	"github.com/writeback/writeback/handlers"
	"github.com/writeback/writeback/services/admins"
	"github.com/writeback/writeback/services/apitokens"
	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/errs"
	"github.com/writeback/writeback/services/settings"
	"github.com/writeback/writeback/services/writeback"
	"github.com/writeback/writeback/testbed"
)

var apiTokenRE = regexp.MustCompile(`value="(wbt_[A-Za-z0-9_-]{43})"`)

// createToken creates an API token on the API tokens page, as a Global
// Administrator does, and returns the secret the page shows once.
func (c *client) createToken(name string, role admins.Role, days string) string {
	c.t.Helper()
	p := c.post("/admin/api-tokens", url.Values{"csrf_token": {c.csrf("/admin/api-tokens")}, "name": {name},
		"role": {string(role)}, "expires": {days}})
	m := apiTokenRE.FindStringSubmatch(p.Body)
	if p.Status != http.StatusOK || m == nil || !strings.Contains(p.Body, `data-testid="api-token-panel"`) {
		c.t.Fatalf("create token %s: %d\n%s", name, p.Status, between(p.Body, "<main", "</main>"))
	}
	if p.Header.Get("Cache-Control") != "no-store" {
		c.t.Errorf("the page with the token may be cached: %q", p.Header.Get("Cache-Control"))
	}
	return m[1]
}

// apiAnswer is one answer of the REST API.
type apiAnswer struct {
	Status int
	Header http.Header
	Body   []byte
}

// problem is the API's error body.
func (a apiAnswer) problem(t *testing.T) (title, detail string, fields map[string]string) {
	t.Helper()
	var m struct {
		Title, Detail string
		Status        int
		Errors        []struct{ Location, Message string }
	}
	if err := json.Unmarshal(a.Body, &m); err != nil || m.Status != a.Status {
		t.Fatalf("error body %q (status %d): %v", a.Body, a.Status, err)
	}
	if ct := a.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("error content type %q", ct)
	}
	fields = map[string]string{}
	for _, e := range m.Errors {
		fields[strings.TrimPrefix(e.Location, "body.")] = e.Message
	}
	return m.Title, m.Detail, fields
}

// api calls the REST API of srv with token (none when ""), as a script
// would: no cookies.
func api(t *testing.T, srv string, method, path, token string, body any) apiAnswer {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, srv+path, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return apiAnswer{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

func apiDecode[T any](t *testing.T, a apiAnswer) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(a.Body, &v); err != nil {
		t.Fatalf("answer %d %q: %v", a.Status, a.Body, err)
	}
	return v
}

// wantNowhere checks that none of secrets is in the operator log or in any
// audit event.
func wantNowhere(t *testing.T, h *harness, secrets ...string) {
	t.Helper()
	rows, err := h.db.RecentAudit(context.Background(), "", 10000)
	if err != nil {
		t.Fatal(err)
	}
	logs := h.logs.String()
	for _, s := range secrets {
		if strings.Contains(logs, s) {
			t.Errorf("the operator log holds a secret (%.8s…)", s)
		}
		for _, e := range rows {
			if b, _ := json.Marshal(e); strings.Contains(string(b), s) {
				t.Errorf("audit event %d (%s) holds a secret (%.8s…)", e.ID, e.Activity, s)
			}
		}
	}
}

type apiUserBody struct {
	Login, DN, Policy string
	Locked, Protected bool
	CanAct            bool `json:"can_act"`
}

type apiActionBody struct {
	User     apiUserBody
	Message  string
	Password string
}

// TestAPIHelpdeskAgainstDirectory: tokens made on the API tokens page show,
// reset and unlock real users in both directories, with the pages' rules:
// a Reports Reader's token is refused a reset (403) and the password still
// works; a protected account is refused as on the page; a password the
// directory refuses is a 422 on the password field; the audit rows name the
// token, and neither the token nor a password is in the log or the audit.
func TestAPIHelpdeskAgainstDirectory(t *testing.T) {
	env := testbed.Load(t)
	for _, d := range directories(env) {
		t.Run(d.name, func(t *testing.T) {
			h := newHarness(t)
			ctx := context.Background()
			helpdeskOn(t, h, env, d, writeback.Input{})
			ga := h.client().signedIn(admins.GlobalAdmin)
			hdTok := ga.createToken("helpdesk bot", admins.HelpdeskAdmin, "30")
			rrTok := ga.createToken("reports bot", admins.ReportsReader, "30")
			u := d.newUser(t, testbed.UserOptions{})
			path := "/api/v1/users/" + url.PathEscape(u.Login)

			a := api(t, h.srv.URL, http.MethodGet, path, hdTok, nil)
			if got := apiDecode[apiUserBody](t, a); a.Status != http.StatusOK || got.Login != u.Login || got.DN != u.DN || !got.CanAct || got.Locked {
				t.Fatalf("show: %d %s", a.Status, a.Body)
			}
			if a := api(t, h.srv.URL, http.MethodGet, path, rrTok, nil); a.Status != http.StatusForbidden {
				t.Errorf("show as a Reports Reader: %d, want 403 as on the Users page", a.Status)
			}

			// A Reports Reader's token: refused, nothing changed.
			rrPassword := testbed.RandomPassword()
			a = api(t, h.srv.URL, http.MethodPost, path+"/reset", rrTok, map[string]any{"password": rrPassword})
			if title, detail, _ := a.problem(t); a.Status != http.StatusForbidden || title != "forbidden" ||
				detail != "Your role does not allow this. Ask a Global Administrator if you need it." {
				t.Errorf("reset as a Reports Reader: %d %s", a.Status, a.Body)
			}
			if err := env.BindAs(t, d.dir, u.DN, u.Password); err != nil {
				t.Errorf("the refused reset changed the password: %v", err)
			}

			// A password the directory refuses: 422 on the password field.
			a = api(t, h.srv.URL, http.MethodPost, path+"/reset", hdTok, map[string]any{"password": "a"})
			if _, _, fields := a.problem(t); a.Status != http.StatusUnprocessableEntity ||
				!strings.HasPrefix(fields["password"], "The directory refused this password: ") {
				t.Errorf("reset with a short password: %d %s", a.Status, a.Body)
			}
			a = api(t, h.srv.URL, http.MethodPost, path+"/reset", hdTok, map[string]any{})
			if _, _, fields := a.problem(t); a.Status != http.StatusUnprocessableEntity || fields["password"] != "Enter the new password." {
				t.Errorf("reset without a password: %d %s", a.Status, a.Body)
			}

			// Set a password, then have one generated: each works at the directory.
			set := testbed.RandomPassword()
			a = api(t, h.srv.URL, http.MethodPost, path+"/reset", hdTok, map[string]any{"password": set})
			if got := apiDecode[apiActionBody](t, a); a.Status != http.StatusOK || got.Password != "" || !strings.HasPrefix(got.Message, "Password reset for ") {
				t.Fatalf("reset: %d %s", a.Status, a.Body)
			}
			if err := env.BindAs(t, d.dir, u.DN, set); err != nil {
				t.Errorf("the password set through the API does not work: %v", err)
			}
			a = api(t, h.srv.URL, http.MethodPost, path+"/reset", hdTok, map[string]any{"generate": true})
			gen := apiDecode[apiActionBody](t, a).Password
			if a.Status != http.StatusOK || len(gen) < 20 {
				t.Fatalf("reset with generate: %d %s", a.Status, a.Body)
			}
			if err := env.BindAs(t, d.dir, u.DN, gen); err != nil {
				t.Errorf("the generated password does not work: %v", err)
			}
			if err := env.BindAs(t, d.dir, u.DN, set); err == nil {
				t.Error("the password before the generated one still works")
			}

			// Unlock a locked user.
			d.lock(t, u)
			if !d.locked(t, u) {
				t.Fatal("the test bed did not lock the user")
			}
			a = api(t, h.srv.URL, http.MethodPost, path+"/unlock", hdTok, nil)
			if got := apiDecode[apiActionBody](t, a); a.Status != http.StatusOK || got.User.Locked || !strings.HasPrefix(got.Message, "Unlocked ") {
				t.Fatalf("unlock: %d %s", a.Status, a.Body)
			}
			if d.locked(t, u) {
				t.Error("the directory still has the user locked")
			}
			if err := env.BindAs(t, d.dir, u.DN, gen); err != nil {
				t.Errorf("after unlock the password does not work: %v", err)
			}

			// The audit rows name the token as their actor.
			for _, act := range []string{audit.ActivityResetByAdmin, audit.ActivityUnlockByAdmin, apitokens.ActivityCall} {
				rows, err := h.db.RecentAudit(ctx, act, 20)
				if err != nil {
					t.Fatal(err)
				}
				found := false
				for _, e := range rows {
					if e.ActorName == "helpdesk bot" && e.ActorType == apitokens.ActorType && strings.HasPrefix(e.ActorID, "api-token:") {
						found = true
					}
					if e.ActorType == "admin" && act != apitokens.ActivityCall {
						t.Errorf("%s recorded with an administrator as actor: %+v", act, e)
					}
				}
				if !found {
					t.Errorf("no %q event with the token as actor: %+v", act, rows)
				}
			}
			rows, err := h.db.RecentAudit(ctx, apitokens.ActivityCall, 50)
			if err != nil {
				t.Fatal(err)
			}
			var refused bool
			for _, e := range rows {
				if e.ActorName == "reports bot" && e.Result == audit.Failure && strings.Contains(e.Details, `"status":403`) &&
					strings.Contains(e.Details, `"operation":"reset-user-password"`) {
					refused = true
				}
			}
			if !refused {
				t.Errorf("the refused reset is not in the audit log: %+v", rows)
			}
			wantNowhere(t, h, hdTok, rrTok, strings.TrimPrefix(hdTok, apitokens.Prefix), set, gen, rrPassword)
		})
	}
}

// TestAPIProtectedAccountRefused: a reset or unlock of a protected account
// through the API is refused as on the page, and the password still works.
func TestAPIProtectedAccountRefused(t *testing.T) {
	env := testbed.Load(t)
	d := directories(env)[0]
	h := newHarness(t)
	helpdeskOn(t, h, env, d, writeback.Input{})
	tok := h.client().signedIn(admins.GlobalAdmin).createToken("helpdesk bot", admins.HelpdeskAdmin, "30")
	u := env.NewADUser(t, testbed.UserOptions{Groups: []string{"CN=Backup Operators,CN=Builtin," + env.AD.BaseDN}})
	path := "/api/v1/users/" + url.PathEscape(u.Login)
	for _, call := range []struct {
		path string
		body any
	}{{path + "/reset", map[string]any{"password": testbed.RandomPassword()}}, {path + "/unlock", nil}} {
		a := api(t, h.srv.URL, http.MethodPost, call.path, tok, call.body)
		if title, detail, _ := a.problem(t); a.Status != http.StatusForbidden || title != "forbidden" || !strings.Contains(detail, "protected") {
			t.Errorf("%s: %d %s, want 403 naming the protection", call.path, a.Status, a.Body)
		}
	}
	if err := env.BindAs(t, env.AD, u.DN, u.Password); err != nil {
		t.Errorf("the password of the protected account changed: %v", err)
	}
}

// TestAPITokensRefused: a token that is unknown, revoked (on the page),
// expired, malformed or missing, and a signed-in administrator's cookie
// session, are each answered 401 with the same body.
func TestAPITokensRefused(t *testing.T) {
	h := newHarness(t)
	ga := h.client().signedIn(admins.GlobalAdmin)
	good := ga.createToken("monitoring", admins.ReportsReader, "30")
	revoked := ga.createToken("old script", admins.GlobalAdmin, "30")
	const path = "/api/v1/directory/status"
	if a := api(t, h.srv.URL, http.MethodGet, path, revoked, nil); a.Status != http.StatusOK {
		t.Fatalf("before revocation: %d %s", a.Status, a.Body)
	}
	list := ga.get("/admin/api-tokens")
	id := regexp.MustCompile(`data-token-id="(\d+)"[^>]*>\s*<td data-testid="token-name">old script<`).FindStringSubmatch(list.Body)
	if id == nil {
		t.Fatalf("no row of the token:\n%s", between(list.Body, "<main", "</main>"))
	}
	if p := ga.post("/admin/api-tokens/"+id[1]+"/revoke", url.Values{"csrf_token": {ga.csrf("/admin/api-tokens")}}); p.Status != http.StatusSeeOther {
		t.Fatalf("revoke on the page: %d", p.Status)
	}
	past := apitokens.NewService(h.db, h.log)
	past.SetClock(func() time.Time { return time.Now().Add(-48 * time.Hour) })
	expired, err := past.Create(context.Background(), audit.CommandLine, "expired script", admins.GlobalAdmin, 1)
	if err != nil {
		t.Fatal(err)
	}

	var want apiAnswer
	for i, tc := range []struct{ name, token string }{
		{"unknown", apitokens.Prefix + strings.Repeat("A", 43)},
		{"revoked", revoked},
		{"expired", expired.Secret},
		{"malformed", "not-a-token"},
		{"missing", ""},
	} {
		a := api(t, h.srv.URL, http.MethodGet, path, tc.token, nil)
		if title, _, _ := a.problem(t); a.Status != http.StatusUnauthorized || title != "unauthorized" ||
			!strings.HasPrefix(a.Header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("%s token: %d %s", tc.name, a.Status, a.Body)
		}
		if i == 0 {
			want = a
		} else if !bytes.Equal(a.Body, want.Body) {
			t.Errorf("%s token: body %s, want the same as for an unknown one: %s", tc.name, a.Body, want.Body)
		}
	}
	// The cookie of a signed-in Global Administrator is no credential here.
	p := ga.get(path)
	if p.Status != http.StatusUnauthorized || p.Body != string(want.Body) {
		t.Errorf("with a session cookie: %d %s", p.Status, p.Body)
	}
	if a := api(t, h.srv.URL, http.MethodGet, path, good, nil); a.Status != http.StatusOK {
		t.Errorf("the other token stopped working: %d %s", a.Status, a.Body)
	}

	// The page shows each token's state and last use.
	list = ga.get("/admin/api-tokens")
	for _, w := range []string{"Revoked", "Expired", "Active"} {
		if !strings.Contains(list.Body, `data-testid="token-state">`+w+`<`) {
			t.Errorf("the page shows no %s token", w)
		}
	}
	used := between(between(list.Body, `<td data-testid="token-name">monitoring<`, "</tr>"), `data-testid="token-last-used"`, "</td>")
	if !strings.Contains(used, "<time") || !strings.Contains(used, "127.0.0.1") {
		t.Errorf("last use of a used token: %q", used)
	}
	if used := between(between(list.Body, `<td data-testid="token-name">expired script<`, "</tr>"), `data-testid="token-last-used"`, "</td>"); !strings.Contains(used, "Never") {
		t.Errorf("last use of an unused token: %q", used)
	}
	wantNowhere(t, h, good, revoked, expired.Secret)
}

// TestAPITokenPageErrors: the create form keeps its input and names each
// field with a problem; only a Global Administrator reaches the page; a
// bearer token does not get past the CSRF check of the pages.
func TestAPITokenPageErrors(t *testing.T) {
	h := newHarness(t)
	ga := h.client().signedIn(admins.GlobalAdmin)
	p := ga.post("/admin/api-tokens", url.Values{"csrf_token": {ga.csrf("/admin/api-tokens")}, "name": {"bad/name"},
		"role": {"owner"}, "expires": {"999"}})
	if p.Status != http.StatusUnprocessableEntity || !strings.Contains(p.Body, `value="bad/name"`) ||
		!strings.Contains(p.Body, "Use only letters, digits") || !strings.Contains(p.Body, "Choose a role") ||
		!strings.Contains(p.Body, "from 1 to 365") {
		t.Errorf("bad input: %d\n%s", p.Status, between(p.Body, "<main", "</main>"))
	}
	tok := ga.createToken("deploy", admins.GlobalAdmin, "7")
	p = ga.post("/admin/api-tokens", url.Values{"csrf_token": {ga.csrf("/admin/api-tokens")}, "name": {"DEPLOY"},
		"role": {"global-admin"}, "expires": {"7"}})
	if p.Status != http.StatusUnprocessableEntity || !strings.Contains(p.Body, "exists already") {
		t.Errorf("a name taken: %d", p.Status)
	}
	for _, role := range []admins.Role{admins.HelpdeskAdmin, admins.ReportsReader} {
		c := h.client().signedIn(role)
		if p := c.get("/admin/api-tokens"); p.Status != http.StatusForbidden {
			t.Errorf("%s opens the API tokens page: %d", role, p.Status)
		}
	}

	// A bearer token on a page's form is no way around its CSRF check.
	req, _ := http.NewRequest(http.MethodPost, h.srv.URL+"/admin/api-tokens", strings.NewReader(url.Values{"name": {"sneaky"},
		"role": {"global-admin"}, "expires": {"7"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("page form with a bearer token and no CSRF token: %d, want 403", resp.StatusCode)
	}
	list, err := h.tokens.List(context.Background())
	if err != nil || len(list) != 1 {
		t.Errorf("tokens: %v %v", list, err)
	}
	// The API, called cross-site with the token, is not refused as CSRF.
	req, _ = http.NewRequest(http.MethodPut, h.srv.URL+"/api/v1/settings/on-premises-integration", strings.NewReader(`{"writeback":false,"version":0}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Origin", "https://elsewhere.example")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("API call from another origin with a token: %d, want 200", resp.StatusCode)
	}
}

type apiOnPremBody struct {
	Writeback, Unlock, Changed bool
	Version                    int64
	Message                    string
}

// TestAPISettings: the on-premises integration settings read and save
// with the page's checks: writeback needs a directory (422, the page's
// words), a stale version is refused (409, the page's words), a Reports
// Reader may read but not save.
func TestAPISettings(t *testing.T) {
	h := newHarness(t)
	ga := h.client().signedIn(admins.GlobalAdmin)
	gaTok := ga.createToken("config", admins.GlobalAdmin, "30")
	rrTok := ga.createToken("reader", admins.ReportsReader, "30")
	const path = "/api/v1/settings/on-premises-integration"
	a := api(t, h.srv.URL, http.MethodGet, path, rrTok, nil)
	cur := apiDecode[apiOnPremBody](t, a)
	if a.Status != http.StatusOK || cur.Writeback {
		t.Fatalf("read: %d %s", a.Status, a.Body)
	}
	a = api(t, h.srv.URL, http.MethodPut, path, rrTok, map[string]any{"writeback": false, "version": cur.Version})
	if a.Status != http.StatusForbidden {
		t.Errorf("save as a Reports Reader: %d", a.Status)
	}
	a = api(t, h.srv.URL, http.MethodPut, path, gaTok, map[string]any{"writeback": true, "unlock": true, "version": cur.Version})
	if _, _, f := a.problem(t); a.Status != http.StatusUnprocessableEntity || !strings.HasPrefix(f["writeback"], "There is no directory connection yet") ||
		!strings.HasPrefix(f["unlock"], "Unlocking writes to the directory too") {
		t.Errorf("writeback without a directory: %d %s", a.Status, a.Body)
	}
	a = api(t, h.srv.URL, http.MethodPut, path, gaTok, map[string]any{"version": cur.Version})
	if _, _, f := a.problem(t); a.Status != http.StatusUnprocessableEntity || f["writeback"] != "Choose Yes or No." {
		t.Errorf("writeback not given: %d %s", a.Status, a.Body)
	}

	// Someone saves meanwhile (here the command line); the API's save on
	// the version it read is refused with the page's words.
	if _, _, err := h.settings.SaveOnPrem(context.Background(), audit.CommandLine, cur.Version, settings.OnPrem{Writeback: false, Unlock: true}); err != nil {
		t.Fatal(err)
	}
	_, _, stale := h.settings.SaveOnPrem(context.Background(), audit.CommandLine, cur.Version, settings.OnPrem{})
	a = api(t, h.srv.URL, http.MethodPut, path, gaTok, map[string]any{"writeback": false, "version": cur.Version})
	if title, detail, _ := a.problem(t); a.Status != http.StatusConflict || title != "conflict" || stale == nil || detail != errs.MessageOf(stale) {
		t.Errorf("stale version: %d %s, want 409 %q", a.Status, a.Body, errs.MessageOf(stale))
	}
	next := apiDecode[apiOnPremBody](t, api(t, h.srv.URL, http.MethodGet, path, gaTok, nil))
	a = api(t, h.srv.URL, http.MethodPut, path, gaTok, map[string]any{"writeback": false, "version": next.Version})
	if got := apiDecode[apiOnPremBody](t, a); a.Status != http.StatusOK || got.Message == "" || got.Version < next.Version {
		t.Errorf("save: %d %s", a.Status, a.Body)
	}
}

// TestAPIAuditRetention: the audit log's retention read and saved by a
// Global Administrator's token with the page's checks; others refused.
func TestAPIAuditRetention(t *testing.T) {
	h := newHarness(t)
	ga := h.client().signedIn(admins.GlobalAdmin)
	gaTok := ga.createToken("config", admins.GlobalAdmin, "30")
	rrTok := ga.createToken("reader", admins.ReportsReader, "30")
	const path = "/api/v1/settings/audit-retention"
	type body struct {
		Days    int `json:"retention_days"`
		Version int64
		Changed bool
	}
	if a := api(t, h.srv.URL, http.MethodGet, path, rrTok, nil); a.Status != http.StatusForbidden {
		t.Errorf("read as a Reports Reader: %d, want 403 (the page shows it to Global Administrators only)", a.Status)
	}
	a := api(t, h.srv.URL, http.MethodGet, path, gaTok, nil)
	cur := apiDecode[body](t, a)
	if a.Status != http.StatusOK || cur.Days != settings.DefaultRetentionDays {
		t.Fatalf("read: %d %s", a.Status, a.Body)
	}
	a = api(t, h.srv.URL, http.MethodPut, path, gaTok, map[string]any{"retention_days": 0, "version": cur.Version})
	if _, _, f := a.problem(t); a.Status != http.StatusUnprocessableEntity || f["retention_days"] != "Enter 1 to 3650 days." {
		t.Errorf("0 days: %d %s", a.Status, a.Body)
	}
	a = api(t, h.srv.URL, http.MethodPut, path, gaTok, map[string]any{"retention_days": 90, "version": cur.Version})
	if got := apiDecode[body](t, a); a.Status != http.StatusOK || got.Days != 90 || !got.Changed || got.Version <= cur.Version {
		t.Fatalf("save: %d %s", a.Status, a.Body)
	}
	a = api(t, h.srv.URL, http.MethodPut, path, gaTok, map[string]any{"retention_days": 30, "version": cur.Version})
	if title, _, _ := a.problem(t); a.Status != http.StatusConflict || title != "conflict" {
		t.Errorf("stale version: %d %s", a.Status, a.Body)
	}
	rows, err := h.db.RecentAudit(context.Background(), audit.ActivityUpdateRetention, 5)
	if err != nil || len(rows) != 1 || rows[0].ActorName != "config" || rows[0].ActorType != apitokens.ActorType {
		t.Errorf("retention events: %+v %v", rows, err)
	}
}

type apiAuditBody struct {
	Events []struct {
		ID                    int64
		Activity              string
		ActorName             string `json:"actor_name"`
		ActorType             string `json:"actor_type"`
		TargetName            string `json:"target_name"`
		Result, CorrelationID string
	}
	Total      int
	NextCursor string `json:"next_cursor"`
}

// TestAPIAuditQueryAndExport: the audit log through the API with the
// page's filters and paging, and its export streamed as CSV and JSON Lines
// (the export recorded with the token as actor).
func TestAPIAuditQueryAndExport(t *testing.T) {
	h := newHarness(t)
	ga := h.client().signedIn(admins.GlobalAdmin)
	tok := ga.createToken("siem", admins.ReportsReader, "30")
	ga.createToken("second", admins.ReportsReader, "30")
	ga.createToken("third", admins.ReportsReader, "30")

	a := api(t, h.srv.URL, http.MethodGet, "/api/v1/audit?activity="+url.QueryEscape(apitokens.ActivityCreate)+"&limit=2", tok, nil)
	page1 := apiDecode[apiAuditBody](t, a)
	if a.Status != http.StatusOK || len(page1.Events) != 2 || page1.Total != 3 || page1.NextCursor == "" ||
		page1.Events[0].TargetName != "third" || page1.Events[1].TargetName != "second" {
		t.Fatalf("page 1: %d %s", a.Status, a.Body)
	}
	a = api(t, h.srv.URL, http.MethodGet, "/api/v1/audit?activity="+url.QueryEscape(apitokens.ActivityCreate)+"&limit=2&cursor="+url.QueryEscape(page1.NextCursor), tok, nil)
	page2 := apiDecode[apiAuditBody](t, a)
	if a.Status != http.StatusOK || len(page2.Events) != 1 || page2.Events[0].TargetName != "siem" || page2.NextCursor != "" {
		t.Errorf("page 2: %d %s", a.Status, a.Body)
	}
	// The first call is in the log, by the token.
	a = api(t, h.srv.URL, http.MethodGet, "/api/v1/audit?actor=siem&activity="+url.QueryEscape(apitokens.ActivityCall), tok, nil)
	calls := apiDecode[apiAuditBody](t, a)
	if a.Status != http.StatusOK || len(calls.Events) < 2 || calls.Events[0].ActorName != "siem" || calls.Events[0].ActorType != apitokens.ActorType {
		t.Errorf("the token's calls: %d %s", a.Status, a.Body)
	}
	// The page's validation, in the page's words.
	a = api(t, h.srv.URL, http.MethodGet, "/api/v1/audit?result=maybe", tok, nil)
	if _, _, f := a.problem(t); a.Status != http.StatusUnprocessableEntity || f["result"] != "Choose success or failure." {
		t.Errorf("bad result filter: %d %s", a.Status, a.Body)
	}
	a = api(t, h.srv.URL, http.MethodGet, "/api/v1/audit?cursor=nonsense", tok, nil)
	if _, d, _ := a.problem(t); a.Status != http.StatusUnprocessableEntity || d != "That page link is not valid. Start from the first page." {
		t.Errorf("bad cursor: %d %s", a.Status, a.Body)
	}

	a = api(t, h.srv.URL, http.MethodGet, "/api/v1/audit/export?format=csv&activity="+url.QueryEscape(apitokens.ActivityCreate), tok, nil)
	lines := strings.Split(strings.TrimSpace(string(a.Body)), "\n")
	if a.Status != http.StatusOK || !strings.HasPrefix(a.Header.Get("Content-Type"), "text/csv") || len(lines) != 4 ||
		!strings.HasPrefix(strings.TrimPrefix(lines[0], "\ufeff"), "id,") || !strings.Contains(a.Header.Get("Content-Disposition"), ".csv") {
		t.Errorf("CSV export: %d %q %s", a.Status, a.Header.Get("Content-Type"), a.Body)
	}
	a = api(t, h.srv.URL, http.MethodGet, "/api/v1/audit/export?format=jsonl&activity="+url.QueryEscape(apitokens.ActivityCreate), tok, nil)
	lines = strings.Split(strings.TrimSpace(string(a.Body)), "\n")
	if a.Status != http.StatusOK || !strings.HasPrefix(a.Header.Get("Content-Type"), "application/x-ndjson") || len(lines) != 3 {
		t.Errorf("JSON Lines export: %d %s", a.Status, a.Body)
	}
	for _, l := range lines {
		var e audit.JSONEvent
		if err := json.Unmarshal([]byte(l), &e); err != nil || e.Activity != apitokens.ActivityCreate {
			t.Errorf("export line %q: %v", l, err)
		}
	}
	rows, err := h.db.RecentAudit(context.Background(), audit.ActivityExportAudit, 10)
	if err != nil || len(rows) != 2 || rows[0].ActorName != "siem" || rows[0].ActorType != apitokens.ActorType {
		t.Errorf("export events: %+v %v", rows, err)
	}
	wantNowhere(t, h, tok)
}

// TestAPIRateLimitPerToken: a token over its limit gets 429 with
// Retry-After; another token is not held back by it.
func TestAPIRateLimitPerToken(t *testing.T) {
	p := newPortal(t)
	base, _ := url.Parse(p.base)
	s := handlers.New(handlers.Config{BaseURL: base, CookieHashKey: p.keys.Derive("h"), CookieBlockKey: p.keys.Derive("b"), APIPerMinute: 3}, p.log,
		handlers.Deps{Admins: p.admins, Settings: p.settings, Writeback: p.wb, SelfService: p.ss, Audit: p.audit, Limits: p.ss, APITokens: p.tokens})
	srv := httptest.NewServer(s.Routes())
	t.Cleanup(srv.Close)
	mk := func(name string) string {
		n, err := p.tokens.Create(context.Background(), audit.CommandLine, name, admins.ReportsReader, 1)
		if err != nil {
			t.Fatal(err)
		}
		return n.Secret
	}
	busy, other := mk("busy"), mk("other")
	const path = "/api/v1/directory/status"
	// The window may turn between calls: then the count starts again, and
	// the fourth call of the next window is the one refused.
	refused := 0
	for i := range 8 {
		a := api(t, srv.URL, http.MethodGet, path, busy, nil)
		if a.Status == http.StatusTooManyRequests {
			refused = i + 1
			if title, detail, _ := a.problem(t); title != "too many" || detail != "Too many requests with this API token. Wait a minute and try again." {
				t.Errorf("429 body: %s", a.Body)
			}
			if ra, err := strconv.Atoi(a.Header.Get("Retry-After")); err != nil || ra < 1 {
				t.Errorf("Retry-After %q", a.Header.Get("Retry-After"))
			}
			break
		}
		if a.Status != http.StatusOK || a.Header.Get("X-RateLimit-Limit") != "3" {
			t.Fatalf("call %d: %d %s %v", i+1, a.Status, a.Body, a.Header)
		}
	}
	if refused == 0 || refused > 7 {
		t.Fatalf("no call refused (refused at %d)", refused)
	}
	if a := api(t, srv.URL, http.MethodGet, path, other, nil); a.Status != http.StatusOK {
		t.Errorf("another token: %d, want 200", a.Status)
	}
}

// TestAPIOpenAPIDocument: /api/v1/openapi.json is served without a token,
// parses as an OpenAPI 3.1 document and lists every operation the router
// serves under /api/v1, each with the bearer scheme and its 401; there is
// no documentation page (huma's loads a script from a CDN).
func TestAPIOpenAPIDocument(t *testing.T) {
	h := newHarness(t)
	a := api(t, h.srv.URL, http.MethodGet, "/api/v1/openapi.json", "", nil)
	if a.Status != http.StatusOK || !strings.HasPrefix(a.Header.Get("Content-Type"), "application/") {
		t.Fatalf("openapi.json: %d %q", a.Status, a.Header.Get("Content-Type"))
	}
	doc, err := libopenapi.NewDocument(a.Body)
	if err != nil {
		t.Fatal(err)
	}
	if info := doc.GetSpecInfo(); info.SpecFormat != datamodel.OAS31 || info.Version != "3.1.0" {
		t.Fatalf("spec format %q version %q, want OpenAPI 3.1", info.SpecFormat, info.Version)
	}
	model, err := doc.BuildV3Model()
	if err != nil {
		t.Fatal(err)
	}
	m := model.Model
	if len(m.Servers) != 1 || m.Servers[0].URL != testBaseURL+"/api/v1" {
		t.Errorf("servers: %+v", m.Servers)
	}
	if m.Components == nil || m.Components.SecuritySchemes.GetOrZero("bearer") == nil || m.Components.SecuritySchemes.GetOrZero("bearer").Scheme != "bearer" {
		t.Error("no bearer security scheme")
	}
	documented := map[string]bool{}
	for path, item := range m.Paths.PathItems.FromOldest() {
		for method, op := range item.GetOperations().FromOldest() {
			key := strings.ToUpper(method) + " " + path
			documented[key] = true
			if op.OperationId == "" || len(op.Security) != 1 || !hasKey(op.Security[0].Requirements, "bearer") {
				t.Errorf("%s: operation ID %q, security %v", key, op.OperationId, op.Security)
			}
			if op.Responses.Codes.GetOrZero("401") == nil || op.Responses.Codes.GetOrZero("429") == nil {
				t.Errorf("%s documents no 401 or 429", key)
			}
		}
	}
	var served []string
	routes := h.portal.handler(nil).(chi.Routes)
	err = chi.Walk(routes, func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		rest, ok := strings.CutPrefix(route, handlers.APIPrefix)
		if ok && !strings.HasPrefix(rest, "/openapi") && method != http.MethodHead {
			served = append(served, method+" "+rest)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(served) < 8 {
		t.Fatalf("only %v served under /api/v1", served)
	}
	for _, op := range served {
		if !documented[op] {
			t.Errorf("%s is served but not in openapi.json", op)
		}
	}
	if len(served) != len(documented) {
		t.Errorf("served %v, documented %v", served, documented)
	}
	if a := api(t, h.srv.URL, http.MethodGet, "/api/v1/openapi.yaml", "", nil); a.Status != http.StatusOK || !strings.Contains(string(a.Body), "openapi: 3.1.0") {
		t.Errorf("openapi.yaml: %d", a.Status)
	}
	if a := api(t, h.srv.URL, http.MethodGet, "/api/v1/docs", "", nil); a.Status != http.StatusNotFound {
		t.Errorf("/api/v1/docs: %d, want no documentation page", a.Status)
	}
}

func hasKey[V any](m interface{ Get(string) (V, bool) }, k string) bool {
	_, ok := m.Get(k)
	return ok
}
