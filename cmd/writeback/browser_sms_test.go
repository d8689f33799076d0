package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/writeback/writeback/services/sms/smstest"
	"github.com/writeback/writeback/testbed"
	"github.com/writeback/writeback/testbed/browser"
)

// TestBrowserSelfServiceResetByText: set up with the commands (a Twilio-style
// gateway on loopback), a person whose AD entry holds a mobile number resets
// in the browser with the code the gateway received, and the new password
// binds against the DC.
func TestBrowserSelfServiceResetByText(t *testing.T) {
	env := testbed.Load(t)
	data := t.TempDir()
	g := smstest.Start(t)
	pw := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pw, []byte(env.AD.BindPassword+"\n"), 0o600)
	token := filepath.Join(t.TempDir(), "token")
	os.WriteFile(token, []byte("browser-token-9\n"), 0o600)
	for _, args := range [][]string{
		{"directory", "set", "--type", "ad", "--url", env.AD.URL, "--ca-file", env.CAFile, "--bind-dn", env.AD.BindDN,
			"--bind-password-file", pw, "--base-dn", env.AD.PeopleDN, "--password-writeback", "on"},
		{"settings", "set", "--writeback", "yes", "--unlock", "yes"},
		{"sspr", "set", "--enabled", "all", "--methods", "sms", "--required", "1", "--helpdesk", "help@example.com", "--org-name", "Example Corp"},
		{"sms", "set", "--preset", "twilio", "--url", g.URL() + "/2010-04-01/Accounts/AC7/Messages.json", "--username", "AC7",
			"--from", "+15005550006", "--secret-file", token, "--default-country", "GB"},
	} {
		if code, out, errOut := cli(t, "", append(args, "--data", data)...); code != 0 {
			t.Fatalf("%v: %s %s", args, out, errOut)
		}
	}
	user := env.NewADUser(t, testbed.UserOptions{Mobile: "07400 123462", NoMail: true})
	s := startServer(t, data)
	ctx := browser.New(t)
	browser.Step(t, ctx, "who are you",
		chromedp.Navigate("http://"+s.addr+"/"),
		chromedp.Click(chromedp.CSS(`[data-testid=go-reset]`)),
		chromedp.WaitVisible(chromedp.ID("login")),
		chromedp.SendKeys(chromedp.ID("login"), user.Login),
		chromedp.Click(chromedp.CSS(`[data-testid=next]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=choose]`)),
	)
	browser.Shot(t, ctx, "sms-01-choose")
	browser.Step(t, ctx, "text me a code", chromedp.Click(chromedp.ID("m-sms")), chromedp.Click(chromedp.CSS(`[data-testid=choose]`)), chromedp.WaitVisible(chromedp.ID("code")))
	browser.Shot(t, ctx, "sms-02-enter-code")
	if got := browser.Text(t, ctx, "main"); !strings.Contains(got, "Enter the code") || !strings.Contains(got, "by text message") {
		t.Errorf("code page: %q", got)
	}
	if !browser.Eval[bool](t, ctx, `document.getElementById("code").inputMode === "numeric" && document.getElementById("code").autocomplete === "one-time-code"`) {
		t.Error("the code field does not ask for a number pad and one-time-code")
	}
	req := g.Wait(t, 1)
	if req.Form.Get("To") != "+447400123462" || req.Password != "browser-token-9" {
		t.Fatalf("gateway got %q (password %v)", req.Form.Get("To"), req.Password != "")
	}
	code := smstest.Code(req.Form.Get("Body"))
	newPw := "Txt-" + testbed.RandomPassword()
	browser.Step(t, ctx, "verify",
		chromedp.SendKeys(chromedp.ID("code"), code),
		chromedp.Click(chromedp.CSS(`[data-testid=verify]`)),
		chromedp.WaitVisible(chromedp.ID("password")),
		chromedp.SendKeys(chromedp.ID("password"), newPw), chromedp.SendKeys(chromedp.ID("confirm"), newPw),
		chromedp.Click(chromedp.CSS(`[data-testid=set-password]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=done]`)),
	)
	browser.Shot(t, ctx, "sms-03-done")
	if err := env.BindAs(t, env.AD, user.DN, newPw); err != nil {
		t.Errorf("bind with the new password: %v", err)
	}

	// The Global Administrator's page: the gateway as the commands saved it,
	// the delivery panel, a preset filling the form.
	if code, _, errOut := cli(t, "a long admin password\n", "admin", "create", "--data", data, "--email", "ada@example.com", "--name", "Ada", "--role", "global-admin"); code != 0 {
		t.Fatal(errOut)
	}
	if code, _, errOut := cli(t, "", "admin", "policy", "--data", data, "--global-admin", "optional"); code != 0 {
		t.Fatal(errOut)
	}
	actx := browser.New(t)
	browser.Step(t, actx, "admin opens Text messages",
		chromedp.Navigate("http://"+s.addr+"/admin/password-reset/text-messages"),
		chromedp.WaitVisible(chromedp.ID("email")),
		chromedp.SendKeys(chromedp.ID("email"), "ada@example.com"),
		chromedp.SendKeys(chromedp.ID("password"), "a long admin password"),
		chromedp.Click(chromedp.CSS(`[data-testid=sign-in]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=sms-status]`)),
	)
	browser.Shot(t, actx, "sms-04-admin-page")
	if got := browser.Text(t, actx, "main"); !strings.Contains(got, "Sending works") || !strings.Contains(got, "A secret is stored (encrypted)") || strings.Contains(got, "browser-token-9") {
		t.Errorf("admin page: %q", got)
	}
	browser.Step(t, actx, "apply the JSON preset",
		chromedp.SetValue(chromedp.ID("preset"), "json"),
		chromedp.Click(chromedp.CSS(`[data-testid=apply-preset]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=preset-help]`)),
	)
	browser.Shot(t, actx, "sms-05-preset")
	if got := browser.Eval[string](t, actx, `document.getElementById("headers").value`); !strings.Contains(got, "Bearer {{secret}}") {
		t.Errorf("preset headers: %q", got)
	}
}
