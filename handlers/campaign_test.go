package handlers_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/writeback/writeback/services/admins"
	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/campaign"
	"github.com/writeback/writeback/services/selfservice"
	"github.com/writeback/writeback/testbed"
)

const campaignPage = "/admin/password-reset/registration-campaign"

// newCampaignPortal is self-service on OpenLDAP for the members of a new
// group, two of whom have registered nothing.
func newCampaignPortal(t *testing.T, env testbed.Env) (*sspr, []testbed.TestUser) {
	t.Helper()
	ctx := context.Background()
	s := newSSPR(t, env, directories(env)[1], selfservice.Methods{Email: true})
	g := env.NewLDAPGroup(t, "")
	users := []testbed.TestUser{env.NewLDAPUser(t, testbed.UserOptions{Groups: []string{g}}), env.NewLDAPUser(t, testbed.UserOptions{Groups: []string{g}})}
	_, meta, err := s.ss.Policy(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.ss.SavePolicy(ctx, audit.CommandLine, meta.Version, "test", func(p *selfservice.Policy) {
		p.Enabled, p.Group = selfservice.EnabledGroup, g
	}); err != nil {
		t.Fatal(err)
	}
	return s, users
}

// TestCampaignPage: the Registration campaign page is a Global
// Administrator's: others neither see it in the navigation nor open it. Bad
// settings are refused next to their fields and change nothing; a form
// without its CSRF token or with a stale version is refused. The dry run
// counts and names (masked) the two people who registered nothing and
// mails nobody; Start queues them, a second Start is refused while the run
// is under way, Stop ends it; each step is audited, and Usage & insights
// shows the people in scope as of the enumeration.
func TestCampaignPage(t *testing.T) {
	env := testbed.Load(t)
	ctx := context.Background()
	s, users := newCampaignPortal(t, env)

	h := s.client().signedIn(admins.HelpdeskAdmin)
	if p := h.get(campaignPage); p.Status != http.StatusForbidden {
		t.Fatalf("helpdesk: %d", p.Status)
	}
	if p := h.get("/admin/audit"); strings.Contains(p.Body, campaignPage) {
		t.Fatalf("the helpdesk's navigation offers the campaign")
	}

	c := s.client().signedIn(admins.GlobalAdmin)
	p := c.get(campaignPage)
	if p.Status != http.StatusOK || !strings.Contains(p.Body, `data-testid="no-run"`) || !strings.Contains(p.Body, `id="per_minute" name="per_minute" type="text" value="60"`) ||
		!strings.Contains(p.Body, `href="/admin/password-reset/registration-campaign"`) {
		t.Fatalf("page: %d\n%s", p.Status, between(p.Body, "<body", "</main>"))
	}
	token := c.csrf(campaignPage)
	form := func(version, interval, pace string, who ...string) url.Values {
		v := url.Values{"csrf_token": {token}, "version": {version}, "enabled": {"yes"}, "interval_days": {interval}, "per_minute": {pace}}
		for _, w := range who {
			v.Set(w, "yes")
		}
		return v
	}
	for _, tc := range []struct {
		name string
		form url.Values
		want []string
	}{
		{"bad numbers", form("0", "weekly", "5000", "not_registered"), []string{"Enter a whole number of days from 1 to 365.",
			"Enter a whole number of mails a minute from 1 to 600.", `value="weekly"`, `value="5000"`}},
		{"nobody", form("0", "7", "60"), []string{"Choose at least one group of people to mail."}},
	} {
		p := c.post(campaignPage, tc.form)
		main := between(p.Body, "<main", "</main>")
		if p.Status != http.StatusUnprocessableEntity {
			t.Errorf("%s: %d", tc.name, p.Status)
		}
		for _, w := range tc.want {
			if !strings.Contains(main, w) {
				t.Errorf("%s: the page lacks %q\n%s", tc.name, w, main)
			}
		}
	}
	if st, meta, _ := s.camp.Settings(ctx); meta.Version != 0 || st != campaign.Default() {
		t.Fatalf("refused forms changed the settings: %+v %+v", st, meta)
	}
	noToken := form("0", "3", "30", "not_registered")
	noToken.Del("csrf_token")
	if p := c.post(campaignPage, noToken); p.Status != http.StatusForbidden {
		t.Fatalf("without the CSRF token: %d", p.Status)
	}
	if p := c.post(campaignPage, form("0", "3", "30", "not_registered")); p.Status != http.StatusSeeOther {
		t.Fatalf("save: %d\n%s", p.Status, between(p.Body, "<main", "</main>"))
	}
	if p := c.post(campaignPage, form("0", "5", "30", "not_registered")); p.Status != http.StatusConflict {
		t.Fatalf("stale version: %d", p.Status)
	}
	if st, _, _ := s.camp.Settings(ctx); st.IntervalDays != 3 || st.PerMinute != 30 || !st.Enabled || st.ReconfirmDue {
		t.Fatalf("saved %+v", st)
	}
	if rows, _ := s.db.RecentAudit(ctx, audit.ActivityUpdateRegistrationCampaign, 5); len(rows) != 1 || !strings.Contains(rows[0].Details, "interval_days") {
		t.Fatalf("settings audit: %+v", rows)
	}

	// Dry run: both counted and named, addresses masked, nothing sent.
	p = c.post(campaignPage+"/dry-run", url.Values{"csrf_token": {token}})
	main := between(p.Body, "<main", "</main>")
	if p.Status != http.StatusOK || !strings.Contains(main, "A run now would mail 2 people.") || !strings.Contains(main, "In scope: 2 people.") {
		t.Fatalf("dry run: %d\n%s", p.Status, main)
	}
	for _, u := range users {
		if !strings.Contains(main, `<td data-testid="sample-login">`+u.Login+`</td>`) || !strings.Contains(main, selfservice.Mask(u.Mail)) || strings.Contains(main, u.Mail) {
			t.Fatalf("dry run sample lacks %s (masked):\n%s", u.Login, main)
		}
	}
	if p := c.post(campaignPage+"/dry-run", url.Values{}); p.Status != http.StatusForbidden {
		t.Fatalf("dry run without the CSRF token: %d", p.Status)
	}
	if n := len(s.sink.Messages()); n != 0 {
		t.Fatalf("the dry run sent %d mails", n)
	}

	// Start: queued, under way; a second Start is refused; Stop ends it.
	if p := c.post(campaignPage+"/start", url.Values{"csrf_token": {token}}); p.Status != http.StatusSeeOther {
		t.Fatalf("start: %d\n%s", p.Status, between(p.Body, "<main", "</main>"))
	}
	p = c.get(campaignPage)
	main = between(p.Body, "<main", "</main>")
	if !strings.Contains(main, "Started a run: 2 people to mail, 2 in scope.") || !strings.Contains(main, `data-testid="stop"`) ||
		!strings.Contains(main, `<td class="num" data-testid="count-queued">2</td>`) {
		t.Fatalf("after start:\n%s", main)
	}
	if p := c.post(campaignPage+"/start", url.Values{"csrf_token": {token}}); p.Status != http.StatusConflict || !strings.Contains(p.Body, "A run is under way already.") {
		t.Fatalf("second start: %d", p.Status)
	}
	if p := c.post(campaignPage+"/stop", url.Values{"csrf_token": {token}}); p.Status != http.StatusSeeOther {
		t.Fatalf("stop: %d", p.Status)
	}
	if p := c.get(campaignPage); !strings.Contains(p.Body, "The last run was stopped on") || !strings.Contains(p.Body, `data-testid="start"`) {
		t.Fatalf("after stop:\n%s", between(p.Body, "<main", "</main>"))
	}
	if p := c.post(campaignPage+"/stop", url.Values{"csrf_token": {token}}); p.Status != http.StatusUnprocessableEntity || !strings.Contains(p.Body, "No run is under way.") {
		t.Fatalf("stop without a run: %d", p.Status)
	}
	for _, a := range []string{audit.ActivityStartRegistrationCampaign, audit.ActivityStopRegistrationCampaign} {
		rows, _ := s.db.RecentAudit(ctx, a, 5)
		if len(rows) != 1 || rows[0].ActorName == "" {
			t.Fatalf("%s: %+v", a, rows)
		}
		for _, u := range users {
			if strings.Contains(rows[0].Details, u.Mail) || strings.Contains(rows[0].Details, u.Login) {
				t.Fatalf("%s names a person: %s", a, rows[0].Details)
			}
		}
	}
	if n := len(s.sink.Messages()); n != 0 {
		t.Fatalf("%d mails without a worker", n)
	}

	// Self-service for nobody: the dry run and Start say so, nothing runs.
	_, meta, _ := s.ss.Policy(ctx)
	if _, err := s.ss.SavePolicy(ctx, audit.CommandLine, meta.Version, "test", func(p *selfservice.Policy) { p.Enabled = selfservice.EnabledNone }); err != nil {
		t.Fatal(err)
	}
	if p := c.post(campaignPage+"/dry-run", url.Values{"csrf_token": {token}}); p.Status != http.StatusOK ||
		!strings.Contains(between(p.Body, `data-testid="dry-run-error"`, "</div>"), "enabled for nobody") {
		t.Fatalf("dry run for nobody: %d\n%s", p.Status, between(p.Body, "<main", "</main>"))
	}
	if p := c.post(campaignPage+"/start", url.Values{"csrf_token": {token}}); p.Status != http.StatusUnprocessableEntity ||
		!strings.Contains(p.Body, "enabled for nobody") {
		t.Fatalf("start for nobody: %d", p.Status)
	}
	if rows, _ := s.db.RecentAudit(ctx, audit.ActivityStartRegistrationCampaign, 5); len(rows) != 1 {
		t.Fatalf("a refused start was audited: %d rows", len(rows))
	}

	// Usage & insights: the people in scope as of the last enumeration.
	p = c.get("/admin/reports")
	if !strings.Contains(p.Body, "In scope: 2 people; 2 of them have not registered enough, and 0 are due to re-confirm.") ||
		!strings.Contains(p.Body, `data-testid="scope-as-of"`) {
		t.Fatalf("reports:\n%s", between(p.Body, `data-testid="registration"`, "</section>"))
	}
}
