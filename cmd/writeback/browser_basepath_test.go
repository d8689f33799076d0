package main

import (
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/writeback/writeback/testbed"
	"github.com/writeback/writeback/testbed/browser"
)

// pathProxy is the usual deployment under a path: a reverse proxy that
// forwards /password/… unchanged to the portal and answers nothing else. It
// records every path the browser asked it for outside the prefix.
type pathProxy struct {
	addr    string
	mu      sync.Mutex
	asked   int
	outside []string
}

func startPathProxy(t *testing.T, prefix string, portal func() string) *pathProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &pathProxy{addr: ln.Addr().String()}
	rp := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.SetURL(&url.URL{Scheme: "http", Host: portal()})
		r.Out.Host = r.In.Host // as proxies are set up for the portal: its public host
	}}
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.asked++
		if !strings.HasPrefix(r.URL.Path, prefix+"/") {
			p.outside = append(p.outside, r.Method+" "+r.URL.RequestURI())
			p.mu.Unlock()
			http.NotFound(w, r)
			return
		}
		p.mu.Unlock()
		rp.ServeHTTP(w, r)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return p
}

// TestBrowserUnderPath is issue 12 item 7 in Chromium: the portal behind a
// proxy that forwards only /password/…, with --base-url
// http://PROXY/password/. An employee resets a password with an e-mailed
// code and a Global Administrator signs in (with an authenticator app);
// every page has its stylesheet, logo and script (computed styles, the
// image's size, the password rules ticked by the script), and the browser
// never asks for anything outside /password/.
func TestBrowserUnderPath(t *testing.T) {
	env := testbed.Load(t)
	data := t.TempDir()
	sink := selfServiceByEmail(t, env, data)
	if code, _, errOut := cli(t, "a long admin password\n", "admin", "create", "--data", data, "--email", "ada@example.com", "--name", "Ada", "--role", "global-admin"); code != 0 {
		t.Fatal(errOut)
	}
	var s *server
	proxy := startPathProxy(t, "/password", func() string { return s.addr })
	s = startServer(t, data, "--base-url", "http://"+proxy.addr+"/password/")
	base := "http://" + proxy.addr + "/password"
	user := env.NewADUser(t, testbed.UserOptions{})
	ctx := browser.New(t)

	styled := func(what string) {
		t.Helper()
		ok := browser.Eval[bool](t, ctx, `(() => {
			const img = document.querySelector("header.top .brand img");
			return location.pathname.startsWith("/password/") &&
				getComputedStyle(document.querySelector("header.top")).display === "flex" &&
				img.complete && img.naturalWidth > 0 && getComputedStyle(img).width === "28px";
		})()`)
		if !ok {
			browser.Shot(t, ctx, "unstyled-"+what)
			t.Errorf("%s: not under /password/, or the stylesheet or logo did not load", what)
		}
	}

	browser.Step(t, ctx, "start page", chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.CSS(`[data-testid=go-reset]`)))
	styled("start page")
	if got := browser.Eval[string](t, ctx, `getComputedStyle(document.querySelector("main.narrow")).maxWidth`); got != "480px" {
		t.Errorf("start page: main is %q wide, want app.css's 480px", got)
	}
	newPw := "Pth-" + testbed.RandomPassword()
	resetUpToNewPassword(t, ctx, sink, user, newPw)
	styled("new password")
	browser.Step(t, ctx, "set password", chromedp.Click(chromedp.CSS(`[data-testid=set-password]`)), chromedp.WaitVisible(chromedp.CSS(`[data-testid=done]`)))
	browser.Shot(t, ctx, "01-reset-done-under-path")
	styled("done")
	if err := env.BindAs(t, env.AD, user.DN, newPw); err != nil {
		t.Errorf("bind with the new password: %v", err)
	}

	// A Global Administrator signs in: /password/admin → sign-in → second
	// factor set up → the on-premises page.
	var factor secondFactor
	browser.Step(t, ctx, "sign in",
		chromedp.Navigate(base+"/admin"),
		chromedp.WaitVisible(chromedp.ID("email")),
		chromedp.SendKeys(chromedp.ID("email"), "ada@example.com"),
		chromedp.SendKeys(chromedp.ID("password"), "a long admin password"),
		chromedp.Click(chromedp.CSS(`[data-testid=sign-in]`)),
	)
	secondStep(t, ctx, &factor, `[data-testid=service-panel]`)
	browser.Shot(t, ctx, "02-admin-under-path")
	if got := browser.Eval[string](t, ctx, `location.pathname`); got != "/password/admin/password-reset/on-premises-integration" {
		t.Errorf("after sign-in at %q", got)
	}
	styled("on-premises integration")
	if got := browser.Eval[string](t, ctx, `getComputedStyle(document.querySelector(".shell")).display`); got != "grid" {
		t.Errorf("admin shell display %q, want app.css's grid", got)
	}
	browser.Step(t, ctx, "audit log from the navigation",
		chromedp.Click(chromedp.CSS(`nav.side a[href="/password/admin/audit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=audit-table]`)),
	)
	styled("audit log")
	browser.Step(t, ctx, "sign out", chromedp.Click(chromedp.CSS(`header.top .who button`)), chromedp.WaitVisible(chromedp.ID("email")))
	if got := browser.Eval[string](t, ctx, `location.pathname`); got != "/password/login" {
		t.Errorf("signed out to %q", got)
	}

	proxy.mu.Lock()
	defer proxy.mu.Unlock()
	if len(proxy.outside) > 0 {
		t.Errorf("the browser asked for %d paths outside /password/: %v", len(proxy.outside), proxy.outside)
	}
	if proxy.asked < 20 {
		t.Errorf("only %d requests went through the proxy", proxy.asked)
	}
}
