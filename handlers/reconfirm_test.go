package handlers_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/selfservice"
	"github.com/writeback/writeback/testbed"
)

// TestReconfirmation: once what a person registered was confirmed longer
// ago than the policy's period, a /change ends by asking them to check it,
// and /register shows "Are these still right?" first; confirming starts the
// period again (audited). Before the period nothing is asked.
func TestReconfirmation(t *testing.T) {
	env := testbed.Load(t)
	d := directories(env)[1]
	s := newSSPR(t, env, d, selfservice.Methods{Email: true, Questions: true})
	ctx := context.Background()
	user := d.newUser(t, testbed.UserOptions{})
	_, meta, err := s.ss.Policy(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.ss.SavePolicy(ctx, audit.CommandLine, meta.Version, "Registration", func(p *selfservice.Policy) { p.ReconfirmDays = 30 }); err != nil {
		t.Fatal(err)
	}
	c := s.client()
	p := c.post("/register", url.Values{"csrf_token": {c.csrf("/")}, "login": {user.Login}, "password": {user.Password}})
	if p.Status != http.StatusSeeOther {
		t.Fatalf("register sign-in: %d", p.Status)
	}
	reg := p.Location
	qs := selfservice.DefaultPolicy().Questions[:3]
	if p := c.post(reg+"/questions", url.Values{"csrf_token": {c.csrf("/")}, "question": qs, "answer": {"Paris", "Rex the Dog", "Volvo"}}); p.Status != http.StatusSeeOther {
		t.Fatalf("questions: %d", p.Status)
	}
	if strings.Contains(c.get(reg).Body, `data-testid="stale"`) {
		t.Error("just registered, and asked to re-confirm")
	}
	change := func(cur, next string) page {
		t.Helper()
		c := s.client()
		return c.post("/change", url.Values{"csrf_token": {c.csrf("/")}, "login": {user.Login}, "current": {cur}, "password": {next}, "confirm": {next}})
	}
	pw2 := "Fresh-" + testbed.RandomPassword()
	if p := change(user.Password, pw2); p.Status != http.StatusSeeOther || p.Location != "/change?done=1" {
		t.Fatalf("change before the period: %d %q", p.Status, p.Location)
	}

	// 31 days later (the registration's date moved back).
	uid := userID(t, s, user)
	if _, err := s.db.SQL().ExecContext(ctx, `UPDATE sspr_methods SET confirmed_ms = ? WHERE user_id = ?`, time.Now().AddDate(0, 0, -31).UnixMilli(), uid); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond) // pwdChangedTime counts seconds: two changes apart
	pw3 := "Later-" + testbed.RandomPassword()
	p = change(pw2, pw3)
	if p.Status != http.StatusSeeOther || p.Location != "/change?done=1&reconfirm=1" {
		t.Fatalf("change after the period: %d %q\n%s", p.Status, p.Location, between(p.Body, "<main", "</main>"))
	}
	done := s.client().get(p.Location)
	if !strings.Contains(done.Body, `data-testid="done"`) || !strings.Contains(done.Body, `data-testid="reconfirm"`) || !strings.Contains(done.Body, `href="/register"`) {
		t.Errorf("done page:\n%s", between(done.Body, "<main", "</main>"))
	}

	c = s.client()
	p = c.post("/register", url.Values{"csrf_token": {c.csrf("/")}, "login": {user.Login}, "password": {pw3}})
	if p.Status != http.StatusSeeOther {
		t.Fatalf("register sign-in with the new password: %d", p.Status)
	}
	reg = p.Location
	page := c.get(reg)
	if i, j := strings.Index(page.Body, `data-testid="stale"`), strings.Index(page.Body, `data-testid="reg-email"`); i < 0 || (j >= 0 && j < i) {
		t.Fatalf("the re-confirmation does not come first:\n%s", between(page.Body, "<main", "</main>"))
	}
	if p := c.post(reg+"/confirm", url.Values{"csrf_token": {c.csrf("/")}}); p.Status != http.StatusSeeOther {
		t.Fatalf("confirm: %d", p.Status)
	}
	if page := c.get(reg); strings.Contains(page.Body, `data-testid="stale"`) || !strings.Contains(page.Body, "your methods are confirmed") {
		t.Errorf("after confirming:\n%s", between(page.Body, "<main", "</main>"))
	}
	regs, err := s.db.Methods(ctx, uid)
	if err != nil || len(regs) != 1 || time.Since(time.UnixMilli(regs[0].ConfirmedMS)) > time.Minute {
		t.Errorf("confirmation not recorded: %+v %v", regs, err)
	}
	rows, err := s.db.RecentAudit(ctx, audit.ActivityRegisterSecurity, 10)
	found := false
	for _, e := range rows {
		found = found || strings.Contains(e.Details, "confirm registered methods")
	}
	if err != nil || !found {
		t.Errorf("no audit event of the confirmation (%v)", err)
	}
}
