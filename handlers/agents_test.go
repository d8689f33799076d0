package handlers_test

import (
	"bytes"
	"context"
	"encoding/json"
	"html"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/writeback/writeback/handlers"
	"github.com/writeback/writeback/services/admins"
	"github.com/writeback/writeback/services/agents"
	"github.com/writeback/writeback/services/agentwire"
	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/testbed"
)

// cutoffs records the agent hub's Disconnect calls.
type cutoffs struct {
	mu  sync.Mutex
	ids []string
}

func (c *cutoffs) Disconnect(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ids = append(c.ids, id)
}

func (c *cutoffs) list() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.ids...)
}

// agentsHarness is the harness with the agents service wired as serve
// wires it.
type agentsHarness struct {
	*harness
	agents *agents.Service
	cut    *cutoffs
}

func newAgentsHarness(t *testing.T) *agentsHarness { t.Helper(); return newAgentsHarnessOn(t, "", "") }

// newAgentsHarnessOn is newAgentsHarness on the database at databaseURL
// ("" for a fresh SQLite file), as the replica called replica ("" on a
// single box).
func newAgentsHarnessOn(t *testing.T, databaseURL, replica string) *agentsHarness {
	t.Helper()
	p := newPortalOn(t, databaseURL)
	svc := agents.New(p.db, p.log)
	svc.SetReplica(replica)
	cut := &cutoffs{}
	svc.SetDisconnector(cut)
	base, _ := url.Parse(testBaseURL)
	s := handlers.New(handlers.Config{BaseURL: base, CookieHashKey: p.keys.Derive("h"), CookieBlockKey: p.keys.Derive("b")}, p.log,
		handlers.Deps{Admins: p.admins, Settings: p.settings, Writeback: p.wb, SelfService: p.ss, Audit: p.audit, Agents: svc, AgentEnroll: svc})
	srv := httptest.NewServer(s.Routes())
	t.Cleanup(srv.Close)
	return &agentsHarness{harness: &harness{portal: p, t: t, srv: srv}, agents: svc, cut: cut}
}

var tokenRE = regexp.MustCompile(`data-testid="agent-token"[^>]*value="([^"]+)"|value="([^"]+)"[^>]*data-testid="agent-token"`)

func tokenOn(t *testing.T, body string) string {
	t.Helper()
	m := tokenRE.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no token on the page:\n%s", body)
	}
	return html.UnescapeString(m[1] + m[2])
}

// enrollJSON posts an enrolment as writeback-agent does: JSON, no cookie.
func (h *agentsHarness) enrollJSON(path string, body []byte) (int, string, http.Header) {
	h.t.Helper()
	resp, err := http.Post(h.srv.URL+path, "application/json", bytes.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return resp.StatusCode, b.String(), resp.Header
}

func enrollBody(t *testing.T, token string) []byte {
	t.Helper()
	id, err := agentwire.NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(agentwire.EnrollRequest{Token: token, Public: id.Public(), Proof: id.SignEnroll(token), Host: "srv-dc1", Version: "1.0"})
	return b
}

// sideNav is the side navigation of a page.
func sideNav(body string) string {
	i := strings.Index(body, `<nav class="side"`)
	if i < 0 {
		return ""
	}
	j := strings.Index(body[i:], "</nav>")
	if j < 0 {
		return ""
	}
	return body[i : i+j]
}

func TestAgentsPageRequiresGlobalAdministrator(t *testing.T) {
	h := newAgentsHarness(t)
	anon := h.client()
	if p := anon.get("/admin/agents"); p.Status != http.StatusSeeOther || !strings.HasPrefix(p.Location, "/login") {
		t.Errorf("anonymous: %d %q", p.Status, p.Location)
	}
	for _, role := range []admins.Role{admins.HelpdeskAdmin, admins.ReportsReader} {
		c := h.client().signedIn(role)
		if p := c.get("/admin/agents"); p.Status != http.StatusForbidden {
			t.Errorf("%s GET: %d", role, p.Status)
		}
		tok := c.csrf("/admin/directory")
		if p := c.post("/admin/agents", url.Values{"csrf_token": {tok}, "name": {"Sneaky"}}); p.Status != http.StatusForbidden {
			t.Errorf("%s POST: %d", role, p.Status)
		}
		if nav := sideNav(c.get("/admin/directory").Body); nav == "" || strings.Contains(nav, `href="/admin/agents"`) {
			t.Errorf("%s sees the Writeback agents entry in the navigation: %q", role, nav)
		}
	}
	if list, _ := h.agents.List(context.Background()); len(list) != 0 {
		t.Fatal("a refused request changed something")
	}
	if rows, _ := h.db.RecentAudit(context.Background(), agents.ActivityAddToken, 5); len(rows) != 0 {
		t.Errorf("a refused request created a token: %+v", rows)
	}
	g := h.client().signedIn(admins.GlobalAdmin)
	p := g.get("/admin/agents")
	if p.Status != http.StatusOK || !strings.Contains(p.Body, "Writeback agents") || !strings.Contains(p.Body, `data-testid="no-agents"`) {
		t.Errorf("global admin: %d\n%s", p.Status, p.Body)
	}
	// Next to "Directory connection" in the navigation.
	nav := sideNav(g.get("/admin/directory").Body)
	if i, j := strings.Index(nav, `href="/admin/directory"`), strings.Index(nav, `href="/admin/agents"`); i < 0 || j < i {
		t.Errorf("no Writeback agents link after Directory connection")
	}
}

func TestAgentsAddShowsTokenOnce(t *testing.T) {
	ctx := context.Background()
	h := newAgentsHarness(t)
	g := h.client().signedIn(admins.GlobalAdmin)
	csrf := g.csrf("/admin/agents")

	bad := g.post("/admin/agents", url.Values{"csrf_token": {csrf}, "name": {"Paris/DC"}})
	if bad.Status != http.StatusUnprocessableEntity || !strings.Contains(bad.Body, "Use only letters") || !strings.Contains(bad.Body, `value="Paris/DC"`) {
		t.Errorf("bad name: %d\n%s", bad.Status, bad.Body)
	}

	p := g.post("/admin/agents", url.Values{"csrf_token": {csrf}, "name": {"Paris DC"}})
	if p.Status != http.StatusOK || p.Location != "" {
		t.Fatalf("add: %d %q", p.Status, p.Location)
	}
	tok := tokenOn(t, p.Body)
	if !strings.HasPrefix(tok, agents.TokenPrefix) || !strings.Contains(p.Body, html.EscapeString("writeback-agent enroll --portal "+testBaseURL+" --token "+tok)) {
		t.Errorf("token %q or the enroll command missing:\n%s", tok, p.Body)
	}
	if cc := p.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q", cc)
	}
	for k, vs := range p.Header {
		if strings.Contains(strings.Join(vs, " "), tok) {
			t.Errorf("the token is in the %s header", k)
		}
	}
	// Never again: not on the list, not in a later page.
	list := g.get("/admin/agents")
	if strings.Contains(list.Body, tok) || strings.Contains(list.Body, strings.TrimPrefix(tok, agents.TokenPrefix)) {
		t.Error("the token is shown again")
	}
	again := g.post("/admin/agents", url.Values{"csrf_token": {csrf}, "name": {"paris dc"}})
	if again.Status != http.StatusUnprocessableEntity || !strings.Contains(again.Body, "already enrolled or has a token waiting") {
		t.Errorf("same name again: %d", again.Status)
	}

	// The token enrols an agent through the endpoint; the page lists it.
	status, body, _ := h.enrollJSON(agentwire.PathEnroll, enrollBody(t, tok))
	var resp agentwire.EnrollResponse
	if status != http.StatusOK || json.Unmarshal([]byte(body), &resp) != nil || resp.Name != "Paris DC" {
		t.Fatalf("enrol: %d %s", status, body)
	}
	list = g.get("/admin/agents")
	if !strings.Contains(list.Body, `data-agent-id="`+resp.AgentID+`"`) || !strings.Contains(list.Body, "Disconnected") || !strings.Contains(list.Body, "srv-dc1") {
		t.Errorf("list after enrolment:\n%s", list.Body)
	}
	assertNoSecrets(t, h.harness, tok, strings.TrimPrefix(tok, agents.TokenPrefix))
	if rows, _ := h.db.RecentAudit(ctx, agents.ActivityAddToken, 5); len(rows) != 1 || rows[0].ActorType != "admin" {
		t.Errorf("token audit %+v", rows)
	}
}

func TestAgentsRevokeWithConfirmation(t *testing.T) {
	ctx := context.Background()
	h := newAgentsHarness(t)
	tok, err := h.agents.Add(ctx, audit.CommandLine, "Lyon")
	if err != nil {
		t.Fatal(err)
	}
	status, body, _ := h.enrollJSON(agentwire.PathEnroll, enrollBody(t, tok.Token))
	var resp agentwire.EnrollResponse
	if status != http.StatusOK || json.Unmarshal([]byte(body), &resp) != nil {
		t.Fatalf("enrol: %d %s", status, body)
	}
	if err := h.agents.Connected(ctx, resp.AgentID, agentwire.Status{Version: "1.0", Host: "srv-dc1", PasswordWriteback: true}, "192.0.2.5"); err != nil {
		t.Fatal(err)
	}
	g := h.client().signedIn(admins.GlobalAdmin)
	list := g.get("/admin/agents")
	if !strings.Contains(list.Body, "Connected") || !strings.Contains(list.Body, `href="/admin/agents/`+resp.AgentID+`/revoke"`) {
		t.Fatalf("list:\n%s", list.Body)
	}
	form := g.get("/admin/agents/" + resp.AgentID + "/revoke")
	if form.Status != http.StatusOK || !strings.Contains(form.Body, "Revoke Lyon?") || !strings.Contains(form.Body, `data-testid="confirm-revoke"`) {
		t.Fatalf("confirmation: %d\n%s", form.Status, form.Body)
	}
	if len(h.cut.list()) != 0 {
		t.Fatal("the confirmation step revoked")
	}
	path := "/admin/agents/" + resp.AgentID + "/revoke"
	if p := g.post(path, url.Values{"csrf_token": {"0000"}}); p.Status != http.StatusForbidden {
		t.Errorf("without the CSRF token: %d", p.Status)
	}
	p := g.post(path, url.Values{"csrf_token": {g.csrf("/admin/agents")}})
	if p.Status != http.StatusSeeOther || p.Location != "/admin/agents" {
		t.Fatalf("revoke: %d %q\n%s", p.Status, p.Location, p.Body)
	}
	if cut := h.cut.list(); len(cut) != 1 || cut[0] != resp.AgentID {
		t.Errorf("Disconnect calls %v", cut)
	}
	after := g.get("/admin/agents")
	if !strings.Contains(after.Body, "Revoked Lyon.") || !strings.Contains(after.Body, "Revoked") || strings.Contains(after.Body, `data-testid="revoke"`) {
		t.Errorf("after revoke:\n%s", after.Body)
	}
	if _, _, revoked, err := h.agents.Agent(ctx, resp.AgentID); err != nil || !revoked {
		t.Errorf("Agent: %v %v", revoked, err)
	}
	if p := g.get(path); p.Status != http.StatusNotFound {
		t.Errorf("confirming a revoked agent: %d", p.Status)
	}
	if p := g.post(path, url.Values{"csrf_token": {g.csrf("/admin/agents")}}); p.Status != http.StatusNotFound {
		t.Errorf("revoking twice: %d", p.Status)
	}
	if p := g.get("/admin/agents/nope/revoke"); p.Status != http.StatusNotFound {
		t.Errorf("unknown agent: %d", p.Status)
	}
	if rows, _ := h.db.RecentAudit(ctx, agents.ActivityRevoke, 5); len(rows) != 1 || rows[0].ActorType != "admin" || rows[0].TargetID != resp.AgentID {
		t.Errorf("revoke audit %+v", rows)
	}
}

func TestAgentEnrollEndpoint(t *testing.T) {
	ctx := context.Background()
	h := newAgentsHarness(t)
	tok, err := h.agents.Add(ctx, audit.CommandLine, "Nice")
	if err != nil {
		t.Fatal(err)
	}
	good := enrollBody(t, tok.Token)
	status, body, hdr := h.enrollJSON(agentwire.PathEnroll, good)
	var resp agentwire.EnrollResponse
	if status != http.StatusOK || json.Unmarshal([]byte(body), &resp) != nil || resp.Name != "Nice" || resp.AgentID == "" {
		t.Fatalf("enrol: %d %s", status, body)
	}
	if hdr.Get("Set-Cookie") != "" || !strings.HasPrefix(hdr.Get("Content-Type"), "application/json") {
		t.Errorf("headers %v", hdr)
	}
	if _, _, revoked, err := h.agents.Agent(ctx, resp.AgentID); err != nil || revoked {
		t.Errorf("the enrolled agent: %v %v", revoked, err)
	}

	forged := enrollBody(t, tok.Token)
	var fr agentwire.EnrollRequest
	_ = json.Unmarshal(forged, &fr)
	other, _ := agentwire.NewIdentity()
	fr.Public = other.Public() // keys that did not sign the proof
	forged, _ = json.Marshal(fr)
	expired, _ := h.agents.Add(ctx, audit.CommandLine, "Expired")
	h.agents.SetClock(func() time.Time { return expired.ExpiresAt })
	invalid := agents.ErrTokenInvalid.Message
	cases := []struct {
		name   string
		body   []byte
		status int
		want   string
	}{
		{"used token", enrollBody(t, tok.Token), http.StatusUnauthorized, invalid},
		{"unknown token", enrollBody(t, agents.TokenPrefix+"nope"), http.StatusUnauthorized, invalid},
		{"expired token", enrollBody(t, expired.Token), http.StatusUnauthorized, invalid},
		{"forged proof", forged, http.StatusUnauthorized, agents.ErrBadProof.Message},
		{"not JSON", []byte("token=wbat_x"), http.StatusBadRequest, "not valid JSON"},
		{"no keys", []byte(`{"token":"wbat_x"}`), http.StatusBadRequest, "public keys"},
		{"too large", append([]byte(`{"host":"`), bytes.Repeat([]byte("a"), 20<<10)...), http.StatusRequestEntityTooLarge, "too large"},
	}
	for _, tc := range cases {
		status, body, _ := h.enrollJSON(agentwire.PathEnroll, tc.body)
		var e agentwire.EnrollError
		if status != tc.status || json.Unmarshal([]byte(body), &e) != nil || !strings.Contains(e.Error, tc.want) || strings.Contains(e.Error, "\n") {
			t.Errorf("%s: %d %s, want %d with %q", tc.name, status, body, tc.status, tc.want)
		}
	}
	if list, _ := h.agents.List(ctx); len(list) != 1 {
		t.Errorf("%d agents after the refusals, want 1", len(list))
	}
	// Ten attempts a minute per address (eight made above, plus the
	// success); then 429, as JSON.
	var last int
	var lastBody string
	for range 3 {
		last, lastBody, _ = h.enrollJSON(agentwire.PathEnroll, enrollBody(t, agents.TokenPrefix+"guess"))
	}
	var e agentwire.EnrollError
	if last != http.StatusTooManyRequests || json.Unmarshal([]byte(lastBody), &e) != nil || !strings.Contains(e.Error, "Too many") {
		t.Errorf("over the limit: %d %s", last, lastBody)
	}
	assertNoSecrets(t, h.harness, strings.TrimPrefix(tok.Token, agents.TokenPrefix), strings.TrimPrefix(expired.Token, agents.TokenPrefix))
	refused := 0
	rows, _ := h.db.RecentAudit(ctx, agents.ActivityEnroll, 50)
	for _, r := range rows {
		if r.Result == audit.Failure {
			refused++
		}
	}
	if refused < 5 {
		t.Errorf("%d refused enrolments audited", refused)
	}
}

// TestAgentEnrollCSRFExemptionScoped: the enrolment endpoint takes a
// cookie-less, token-less POST; no other path does — not its neighbours,
// not the pages.
func TestAgentEnrollCSRFExemptionScoped(t *testing.T) {
	h := newAgentsHarness(t)
	body := enrollBody(t, agents.TokenPrefix+"nope")
	// The endpoint answers the POST itself (its own JSON refusal), though it
	// carries neither cookie nor CSRF token, and even from another site.
	req, _ := http.NewRequest(http.MethodPost, h.srv.URL+agentwire.PathEnroll, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Origin", "https://evil.example")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Errorf("enrol endpoint: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	// Everything else still needs the CSRF token: a signed-in Global
	// Administrator's POST without one is refused, and so are anonymous
	// ones.
	g := h.client().signedIn(admins.GlobalAdmin)
	for _, path := range []string{"/admin/agents", "/logout", "/admin/administrators"} {
		if p := g.post(path, url.Values{"name": {"X"}}); p.Status != http.StatusForbidden || !strings.Contains(p.Body, "did not come from this portal") {
			t.Errorf("POST %s without a CSRF token: %d", path, p.Status)
		}
	}
	for _, path := range []string{"/login", "/reset", "/setup"} {
		if status, _, _ := h.enrollJSON(path, body); status != http.StatusForbidden {
			t.Errorf("cookie-less POST %s: %d, want 403", path, status)
		}
	}
	// Neighbouring paths are not the endpoint.
	for _, path := range []string{agentwire.PathEnroll + "/", agentwire.PathEnroll + "x", "/agent/v1/enroll/../enroll2", "/agent/v1/"} {
		if status, _, _ := h.enrollJSON(path, body); status != http.StatusNotFound {
			t.Errorf("POST %s: %d, want 404", path, status)
		}
	}
	if list, _ := h.agents.List(context.Background()); len(list) != 0 {
		t.Error("an agent was created")
	}
}

// TestAgentsPageShowsReplicasReached: with replicas, the agents page says
// how many of the running replicas each agent is connected to, and warns
// about a replica no agent reaches (resets sent there fail), naming the
// usual cause: a load balancer that pins clients. A single box shows
// neither.
func TestAgentsPageShowsReplicasReached(t *testing.T) {
	ctx := context.Background()
	env := testbed.Load(t)
	h := newAgentsHarnessOn(t, env.NewPostgresDB(t), "replica-a")
	for _, r := range []string{"replica-a", "replica-b"} {
		if _, err := h.db.Heartbeat(ctx, r, "web-"+r[len(r)-1:], time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	tok, err := h.agents.Add(ctx, audit.CommandLine, "Paris")
	if err != nil {
		t.Fatal(err)
	}
	code, body, _ := h.enrollJSON(agentwire.PathEnroll, enrollBody(t, tok.Token))
	if code != http.StatusOK {
		t.Fatalf("enrol: %d %s", code, body)
	}
	var resp agentwire.EnrollResponse
	if err := json.Unmarshal([]byte(body), &resp); err != nil {
		t.Fatal(err)
	}
	if err := h.agents.Connected(ctx, resp.AgentID, agentwire.Status{Host: "srv-dc1", PasswordWriteback: true}, "198.51.100.9"); err != nil {
		t.Fatal(err)
	}
	g := h.client().signedIn(admins.GlobalAdmin)
	p := g.get("/admin/agents")
	if p.Status != http.StatusOK || !strings.Contains(p.Body, `<td data-testid="agent-replicas">1 of 2</td>`) {
		t.Fatalf("no \"1 of 2\" replicas: %d\n%s", p.Status, p.Body)
	}
	if !strings.Contains(p.Body, `data-testid="replicas-unreached"`) || !strings.Contains(p.Body, "replica-b (web-b)") ||
		strings.Contains(p.Body, "replica-a (web-a)") || !strings.Contains(p.Body, "IP hash") {
		t.Errorf("no warning naming replica-b alone:\n%s", p.Body)
	}

	// Once B holds a connection too: "2 of 2" and no warning.
	other := agents.New(h.db, h.log)
	other.SetReplica("replica-b")
	if err := other.Connected(ctx, resp.AgentID, agentwire.Status{Host: "srv-dc1", PasswordWriteback: true}, "198.51.100.9"); err != nil {
		t.Fatal(err)
	}
	p = g.get("/admin/agents")
	if !strings.Contains(p.Body, `<td data-testid="agent-replicas">2 of 2</td>`) || strings.Contains(p.Body, `data-testid="replicas-unreached"`) {
		t.Errorf("with both replicas reached:\n%s", p.Body)
	}

	// A single box: no replicas column, no warning.
	single := newAgentsHarness(t)
	p = single.client().signedIn(admins.GlobalAdmin).get("/admin/agents")
	if p.Status != http.StatusOK || strings.Contains(p.Body, "agent-replicas") || strings.Contains(p.Body, "replicas-unreached") {
		t.Errorf("single box: %d\n%s", p.Status, p.Body)
	}
}
