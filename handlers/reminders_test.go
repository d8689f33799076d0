package handlers_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/writeback/writeback/services/admins"
	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/selfservice"
	"github.com/writeback/writeback/testbed"
)

// TestRemindersPage: a Global Administrator turns the expiry reminders on
// and sets the thresholds (a bad value is refused next to the field and
// changes nothing), the change is audited; the dry run lists a person whose
// password expires in 10 days (a fine-grained policy on the Samba DC) with
// the address masked, and mails nobody. A Helpdesk Administrator may look
// but neither save nor run the dry run.
func TestRemindersPage(t *testing.T) {
	env := testbed.Load(t)
	ctx := context.Background()
	s := newSSPR(t, env, directories(env)[0], selfservice.Methods{Email: true})
	user := env.NewADUser(t, testbed.UserOptions{})
	env.NewADPSO(t, 10*24*time.Hour, user.DN)

	c := s.client().signedIn(admins.GlobalAdmin)
	p := c.get("/admin/password-reset/expiry-reminders")
	if p.Status != http.StatusOK || !strings.Contains(p.Body, `value="14, 7, 1"`) || !strings.Contains(p.Body, `id="enabled-no" name="enabled" value="no" checked`) {
		t.Fatalf("page: %d\n%s", p.Status, between(p.Body, "<main", "</main>"))
	}
	form := func(enabled, thresholds string) url.Values {
		return url.Values{"csrf_token": {c.csrf("/admin/password-reset/expiry-reminders")}, "version": {"0"},
			"enabled": {enabled}, "thresholds": {thresholds}}
	}
	p = c.post("/admin/password-reset/expiry-reminders", form("yes", "14, soon"))
	if p.Status != http.StatusUnprocessableEntity || !strings.Contains(p.Body, "is not a number of days from 1 to 90") ||
		!strings.Contains(p.Body, `value="14, soon"`) {
		t.Fatalf("bad thresholds: %d\n%s", p.Status, between(p.Body, "<main", "</main>"))
	}
	if st, meta, _ := s.rem.Settings(ctx); st.Enabled || meta.Version != 0 {
		t.Fatalf("a refused form changed the settings: %+v", st)
	}
	p = c.post("/admin/password-reset/expiry-reminders", form("yes", "3 10"))
	if p.Status != http.StatusSeeOther {
		t.Fatalf("save: %d\n%s", p.Status, between(p.Body, "<main", "</main>"))
	}
	if p = c.get("/admin/password-reset/expiry-reminders"); !strings.Contains(p.Body, `value="10, 3"`) || !strings.Contains(p.Body, "Saved expiry reminders.") {
		t.Fatalf("after save:\n%s", between(p.Body, "<main", "</main>"))
	}
	if rows, _ := s.db.RecentAudit(ctx, audit.ActivityUpdateExpiryReminders, 5); len(rows) != 1 || !strings.Contains(rows[0].Details, `"10, 3"`) {
		t.Fatalf("audit: %+v", rows)
	}

	// Dry run: 10 days left is inside the 10-day threshold.
	p = c.get("/admin/password-reset/expiry-reminders?dry-run=1")
	main := between(p.Body, "<main", "</main>")
	if p.Status != http.StatusOK || !strings.Contains(main, `<td data-testid="due-login">`+user.Login+`</td>`) ||
		!strings.Contains(main, selfservice.Mask(user.Mail)) || strings.Contains(main, user.Mail) {
		t.Fatalf("dry run: %d\n%s", p.Status, main)
	}
	for _, m := range s.sink.Messages() {
		for _, to := range m.To {
			if to == user.Mail {
				t.Fatalf("the dry run mailed %s: %q", to, m.Subject)
			}
		}
	}

	h := s.client().signedIn(admins.HelpdeskAdmin)
	if p := h.get("/admin/password-reset/expiry-reminders?dry-run=1"); p.Status != http.StatusOK || strings.Contains(p.Body, user.Login) ||
		!strings.Contains(p.Body, `data-testid="read-only"`) {
		t.Fatalf("helpdesk view: %d\n%s", p.Status, between(p.Body, "<main", "</main>"))
	}
	hf := url.Values{"csrf_token": {h.csrf("/admin/password-reset/expiry-reminders")}, "version": {"1"}, "enabled": {"no"}, "thresholds": {"1"}}
	if p := h.post("/admin/password-reset/expiry-reminders", hf); p.Status != http.StatusForbidden {
		t.Fatalf("helpdesk save: %d", p.Status)
	}
}
