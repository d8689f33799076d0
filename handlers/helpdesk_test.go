package handlers_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/writeback/writeback/services/admins"
	"github.com/writeback/writeback/services/selfservice"
	"github.com/writeback/writeback/store"
	"github.com/writeback/writeback/testbed"
)

// TestHelpdeskSelfServiceTools: on a user's page the helpdesk sees what the
// person registered (type, where codes go masked, when; never a secret),
// removes one method or all of them — the person is told by e-mail, and
// self-service no longer offers them —, and lifts a block from
// self-service; each step is audited. Helpdesk Administrators start on
// Directory users.
func TestHelpdeskSelfServiceTools(t *testing.T) {
	env := testbed.Load(t)
	d := directories(env)[1]
	s := newSSPR(t, env, d, selfservice.Methods{Email: true, App: true, Questions: true})
	ctx := context.Background()
	user := d.newUser(t, testbed.UserOptions{})

	// The person registers an app and questions.
	secret := s.registerApp(t, user)
	s.registerQuestions(t, user)

	// A Helpdesk Administrator starts on Directory users, and sees them.
	hd := s.client().signedIn(admins.HelpdeskAdmin)
	if p := hd.get("/admin/"); p.Status != http.StatusSeeOther || p.Location != "/admin/users" {
		t.Errorf("helpdesk start: %d %q", p.Status, p.Location)
	}
	page := hd.get("/admin/users/" + url.PathEscape(user.Login))
	for _, want := range []string{`data-testid="method-app"`, `data-testid="method-questions"`, "3 questions", "Authenticator app code"} {
		if !strings.Contains(page.Body, want) {
			t.Errorf("user page lacks %q\n%s", want, between(page.Body, `data-testid="methods"`, "</section>"))
		}
	}
	if strings.Contains(page.Body, secret) || strings.Contains(page.Body, "Rex") {
		t.Error("the user page shows a secret")
	}

	// Remove the app: gone from the page and from the methods table; the
	// person is mailed; audited.
	p := hd.post("/admin/users/"+url.PathEscape(user.Login)+"/methods/remove", url.Values{"csrf_token": {hd.csrf("/admin/users")}, "method": {"app"}})
	if p.Status != http.StatusSeeOther {
		t.Fatalf("remove app: %d\n%s", p.Status, between(p.Body, "<main", "</main>"))
	}
	page = hd.get("/admin/users/" + url.PathEscape(user.Login))
	if strings.Contains(page.Body, `data-testid="method-app"`) || !strings.Contains(page.Body, "Removed 1 method of") {
		t.Errorf("after removing the app:\n%s", between(page.Body, "<main", "</main>"))
	}
	if regs, err := s.db.Methods(ctx, userID(t, s, user)); err != nil || len(regs) != 1 || regs[0].Method != "questions" {
		t.Errorf("methods left: %+v %v", regs, err)
	}
	if n := s.sink.WaitFor(t, user.Mail, 10*time.Second); !strings.Contains(n.Text, "removed what you had registered") || !strings.Contains(n.Text, "Authenticator app code") {
		t.Errorf("notice:\n%s", n.Text)
	}
	rows, err := s.db.RecentAudit(ctx, selfservice.ActivityRemoveMethods, 5)
	if err != nil || len(rows) != 1 || rows[0].ActorType != "admin" || !strings.Contains(rows[0].Details, "Authenticator app code") {
		t.Errorf("audit: %+v %v", rows, err)
	}

	// A block is shown and lifted; the failed verifications are forgotten.
	uid := userID(t, s, user)
	if err := s.db.InTx(ctx, func(tx *store.Tx) error { return tx.Block(ctx, uid, time.Now().Add(time.Hour).UnixMilli()) }); err != nil {
		t.Fatal(err)
	}
	if page := hd.get("/admin/users/" + url.PathEscape(user.Login)); !strings.Contains(page.Body, `data-testid="blocked"`) {
		t.Fatal("the block is not shown")
	}
	p = hd.post("/admin/users/"+url.PathEscape(user.Login)+"/unblock", url.Values{"csrf_token": {hd.csrf("/admin/users")}})
	if p.Status != http.StatusSeeOther {
		t.Fatalf("lift: %d", p.Status)
	}
	if until, err := s.db.BlockedUntil(ctx, uid); err != nil || until != 0 {
		t.Errorf("still blocked until %d (%v)", until, err)
	}
	if page := hd.get("/admin/users/" + url.PathEscape(user.Login)); strings.Contains(page.Body, `data-testid="blocked"`) || !strings.Contains(page.Body, "Lifted the block") {
		t.Error("the page after lifting the block")
	}
	if rows, _ := s.db.RecentAudit(ctx, selfservice.ActivityLiftBlock, 5); len(rows) != 1 {
		t.Errorf("lift events: %d", len(rows))
	}

	// Remove all; removing again says there is nothing.
	p = hd.post("/admin/users/"+url.PathEscape(user.Login)+"/methods/remove", url.Values{"csrf_token": {hd.csrf("/admin/users")}, "method": {""}})
	if p.Status != http.StatusSeeOther {
		t.Fatalf("remove all: %d", p.Status)
	}
	if page := hd.get("/admin/users/" + url.PathEscape(user.Login)); !strings.Contains(page.Body, `data-testid="no-methods"`) {
		t.Error("methods still listed after removing all")
	}
	p = hd.post("/admin/users/"+url.PathEscape(user.Login)+"/methods/remove", url.Values{"csrf_token": {hd.csrf("/admin/users")}, "method": {"app"}})
	if p.Status != http.StatusNotFound || !strings.Contains(p.Body, "Nothing of that is registered") {
		t.Errorf("removing what is gone: %d", p.Status)
	}

	// A Reports Reader cannot.
	rr := s.client().signedIn(admins.ReportsReader)
	if p := rr.post("/admin/users/"+url.PathEscape(user.Login)+"/unblock", url.Values{"csrf_token": {rr.csrf("/admin/security")}}); p.Status != http.StatusForbidden {
		t.Errorf("a Reports Reader's lift: %d", p.Status)
	}
}

// userID is the directory ID self-service keys a user by.
func userID(t *testing.T, s *sspr, u testbed.TestUser) string {
	t.Helper()
	du, err := s.wb.Lookup(context.Background(), u.Login)
	if err != nil {
		t.Fatal(err)
	}
	return du.ID
}
