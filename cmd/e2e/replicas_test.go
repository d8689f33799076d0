package e2e

import (
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/pquerna/otp/totp"

	"github.com/writeback/writeback/services/mail/mailtest"
	"github.com/writeback/writeback/testbed"
	"github.com/writeback/writeback/testbed/browser"
)

// switchProxy is the test's own load balancer in front of the replicas:
// every request goes to the replica that route names, so the test says
// which replica serves each step of a story.
type switchProxy struct {
	url     string
	targets []*url.URL
	route   atomic.Int32
	served  []atomic.Int64
}

func startSwitchProxy(t *testing.T, targets ...string) *switchProxy {
	t.Helper()
	p := &switchProxy{served: make([]atomic.Int64, len(targets))}
	for _, raw := range targets {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		p.targets = append(p.targets, u)
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			i := p.route.Load()
			p.served[i].Add(1)
			r.SetURL(p.targets[i])
			r.Out.Host = r.In.Host // the replicas see the public host, as behind a real balancer
			r.SetXForwarded()
		},
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: rp, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	p.url = "http://" + ln.Addr().String()
	return p
}

// to sends the next requests to replica i.
func (p *switchProxy) to(i int) { p.route.Store(int32(i)) }

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestTwoReplicas runs two `writeback serve` processes on one PostgreSQL
// database behind the test's balancer, and a person in the browser who is
// sent to one or the other: the setup link printed by A creates the first
// Global Administrator, who signs in (and enrols a second factor) on B; the
// session cookie B issued is accepted by A; a setting saved on A is shown by
// B; a self-service reset started on A (its code mailed by A) is finished
// on B after A was killed with SIGKILL, and the new password binds at the
// Samba DC.
func TestTwoReplicas(t *testing.T) {
	env := testbed.Load(t)
	progs := build(t)
	dbURL := env.NewPostgresDB(t)
	outs := &outputs{}
	tmp := t.TempDir()
	dataA, dataB := filepath.Join(tmp, "replica-a"), filepath.Join(tmp, "replica-b")

	// One database, migrated once; the same key on both replicas.
	must(t, outs, progs.portal, "migrate", "--data", dataA, "--database", dbURL)
	key, err := os.ReadFile(filepath.Join(dataA, "writeback.key"))
	if err != nil {
		t.Fatalf("migrate made no key file: %v", err)
	}
	if err := os.MkdirAll(dataB, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dataB, "writeback.key"), key, 0o600); err != nil {
		t.Fatal(err)
	}

	addrs := []string{freePort(t), freePort(t)}
	lb := startSwitchProxy(t, "http://"+addrs[0], "http://"+addrs[1])
	var reps []*proc
	for i, data := range []string{dataA, dataB} {
		reps = append(reps, start(t, outs, "writeback serve "+string(rune('A'+i)), progs.portal, "serve", "--listen", addrs[i],
			"--data", data, "--database", dbURL, "--base-url", lb.url, "--rate-limit-public", "1000"))
	}
	for i, r := range reps {
		eventually(t, 20*time.Second, "replica "+string(rune('A'+i))+" is ready", func() (bool, string) {
			if !r.running() {
				t.Fatalf("%s exited with %d:\n%s", r.name, r.code, r.out.String())
			}
			resp, err := http.Get("http://" + addrs[i] + "/readyz")
			if err != nil {
				return false, err.Error()
			}
			resp.Body.Close()
			return resp.StatusCode == http.StatusOK, resp.Status
		})
	}

	// The setup link A printed, opened through the balancer on A.
	var link string
	eventually(t, 10*time.Second, "A's setup link", func() (bool, string) {
		m := regexp.MustCompile(`(http://\S+/setup\?token=[0-9a-f]{64})`).FindStringSubmatch(reps[0].out.String())
		if m != nil {
			link = m[1]
		}
		return m != nil, reps[0].out.String()
	})
	if !strings.HasPrefix(link, lb.url+"/") {
		t.Fatalf("the setup link %s is not on the balancer's URL %s", link, lb.url)
	}
	ctx := browser.New(t)
	lb.to(0)
	browser.Step(t, ctx, "create the first Global Administrator on A",
		chromedp.Navigate(link), chromedp.WaitVisible(chromedp.ID("name")),
		chromedp.SendKeys(chromedp.ID("name"), "Ada Lovelace"),
		chromedp.SendKeys(chromedp.ID("email"), "ada@example.com"),
		chromedp.SendKeys(chromedp.ID("password"), adminPassword),
		chromedp.SendKeys(chromedp.ID("confirm"), adminPassword),
		chromedp.Click(chromedp.CSS(`[data-testid=create-admin]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=sign-in]`)),
	)
	lb.to(1)
	browser.Step(t, ctx, "sign in on B",
		chromedp.Navigate(lb.url+"/admin/password-reset/customization"),
		chromedp.WaitVisible(chromedp.ID("email")),
		chromedp.SendKeys(chromedp.ID("email"), "ada@example.com"),
		chromedp.SendKeys(chromedp.ID("password"), adminPassword),
		chromedp.Click(chromedp.CSS(`[data-testid=sign-in]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=enrol-app]`)),
	)
	code, err := totp.GenerateCode(strings.TrimSpace(browser.Text(t, ctx, `[data-testid=totp-secret]`)), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	browser.Step(t, ctx, "set up an authenticator app on B",
		chromedp.SendKeys(chromedp.ID("app-code"), code),
		chromedp.Click(chromedp.CSS(`[data-testid=confirm-app]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=recovery-codes]`)),
		chromedp.Click(chromedp.CSS(`[data-testid=continue]`)),
		chromedp.WaitVisible(chromedp.ID("org_name")),
	)

	// B's session cookie on A; a setting saved on A, shown by B.
	lb.to(0)
	browser.Step(t, ctx, "save the organisation's name on A",
		chromedp.Navigate(lb.url+"/admin/password-reset/customization"),
		chromedp.WaitVisible(chromedp.ID("org_name")),
		chromedp.Clear(chromedp.ID("org_name")),
		chromedp.SendKeys(chromedp.ID("org_name"), "Replica Corp"),
		chromedp.Click(chromedp.CSS(`[data-testid=save]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=flash]`)),
	)
	lb.to(1)
	browser.Step(t, ctx, "read it on B",
		chromedp.Navigate(lb.url+"/admin/password-reset/customization"),
		chromedp.WaitVisible(chromedp.ID("org_name")),
	)
	if got := browser.Eval[string](t, ctx, `document.getElementById('org_name').value`); got != "Replica Corp" {
		t.Fatalf("B shows the organisation name %q, want what A saved", got)
	}
	if a, b := lb.served[0].Load(), lb.served[1].Load(); a == 0 || b == 0 {
		t.Fatalf("requests served: A %d, B %d", a, b)
	}

	// Self-service with e-mailed codes, set up from the command line on
	// the shared database while both serve.
	dir := env.AD
	pwFile := filepath.Join(tmp, "bind-password")
	if err := os.WriteFile(pwFile, []byte(dir.BindPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cli := func(args ...string) string {
		return must(t, outs, append(append([]string{progs.portal}, args...), "--data", dataA, "--database", dbURL)...)
	}
	cli("directory", "set", "--type", "ad", "--url", dir.URL, "--ca-file", env.CAFile, "--bind-dn", dir.BindDN,
		"--bind-password-file", pwFile, "--base-dn", dir.PeopleDN, "--password-writeback", "on")
	cli("settings", "set", "--writeback", "yes", "--unlock", "yes")
	cli("sspr", "set", "--enabled", "all", "--methods", "email", "--required", "1", "--helpdesk", "help@example.com")
	sink := mailtest.Start(t, mailtest.Options{})
	host, port := sink.Addr()
	cli("mail", "set", "--host", host, "--port", strconv.Itoa(port), "--tls", "none", "--from", "portal@example.com")

	u := env.NewADUser(t, testbed.UserOptions{})
	newPw := testbed.RandomPassword()
	person := browser.New(t)
	lb.to(0)
	mailed := startEmailReset(t, person, "forgot my password, on A", lb.url, u.Login, sink, u.Mail)
	reps[0].kill(syscall.SIGKILL)
	lb.to(1)
	finishEmailReset(t, person, "the code and a new password, on B after A was killed", mailed, newPw)
	if err := env.BindAs(t, dir, u.DN, newPw); err != nil {
		t.Fatalf("the password set through B does not bind: %v", err)
	}
	out := must(t, outs, progs.portal, "audit", "verify", "--data", dataB, "--database", dbURL)
	t.Logf("audit verify on the shared database: %s", strings.TrimSpace(out))
	for _, o := range outs.all() {
		findSecrets(t, o.name, []byte(o.buf.String()), []string{newPw, u.Password, adminPassword, dir.BindPassword}, "password")
		findSecrets(t, o.name, []byte(o.buf.String()), []string{mailed}, "code")
	}
}
