package handlers_test

import (
	"context"
	"html"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/writeback/writeback/services/admins"
	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/banned"
	"github.com/writeback/writeback/services/selfservice"
	"github.com/writeback/writeback/testbed"
)

// TestBannedPasswordsRefusedBeforeAnyWrite: on a self-service reset, a
// change and a helpdesk reset, a common password, a term of the
// organisation's list and one made of the person's own login are refused
// with a plain message naming the rule, nothing is written to the
// directory (the old password still binds) and nothing is recorded, as for
// a mistyped confirmation; a helpdesk reset may still set such a password
// as a temporary one the person must change.
func TestBannedPasswordsRefusedBeforeAnyWrite(t *testing.T) {
	env := testbed.Load(t)
	ctx := context.Background()
	for _, d := range directories(env) {
		t.Run(d.name, func(t *testing.T) {
			s := newSSPR(t, env, d, selfservice.Methods{Email: true})
			if _, err := s.banned.Save(ctx, audit.CommandLine, 0, banned.Settings{Common: true, Personal: true, Custom: []string{"Contoso"}}); err != nil {
				t.Fatal(err)
			}
			user := d.newUser(t, testbed.UserOptions{})
			weak := []struct {
				pw   string
				rule banned.Rule
			}{
				{"Winter2026!", banned.RuleCommon},
				{"C0ntoso2026!", banned.RuleCustom},
				{user.Login + "!1", banned.RulePersonal},
				{"ExampleCorp1!", banned.RulePersonal}, // the organisation's name (Customization)
			}
			unchanged := func(what, pw string) {
				t.Helper()
				if err := env.BindAs(t, d.dir, user.DN, user.Password); err != nil {
					t.Errorf("%s %q: the old password no longer binds: %v", what, pw, err)
				}
				if err := env.BindAs(t, d.dir, user.DN, pw); err == nil {
					t.Errorf("%s %q: the refused password binds", what, pw)
				}
			}

			// Self-service reset.
			c := s.client()
			flow := c.begin("reset", user.Login)
			s.verifyByEmail(t, c, flow, user.Mail)
			for _, w := range weak {
				p := c.step(flow, "password", url.Values{"password": {w.pw}, "confirm": {w.pw}})
				msg := html.EscapeString(banned.EmployeeMessage(w.rule))
				if p.Status != http.StatusUnprocessableEntity || !strings.Contains(p.Body, msg) {
					t.Errorf("reset with %q: %d, want %q\n%s", w.pw, p.Status, msg, between(p.Body, "<main", "</main>"))
				}
				if strings.Contains(strings.ToLower(p.Body), "contoso") {
					t.Errorf("reset with %q: the page names a banned term", w.pw)
				}
				unchanged("reset", w.pw)
			}
			if rows, _ := s.db.RecentAudit(ctx, audit.ActivityResetSelfService, 20); len(rows) != 0 {
				t.Errorf("refused passwords were recorded as resets: %+v", rows)
			}
			// The flow goes on: a good password is accepted.
			good := "Rst-" + testbed.RandomPassword()
			if p := c.step(flow, "password", url.Values{"password": {good}, "confirm": {good}}); p.Status != http.StatusSeeOther {
				t.Fatalf("good password after refusals: %d\n%s", p.Status, between(p.Body, "<main", "</main>"))
			}
			if err := env.BindAs(t, d.dir, user.DN, good); err != nil {
				t.Fatalf("bind with the good password: %v", err)
			}
			user.Password = good

			// Self-service change: refused on what was typed, before the
			// directory is asked.
			for _, w := range weak[:3] {
				p := c.post("/change", url.Values{"csrf_token": {c.csrf("/")}, "login": {user.Login}, "current": {user.Password}, "password": {w.pw}, "confirm": {w.pw}})
				if msg := html.EscapeString(banned.EmployeeMessage(w.rule)); p.Status != http.StatusUnprocessableEntity || !strings.Contains(p.Body, msg) {
					t.Errorf("change to %q: %d, want %q\n%s", w.pw, p.Status, msg, between(p.Body, "<main", "</main>"))
				}
				unchanged("change", w.pw)
			}

			// Helpdesk reset: refused with the rule (and the term: the
			// helpdesk may see the list), unless it is a temporary password.
			helpdesk := s.client().signedIn(admins.HelpdeskAdmin)
			resetPath := "/admin/users/" + url.PathEscape(user.Login) + "/reset"
			for _, w := range weak {
				p := helpdesk.post(resetPath, url.Values{"csrf_token": {helpdesk.csrf("/")}, "password": {w.pw}, "confirm": {w.pw}})
				if msg := html.EscapeString(banned.HelpdeskMessage(banned.Refusal{Rule: w.rule, Term: "contoso"})); p.Status != http.StatusUnprocessableEntity || !strings.Contains(p.Body, msg) {
					t.Errorf("helpdesk reset to %q: %d, want %q\n%s", w.pw, p.Status, msg, between(p.Body, "<main", "</main>"))
				}
				unchanged("helpdesk reset", w.pw)
			}
			if rows, _ := s.db.RecentAudit(ctx, audit.ActivityResetByAdmin, 20); len(rows) != 0 {
				t.Errorf("refused helpdesk resets were recorded as resets: %+v", rows)
			}
			temp := url.Values{"csrf_token": {helpdesk.csrf("/")}, "password": {"Winter2026!"}, "confirm": {"Winter2026!"}, "must_change": {"yes"}}
			if p := helpdesk.post(resetPath, temp); p.Status != http.StatusSeeOther {
				t.Fatalf("temporary password: %d\n%s", p.Status, between(p.Body, "<main", "</main>"))
			}
			if d.typ == "ad" {
				// AD refuses a bind with a password that must be changed;
				// the reset shows in the account as read from the DC.
				if u, err := s.wb.Lookup(ctx, user.Login); err != nil || !u.MustChange {
					t.Errorf("after a temporary password: must change %v, %v", u.MustChange, err)
				}
			} else if err := env.BindAs(t, d.dir, user.DN, "Winter2026!"); err != nil {
				t.Errorf("bind with the temporary password: %v", err)
			}
			assertNoSecrets(t, s.harness, good, "Winter2026!", "C0ntoso2026!")
		})
	}
}

// TestPasswordProtectionPage: a Global Administrator sets the rules and the
// organisation's terms on "Password reset › Password protection" (audited
// with the terms added and removed); a bad term is refused with its
// reason and nothing saved; other roles see the page read-only and cannot
// post; a save on a stale version is refused.
func TestPasswordProtectionPage(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t)
	g := h.client().signedIn(admins.GlobalAdmin)
	const path = "/admin/password-reset/password-protection"
	p := g.get(path)
	if p.Status != http.StatusOK || !strings.Contains(p.Body, `name="common" value="yes" checked`) || !strings.Contains(p.Body, `name="personal" value="yes" checked`) ||
		!strings.Contains(sideNav(p.Body), `href="`+path+`"`) {
		t.Fatalf("page: %d\n%s", p.Status, between(p.Body, "<main", "</main>"))
	}
	save := func(c *client, version, custom string, common bool) page {
		f := url.Values{"csrf_token": {c.csrf(path)}, "version": {version}, "personal": {"yes"}, "custom": {custom}}
		if common {
			f.Set("common", "yes")
		}
		return c.post(path, f)
	}
	if p := save(g, "0", "Contoso\r\nFabrikam\n\ncontoso\n", true); p.Status != http.StatusSeeOther {
		t.Fatalf("save: %d\n%s", p.Status, between(p.Body, "<main", "</main>"))
	}
	st, meta, _ := h.banned.Settings(ctx)
	if !st.Common || !st.Personal || strings.Join(st.Custom, ",") != "Contoso,Fabrikam" || meta.Version != 1 {
		t.Fatalf("saved %+v %+v", st, meta)
	}
	if r, ok, _ := h.banned.Check(ctx, "Fabrikam2026!", nil); ok || r.Rule != banned.RuleCustom {
		t.Errorf("a saved term is not refused at once: %v %v", r, ok)
	}
	// A bad term: its reason, nothing saved, what was typed kept.
	p = save(g, "1", "Contoso\nab", false)
	if p.Status != http.StatusUnprocessableEntity || !strings.Contains(p.Body, html.EscapeString(`"ab" is too short`)) || !strings.Contains(p.Body, "Contoso\nab</textarea>") {
		t.Errorf("bad term: %d\n%s", p.Status, between(p.Body, "<main", "</main>"))
	}
	if st2, _, _ := h.banned.Settings(ctx); !st2.Common || len(st2.Custom) != 2 {
		t.Errorf("a refused save changed the settings: %+v", st2)
	}
	// Common off and Fabrikam removed: one audit row with what changed.
	if p := save(g, "1", "Contoso", false); p.Status != http.StatusSeeOther {
		t.Fatalf("second save: %d", p.Status)
	}
	rows, _ := h.db.RecentAudit(ctx, audit.ActivityUpdatePasswordProtection, 5)
	if len(rows) != 2 || !strings.Contains(rows[0].Details, `"terms_removed":["Fabrikam"]`) || !strings.Contains(rows[0].Details, `"common":{"old":true,"new":false}`) ||
		!strings.Contains(rows[1].Details, `"terms_added":["Contoso","Fabrikam"]`) {
		t.Errorf("audit rows: %+v", rows)
	}
	// A stale version.
	if p := save(g, "1", "Other", true); p.Status != http.StatusConflict || !strings.Contains(p.Body, "review and save again") {
		t.Errorf("stale save: %d\n%s", p.Status, between(p.Body, "<main", "</main>"))
	}
	// Other roles: read-only, and a post is refused.
	for _, role := range []admins.Role{admins.HelpdeskAdmin, admins.ReportsReader} {
		c := h.client().signedIn(role)
		if p := c.get(path); p.Status != http.StatusOK || !strings.Contains(p.Body, `data-testid="read-only"`) || strings.Contains(p.Body, `data-testid="save"`) {
			t.Errorf("%s GET: %d", role, p.Status)
		}
		if p := save(c, "2", "Sneaky", true); p.Status != http.StatusForbidden {
			t.Errorf("%s POST: %d", role, p.Status)
		}
	}
	if st, _, _ := h.banned.Settings(ctx); strings.Join(st.Custom, ",") != "Contoso" {
		t.Errorf("after refused posts: %+v", st)
	}
}
