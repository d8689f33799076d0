package web

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/a-h/templ"
)

// TestEveryNewPasswordFieldHasAMeter: each page where someone chooses a
// password (an employee's reset and change, the helpdesk's reset, an
// administrator's setup, reset link and new administrator) has the strength
// meter for that field and loads its scripts; fields for secrets of other
// systems (the directory's service account, the mail server) have none.
func TestEveryNewPasswordFieldHasAMeter(t *testing.T) {
	global := &Viewer{Name: "Ada", Role: "global-admin"}
	banned := Meter{Field: "password", Banned: true, Common: true, Personal: []string{"Example Corp"}}
	pages := []struct {
		name   string
		c      templ.Component
		banned bool
	}{
		{"reset password step", StepPage(StepView{Step: "password", Kind: "reset", ID: "f", Rules: Rules{Has: true, MinLength: 7}, Meter: banned}), true},
		{"change", ChangePage(ChangeView{Rules: Rules{Has: true, MinLength: 7}, Meter: banned}), true},
		{"helpdesk reset", UserPage(UserView{Page: Page{Viewer: global}, CanAct: true, User: UserRow{Login: "alice"}, Meter: banned}), true},
		{"setup", SetupPage(SetupView{}), false},
		{"administrator reset link", ResetPasswordPage(ResetPasswordView{}), false},
		{"add administrator", AdminsPage(AdminsView{Page: Page{Viewer: global}}), false},
	}
	newPw := regexp.MustCompile(`<input id="([^"]+)" name="[^"]+" type="password"[^>]*autocomplete="new-password"`)
	for _, p := range pages {
		var b bytes.Buffer
		if err := p.c.Render(context.Background(), &b); err != nil {
			t.Fatalf("%s: %v", p.name, err)
		}
		html := b.String()
		ids := map[string]bool{}
		for _, m := range newPw.FindAllStringSubmatch(html, -1) {
			if m[1] != "confirm" {
				ids[m[1]] = true
			}
		}
		if len(ids) == 0 {
			t.Errorf("%s: no new-password field found", p.name)
		}
		for id := range ids {
			if !strings.Contains(html, `data-meter="`+id+`"`) {
				t.Errorf("%s: the field %s has no meter", p.name, id)
			}
		}
		for _, js := range []string{`src="/static/zxcvbn.js"`, `src="/static/meter.js"`} {
			if !strings.Contains(html, js) {
				t.Errorf("%s: %s is not loaded", p.name, js)
			}
		}
		if got := strings.Contains(html, `data-testid="rule-banned"`); got != p.banned {
			t.Errorf("%s: banned rules listed %v, want %v", p.name, got, p.banned)
		}
	}
}
