package main

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/writeback/writeback/testbed"
	"github.com/writeback/writeback/testbed/browser"
)

// TestBrowserDirectoryDoneWhen is the "Done when" of issue 3 as the two
// administrators live it, on each directory of the test bed: the Global
// Administrator points the portal at the directory, the checklist is green
// and both switches are Yes; then a Helpdesk Administrator finds a locked-out
// user, unlocks them and resets their password, and the new password works
// for an LDAP bind.
func TestBrowserDirectoryDoneWhen(t *testing.T) {
	env := testbed.Load(t)
	t.Setenv("WB_TEST_CHROMIUM", env.Chromium)
	cases := []struct {
		name, typ string
		dir       testbed.Directory
		newUser   func(testing.TB, testbed.UserOptions) testbed.TestUser
		lock      func(testing.TB, testbed.TestUser)
		locked    func(testing.TB, testbed.TestUser) bool
	}{
		{"ActiveDirectory", "ad", env.AD, env.NewADUser, env.LockAD, env.ADLocked},
		{"OpenLDAP", "openldap", env.LDAP, env.NewLDAPUser, env.LockLDAP, env.LDAPLocked},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			const (
				globalEmail, globalPW     = "ada@example.com", "a long admin password"
				helpdeskEmail, helpdeskPW = "hal@example.com", "a long helpdesk password"
			)
			data := t.TempDir()
			for _, a := range []struct{ email, name, role, pw string }{
				{globalEmail, "Ada Lovelace", "global-admin", globalPW},
				{helpdeskEmail, "Hal Desk", "helpdesk-admin", helpdeskPW},
			} {
				if code, out, errOut := cli(t, a.pw+"\n", "admin", "create", "--data", data, "--email", a.email, "--name", a.name, "--role", a.role); code != 0 {
					t.Fatalf("admin create %s: %d %s %s", a.role, code, out, errOut)
				}
			}
			user := tc.newUser(t, testbed.UserOptions{})
			tc.lock(t, user)
			s := startServer(t, data)
			base := "http://" + s.addr
			shot := numberedShots(t)

			// The Global Administrator connects the directory.
			ctx := browser.New(t)
			directorySignIn(t, ctx, base+"/admin/directory", globalEmail, globalPW, chromedp.ID("urls"))
			shot(ctx, "directory-empty")
			if got := browser.Text(t, ctx, `[data-testid=viewer]`); !strings.Contains(got, "Global Administrator") {
				t.Errorf("viewer %q", got)
			}
			fill := []chromedp.Action[chromedp.Void]{
				chromedp.SetValue(chromedp.ID("urls"), tc.dir.URL),
				chromedp.SetValue(chromedp.ID("security"), "ldaps"),
				// Pasted, as an administrator would: SetValue puts the whole PEM in at once.
				chromedp.SetValue(chromedp.ID("ca_pem"), env.CAPEM()),
				chromedp.SetValue(chromedp.ID("bind_dn"), tc.dir.BindDN),
				chromedp.SendKeys(chromedp.ID("bind_password"), tc.dir.BindPassword),
				chromedp.SetValue(chromedp.ID("base_dns"), tc.dir.PeopleDN),
				chromedp.Click(chromedp.CSS(`label[for=password_writeback-yes]`)),
			}
			if tc.typ == "ad" {
				fill = append([]chromedp.Action[chromedp.Void]{chromedp.SetValue(chromedp.ID("type"), "ad")}, fill...)
				browser.Step(t, ctx, "fill the directory form", fill...)
			} else {
				// The form starts with AD's defaults; the Detect button finds
				// OpenLDAP from the root DSE and swaps in its defaults.
				browser.Step(t, ctx, "fill the directory form", fill...)
				browser.Step(t, ctx, "detect the directory type",
					chromedp.Click(chromedp.CSS(`[data-testid=detect]`)),
					chromedp.WaitVisible(chromedp.CSS(`[data-testid=detected]`)),
				)
				shot(ctx, "directory-detected")
				if got := browser.Text(t, ctx, `[data-testid=detected]`); !strings.Contains(got, "OpenLDAP") {
					t.Errorf("detected %q", got)
				}
				if got := browser.Eval[string](t, ctx, `document.getElementById("type").value`); got != "openldap" {
					t.Errorf("type after detect %q", got)
				}
				if got := browser.Eval[string](t, ctx, `document.getElementById("login_attributes").value`); !strings.Contains(got, "uid") {
					t.Errorf("login attributes after detect %q", got)
				}
				for _, f := range []string{"urls", "ca_pem", "bind_dn", "base_dns"} {
					if browser.Eval[string](t, ctx, `document.getElementById("`+f+`").value`) == "" {
						t.Errorf("detect lost the %s field", f)
					}
				}
				// The password is write-only, so the re-rendered form does not
				// keep it: type it again, as an administrator must.
				if browser.Eval[string](t, ctx, `document.getElementById("bind_password").value`) == "" {
					browser.Step(t, ctx, "type the password again", chromedp.SendKeys(chromedp.ID("bind_password"), tc.dir.BindPassword))
				}
				if !browser.Eval[bool](t, ctx, `document.getElementById("password_writeback-yes").checked`) {
					t.Error("detect lost Password writeback: Yes")
					browser.Step(t, ctx, "password writeback yes", chromedp.Click(chromedp.CSS(`label[for=password_writeback-yes]`)))
				}
			}
			shot(ctx, "directory-filled")
			browser.Step(t, ctx, "save the directory connection",
				chromedp.Click(chromedp.CSS(`[data-testid=save]`)),
				chromedp.WaitVisible(chromedp.CSS(`[data-testid=flash]`)),
			)
			shot(ctx, "directory-saved")
			if got := browser.Text(t, ctx, `[data-testid=flash]`); !strings.Contains(got, "Saved the directory connection") {
				t.Errorf("flash after save %q", got)
			}
			if got := browser.Text(t, ctx, `[data-testid=password-state]`); !strings.Contains(got, "A password is stored") {
				t.Errorf("password state %q", got)
			}
			html := browser.Eval[string](t, ctx, `document.documentElement.outerHTML`)
			if strings.Contains(html, tc.dir.BindPassword) {
				t.Error("the service account password is in the page")
			}
			for f, want := range map[string]string{"type": tc.typ, "urls": tc.dir.URL, "bind_dn": tc.dir.BindDN, "base_dns": tc.dir.PeopleDN, "security": "ldaps"} {
				if got := browser.Eval[string](t, ctx, `document.getElementById("`+f+`").value`); got != want {
					t.Errorf("saved %s = %q, want %q", f, got, want)
				}
			}
			if !browser.Eval[bool](t, ctx, `document.getElementById("password_writeback-yes").checked`) {
				t.Error("Password writeback is not Yes after save")
			}

			browser.Step(t, ctx, "test the connection",
				chromedp.SendKeys(chromedp.ID("test_login"), user.Login),
				chromedp.Click(chromedp.CSS(`[data-testid=test]`)),
				chromedp.WaitVisible(chromedp.CSS(`[data-testid=checklist]`)),
			)
			shot(ctx, "checklist")
			if got := browser.Text(t, ctx, `[data-testid=checklist] h2`); !strings.Contains(got, "Every check passed") {
				t.Errorf("checklist is not green: %q\n%s", got, browser.Text(t, ctx, `[data-testid=checklist] table`))
			}

			browser.Step(t, ctx, "open on-premises integration",
				chromedp.Navigate(base+"/admin/password-reset/on-premises-integration"),
				chromedp.WaitVisible(chromedp.CSS(`[data-testid=service-panel]`)),
			)
			if got := browser.Text(t, ctx, `[data-testid=service-state]`); got != "Connected" {
				t.Errorf("service panel after a green test: %q", got)
			}
			browser.Step(t, ctx, "set both switches",
				chromedp.Click(chromedp.CSS(`label[for=writeback-yes]`)),
				chromedp.Click(chromedp.CSS(`label[for=unlock-yes]`)),
				chromedp.Click(chromedp.CSS(`[data-testid=save]`)),
				chromedp.WaitVisible(chromedp.CSS(`[data-testid=flash]`)),
			)
			shot(ctx, "switches-saved")
			if got := browser.Text(t, ctx, `[data-testid=flash]`); !strings.Contains(got, "Write back passwords: Yes. Unlock without resetting the password: Yes.") {
				t.Errorf("flash after switches %q", got)
			}

			// A Helpdesk Administrator, in a browser of their own, unlocks
			// and resets the locked-out user.
			hctx := browser.New(t)
			directorySignIn(t, hctx, base+"/admin/users", helpdeskEmail, helpdeskPW, chromedp.ID("q"))
			if got := browser.Text(t, hctx, `[data-testid=viewer]`); !strings.Contains(got, "Helpdesk Administrator") {
				t.Errorf("viewer %q", got)
			}
			browser.Step(t, hctx, "search the user",
				chromedp.SendKeys(chromedp.ID("q"), user.Login),
				chromedp.Click(chromedp.CSS(`[data-testid=search]`)),
				chromedp.WaitVisible(chromedp.CSS(`[data-testid=users]`)),
			)
			shot(hctx, "users-search")
			if got := browser.Text(t, hctx, `[data-testid=users] tbody`); !strings.Contains(got, user.Login) || !strings.Contains(got, "Locked") {
				t.Errorf("search result %q, want %s and Locked", got, user.Login)
			}
			browser.Step(t, hctx, "open the user",
				chromedp.Click(chromedp.CSS(fmt.Sprintf(`[data-testid=users] a[href="/admin/users/%s"]`, user.Login))),
				chromedp.WaitVisible(chromedp.CSS(`[data-testid=user-state]`)),
			)
			shot(hctx, "user-locked")
			if got := browser.Text(t, hctx, `[data-testid=state]`); !strings.Contains(got, "Locked") {
				t.Errorf("state %q, want Locked", got)
			}
			if got := browser.Text(t, hctx, `[data-testid=login]`); got != user.Login {
				t.Errorf("login %q", got)
			}
			if browser.Eval[bool](t, hctx, `document.querySelector("[data-testid=unlock]").disabled`) {
				t.Fatalf("Unlock is disabled: %q", browser.Eval[string](t, hctx, `(document.querySelector("[data-testid=why-not]")||{}).textContent||""`))
			}
			browser.Step(t, hctx, "unlock",
				chromedp.Click(chromedp.CSS(`[data-testid=unlock]`)),
				chromedp.WaitVisible(chromedp.CSS(`[data-testid=flash]`)),
			)
			shot(hctx, "user-unlocked")
			if got := browser.Text(t, hctx, `[data-testid=flash]`); !strings.Contains(got, "Unlocked") {
				t.Errorf("flash after unlock %q", got)
			}
			if got := browser.Text(t, hctx, `[data-testid=state]`); strings.Contains(got, "Locked") {
				t.Errorf("state after unlock %q", got)
			}
			if tc.locked(t, user) {
				t.Error("the directory still has the user locked")
			}
			if err := env.BindAs(t, tc.dir, user.DN, user.Password); err != nil {
				t.Errorf("bind with the old password after unlock: %v", err)
			}

			newPW := testbed.RandomPassword()
			browser.Step(t, hctx, "reset the password",
				// The unlock flash is still on the page: remove it so the wait
				// below sees the reset's own page.
				chromedp.Evaluate[chromedp.Void](`document.querySelectorAll("[data-testid=flash]").forEach(e => e.remove())`),
				chromedp.SendKeys(chromedp.ID("password"), newPW),
				chromedp.SendKeys(chromedp.ID("confirm"), newPW),
				chromedp.Click(chromedp.CSS(`[data-testid=reset]`)),
				chromedp.WaitVisible(chromedp.CSS(`[data-testid=flash]`)),
			)
			shot(hctx, "user-reset")
			if got := browser.Text(t, hctx, `[data-testid=flash]`); !strings.Contains(got, "Password reset for") {
				t.Errorf("flash after reset %q", got)
			}
			if strings.Contains(browser.Eval[string](t, hctx, `document.documentElement.outerHTML`), newPW) {
				t.Error("the new password is in the page")
			}
			if err := env.BindAs(t, tc.dir, user.DN, newPW); err != nil {
				t.Errorf("bind with the new password: %v", err)
			}
			if err := env.BindAs(t, tc.dir, user.DN, user.Password); err == nil {
				t.Error("the old password still works after the reset")
			}
		})
	}
}

// numberedShots numbers the screenshots of one test in the order they are taken.
func numberedShots(t *testing.T) func(ctx context.Context, name string) {
	n := 0
	return func(ctx context.Context, name string) {
		t.Helper()
		n++
		browser.Shot(t, ctx, fmt.Sprintf("%02d-%s", n, name))
	}
}

// directorySignIn opens page, is sent to the sign-in form, signs in (with
// the second step when the portal asks for one) and waits until page shows
// ready.
func directorySignIn(t *testing.T, ctx context.Context, page, email, password string, ready chromedp.ID) {
	t.Helper()
	browser.Step(t, ctx, "sign in as "+email,
		chromedp.Navigate(page),
		chromedp.WaitVisible(chromedp.ID("email")),
		chromedp.SendKeys(chromedp.ID("email"), email),
		chromedp.SendKeys(chromedp.ID("password"), password),
		chromedp.Click(chromedp.CSS(`[data-testid=sign-in]`)),
	)
	secondStep(t, ctx, &secondFactor{}, "#"+string(ready))
}
