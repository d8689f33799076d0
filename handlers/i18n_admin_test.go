package handlers_test

import (
	"context"
	"html"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/text/language"

	"github.com/writeback/writeback/services/admins"
	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/i18n"
	"github.com/writeback/writeback/services/selfservice"
	"github.com/writeback/writeback/testbed"
)

// shown is a catalogue message as a page shows it (escaped).
func shown(tag language.Tag, key string, args ...any) string {
	return html.EscapeString(i18n.In(tag, key, args...))
}

// leftoverEnglish lists the texts of body that the catalogue translates into
// tag but that are there in English: an element's whole text equal to a key
// whose translation differs.
func leftoverEnglish(tag language.Tag, body string) []string {
	var out []string
	for _, k := range i18n.Keys(tag) {
		e, _ := i18n.Translation(tag, k)
		if e.Plural != nil || e.Text == k || strings.Contains(k, "%") {
			continue
		}
		if esc := html.EscapeString(k); strings.Contains(body, ">"+esc+"<") || strings.Contains(body, "> "+esc+" <") {
			out = append(out, k)
		}
	}
	return out
}

// TestAdminPagesInReaderLanguage: every administrator page of the admin1
// area, fetched by a browser that asks for German, French or Spanish, shows
// its headings, labels and messages in that language and none of the
// catalogue's texts in English.
func TestAdminPagesInReaderLanguage(t *testing.T) {
	env := testbed.Load(t)
	d := directories(env)[1]
	s := newSSPR(t, env, d, selfservice.Methods{Email: true, App: true, Questions: true})
	user := d.newUser(t, testbed.UserOptions{})
	s.registerApp(t, user)
	s.secondFactorOptional(t)
	userPath := "/admin/users/" + url.PathEscape(user.Login)

	// Something in the audit log for the event and correlation pages.
	rows, err := s.db.RecentAudit(context.Background(), "", 1)
	if err != nil || len(rows) == 0 {
		t.Fatalf("no audit event: %v", err)
	}
	eventPath := "/admin/audit/" + strconv.FormatInt(rows[0].ID, 10)

	pages := []struct {
		path string
		keys []string // shown in the reader's language
		// crawl: the page holds no canonical data that equals a key (the
		// audit pages show stored names as they are), so any text of the
		// catalogue in English on it is a leftover.
		crawl bool
	}{
		{"/admin/password-reset/on-premises-integration", []string{"Before people can reset their password", "On-premises writeback service",
			"Write back passwords to your on-premises directory", "Allow users to unlock accounts without resetting their password"}, true},
		{"/admin/password-reset/properties", []string{"Self service password reset enabled", "Requests per network address",
			"Ask for a proof-of-work check after repeated attempts?", "Choose who may use self-service password reset, how often one network address may try, and when scripts must pay for their tries."}, true},
		{"/admin/password-reset/authentication-methods", []string{"Methods available to users", "Security questions", "Number of methods required to reset"}, true},
		{"/admin/password-reset/registration", []string{"Number of days before users are asked to re-confirm their authentication information", "0 means never."}, true},
		{"/admin/password-reset/notifications", []string{"Notify users on password resets?", "Notify all admins when other admins reset their passwords?"}, true},
		{"/admin/password-reset/customization", []string{"Helpdesk link, e-mail address or phone number", "Organisation name", "Default language"}, true},
		{"/admin/password-reset/mail-server", []string{"SMTP server", "Sender address", "Send test mail"}, true},
		{"/admin/directory", []string{"How Writeback reaches your directory", "Connection security", "Domain/OU filtering", "Test connection"}, true},
		{"/admin/users", []string{"User name, e-mail address or name", "Search"}, true},
		{"/admin/users?q=" + url.QueryEscape(user.Login), []string{"User name"}, true},
		{userPath, []string{"Distinguished name", "Unlock", "Reset password", "Require the user to change the password at next sign-in", "Registered methods", "Remove all"}, true},
		{"/admin/administrators", []string{"Add an administrator", "Second factor at sign-in", "Require a second factor of Global Administrators", "Global Administrator"}, true},
		{"/admin/security", []string{"Second factors", "You sign in with your password alone.", "Add a sign-in method"}, true},
		{"/admin/security/add", []string{"Authenticator app", "Code the app shows", "Add the app", "Back to your sign-in methods"}, true},
		{"/admin/reports", []string{"Registration", "People per registered method", "Most frequent reasons of failures", "Blocked from self-service now", "Self-service resets"}, true},
		{"/admin/audit", []string{"Date range", "Last 7 days", "All categories", "All activities", "Apply filters", "Category", "Activity", "Result", "Retention"}, false},
		{eventPath, []string{"Actor type", "Target type", "Correlation ID", "Back to the audit log"}, false},
		{"/admin/does-not-exist", []string{"Page not found", "Go to the start page"}, true},
	}
	for _, tc := range []struct {
		lang string
		tag  language.Tag
	}{{"de-DE,de;q=0.9", i18n.German}, {"fr-FR,fr;q=0.9", i18n.French}, {"es-ES,es;q=0.9", i18n.Spanish}} {
		t.Run(i18n.Code(tc.tag), func(t *testing.T) {
			c := s.client().speaking(tc.lang)
			// The sign-in page, before signing in.
			login := c.get("/login")
			for _, k := range []string{"Sign in", "Sign in to administer Writeback.", "E-mail address", "Password"} {
				if i18n.In(tc.tag, k) == k {
					t.Errorf("no translation of %q", k)
				} else if !strings.Contains(login.Body, shown(tc.tag, k)) {
					t.Errorf("/login lacks %q", i18n.In(tc.tag, k))
				}
			}
			if left := leftoverEnglish(tc.tag, login.Body); len(left) > 0 {
				t.Errorf("/login: English left: %q", left)
			}
			c.signedIn(admins.GlobalAdmin)
			for _, pg := range pages {
				p := c.get(pg.path)
				if p.Status != http.StatusOK && pg.path != "/admin/does-not-exist" {
					t.Errorf("%s: status %d", pg.path, p.Status)
					continue
				}
				if !strings.Contains(p.Body, `<html lang="`+i18n.Code(tc.tag)+`"`) {
					t.Errorf("%s: not served as %s", pg.path, i18n.Code(tc.tag))
				}
				for _, k := range pg.keys {
					if i18n.In(tc.tag, k) == k {
						t.Errorf("%s: no translation of %q", pg.path, k)
					} else if !strings.Contains(p.Body, shown(tc.tag, k)) {
						t.Errorf("%s lacks %q (%q)", pg.path, i18n.In(tc.tag, k), k)
					}
				}
				if pg.crawl {
					if left := leftoverEnglish(tc.tag, p.Body); len(left) > 0 {
						t.Errorf("%s: English left: %q", pg.path, left)
					}
				}
			}
		})
	}
}

// TestPolicyValidationInReaderLanguage: a bad value on a policy page is
// refused with the field's message in the reader's language, and the stored
// policy stays as it was.
func TestPolicyValidationInReaderLanguage(t *testing.T) {
	h := newHarness(t)
	c := h.client().speaking("de").signedIn(admins.GlobalAdmin)
	ctx := context.Background()
	for _, tc := range []struct {
		name, path string
		form       url.Values
		field      string
		want, not  string
	}{
		{"not a number", "/admin/password-reset/registration", url.Values{"reconfirm_days": {"bald"}}, "reconfirm_days",
			i18n.In(i18n.German, "Enter a whole number."), "Enter a whole number."},
		{"limit out of range", "/admin/password-reset/properties",
			url.Values{"enabled": {"all"}, "public_per_minute": {"100000"}, "signin_per_minute": {""}, "challenge": {"yes"}, "challenge_after": {""}},
			"public_per_minute", i18n.In(i18n.German, "Enter a whole number from 1 to %d, or leave it empty for the server's default.", selfservice.MaxPerMinute),
			"or leave it empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before, meta, err := h.ss.Policy(ctx)
			if err != nil {
				t.Fatal(err)
			}
			form := url.Values{"csrf_token": {c.csrf(tc.path)}, "version": {strconv.FormatInt(meta.Version, 10)}}
			for k, v := range tc.form {
				form[k] = v
			}
			p := c.post(tc.path, form)
			if p.Status != http.StatusUnprocessableEntity {
				t.Fatalf("status %d", p.Status)
			}
			errHTML := between(p.Body, `id="`+tc.field+`-error"`, "</p>")
			if !strings.Contains(errHTML, html.EscapeString(tc.want)) || strings.Contains(p.Body, tc.not) {
				t.Errorf("field message %q, want %q", errHTML, tc.want)
			}
			if !strings.Contains(p.Body, shown(i18n.German, "Some values need your attention.")) && !strings.Contains(p.Body, shown(i18n.German, "There is a problem")) {
				t.Errorf("no German summary of the problem")
			}
			after, meta2, err := h.ss.Policy(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if meta2.Version != meta.Version || after.ReconfirmDays != before.ReconfirmDays || after.PublicPerMinute != before.PublicPerMinute {
				t.Errorf("the refused save changed the policy: %+v (version %d) → %+v (version %d)", before, meta.Version, after, meta2.Version)
			}
		})
	}
}

// TestAuditStaysCanonicalForAGermanReader: what a German reader does is
// recorded in English; the audit page in German puts German labels around
// the same canonical data, filters by the canonical names, and exports them
// as they are stored.
func TestAuditStaysCanonicalForAGermanReader(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	de := h.client().speaking("de-DE,de").signedIn(admins.GlobalAdmin)
	en := h.client().signedIn(admins.GlobalAdmin)

	_, meta, err := h.ss.Policy(ctx)
	if err != nil {
		t.Fatal(err)
	}
	const path = "/admin/password-reset/registration"
	p := de.post(path, url.Values{"csrf_token": {de.csrf(path)}, "version": {strconv.FormatInt(meta.Version, 10)}, "reconfirm_days": {"45"}})
	if p.Status != http.StatusSeeOther {
		t.Fatalf("save: %d", p.Status)
	}
	if p := de.get(path); !strings.Contains(p.Body, shown(i18n.German, "Saved the %s settings.", i18n.In(i18n.German, "Registration"))) {
		t.Errorf("no German confirmation: %s", between(p.Body, `data-testid="flash"`, "</div>"))
	}

	// Stored in English.
	rows, err := h.db.RecentAudit(ctx, audit.ActivityUpdateSSPRPolicy, 1)
	if err != nil || len(rows) != 1 {
		t.Fatalf("audit: %v %v", rows, err)
	}
	e := rows[0]
	if e.Category != audit.CategoryPolicy || e.Result != audit.Success || !strings.Contains(e.Details, "reconfirm_days") {
		t.Errorf("stored event: %+v", e)
	}
	for _, german := range []string{"Registrierung", "Richtlinie", "Gespeichert", "Erfolg"} {
		if strings.Contains(e.Details+e.TargetName+e.Reason+e.Activity+e.Category, german) {
			t.Errorf("the stored event holds German %q: %+v", german, e)
		}
	}

	// The page in German: German labels, canonical filter values.
	q := "/admin/audit?activity=" + url.QueryEscape(audit.ActivityUpdateSSPRPolicy)
	list := de.get(q)
	if list.Status != http.StatusOK {
		t.Fatalf("audit page: %d", list.Status)
	}
	label := shown(i18n.German, audit.ActivityUpdateSSPRPolicy)
	for _, want := range []string{
		`<th scope="col">` + shown(i18n.German, "Activity") + `</th>`, `<th scope="col">` + shown(i18n.German, "Category") + `</th>`,
		`<td>` + label + `</td>`, `<td>` + shown(i18n.German, audit.CategoryPolicy) + `</td>`,
		`value="` + html.EscapeString(audit.ActivityUpdateSSPRPolicy) + `" selected>` + label + `</option>`,
		shown(i18n.German, "Apply filters"), shown(i18n.German, "Success"),
	} {
		if !strings.Contains(list.Body, want) {
			t.Errorf("German audit page lacks %q", want)
		}
	}
	if strings.Contains(list.Body, "<td>"+audit.ActivityUpdateSSPRPolicy+"</td>") {
		t.Error("the German audit table shows the activity in English")
	}
	if label == html.EscapeString(audit.ActivityUpdateSSPRPolicy) {
		t.Fatal("the activity has no German label")
	}
	// The same filter finds the same rows in either language.
	if n, m := strings.Count(list.Body, `data-testid="audit-row"`), strings.Count(en.get(q).Body, `data-testid="audit-row"`); n == 0 || n != m {
		t.Error("the German and the English page list different rows")
	}

	// The event: German field names, stored values.
	ev := de.get("/admin/audit/" + strconv.FormatInt(e.ID, 10))
	for _, want := range []string{"<dt>" + shown(i18n.German, "Activity") + "</dt>", "<dd>" + audit.ActivityUpdateSSPRPolicy + "</dd>",
		"<dt>" + shown(i18n.German, "Category") + "</dt>", "<dd>" + audit.CategoryPolicy + "</dd>"} {
		if !strings.Contains(ev.Body, want) {
			t.Errorf("event page lacks %q", want)
		}
	}

	// The export is the same whoever reads it: English, canonical.
	exp := "/admin/audit/export.csv?activity=" + url.QueryEscape(audit.ActivityUpdateSSPRPolicy)
	deCSV, enCSV := de.get(exp), en.get(exp)
	if deCSV.Status != http.StatusOK || !strings.Contains(deCSV.Body, audit.ActivityUpdateSSPRPolicy) || strings.Contains(deCSV.Body, i18n.In(i18n.German, audit.ActivityUpdateSSPRPolicy)) {
		t.Errorf("German export:\n%s", deCSV.Body)
	}
	if head := func(s string) string { return strings.SplitN(s, "\n", 2)[0] }; head(deCSV.Body) != head(enCSV.Body) {
		t.Errorf("export header differs by reader: %q vs %q", head(deCSV.Body), head(enCSV.Body))
	}
}
