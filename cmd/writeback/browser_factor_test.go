package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/pquerna/otp/totp"

	"github.com/writeback/writeback/testbed/browser"
)

// secondFactor is what an administrator keeps of the authenticator app they
// set up at their first sign-in: its key and their recovery codes.
type secondFactor struct {
	secret string
	codes  []string
}

// secondStep does, after the password was sent, whatever second step the
// portal asks for, as a person would, until the page shows readyCSS: at the
// first sign-in of a Global Administrator it sets up an authenticator app
// from the key the page shows and keeps the recovery codes; at later ones
// it enters a recovery code. Without a second step it only waits.
func secondStep(t *testing.T, ctx context.Context, f *secondFactor, readyCSS string) {
	t.Helper()
	browser.Step(t, ctx, "after the password",
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=enrol-app], [data-testid=step-recovery], `+readyCSS)))
	// The path ends the same under a base URL's path (/password/login/enrol).
	switch p := browser.Eval[string](t, ctx, `location.pathname`); {
	case strings.HasSuffix(p, "/login/enrol"):
		f.secret = browser.Text(t, ctx, `[data-testid=totp-secret]`)
		code, err := totp.GenerateCode(strings.TrimSpace(f.secret), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		browser.Step(t, ctx, "set up an authenticator app",
			chromedp.SendKeys(chromedp.ID("app-code"), code),
			chromedp.Click(chromedp.CSS(`[data-testid=confirm-app]`)),
			chromedp.WaitVisible(chromedp.CSS(`[data-testid=recovery-codes]`)),
		)
		f.codes = browser.Eval[[]string](t, ctx, `Array.from(document.querySelectorAll('[data-testid=recovery-codes] code')).map(e => e.textContent)`)
		if len(f.codes) != 10 {
			t.Fatalf("%d recovery codes shown", len(f.codes))
		}
		browser.Step(t, ctx, "continue", chromedp.Click(chromedp.CSS(`[data-testid=continue]`)), chromedp.WaitVisible(chromedp.CSS(readyCSS)))
	case strings.HasSuffix(p, "/login/factor"):
		if len(f.codes) == 0 {
			t.Fatal("asked for a second factor, and no recovery code is left")
		}
		code := f.codes[0]
		f.codes = f.codes[1:]
		browser.Step(t, ctx, "enter a recovery code",
			chromedp.Click(chromedp.CSS(`[data-testid=step-recovery] summary`)),
			chromedp.SendKeys(chromedp.ID("recovery"), code),
			chromedp.Click(chromedp.CSS(`[data-testid=use-recovery]`)),
			chromedp.WaitVisible(chromedp.CSS(readyCSS)),
		)
	}
}
