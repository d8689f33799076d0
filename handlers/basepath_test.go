package handlers_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"
	"golang.org/x/net/html"

	"github.com/writeback/writeback/services/admins"
	"github.com/writeback/writeback/services/agentwire"
	"github.com/writeback/writeback/services/selfservice"
	"github.com/writeback/writeback/testbed"
)

// cssURL finds the addresses in a stylesheet: url(…) and @import "…".
var cssURL = regexp.MustCompile(`url\(\s*['"]?([^'")\s]+)|@import\s+['"]([^'"]+)`)

// urlAttrs are the HTML attributes that hold an address a browser follows
// or loads.
var urlAttrs = []string{"href", "src", "action", "formaction", "poster", "data", "srcset"}

// eachURL calls fn with every address in an answer's body that a browser
// follows or loads: the href, src, action, … attributes of HTML, the url()
// and @import of CSS.
func eachURL(contentType string, body []byte, fn func(what, ref string)) {
	switch {
	case strings.HasPrefix(contentType, "text/html"):
		z := html.NewTokenizer(bytes.NewReader(body))
		for {
			tt := z.Next()
			if tt == html.ErrorToken {
				return
			}
			if tt != html.StartTagToken && tt != html.SelfClosingTagToken {
				continue
			}
			tag, more := z.TagName()
			for more {
				var k, v []byte
				k, v, more = z.TagAttr()
				if !slices.Contains(urlAttrs, string(k)) {
					continue
				}
				if string(k) == "srcset" {
					for _, c := range strings.Split(string(v), ",") {
						if f := strings.Fields(c); len(f) > 0 {
							fn(string(tag)+" srcset", f[0])
						}
					}
					continue
				}
				fn(string(tag)+" "+string(k), string(v))
			}
		}
	case strings.HasPrefix(contentType, "text/css"):
		for _, m := range cssURL.FindAllSubmatch(body, -1) {
			fn("CSS url()", string(m[1])+string(m[2]))
		}
	}
}

// outsidePrefix lists what in one answer to a request for from would take a
// browser off the path prefix pre on this host: a Location, a cookie's Path,
// an address in the HTML or CSS. Other schemes (data:, mailto:, otpauth:)
// and other hosts are not this portal's paths.
func outsidePrefix(pre string, from *url.URL, resp *http.Response, body []byte) []string {
	var bad []string
	check := func(what, ref string) {
		u, err := from.Parse(ref)
		if err != nil {
			bad = append(bad, fmt.Sprintf("%s %q does not parse: %v", what, ref, err))
			return
		}
		if (u.Scheme == "http" || u.Scheme == "https") && u.Host == from.Host && !strings.HasPrefix(u.Path, pre+"/") {
			bad = append(bad, fmt.Sprintf("%s %q is not under %s/", what, ref, pre))
		}
	}
	if loc := resp.Header.Get("Location"); loc != "" {
		check("Location", loc)
	}
	for _, c := range resp.Cookies() {
		if !strings.HasPrefix(c.Path, pre+"/") {
			bad = append(bad, fmt.Sprintf("cookie %s has Path %q, not under %s/", c.Name, c.Path, pre))
		}
	}
	eachURL(resp.Header.Get("Content-Type"), body, check)
	return bad
}

// crawl visits, with GET, the pages at seeds and every page and asset they
// link to on this portal (at most max), and returns the paths visited
// (without the prefix). Every answer goes through the client's checks.
func (c *client) crawl(max int, seeds ...string) []string {
	c.t.Helper()
	queue := slices.Clone(seeds)
	seen := map[string]bool{}
	for _, s := range seeds {
		seen[s] = true
	}
	var visited []string
	for len(queue) > 0 && len(visited) < max {
		path := queue[0]
		queue = queue[1:]
		req := c.getRequest(path)
		p := c.do(req)
		visited = append(visited, path)
		if p.Status >= 500 {
			c.t.Errorf("GET %s: %d", path, p.Status)
		}
		// HEAD answers every GET page: the same status, no body.
		head := c.getRequest(path)
		head.Method = http.MethodHead
		if hp := c.do(head); hp.Status != p.Status || hp.Body != "" {
			c.t.Errorf("HEAD %s: %d with %d bytes, GET: %d", path, hp.Status, len(hp.Body), p.Status)
		}
		eachURL(p.Header.Get("Content-Type"), []byte(p.Body), func(what, ref string) {
			if strings.HasSuffix(what, " action") || strings.HasSuffix(what, " formaction") {
				return // a form's target, posted by the tests that fill it in
			}
			u, err := req.URL.Parse(ref)
			if err != nil || u.Host != req.URL.Host || !strings.HasPrefix(u.Path, c.h.prefix+"/") {
				return
			}
			next := strings.TrimPrefix(u.EscapedPath(), c.h.prefix)
			if u.RawQuery != "" {
				next += "?" + u.RawQuery
			}
			if !seen[next] {
				seen[next] = true
				queue = append(queue, next)
			}
		})
	}
	return visited
}

// TestEveryPageStaysUnderThePath is issue 12 item 7: a portal whose base URL
// has a path (https://intranet.example/password/) is served under it, and
// nothing a person reaches — public pages, sign-in, setup, the self-service
// flows and their e-mails, every administrator page for each role, assets —
// sends the browser outside it: every href, src, action, Location,
// cookie Path and CSS url() of every answer is checked (outsidePrefix, by
// the harness's client), and the pages are crawled by their links.
func TestEveryPageStaysUnderThePath(t *testing.T) {
	env := testbed.Load(t)
	d := directories(env)[1]
	const base = "http://portal.test/password/"
	h := newHarnessUnder(t, base, nil)
	s := newSSPROn(t, env, d, selfservice.Methods{Email: true, App: true, Questions: true}, h)
	ctx := context.Background()

	// Before any administrator exists: the setup page, and the bare
	// prefix sent to the start page under it.
	anon := s.client()
	tok, err := s.admins.NewSetupToken(ctx)
	if err != nil || tok == "" {
		t.Fatalf("setup token: %q %v", tok, err)
	}
	if p := anon.get(""); p.Status != http.StatusPermanentRedirect || p.Location != "/" {
		t.Errorf("GET /password: %d %q, want 308 to /password/", p.Status, p.Location)
	}
	if p := anon.get("/setup?token=" + tok); p.Status != http.StatusOK || !strings.Contains(p.Body, `action="/password/setup"`) {
		t.Errorf("setup page: %d\n%s", p.Status, between(p.Body, "<main", "</main>"))
	}
	visited := anon.crawl(60, "/", "/login", "/reset", "/unlock", "/change", "/register", "/admin/", "/no-such-page", "/login/reset?token=00")
	for _, want := range []string{"/static/app.css", "/static/app.js", "/static/logo.svg"} {
		if !slices.Contains(visited, want) {
			t.Errorf("the public pages do not load %s under the prefix (visited %v)", want, visited)
		}
	}
	// Without the prefix (a proxy that strips it) the same pages answer,
	// still linking under the prefix.
	if resp, err := http.Get(s.srv.URL + "/reset"); err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("GET /reset without the prefix: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}

	// Self-service: register an authenticator app and questions, reset by
	// e-mail code, unlock by questions.
	user := d.newUser(t, testbed.UserOptions{})
	c := s.client()
	p := c.post("/register", url.Values{"csrf_token": {c.csrf("/")}, "login": {user.Login}, "password": {user.Password}})
	if p.Status != http.StatusSeeOther || !strings.HasPrefix(p.Location, "/register/") {
		t.Fatalf("register sign-in: %d %q\n%s", p.Status, p.Location, between(p.Body, "<main", "</main>"))
	}
	reg := p.Location
	c.post(reg+"/app", url.Values{"csrf_token": {c.csrf("/")}})
	m := regexp.MustCompile(`data-testid="app-secret">([A-Z2-7]+)<`).FindStringSubmatch(c.get(reg).Body)
	if m == nil {
		t.Fatal("no authenticator secret on the register page")
	}
	code, _ := totp.GenerateCode(m[1], time.Now())
	if p := c.post(reg+"/app/confirm", url.Values{"csrf_token": {c.csrf("/")}, "app_code": {code}}); p.Status != http.StatusSeeOther {
		t.Fatalf("confirm app: %d", p.Status)
	}
	qs := selfservice.DefaultPolicy().Questions[:3]
	if p := c.post(reg+"/questions", url.Values{"csrf_token": {c.csrf("/")}, "question": qs, "answer": {"Paris", "Rex the Dog", "Volvo"}}); p.Status != http.StatusSeeOther {
		t.Fatalf("questions: %d", p.Status)
	}
	c.get(reg)

	r := s.client()
	flow := r.begin("reset", user.Login)
	r.get(flow)
	s.verifyByEmail(t, r, flow, user.Mail)
	r.get(flow)
	newPw := "Pfx-" + testbed.RandomPassword()
	if p := r.step(flow, "password", url.Values{"password": {"x"}, "confirm": {"x"}}); p.Status != http.StatusUnprocessableEntity {
		t.Errorf("short password: %d", p.Status)
	}
	if p := r.step(flow, "password", url.Values{"password": {newPw}, "confirm": {newPw}}); p.Status != http.StatusSeeOther {
		t.Fatalf("set password: %d\n%s", p.Status, between(p.Body, "<main", "</main>"))
	}
	if p := r.get(flow); !strings.Contains(p.Body, `data-testid="done"`) {
		t.Errorf("done page:\n%s", between(p.Body, "<main", "</main>"))
	}
	// The notification's one link is the portal under its path.
	if n := s.sink.WaitFor(t, user.Mail, 10*time.Second); !strings.Contains(n.Text, "http://portal.test/password") {
		t.Errorf("notification without the portal's address under its path:\n%s", n.Text)
	}

	u := s.client()
	uf := u.begin("unlock", user.Login)
	u.step(uf, "method", url.Values{"method": {"questions"}})
	u.get(uf)

	// Administrators: every page each role reaches through the links.
	for _, role := range []admins.Role{admins.GlobalAdmin, admins.HelpdeskAdmin, admins.ReportsReader} {
		a := s.client().signedIn(role)
		pages := a.crawl(150, "/admin/", "/admin/security/add", "/admin/users?q="+url.QueryEscape(user.Login), "/admin/agents")
		var admin int
		for _, v := range pages {
			if strings.HasPrefix(v, "/admin/") {
				admin++
			}
		}
		if admin < 8 {
			t.Errorf("%s reached only %d administrator pages: %v", role, admin, pages)
		}
		if role == admins.GlobalAdmin {
			// Forms that answer with a redirect or a page of their own.
			a.post(onPremPath, url.Values{"csrf_token": {a.csrf(onPremPath)}, "version": {currentVersion(t, s.harness)}, "writeback": {"yes"}, "unlock": {"yes"}})
			ap := a.post("/admin/agents", url.Values{"csrf_token": {a.csrf("/admin/agents")}, "name": {"dmz-1"}})
			if !strings.Contains(ap.Body, "--portal http://portal.test/password ") {
				t.Errorf("the enrolment command does not name the portal under its path:\n%s", between(ap.Body, "<main", "</main>"))
			}
			// The agent enrols where that command sends it: the portal's
			// URL and agentwire.PathEnroll.
			resp, err := http.Post(s.srv.URL+"/password"+agentwire.PathEnroll, "application/json", bytes.NewReader(enrollBody(t, tokenOn(t, ap.Body))))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("enrolment under the path: %d", resp.StatusCode)
			}
			a.post("/admin/users/"+user.Login+"/unlock", url.Values{"csrf_token": {a.csrf("/")}})
			a.addAdminPage(t)
		}
		if p := a.post("/logout", url.Values{"csrf_token": {a.csrf("/admin/security")}}); p.Status != http.StatusSeeOther || p.Location != "/login" {
			t.Errorf("sign out: %d %q", p.Status, p.Location)
		}
	}
}

// addAdminPage adds an administrator and asks for their reset link, whose
// address must be the portal's under its path.
func (c *client) addAdminPage(t *testing.T) {
	t.Helper()
	c.post("/admin/administrators", url.Values{"csrf_token": {c.csrf("/admin/administrators")}, "email": {"new@example.com"}, "name": {"New"}, "role": {"reports-reader"}, "password": {testPassword}, "confirm": {testPassword}})
	a, err := c.h.db.AdminByEmail(context.Background(), "new@example.com")
	if err != nil {
		t.Fatalf("the administrator was not added: %v", err)
	}
	p := c.post("/admin/administrators/"+formatInt(a.ID)+"/reset", url.Values{"csrf_token": {c.csrf("/admin/administrators")}})
	if !strings.Contains(p.Body, "http://portal.test/password/login/reset?token=") {
		t.Errorf("reset link not under the path:\n%s", between(p.Body, "<main", "</main>"))
	}
}

// TestBasePathRouting: under a base URL's path the bare prefix is sent to
// the start page under it (query kept), the probes and assets answer under
// the prefix, and — for a proxy that strips the prefix — without it; a path
// that only begins with the prefix's letters is not the portal's.
func TestBasePathRouting(t *testing.T) {
	h := newHarnessUnder(t, "http://portal.test/password/", nil)
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	cases := []struct {
		path     string
		status   int
		location string
	}{
		{"/password", http.StatusPermanentRedirect, "/password/"},
		{"/password?x=1", http.StatusPermanentRedirect, "/password/?x=1"},
		{"/password/", http.StatusOK, ""},
		{"/password/healthz", http.StatusOK, ""},
		{"/password/readyz", http.StatusOK, ""},
		{"/password/static/app.css", http.StatusOK, ""},
		{"/password/admin", http.StatusSeeOther, "/password/login?next=%2Fadmin"},
		{"/healthz", http.StatusOK, ""},
		{"/reset", http.StatusOK, ""},
		{"/admin", http.StatusSeeOther, "/password/login?next=%2Fadmin"},
		{"/passwordx/healthz", http.StatusNotFound, ""},
		{"/password/password/healthz", http.StatusNotFound, ""},
	}
	for _, tc := range cases {
		resp, err := noFollow.Get(h.srv.URL + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.status || resp.Header.Get("Location") != tc.location {
			t.Errorf("GET %s: %d %q, want %d %q", tc.path, resp.StatusCode, resp.Header.Get("Location"), tc.status, tc.location)
		}
	}
}
