package handlers_test

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/writeback/writeback/services/admins"
	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/selfservice"
	"github.com/writeback/writeback/store"
	"github.com/writeback/writeback/testbed"
)

func record(t *testing.T, h *harness, e audit.Entry) {
	t.Helper()
	if err := h.db.InTx(context.Background(), func(tx *store.Tx) error { _, err := audit.Record(context.Background(), tx, e); return err }); err != nil {
		t.Fatal(err)
	}
}

var rowIDRE = regexp.MustCompile(`href="/admin/audit/(\d+)"`)
var nextRE = regexp.MustCompile(`href="(/admin/audit\?[^"]*)" data-testid="next"`)

// TestAuditPagingExactWhileAppending pages through the viewer while new
// events arrive: every event of the first page's moment appears once.
func TestAuditPagingExactWhileAppending(t *testing.T) {
	h := newHarness(t)
	reader := h.client().signedIn(admins.ReportsReader)
	for i := 0; i < 130; i++ {
		record(t, h, audit.Entry{Category: audit.CategoryPolicy, Activity: "Paging test", Actor: audit.System, Result: audit.Success,
			Details: map[string]any{"n": i}})
	}
	early, err := h.db.RecentAudit(context.Background(), "Paging test", 1000)
	if err != nil || len(early) != 130 {
		t.Fatalf("%d early events: %v", len(early), err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			record(t, h, audit.Entry{Category: audit.CategoryPolicy, Activity: "Paging test", Actor: audit.System, Details: map[string]any{"late": i}})
			time.Sleep(2 * time.Millisecond)
		}
	}()
	seen := map[string]bool{}
	path := "/admin/audit?activity=" + url.QueryEscape("Paging test")
	pages := 0
	first := true
	for path != "" && pages < 20 {
		p := reader.get(strings.ReplaceAll(path, "&amp;", "&"))
		if p.Status != http.StatusOK {
			t.Fatalf("page %d: %d", pages, p.Status)
		}
		if first && !strings.Contains(p.Body, "1–50 of") {
			t.Errorf("no count on the first page: %s", between(p.Body, `data-testid="count"`, "</p>"))
		}
		first = false
		for _, m := range rowIDRE.FindAllStringSubmatch(p.Body, -1) {
			if seen[m[1]] {
				t.Errorf("event %s shown twice", m[1])
			}
			seen[m[1]] = true
		}
		path = ""
		if m := nextRE.FindStringSubmatch(p.Body); m != nil {
			path = m[1]
		}
		pages++
	}
	close(stop)
	wg.Wait()
	// Every event that existed before paging began is shown once; events
	// appended while paging stay out of later pages (at most the few that
	// arrived before the first page was read may show).
	for _, e := range early {
		if !seen[fmt.Sprint(e.ID)] {
			t.Errorf("event %d missing", e.ID)
		}
	}
	if len(seen) > 135 || pages != 3 {
		t.Errorf("saw %d events over %d pages", len(seen), pages)
	}
}

func TestAuditFiltersDetailCorrelationAndRoles(t *testing.T) {
	h := newHarness(t)
	reader := h.client().signedIn(admins.ReportsReader)
	record(t, h, audit.Entry{Category: audit.CategoryUserManagement, Activity: audit.ActivityResetSelfService, Actor: audit.Actor{Type: "user", ID: "u-1", Name: "alice"},
		Target: audit.Target{Type: "User", ID: "u-1", Name: "Alice Smith (alice)"}, Result: audit.Failure, Reason: "too short: at least 7 characters", CorrelationID: "corr-1",
		Details: map[string]any{"ldap_result": 19}})
	record(t, h, audit.Entry{Category: audit.CategoryUserManagement, Activity: audit.ActivitySelfServiceProgress, Actor: audit.Actor{Type: "user", ID: "u-1", Name: "alice"},
		Target: audit.Target{Type: "User", ID: "u-1", Name: "Alice Smith (alice)"}, CorrelationID: "corr-1", Details: map[string]any{"step": "started reset"}})
	record(t, h, audit.Entry{Category: audit.CategoryUserManagement, Activity: audit.ActivityUnlockByAdmin, Actor: audit.Actor{Type: "admin", ID: "9", Name: "Bob"},
		Target: audit.Target{Type: "User", ID: "u-2", Name: "Carol"}, Result: audit.Success})

	cases := []struct {
		query string
		want  []string
		not   []string
	}{
		{"result=failure", []string{audit.ActivityResetSelfService}, []string{audit.ActivityUnlockByAdmin}},
		{"activity=" + url.QueryEscape(audit.ActivityUnlockByAdmin), []string{"Carol"}, []string{"Alice Smith"}},
		{"actor=bob", []string{"Carol"}, []string{"Alice Smith"}},
		{"target=alice", []string{"Alice Smith"}, []string{"Carol"}},
		{"q=" + url.QueryEscape("too short"), []string{audit.ActivityResetSelfService}, []string{"Carol", audit.ActivitySelfServiceProgress}},
		{"range=custom&since=2001-01-01&until=2001-01-02", nil, []string{"Alice Smith", "Carol"}},
	}
	for _, tc := range cases {
		p := reader.get("/admin/audit?" + tc.query)
		table := between(p.Body, `data-testid="audit-table"`, "</table>")
		for _, w := range tc.want {
			if !strings.Contains(table, w) {
				t.Errorf("%s: missing %q", tc.query, w)
			}
		}
		for _, n := range tc.not {
			if strings.Contains(table, n) {
				t.Errorf("%s: unexpected %q", tc.query, n)
			}
		}
	}
	if p := reader.get("/admin/audit?range=custom&since=yesterday"); p.Status != http.StatusUnprocessableEntity {
		t.Errorf("bad date: %d", p.Status)
	}
	// Detail view with every field, and the correlation step by step.
	rows, _ := h.db.RecentAudit(context.Background(), audit.ActivityResetSelfService, 1)
	p := reader.get(fmt.Sprintf("/admin/audit/%d", rows[0].ID))
	for _, want := range []string{"too short: at least 7 characters", "Correlation ID", `href="/admin/audit/correlation/corr-1"`, "ldap_result", rows[0].Hash} {
		if !strings.Contains(p.Body, want) {
			t.Errorf("detail lacks %q", want)
		}
	}
	p = reader.get("/admin/audit/correlation/corr-1")
	steps := between(p.Body, `data-testid="steps"`, "</ol>")
	// Oldest first: the reset row was recorded before the progress row.
	if strings.Count(steps, "<li") != 2 || strings.Index(steps, audit.ActivityResetSelfService) > strings.Index(steps, audit.ActivitySelfServiceProgress) {
		t.Errorf("correlation steps:\n%s", steps)
	}
	// Anyone who reads the log may run the integrity check.
	if p := reader.post("/admin/audit/verify", url.Values{"csrf_token": {reader.csrf("/")}}); p.Status != http.StatusSeeOther {
		t.Errorf("verify now: %d", p.Status)
	}
	if p := reader.get("/admin/audit"); !strings.Contains(p.Body, "Integrity verified:") || !strings.Contains(p.Body, "Integrity verified up to event") ||
		!strings.Contains(p.Body, "(full check of") || !strings.Contains(p.Body, "reads every event (a full check)") {
		t.Errorf("integrity not shown:\n%s", between(p.Body, `data-testid="integrity"`, "</form>"))
	}
	// The checks at start and daily are incremental, and say so.
	if _, err := h.audit.VerifyIncremental(context.Background()); err != nil {
		t.Fatal(err)
	}
	if p := reader.get("/admin/audit"); !strings.Contains(p.Body, "incremental check of the 0 events after event") || !strings.Contains(p.Body, "last full check at") {
		t.Errorf("incremental check not shown:\n%s", between(p.Body, `data-testid="integrity"`, "</form>"))
	}
	if _, err := h.db.SQL().Exec(`UPDATE audit_events SET reason = 'edited' WHERE id = 2`); err != nil {
		t.Fatal(err)
	}
	reader.post("/admin/audit/verify", url.Values{"csrf_token": {reader.csrf("/")}})
	if p := reader.get("/admin/audit"); !strings.Contains(p.Body, "Integrity check failed: event 2 was altered") {
		t.Errorf("break not shown:\n%s", between(p.Body, `data-testid="integrity"`, "</form>"))
	}
	// A Reports Reader reads and exports but changes nothing.
	if p := reader.post("/admin/audit/settings", url.Values{"csrf_token": {reader.csrf("/")}, "version": {"0"}, "retention_days": {"1"}}); p.Status != http.StatusForbidden {
		t.Errorf("reader changed retention: %d", p.Status)
	}
	if r, _, _ := h.settings.Retention(context.Background()); r.Days != 365 {
		t.Errorf("retention changed to %d", r.Days)
	}
	if p := reader.get("/admin/audit/export.csv"); p.Status != http.StatusOK {
		t.Errorf("reader export: %d", p.Status)
	}
	// Helpdesk reads too; anonymous does not.
	if p := h.client().signedIn(admins.HelpdeskAdmin).get("/admin/audit"); p.Status != http.StatusOK {
		t.Errorf("helpdesk: %d", p.Status)
	}
	if p := h.client().get("/admin/audit/export.csv"); p.Status != http.StatusSeeOther {
		t.Errorf("anonymous export: %d", p.Status)
	}
	// A Global Administrator sets the retention; it is audited.
	g := h.client().signedIn(admins.GlobalAdmin)
	if p := g.post("/admin/audit/settings", url.Values{"csrf_token": {g.csrf("/")}, "version": {"0"}, "retention_days": {"90"}}); p.Status != http.StatusSeeOther {
		t.Errorf("retention: %d", p.Status)
	}
	assertActivities(t, h, audit.ActivityUpdateRetention, audit.ActivityExportAudit)
}

func TestAuditExportEscapesHostileValues(t *testing.T) {
	h := newHarness(t)
	hostile := []string{"=HYPERLINK(\"http://evil\")", "+1+2", "-3", "@SUM(A1)", "a,b", "say \"hi\"", "two\nlines"}
	for _, v := range hostile {
		record(t, h, audit.Entry{Category: audit.CategoryUserManagement, Activity: "Hostile", Actor: audit.Actor{Type: "user", Name: v},
			Target: audit.Target{Type: "User", Name: v}, Result: audit.Failure, Reason: v})
	}
	c := h.client().signedIn(admins.ReportsReader)
	p := c.get("/admin/audit/export.csv?activity=Hostile")
	if p.Status != http.StatusOK || !strings.HasPrefix(p.Header.Get("Content-Disposition"), "attachment;") {
		t.Fatalf("export: %d %q", p.Status, p.Header.Get("Content-Disposition"))
	}
	recs, err := csv.NewReader(strings.NewReader(strings.TrimPrefix(p.Body, "\ufeff"))).ReadAll()
	if err != nil {
		t.Fatalf("CSV does not parse: %v", err)
	}
	if len(recs) != len(hostile)+1 {
		t.Fatalf("%d records", len(recs))
	}
	for _, rec := range recs[1:] {
		for _, cell := range rec {
			if cell != "" && strings.ContainsAny(cell[:1], "=+-@") {
				t.Errorf("cell %q could run as a formula", cell)
			}
		}
	}
	found := map[string]bool{}
	for _, rec := range recs[1:] {
		for _, cell := range rec {
			found[strings.TrimPrefix(cell, "'")] = true
		}
	}
	for _, v := range hostile {
		if !found[v] {
			t.Errorf("value %q did not survive the round trip", v)
		}
	}
	// JSON Lines: one object per event, details nested.
	p = c.get("/admin/audit/export.jsonl?activity=Hostile")
	lines := strings.Split(strings.TrimSpace(p.Body), "\n")
	if len(lines) != len(hostile) {
		t.Fatalf("%d JSON lines", len(lines))
	}
	for _, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil || m["activity"] != "Hostile" {
			t.Errorf("line %q: %v", l, err)
		}
	}
}

// TestEveryActivityIsRecorded runs the portal's flows against a real
// directory and checks that each activity the viewer offers appears.
func TestEveryActivityIsRecorded(t *testing.T) {
	env := testbed.Load(t)
	d := directories(env)[1]
	s := newSSPR(t, env, d, selfservice.Methods{Email: true, App: true})
	ctx := context.Background()
	g := s.client().signedIn(admins.GlobalAdmin)
	// Administrators: add, update, disable, sign-in, sign-out.
	g.post("/admin/administrators", url.Values{"csrf_token": {g.csrf("/")}, "email": {"x@example.com"}, "name": {"X"}, "role": {"helpdesk-admin"}, "password": {"a long enough password"}})
	x, _ := s.db.AdminByEmail(ctx, "x@example.com")
	id := fmt.Sprint(x.ID)
	g.post("/admin/administrators/"+id, url.Values{"csrf_token": {g.csrf("/")}, "role": {"reports-reader"}, "state": {"active"}})
	g.post("/admin/administrators/"+id, url.Values{"csrf_token": {g.csrf("/")}, "role": {"reports-reader"}, "state": {"disabled"}})
	other := s.client().signedIn(admins.HelpdeskAdmin)
	other.post("/logout", url.Values{"csrf_token": {other.csrf("/")}})
	// Second factors: enable again, policy, enrol, sign in with a recovery
	// code, remove; reset another's sign-in and its link.
	g.post("/admin/administrators/"+id, url.Values{"csrf_token": {g.csrf("/")}, "role": {"reports-reader"}, "state": {"active"}})
	g.post("/admin/administrators/policy", url.Values{"csrf_token": {g.csrf("/")}, "version": {"1"}, "global_admin": {"no"},
		"helpdesk_admin": {"optional"}, "reports_reader": {"required"}})
	appSecret, enrolled := g.enrolApp("/admin/security/add")
	rc := recoveryCodes(t, enrolled.Body)
	second := s.client()
	second.password("global-admin@example.com")
	second.post("/login/factor/recovery", url.Values{"csrf_token": {second.csrf("/login/factor")}, "recovery": {rc[0]}})
	if fs, _ := s.db.AdminFactors(ctx, 1); len(fs) == 1 {
		g.post("/admin/security/factors/"+formatInt(fs[0].ID)+"/remove", url.Values{"csrf_token": {g.csrf("/")}})
	}
	resetPage := g.post("/admin/administrators/"+id+"/reset", url.Values{"csrf_token": {g.csrf("/")}})
	if m := regexp.MustCompile(`/login/reset\?token=([0-9a-f]+)`).FindStringSubmatch(resetPage.Body); m != nil {
		x := s.client()
		x.post("/login/reset", url.Values{"csrf_token": {x.csrf("/login")}, "token": {m[1]}, "password": {"a new long password"}, "confirm": {"a new long password"}})
	}
	// Switches off and on.
	for _, wb := range []string{"no", "yes"} {
		g.post(onPremPath, url.Values{"csrf_token": {g.csrf("/")}, "version": {currentVersion(t, s.harness)}, "writeback": {wb}, "unlock": {wb}})
	}
	// Directory: save (done by newSSPR) and test; helpdesk reset and unlock.
	g.post("/admin/directory/test", url.Values{"csrf_token": {g.csrf("/")}})
	user := d.newUser(t, testbed.UserOptions{})
	d.lock(t, user)
	g.post("/admin/users/"+user.Login+"/unlock", url.Values{"csrf_token": {g.csrf("/")}})
	pw := "Adm-" + testbed.RandomPassword()
	g.post("/admin/users/"+user.Login+"/reset", url.Values{"csrf_token": {g.csrf("/")}, "password": {pw}, "confirm": {pw}})
	// Mail test, export, retention.
	g.post("/admin/password-reset/mail-server/test", url.Values{"csrf_token": {g.csrf("/")}, "to": {"ops@example.com"}})
	g.get("/admin/audit/export.csv")
	g.post("/admin/audit/settings", url.Values{"csrf_token": {g.csrf("/")}, "version": {"0"}, "retention_days": {"400"}})
	g.post("/admin/password-reset/password-protection", url.Values{"csrf_token": {g.csrf("/")}, "version": {"0"}, "common": {"yes"}, "personal": {"yes"}, "custom": {"Contoso"}})
	g.post("/admin/password-reset/expiry-reminders", url.Values{"csrf_token": {g.csrf("/")}, "version": {"0"}, "enabled": {"yes"}, "thresholds": {"14, 7, 1"}})
	// Employees: change, register, reset, unlock, block.
	c := s.client()
	pw2 := "Chg-" + testbed.RandomPassword()
	c.post("/change", url.Values{"csrf_token": {c.csrf("/")}, "login": {user.Login}, "current": {pw}, "password": {pw2}, "confirm": {pw2}})
	reg := c.post("/register", url.Values{"csrf_token": {c.csrf("/")}, "login": {user.Login}, "password": {pw2}}).Location
	c.post(reg+"/app", url.Values{"csrf_token": {c.csrf("/")}})
	secret := regexp.MustCompile(`data-testid="app-secret">([A-Z2-7]+)<`).FindStringSubmatch(c.get(reg).Body)[1]
	code, _ := totp.GenerateCode(secret, time.Now())
	c.post(reg+"/app/confirm", url.Values{"csrf_token": {c.csrf("/")}, "app_code": {code}})
	flow := c.begin("reset", user.Login)
	c.step(flow, "method", url.Values{"method": {"email"}})
	c.step(flow, "verify", url.Values{"method": {"email"}, "code": {s.code(t, user.Mail)}})
	pw3 := "Rst-" + testbed.RandomPassword()
	c.step(flow, "password", url.Values{"password": {pw3}, "confirm": {pw3}})
	d.lock(t, testbed.TestUser{Login: user.Login, DN: user.DN, Password: pw3})
	flow = c.begin("unlock", user.Login)
	c.step(flow, "method", url.Values{"method": {"email"}})
	c.step(flow, "verify", url.Values{"method": {"email"}, "code": {s.code(t, user.Mail)}})
	flow = c.begin("reset", user.Login)
	c.step(flow, "method", url.Values{"method": {"email"}})
	for i := 0; i < 5; i++ {
		c.step(flow, "verify", url.Values{"method": {"email"}, "code": {"00000000"}})
	}
	s.ss.Wait()
	activities := append(append([]string{}, audit.Activities...), selfservice.ActivitySendTest, selfservice.ActivityUpdateMail)
	for _, a := range activities {
		switch a {
		case audit.ActivityPruneAudit:
			continue // below: pruning removes the others
		case audit.ActivitySendAlert:
			continue // an outage of the leader's health monitor: services/alerts tests its events
		case audit.ActivitySendExpiryReminder:
			continue // the leader's hourly round: services/reminders tests its events
		case audit.ActivityUpdateRegistrationCampaign, audit.ActivityStartRegistrationCampaign,
			audit.ActivityStopRegistrationCampaign, audit.ActivityFinishRegistrationCampaign:
			continue // services/campaign and the campaign page's tests produce these
		}
		rows, err := s.db.RecentAudit(ctx, a, 1)
		if err != nil || len(rows) == 0 {
			t.Errorf("no %q event after the flows that produce it", a)
		}
	}
	assertNoSecrets(t, s.harness, append([]string{pw, pw2, pw3, secret, appSecret}, rc...)...)
	// Retention: prune everything so far; the chain still verifies.
	if n, err := audit.Prune(ctx, s.db, time.Now().Add(time.Minute), audit.System); err != nil || n == 0 {
		t.Fatalf("prune removed %d: %v", n, err)
	}
	assertActivities(t, s.harness, audit.ActivityPruneAudit)
	if res, err := s.db.VerifyAudit(ctx); err != nil || !res.OK {
		t.Errorf("verify after prune: %+v %v", res, err)
	}
}
