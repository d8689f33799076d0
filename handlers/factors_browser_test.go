package handlers_test

import (
	"context"
	"net"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"

	"github.com/writeback/writeback/services/admins"
	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/passkeys"
	"github.com/writeback/writeback/testbed/browser"
)

// newLocalhostHarness serves the portal at http://localhost:PORT with that
// as its base URL: WebAuthn needs a host name for its RP ID (an IP address
// is refused by the browser), and localhost counts as a secure origin.
func newLocalhostHarness(t *testing.T) *harness {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := newPortal(t)
	p.base = "http://localhost:" + strings.TrimPrefix(ln.Addr().String(), "127.0.0.1:")
	pk, err := passkeys.New(p.base, "Writeback")
	if err != nil {
		t.Fatal(err)
	}
	if p.admins, err = admins.New(p.db, p.log, cheap, admins.WithKeyring(p.keys), admins.WithPasskeys(pk)); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(p.handler(nil))
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return &harness{portal: p, t: t, srv: srv}
}

// virtualAuthenticator turns on Chromium's WebAuthn testing domain with a
// platform authenticator (CTAP2, internal, resident keys, user
// verification that succeeds, presence confirmed at once).
func virtualAuthenticator(t *testing.T, ctx context.Context) webauthn.AuthenticatorID {
	t.Helper()
	id, err := chromedp.Run(ctx, func(ctx context.Context, tg *chromedp.Target) (webauthn.AuthenticatorID, error) {
		no := false
		if _, err := cdp.Call(ctx, tg, webauthn.Enable, webauthn.EnableParams{EnableUI: &no}); err != nil {
			return "", err
		}
		res, err := cdp.Call(ctx, tg, webauthn.AddVirtualAuthenticator, webauthn.AddVirtualAuthenticatorParams{
			Options: &webauthn.VirtualAuthenticatorOptions{
				Protocol: webauthn.AuthenticatorProtocolCtap2, Ctap2version: webauthn.Ctap2versionCtap21,
				Transport: webauthn.AuthenticatorTransportInternal, HasResidentKey: true, HasUserVerification: true,
				IsUserVerified: true, AutomaticPresenceSimulation: true,
			}})
		return res.AuthenticatorID, err
	})
	if err != nil {
		t.Fatalf("virtual authenticator: %v", err)
	}
	return id
}

func authenticatorCredentials(t *testing.T, ctx context.Context, id webauthn.AuthenticatorID) []*webauthn.Credential {
	t.Helper()
	creds, err := chromedp.Run(ctx, func(ctx context.Context, tg *chromedp.Target) ([]*webauthn.Credential, error) {
		res, err := cdp.Call(ctx, tg, webauthn.GetCredentials, webauthn.GetCredentialsParams{AuthenticatorID: id})
		return res.Credentials, err
	})
	if err != nil {
		t.Fatal(err)
	}
	return creds
}

func browserPassword(t *testing.T, ctx context.Context, base, email string) {
	t.Helper()
	browser.Step(t, ctx, "password of "+email,
		chromedp.Navigate(base+"/admin"),
		chromedp.WaitVisible(chromedp.ID("email")),
		chromedp.SendKeys(chromedp.ID("email"), email),
		chromedp.SendKeys(chromedp.ID("password"), testPassword),
		chromedp.Click(chromedp.CSS(`[data-testid=sign-in]`)),
	)
}

// TestBrowserPasskeyEnrolAndSignIn: a Global Administrator without a second
// factor is sent to set one up right after the password, registers a
// passkey on Chromium's virtual authenticator, sees ten recovery codes
// once, and later signs in with the passkey for real. An assertion whose
// signature does not verify is refused and counted.
func TestBrowserPasskeyEnrolAndSignIn(t *testing.T) {
	h := newLocalhostHarness(t)
	defaultSecondFactorPolicy(t, h)
	h.addAdmin("ada@example.com", admins.GlobalAdmin)
	base := h.base
	ctx := browser.New(t)
	auth := virtualAuthenticator(t, ctx)

	browserPassword(t, ctx, base, "ada@example.com")
	browser.Step(t, ctx, "sent to enrol", chromedp.WaitVisible(chromedp.CSS(`[data-testid=enrol-passkey]`)))
	browser.Shot(t, ctx, "01-enrol")
	if got := browser.Eval[string](t, ctx, `location.pathname`); got != "/login/enrol" {
		t.Fatalf("after the password the browser is at %s", got)
	}
	browser.Step(t, ctx, "register a passkey",
		chromedp.SendKeys(chromedp.ID("passkey-name"), "Laptop"),
		chromedp.Click(chromedp.CSS(`[data-testid=add-passkey]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=recovery-codes]`)),
	)
	browser.Shot(t, ctx, "02-recovery-codes")
	if n := browser.Eval[int](t, ctx, `document.querySelectorAll('[data-testid=recovery-codes] li').length`); n != admins.RecoveryCodeCount {
		t.Errorf("%d recovery codes shown", n)
	}
	creds := authenticatorCredentials(t, ctx, auth)
	if len(creds) != 1 || creds[0].RpID != "localhost" || !creds[0].IsResidentCredential {
		t.Fatalf("authenticator holds %+v", creds)
	}
	browser.Step(t, ctx, "continue",
		chromedp.Click(chromedp.CSS(`[data-testid=continue]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=service-panel]`)),
	)
	fs, err := h.db.AdminFactors(context.Background(), 1)
	if err != nil || len(fs) != 1 || fs[0].Kind != "passkey" || fs[0].Name != "Laptop" {
		t.Fatalf("factors %+v %v", fs, err)
	}
	browser.Step(t, ctx, "sign out",
		chromedp.Click(chromedp.CSS(`header .who button`)),
		chromedp.WaitVisible(chromedp.ID("email")),
	)

	// A signature that does not verify: refused by the portal, counted.
	no, yes := false, true
	setBogus := func(on *bool) {
		t.Helper()
		if _, err := chromedp.Run(ctx, func(ctx context.Context, tg *chromedp.Target) (cdp.Empty, error) {
			return cdp.Call(ctx, tg, webauthn.SetResponseOverrideBits, webauthn.SetResponseOverrideBitsParams{AuthenticatorID: auth, IsBogusSignature: on})
		}); err != nil {
			t.Fatal(err)
		}
	}
	setBogus(&yes)
	browserPassword(t, ctx, base, "ada@example.com")
	browser.Step(t, ctx, "bogus passkey",
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=use-passkey]`)),
		chromedp.Click(chromedp.CSS(`[data-testid=use-passkey]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=errors]`)),
	)
	browser.Shot(t, ctx, "03-refused")
	if got := browser.Text(t, ctx, `[data-testid=errors]`); !strings.Contains(got, "was not accepted") {
		t.Errorf("refusal says %q", got)
	}
	setBogus(&no)
	browser.Step(t, ctx, "sign in with the passkey",
		chromedp.Click(chromedp.CSS(`[data-testid=use-passkey]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=service-panel]`)),
	)
	browser.Shot(t, ctx, "04-signed-in")
	if got := browser.Text(t, ctx, `[data-testid=viewer]`); !strings.Contains(got, "ada") {
		t.Errorf("viewer %q", got)
	}
	rows, err := h.db.RecentAudit(context.Background(), audit.ActivityAdminSecondFactor, 3)
	if err != nil || len(rows) != 3 {
		t.Fatalf("second-factor events %+v %v", rows, err)
	}
	if rows[0].Result != audit.Success || !strings.Contains(rows[0].Details, "Passkey or security key") || !strings.Contains(rows[0].Details, "Laptop") {
		t.Errorf("passkey sign-in event %+v", rows[0])
	}
	if rows[1].Result != audit.Failure || rows[1].Reason != "passkey not accepted" {
		t.Errorf("refused passkey event %+v", rows[1])
	}
	if fs, _ := h.db.AdminFactors(context.Background(), 1); len(fs) != 1 || fs[0].LastUsedMS == 0 {
		t.Errorf("the passkey's use was not recorded: %+v", fs)
	}
	// The sign-in methods page lists it.
	browser.Step(t, ctx, "sign-in methods", chromedp.Navigate(base+"/admin/security"), chromedp.WaitVisible(chromedp.CSS(`[data-testid=factors]`)))
	if got := browser.Text(t, ctx, `[data-testid=factors] tbody`); !strings.Contains(got, "Laptop") || !strings.Contains(got, "Passkey or security key") {
		t.Errorf("factors table %q", got)
	}
}

// TestBrowserAppThenPasskeyFromSignInMethods: a Global Administrator sets
// up an authenticator app at the first sign-in (the code computed from the
// key the page shows), signs in again with a code typed into a field made
// for one-time codes, then adds a passkey on their Sign-in methods page;
// the next second step offers both, and the passkey signs in.
func TestBrowserAppThenPasskeyFromSignInMethods(t *testing.T) {
	h := newLocalhostHarness(t)
	defaultSecondFactorPolicy(t, h)
	h.addAdmin("ada@example.com", admins.GlobalAdmin)
	base := h.base
	ctx := browser.New(t)
	virtualAuthenticator(t, ctx)

	browserPassword(t, ctx, base, "ada@example.com")
	browser.Step(t, ctx, "sent to enrol", chromedp.WaitVisible(chromedp.CSS(`[data-testid=totp-secret]`)))
	secret := strings.TrimSpace(browser.Text(t, ctx, `[data-testid=totp-secret]`))
	if !browser.Eval[bool](t, ctx, `document.querySelector('[data-testid=otpauth-link]').href.startsWith('otpauth://totp/')`) {
		t.Error("no otpauth:// link beside the QR code")
	}
	now := time.Now()
	browser.Step(t, ctx, "set up the app",
		chromedp.SendKeys(chromedp.ID("app-name"), "Phone"),
		chromedp.SendKeys(chromedp.ID("app-code"), codeAt(t, secret, now)),
		chromedp.Click(chromedp.CSS(`[data-testid=confirm-app]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=recovery-codes]`)),
		chromedp.Click(chromedp.CSS(`[data-testid=continue]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=service-panel]`)),
		chromedp.Click(chromedp.CSS(`header .who button`)),
		chromedp.WaitVisible(chromedp.ID("email")),
	)
	browserPassword(t, ctx, base, "ada@example.com")
	browser.Step(t, ctx, "second step", chromedp.WaitVisible(chromedp.ID("code")))
	if got := browser.Eval[string](t, ctx, `(e => e.inputMode + " " + e.autocomplete)(document.getElementById('code'))`); got != "numeric one-time-code" {
		t.Errorf("code field: %q", got)
	}
	if browser.Eval[bool](t, ctx, `!!document.querySelector('[data-testid=step-passkey]')`) {
		t.Error("a passkey is offered before one is registered")
	}
	browser.Step(t, ctx, "sign in with the app",
		chromedp.SendKeys(chromedp.ID("code"), codeAt(t, secret, now.Add(30*time.Second))),
		chromedp.Click(chromedp.CSS(`[data-testid=verify-code]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=service-panel]`)),
	)
	browser.Step(t, ctx, "add a passkey on the Sign-in methods page",
		chromedp.Click(chromedp.CSS(`nav.side a[href="/admin/security"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=factors]`)),
		chromedp.Click(chromedp.CSS(`[data-testid=add-factor]`)),
		chromedp.WaitVisible(chromedp.ID("passkey-name")),
		chromedp.SendKeys(chromedp.ID("passkey-name"), "Security key"),
		chromedp.Click(chromedp.CSS(`[data-testid=add-passkey]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=flash]`)),
	)
	browser.Shot(t, ctx, "sign-in-methods")
	if got := browser.Text(t, ctx, `[data-testid=factors] tbody`); !strings.Contains(got, "Phone") || !strings.Contains(got, "Security key") {
		t.Errorf("factors table %q", got)
	}
	browser.Step(t, ctx, "sign out", chromedp.Click(chromedp.CSS(`header .who button`)), chromedp.WaitVisible(chromedp.ID("email")))
	browserPassword(t, ctx, base, "ada@example.com")
	browser.Step(t, ctx, "both ways offered", chromedp.WaitVisible(chromedp.CSS(`[data-testid=step-passkey]`)), chromedp.WaitVisible(chromedp.ID("code")))
	browser.Step(t, ctx, "sign in with the passkey",
		chromedp.Click(chromedp.CSS(`[data-testid=use-passkey]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=service-panel]`)),
	)
	rows, _ := h.db.RecentAudit(context.Background(), audit.ActivityAdminSecondFactor, 1)
	if len(rows) != 1 || !strings.Contains(rows[0].Details, "Security key") {
		t.Errorf("last second-factor event %+v", rows)
	}
	assertNoSecrets(t, h, secret)
}
