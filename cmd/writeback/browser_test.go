package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/writeback/writeback/testbed/browser"
)

// TestBrowserFirstRunStory is the whole first-run story as a new user lives
// it: setup link, first Global Administrator, sign-in, both switches, Save,
// reload, restart, values kept.
func TestBrowserFirstRunStory(t *testing.T) {
	data := t.TempDir()
	s := startServer(t, data)
	link := s.setupLink(t)
	ctx := browser.New(t)

	browser.Step(t, ctx, "open setup link", chromedp.Navigate(link), chromedp.WaitVisible(chromedp.ID("name")))
	browser.Shot(t, ctx, "01-setup")
	browser.Step(t, ctx, "create first admin",
		chromedp.SendKeys(chromedp.ID("name"), "Ada Lovelace"),
		chromedp.SendKeys(chromedp.ID("email"), "ada@example.com"),
		chromedp.SendKeys(chromedp.ID("password"), "a long admin password"),
		chromedp.SendKeys(chromedp.ID("confirm"), "a long admin password"),
		chromedp.Click(chromedp.CSS(`[data-testid=create-admin]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=sign-in]`)),
	)
	if got := browser.Text(t, ctx, `[data-testid=flash]`); !strings.Contains(got, "Global Administrator account is ready") {
		t.Errorf("flash %q", got)
	}
	// The setup link is single use.
	browser.Step(t, ctx, "reuse setup link", chromedp.Navigate(link), chromedp.WaitVisible(chromedp.CSS(`[data-testid=error-message]`)))
	if got := browser.Text(t, ctx, `[data-testid=error-message]`); !strings.Contains(got, "not valid") {
		t.Errorf("reused setup link: %q", got)
	}

	// A Global Administrator signs in with a second factor: at the first
	// sign-in they set up an authenticator app (secondStep).
	var factor secondFactor
	signIn := func(ctx context.Context, addr string) {
		browser.Step(t, ctx, "sign in",
			chromedp.Navigate("http://"+addr+"/admin"),
			chromedp.WaitVisible(chromedp.ID("email")),
			chromedp.SendKeys(chromedp.ID("email"), "ada@example.com"),
			chromedp.SendKeys(chromedp.ID("password"), "a long admin password"),
			chromedp.Click(chromedp.CSS(`[data-testid=sign-in]`)),
		)
		secondStep(t, ctx, &factor, `[data-testid=service-panel]`)
	}
	signIn(ctx, s.addr)
	if factor.secret == "" {
		t.Error("the first Global Administrator was not asked to set up a second factor")
	}
	browser.Shot(t, ctx, "02-on-premises-integration")
	if got := browser.Text(t, ctx, "h1"); !strings.Contains(got, "Password reset | On-premises integration") {
		t.Errorf("heading %q", got)
	}
	if got := browser.Text(t, ctx, `[data-testid=service-state]`); got != "Not configured" {
		t.Errorf("service panel %q", got)
	}
	// Unlock is disabled while writeback is No, and the page says why.
	if !browser.Eval[bool](t, ctx, `document.getElementById("unlock-yes").disabled`) {
		t.Error("unlock is enabled while writeback is No")
	}
	if !browser.Eval[bool](t, ctx, `!document.getElementById("unlock-note").hidden`) {
		t.Error("the page does not say why unlock is disabled")
	}
	// Writeback needs a directory: without one, Yes is refused with a link
	// to the Directory connection page.
	browser.Step(t, ctx, "switch writeback on without a directory",
		chromedp.Click(chromedp.CSS(`label[for=writeback-yes]`)),
		chromedp.Click(chromedp.CSS(`[data-testid=save]`)),
		chromedp.WaitVisible(chromedp.ID("writeback-error")),
	)
	if !browser.Eval[bool](t, ctx, `!!document.querySelector('#writeback-error a[href="/admin/directory"]')`) {
		t.Error("the refusal does not link to the Directory connection page")
	}
	pwFile := filepath.Join(t.TempDir(), "bind-password")
	if err := os.WriteFile(pwFile, []byte("service password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := cli(t, "", "directory", "set", "--data", data, "--type", "ad", "--url", "ldaps://127.0.0.1:1",
		"--bind-dn", "CN=svc,DC=example,DC=com", "--bind-password-file", pwFile, "--base-dn", "OU=People,DC=example,DC=com"); code != 0 {
		t.Fatalf("directory set: %d %s %s", code, out, errOut)
	}
	browser.Step(t, ctx, "reload with a directory", chromedp.Navigate("http://"+s.addr+"/admin/password-reset/on-premises-integration"),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=service-panel]`)))
	// Labels are what admins click; the script enables unlock once writeback is Yes.
	browser.Step(t, ctx, "set both switches",
		chromedp.Click(chromedp.CSS(`label[for=writeback-yes]`)),
		chromedp.Click(chromedp.CSS(`label[for=unlock-yes]`)),
	)
	browser.Shot(t, ctx, "03-both-yes")
	browser.Step(t, ctx, "save",
		chromedp.Click(chromedp.CSS(`[data-testid=save]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=flash]`)),
	)
	browser.Shot(t, ctx, "04-saved")
	if got := browser.Text(t, ctx, `[data-testid=flash]`); !strings.Contains(got, "Write back passwords: Yes. Unlock without resetting the password: Yes.") {
		t.Errorf("confirmation %q", got)
	}
	if got := browser.Text(t, ctx, `[data-testid=last-changed]`); !strings.Contains(got, "Ada Lovelace") {
		t.Errorf("last changed %q", got)
	}
	checkKept := func(ctx context.Context, when string) {
		t.Helper()
		if !browser.Eval[bool](t, ctx, `document.getElementById("writeback-yes").checked && document.getElementById("unlock-yes").checked`) {
			browser.Shot(t, ctx, "failed-"+when)
			t.Errorf("%s: switches not kept", when)
		}
	}
	browser.Step(t, ctx, "reload", chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS(`[data-testid=service-panel]`)))
	checkKept(ctx, "after reload")

	// Restart the server on the same data folder; a new browser signs in and finds the values kept.
	s.stop(t)
	s2 := startServer(t, data)
	if strings.Contains(s2.out.String(), "setup?token=") {
		t.Error("a setup link was printed although an administrator exists")
	}
	ctx2 := browser.New(t)
	signIn(ctx2, s2.addr)
	checkKept(ctx2, "after restart")
	browser.Shot(t, ctx2, "05-after-restart")
}
