package main

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/writeback/writeback/services/banned"
	"github.com/writeback/writeback/services/mail/mailtest"
	"github.com/writeback/writeback/testbed"
	"github.com/writeback/writeback/testbed/browser"
)

// selfServiceByEmail sets up the data folder data as an administrator would
// with the commands: the testbed's AD, both switches on, self-service for
// everyone by e-mail code, mailed through the SMTP sink it returns.
func selfServiceByEmail(t *testing.T, env testbed.Env, data string) *mailtest.Sink {
	t.Helper()
	pw := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pw, []byte(env.AD.BindPassword+"\n"), 0o600)
	sink := mailtest.Start(t, mailtest.Options{})
	host, port := sink.Addr()
	for _, args := range [][]string{
		{"directory", "set", "--type", "ad", "--url", env.AD.URL, "--ca-file", env.CAFile, "--bind-dn", env.AD.BindDN,
			"--bind-password-file", pw, "--base-dn", env.AD.PeopleDN, "--password-writeback", "on"},
		{"settings", "set", "--writeback", "yes", "--unlock", "yes"},
		{"sspr", "set", "--enabled", "all", "--methods", "email", "--required", "1", "--helpdesk", "help@example.com", "--org-name", "Example Corp"},
		{"mail", "set", "--host", host, "--port", strconv.Itoa(port), "--tls", "none", "--from", "portal@example.com"},
	} {
		if code, out, errOut := cli(t, "", append(args, "--data", data)...); code != 0 {
			t.Fatalf("%v: %s %s", args, out, errOut)
		}
	}
	return sink
}

// resetUpToNewPassword goes, from the start page the browser shows, through
// a reset by e-mailed code for user until the new password is typed (not
// yet sent), checking that the script ticks the rules; it returns the code.
func resetUpToNewPassword(t *testing.T, ctx context.Context, sink *mailtest.Sink, user testbed.TestUser, newPw string) string {
	t.Helper()
	browser.Step(t, ctx, "who are you",
		chromedp.Click(chromedp.CSS(`[data-testid=go-reset]`)),
		chromedp.WaitVisible(chromedp.ID("login")),
		chromedp.SendKeys(chromedp.ID("login"), user.Login),
		chromedp.Click(chromedp.CSS(`[data-testid=next]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=choose]`)),
	)
	browser.Shot(t, ctx, "02-choose-method")
	browser.Step(t, ctx, "send code", chromedp.Click(chromedp.CSS(`[data-testid=choose]`)), chromedp.WaitVisible(chromedp.ID("code")))
	browser.Shot(t, ctx, "03-enter-code")
	m := sink.WaitFor(t, user.Mail, 15*time.Second)
	code := regexp.MustCompile(`\b\d{8}\b`).FindString(m.Text)
	if code == "" {
		t.Fatalf("no code in the mail:\n%s", m.Text)
	}
	browser.Step(t, ctx, "verify",
		chromedp.SendKeys(chromedp.ID("code"), code),
		chromedp.Click(chromedp.CSS(`[data-testid=verify]`)),
		chromedp.WaitVisible(chromedp.ID("password")),
	)
	// A common password is refused before anything is written, with the
	// rule in plain words beside the field.
	browser.Step(t, ctx, "try a common password",
		chromedp.SendKeys(chromedp.ID("password"), "Winter2026!"), chromedp.SendKeys(chromedp.ID("confirm"), "Winter2026!"),
		chromedp.Click(chromedp.CSS(`[data-testid=set-password]`)), chromedp.WaitVisible(chromedp.ID("password-error")))
	browser.Shot(t, ctx, "04-common-password-refused")
	if got := browser.Text(t, ctx, "#password-error"); got != banned.EmployeeMessage(banned.RuleCommon) {
		t.Errorf("refusal beside the field: %q", got)
	}
	browser.Step(t, ctx, "type a new password", chromedp.SendKeys(chromedp.ID("password"), newPw), chromedp.SendKeys(chromedp.ID("confirm"), newPw))
	browser.Shot(t, ctx, "04-new-password")
	// The rules beside the field tick as they are met (JavaScript).
	if !browser.Eval[bool](t, ctx, `document.getElementById("rule-length").classList.contains("met") && document.getElementById("rule-match").classList.contains("met")`) {
		t.Error("password rules were not ticked while typing")
	}
	return code
}

// TestBrowserSelfServiceReset is the story as an employee lives it:
// with both switches on, a person who forgot their password resets it in the
// browser with an e-mailed code and signs in to the directory with the new one.
func TestBrowserSelfServiceReset(t *testing.T) {
	env := testbed.Load(t)
	data := t.TempDir()
	sink := selfServiceByEmail(t, env, data)
	user := env.NewADUser(t, testbed.UserOptions{})
	env.LockAD(t, user)
	s := startServer(t, data)
	ctx := browser.New(t)

	browser.Step(t, ctx, "start page", chromedp.Navigate("http://"+s.addr+"/"), chromedp.WaitVisible(chromedp.CSS(`[data-testid=go-reset]`)))
	browser.Shot(t, ctx, "01-start")
	newPw := "Brw-" + testbed.RandomPassword()
	code := resetUpToNewPassword(t, ctx, sink, user, newPw)
	browser.Step(t, ctx, "set password", chromedp.Click(chromedp.CSS(`[data-testid=set-password]`)), chromedp.WaitVisible(chromedp.CSS(`[data-testid=done]`)))
	browser.Shot(t, ctx, "05-done")
	if got := browser.Text(t, ctx, "main"); !strings.Contains(got, "Your password has been reset") || !strings.Contains(got, "other devices") {
		t.Errorf("done page: %q", got)
	}
	if err := env.BindAs(t, env.AD, user.DN, newPw); err != nil {
		t.Errorf("bind with the new password: %v", err)
	}
	if env.ADLocked(t, user) {
		t.Error("still locked after the reset")
	}

	// An auditor finds the reset: filter, open it, follow its correlation, export.
	if code, _, errOut := cli(t, "a long auditor password\n", "admin", "create", "--data", data, "--email", "audit@example.com", "--name", "Ann Auditor", "--role", "reports-reader"); code != 0 {
		t.Fatal(errOut)
	}
	actx := browser.New(t)
	browser.Step(t, actx, "auditor signs in",
		chromedp.Navigate("http://"+s.addr+"/admin/audit"),
		chromedp.WaitVisible(chromedp.ID("email")),
		chromedp.SendKeys(chromedp.ID("email"), "audit@example.com"),
		chromedp.SendKeys(chromedp.ID("password"), "a long auditor password"),
		chromedp.Click(chromedp.CSS(`[data-testid=sign-in]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=audit-table]`)),
	)
	browser.Step(t, actx, "filter",
		chromedp.SetValue(chromedp.ID("activity"), "Reset password (self-service)"),
		chromedp.SetValue(chromedp.ID("result"), "success"),
		chromedp.Click(chromedp.CSS(`[data-testid=apply]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=audit-row]`)),
	)
	browser.Shot(t, actx, "06-audit-filtered")
	filtered := browser.Eval[string](t, actx, `location.href`)
	if got := browser.Text(t, actx, `[data-testid=count]`); !strings.Contains(got, "1–1 of 1") {
		t.Errorf("count %q", got)
	}
	if got := browser.Text(t, actx, `[data-testid=audit-table]`); !strings.Contains(got, user.Login) {
		t.Errorf("filtered table: %q", got)
	}
	browser.Step(t, actx, "open event",
		chromedp.Click(chromedp.CSS(`[data-testid=audit-row] a`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=correlation-link]`)),
	)
	browser.Step(t, actx, "open correlation",
		chromedp.Click(chromedp.CSS(`[data-testid=correlation-link]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=steps]`)),
	)
	browser.Shot(t, actx, "07-correlation")
	steps := browser.Text(t, actx, `[data-testid=steps]`)
	for _, want := range []string{"started reset", "verification code e-mailed", "verified with E-mail code", "Reset password (self-service)"} {
		if !strings.Contains(steps, want) {
			t.Errorf("correlation lacks %q:\n%s", want, steps)
		}
	}
	if strings.Contains(steps, code) || strings.Contains(steps, newPw) {
		t.Error("a code or password shows in the audit log")
	}
	browser.Step(t, actx, "back to the filtered list", chromedp.Navigate(filtered), chromedp.WaitVisible(chromedp.CSS(`[data-testid=export-csv]`)))
	csvText := browser.Eval[string](t, actx, `fetch(document.querySelector("[data-testid=export-csv]").href).then(r => r.text())`, chromedp.EvalAwaitPromise)
	if !strings.Contains(csvText, "Reset password (self-service)") || strings.Count(strings.TrimSpace(csvText), "\n") != 1 {
		t.Errorf("export of the filter:\n%s", csvText)
	}
}
