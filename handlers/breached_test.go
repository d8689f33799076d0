package handlers_test

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"html"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/writeback/writeback/services/admins"
	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/banned"
	"github.com/writeback/writeback/services/selfservice"
	"github.com/writeback/writeback/testbed"
)

// TestBreachedPasswordsRefused: a Global Administrator names an offline
// breached-password list on the Password protection page (a path that is
// not such a list is refused next to the field, nothing saved); then a
// password on the list, one the other rules let through, is refused on a
// self-service change and a helpdesk reset with the breached rule's
// message, and nothing is written to the directory.
func TestBreachedPasswordsRefused(t *testing.T) {
	env := testbed.Load(t)
	ctx := context.Background()
	for _, d := range directories(env) {
		t.Run(d.name, func(t *testing.T) {
			s := newSSPR(t, env, d, selfservice.Methods{Email: true})
			leaked := "Qz-" + testbed.RandomPassword() // strong, but "leaked"
			var lines []string
			for _, pw := range []string{leaked, "password", "123456", "Another-Leak-99"} {
				h := sha1.Sum([]byte(pw))
				lines = append(lines, strings.ToUpper(hex.EncodeToString(h[:]))+":3")
			}
			sort.Strings(lines)
			list := filepath.Join(t.TempDir(), "pwnedpasswords.txt")
			if err := os.WriteFile(list, []byte(strings.Join(lines, "\r\n")+"\r\n"), 0o600); err != nil {
				t.Fatal(err)
			}

			const path = "/admin/password-reset/password-protection"
			g := s.client().signedIn(admins.GlobalAdmin)
			form := func(file string) url.Values {
				return url.Values{"csrf_token": {g.csrf(path)}, "version": {"0"}, "common": {"yes"}, "personal": {"yes"}, "breached_file": {file}}
			}
			p := g.post(path, form(filepath.Join(t.TempDir(), "missing.txt")))
			if p.Status != http.StatusUnprocessableEntity || !strings.Contains(p.Body, "This breached-password list cannot be used") {
				t.Fatalf("missing list: %d\n%s", p.Status, between(p.Body, "<main", "</main>"))
			}
			if st, _, _ := s.banned.Settings(ctx); st.BreachedFile != "" {
				t.Fatalf("a refused list was saved: %+v", st)
			}
			if p := g.post(path, form(list)); p.Status != http.StatusSeeOther {
				t.Fatalf("save: %d\n%s", p.Status, between(p.Body, "<main", "</main>"))
			}
			if p := g.get(path); !strings.Contains(p.Body, `data-testid="breached-status"`) || !strings.Contains(p.Body, "In use: sorted file of SHA-1 hashes") {
				t.Fatalf("status line:\n%s", between(p.Body, "<main", "</main>"))
			}

			user := d.newUser(t, testbed.UserOptions{})
			unchanged := func(what string) {
				t.Helper()
				if err := env.BindAs(t, d.dir, user.DN, user.Password); err != nil {
					t.Errorf("%s: the old password no longer binds: %v", what, err)
				}
			}
			c := s.client()
			p = c.post("/change", url.Values{"csrf_token": {c.csrf("/")}, "login": {user.Login}, "current": {user.Password}, "password": {leaked}, "confirm": {leaked}})
			if msg := html.EscapeString(banned.EmployeeMessage(banned.RuleBreached)); p.Status != http.StatusUnprocessableEntity || !strings.Contains(p.Body, msg) {
				t.Errorf("change: %d, want %q\n%s", p.Status, msg, between(p.Body, "<main", "</main>"))
			}
			unchanged("change")
			helpdesk := s.client().signedIn(admins.HelpdeskAdmin)
			resetPath := "/admin/users/" + url.PathEscape(user.Login) + "/reset"
			p = helpdesk.post(resetPath, url.Values{"csrf_token": {helpdesk.csrf("/")}, "password": {leaked}, "confirm": {leaked}})
			if msg := html.EscapeString(banned.HelpdeskMessage(banned.Refusal{Rule: banned.RuleBreached})); p.Status != http.StatusUnprocessableEntity || !strings.Contains(p.Body, msg) {
				t.Errorf("helpdesk reset: %d, want %q\n%s", p.Status, msg, between(p.Body, "<main", "</main>"))
			}
			unchanged("helpdesk reset")
			if rows, _ := s.db.RecentAudit(ctx, audit.ActivityResetByAdmin, 5); len(rows) != 0 {
				t.Errorf("a refused reset was recorded: %+v", rows)
			}
			assertNoSecrets(t, s.harness, leaked)
		})
	}
}
