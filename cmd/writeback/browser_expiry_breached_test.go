package main

import (
	"crypto/sha1"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/writeback/writeback/services/banned"
	"github.com/writeback/writeback/testbed"
	"github.com/writeback/writeback/testbed/browser"
)

// TestBrowserBreachedPasswordRefused: with the offline breached-password
// list set with `sspr banned breached`, a person who follows a reminder's
// link to /change and picks a password on the list reads the breached
// rule's message beside the field; the directory keeps the old password.
func TestBrowserBreachedPasswordRefused(t *testing.T) {
	env := testbed.Load(t)
	data := t.TempDir()
	selfServiceByEmail(t, env, data)
	user := env.NewADUser(t, testbed.UserOptions{})
	leaked := "Brw-" + testbed.RandomPassword()
	sum := sha1.Sum([]byte(leaked))
	list := filepath.Join(t.TempDir(), "pwnedpasswords.txt")
	if err := os.WriteFile(list, []byte(strings.ToUpper(hex.EncodeToString(sum[:]))+":12\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := cli(t, "", "sspr", "banned", "breached", list, "--data", data); code != 0 {
		t.Fatalf("sspr banned breached: %d %q %q", code, out, errOut)
	}
	s := startServer(t, data)
	ctx := browser.New(t)
	browser.Step(t, ctx, "change with a breached password",
		chromedp.Navigate("http://"+s.addr+"/change"), chromedp.WaitVisible(chromedp.ID("login")),
		chromedp.SendKeys(chromedp.ID("login"), user.Login), chromedp.SendKeys(chromedp.ID("current"), user.Password),
		chromedp.SendKeys(chromedp.ID("password"), leaked), chromedp.SendKeys(chromedp.ID("confirm"), leaked),
		chromedp.Click(chromedp.CSS(`[data-testid=change]`)), chromedp.WaitVisible(chromedp.ID("password-error")))
	browser.Shot(t, ctx, "breached-password-refused")
	if got := browser.Text(t, ctx, "#password-error"); got != banned.EmployeeMessage(banned.RuleBreached) {
		t.Errorf("refusal beside the field: %q", got)
	}
	if err := env.BindAs(t, env.AD, user.DN, user.Password); err != nil {
		t.Errorf("the old password no longer binds: %v", err)
	}
}

// TestBrowserExpiryReminders: a Global Administrator turns the reminders
// on in the browser and runs the dry run, which lists the member of the
// self-service group whose password expires in 6 days.
func TestBrowserExpiryReminders(t *testing.T) {
	env := testbed.Load(t)
	data, user := reminderDC(t, env, 6*24*time.Hour, nil,
		[]string{"admin", "policy", "--global-admin", "optional"})
	if code, _, errOut := cli(t, "a long admin password\n", "admin", "create", "--data", data, "--email", "ga@example.com", "--name", "Gina Admin", "--role", "global-admin"); code != 0 {
		t.Fatal(errOut)
	}
	s := startServer(t, data)
	ctx := browser.New(t)
	browser.Step(t, ctx, "sign in",
		chromedp.Navigate("http://"+s.addr+"/admin/password-reset/expiry-reminders"),
		chromedp.WaitVisible(chromedp.ID("email")),
		chromedp.SendKeys(chromedp.ID("email"), "ga@example.com"),
		chromedp.SendKeys(chromedp.ID("password"), "a long admin password"),
		chromedp.Click(chromedp.CSS(`[data-testid=sign-in]`)),
		chromedp.WaitVisible(chromedp.ID("thresholds")),
	)
	browser.Step(t, ctx, "turn on",
		chromedp.Click(chromedp.CSS(`label[for=enabled-yes]`)),
		chromedp.Click(chromedp.CSS(`[data-testid=save]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=flash]`)),
	)
	if got := browser.Text(t, ctx, `[data-testid=flash]`); got != "Saved expiry reminders." {
		t.Errorf("after save: %q", got)
	}
	browser.Step(t, ctx, "dry run", chromedp.Click(chromedp.CSS(`button[data-testid=dry-run]`)), chromedp.WaitVisible(chromedp.CSS(`[data-testid=due]`)))
	browser.Shot(t, ctx, "expiry-reminders-dry-run")
	if got := browser.Text(t, ctx, `table[data-testid=dry-run]`); !strings.Contains(got, user.Login) || !strings.Contains(got, "7 days") {
		t.Errorf("dry run table: %q", got)
	}
}
