package handlers_test

import (
	"context"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"

	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/passkeys"
	"github.com/writeback/writeback/services/selfservice"
	"github.com/writeback/writeback/testbed"
	"github.com/writeback/writeback/testbed/browser"
)

// newPasskeySSPR is self-service against a real directory on a portal at
// http://localhost:PORT (WebAuthn needs a host name), with employees'
// passkeys on.
func newPasskeySSPR(t *testing.T, env testbed.Env, d directoryCase, methods selfservice.Methods) *sspr {
	t.Helper()
	h := newLocalhostHarness(t)
	pk, err := passkeys.New(h.base, "Writeback")
	if err != nil {
		t.Fatal(err)
	}
	h.ss.UsePasskeys(pk)
	return newSSPROn(t, env, d, methods, h)
}

// resetWithPasskey starts a reset for login in the browser, chooses the
// passkey and uses it; it stops at the page that follows.
func resetWithPasskey(t *testing.T, ctx context.Context, base, login string) {
	t.Helper()
	browser.Step(t, ctx, "reset: who are you",
		chromedp.Navigate(base+"/reset"),
		chromedp.WaitVisible(chromedp.ID("login")),
		chromedp.SendKeys(chromedp.ID("login"), login),
		chromedp.Click(chromedp.CSS(`[data-testid=next]`)),
		chromedp.WaitVisible(chromedp.ID("m-passkey")),
		chromedp.Click(chromedp.ID("m-passkey")),
		chromedp.Click(chromedp.CSS(`[data-testid=choose]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=use-passkey]`)),
		chromedp.Click(chromedp.CSS(`[data-testid=use-passkey]`)),
	)
}

// TestBrowserSelfServicePasskey: an employee of the Samba AD DC, with no
// e-mail address and so no other method, signs in on /register with the
// directory password and registers a passkey on Chromium's virtual
// authenticator; on /reset the choice offers it, the passkey proves it's
// them and the new password binds at the DC. The passkey's sign count is
// kept: the same credential presented again with a count that went back
// (a cloned authenticator) is refused and counted as a failed
// verification. Removing the passkey on /register takes it off the choice.
func TestBrowserSelfServicePasskey(t *testing.T) {
	env := testbed.Load(t)
	d := directories(env)[0]
	s := newPasskeySSPR(t, env, d, selfservice.Methods{Email: true, Passkey: true})
	base := s.base
	user := d.newUser(t, testbed.UserOptions{NoMail: true})
	ctx := browser.New(t)
	auth := virtualAuthenticator(t, ctx)

	browser.Step(t, ctx, "register: sign in",
		chromedp.Navigate(base+"/register"),
		chromedp.WaitVisible(chromedp.ID("login")),
		chromedp.SendKeys(chromedp.ID("login"), user.Login),
		chromedp.SendKeys(chromedp.ID("password"), user.Password),
		chromedp.Click(chromedp.CSS(`[data-testid=sign-in]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=reg-passkey]`)),
	)
	browser.Shot(t, ctx, "01-register")
	browser.Step(t, ctx, "register a passkey",
		chromedp.SendKeys(chromedp.ID("passkey-name"), "Work phone"),
		chromedp.Click(chromedp.CSS(`[data-testid=add-passkey]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=flash]`)),
	)
	browser.Shot(t, ctx, "02-registered")
	if got := browser.Text(t, ctx, `[data-testid=passkeys]`); !strings.Contains(got, "Work phone") {
		t.Errorf("registered passkeys: %q", got)
	}
	creds := authenticatorCredentials(t, ctx, auth)
	if len(creds) != 1 || creds[0].RpID != "localhost" || !creds[0].IsResidentCredential {
		t.Fatalf("authenticator holds %+v", creds)
	}
	assertActivities(t, s.harness, audit.ActivityRegisterSecurity)

	// The choice offers the passkey (the account has no e-mail address).
	resetWithPasskey(t, ctx, base, user.Login)
	browser.Step(t, ctx, "verified", chromedp.WaitVisible(chromedp.CSS(`[data-testid=set-password]`)))
	browser.Shot(t, ctx, "03-verified")
	newPw := "Pk-" + testbed.RandomPassword()
	browser.Step(t, ctx, "set a new password",
		chromedp.SendKeys(chromedp.ID("password"), newPw),
		chromedp.SendKeys(chromedp.ID("confirm"), newPw),
		chromedp.Click(chromedp.CSS(`[data-testid=set-password]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=done]`)),
	)
	browser.Shot(t, ctx, "04-done")
	if err := env.BindAs(t, d.dir, user.DN, newPw); err != nil {
		t.Errorf("bind with the new password: %v", err)
	}
	stored, err := s.db.Passkeys(context.Background(), dirID(t, s, user.Login))
	if err != nil || len(stored) != 1 || stored[0].LastUsedMS == 0 || stored[0].Name != "Work phone" {
		t.Fatalf("stored passkeys %+v %v", stored, err)
	}

	// The same credential with its sign count set back: a clone. Refused.
	creds = authenticatorCredentials(t, ctx, auth)
	old := creds[0]
	if old.SignCount < 1 {
		t.Fatalf("the authenticator's sign count is %v after a use", old.SignCount)
	}
	// cdproto's Credential always sends a CMTG field, which Chromium's
	// virtual authenticator refuses: the command with only what it needs.
	type credential struct {
		CredentialID         []byte  `json:"credentialId"`
		IsResidentCredential bool    `json:"isResidentCredential"`
		RpID                 string  `json:"rpId"`
		PrivateKey           []byte  `json:"privateKey"`
		UserHandle           []byte  `json:"userHandle"`
		SignCount            float64 `json:"signCount"`
	}
	type addParams struct {
		AuthenticatorID webauthn.AuthenticatorID `json:"authenticatorId"`
		Credential      credential               `json:"credential"`
	}
	add := cdp.Command[addParams, cdp.Empty]{Method: webauthn.CommandAddCredential}
	if _, err := chromedp.Run(ctx, func(ctx context.Context, tg *chromedp.Target) (cdp.Empty, error) {
		if _, err := cdp.Call(ctx, tg, webauthn.RemoveCredential, webauthn.RemoveCredentialParams{AuthenticatorID: auth, CredentialID: old.CredentialID}); err != nil {
			return cdp.Empty{}, err
		}
		return cdp.Call(ctx, tg, add, addParams{AuthenticatorID: auth, Credential: credential{CredentialID: old.CredentialID, IsResidentCredential: true,
			RpID: old.RpID, PrivateKey: old.PrivateKey, UserHandle: old.UserHandle, SignCount: 0}})
	}); err != nil {
		t.Fatal(err)
	}
	resetWithPasskey(t, ctx, base, user.Login)
	browser.Step(t, ctx, "clone refused", chromedp.WaitVisible(chromedp.CSS(`[data-testid=errors]`)))
	browser.Shot(t, ctx, "05-clone-refused")
	if got := browser.Text(t, ctx, `[data-testid=errors]`); !strings.Contains(got, "passkey was not accepted") {
		t.Errorf("clone refusal says %q", got)
	}
	if logs := s.logs.String(); !strings.Contains(logs, "may be cloned") {
		t.Errorf("the refusal is not the clone warning; log:\n%s", logs)
	}
	if n := failedVerifications(t, s.harness); n != 1 {
		t.Errorf("%d failed verifications audited, want the clone's", n)
	}

	// Removing it on /register takes it off the choice.
	browser.Step(t, ctx, "register again",
		chromedp.Navigate(base+"/register"),
		chromedp.WaitVisible(chromedp.ID("login")),
		chromedp.SendKeys(chromedp.ID("login"), user.Login),
		chromedp.SendKeys(chromedp.ID("password"), newPw),
		chromedp.Click(chromedp.CSS(`[data-testid=sign-in]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=remove-passkey]`)),
		chromedp.Click(chromedp.CSS(`[data-testid=remove-passkey]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=flash]`)),
	)
	browser.Shot(t, ctx, "06-removed")
	if browser.Eval[bool](t, ctx, `!!document.querySelector('[data-testid=passkeys]')`) {
		t.Error("the passkey is still listed")
	}
	if stored, _ := s.db.Passkeys(context.Background(), dirID(t, s, user.Login)); len(stored) != 0 {
		t.Errorf("still stored: %+v", stored)
	}
	assertNoSecrets(t, s.harness, newPw, user.Password)
}

// dirID is the directory's stable ID of the account login names.
func dirID(t *testing.T, s *sspr, login string) string {
	t.Helper()
	u, err := s.wb.Lookup(context.Background(), login)
	if err != nil {
		t.Fatal(err)
	}
	return u.ID
}
