package main

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// TestAdminEnableResetPolicyCommands: `admin enable` re-enables a disabled
// administrator; `admin policy` shows and sets the second-factor policy;
// `admin reset` prints a one-time link with which the administrator, on the
// running portal, chooses a new password (the old one stops working) and
// is then sent to set up a second factor.
func TestAdminEnableResetPolicyCommands(t *testing.T) {
	data := t.TempDir()
	for _, c := range [][]string{
		{"a long admin password\n", "admin", "create", "--data", data, "--email", "ada@example.com", "--name", "Ada", "--role", "global-admin"},
		{"another long password\n", "admin", "create", "--data", data, "--email", "grace@example.com", "--name", "Grace", "--role", "global-admin"},
		{"", "admin", "disable", "--data", data, "--email", "ada@example.com"},
	} {
		if code, out, errOut := cli(t, c[0], c[1:]...); code != 0 {
			t.Fatalf("%v: %d %s %s", c[1:], code, out, errOut)
		}
	}
	if code, out, errOut := cli(t, "", "admin", "enable", "--data", data, "--email", "ada@example.com"); code != 0 || !strings.Contains(out, "enabled Ada") {
		t.Fatalf("enable: %d %q %q", code, out, errOut)
	}
	if _, out, _ := cli(t, "", "admin", "list", "--data", data); !regexp.MustCompile(`ada@example.com\s+Ada\s+global-admin\s+active\s+0`).MatchString(out) {
		t.Errorf("list after enable:\n%s", out)
	}
	if code, _, errOut := cli(t, "", "admin", "enable", "--data", data); code == 0 || !strings.Contains(errOut, "--email is required") {
		t.Errorf("enable without --email: %d %q", code, errOut)
	}
	// The policy: Global Administrators required by default.
	if _, out, _ := cli(t, "", "admin", "policy", "--data", data); !regexp.MustCompile(`global-admin\s+required\n\s*helpdesk-admin\s+optional`).MatchString(out) {
		t.Errorf("default policy:\n%s", out)
	}
	if _, out, _ := cli(t, "", "admin", "policy", "--data", data, "--reports-reader", "required"); !regexp.MustCompile(`reports-reader\s+required`).MatchString(out) {
		t.Errorf("policy after set:\n%s", out)
	}
	if code, _, errOut := cli(t, "", "admin", "policy", "--data", data, "--helpdesk-admin", "sometimes"); code == 0 || !strings.Contains(errOut, "want required or optional") {
		t.Errorf("bad policy value: %d %q", code, errOut)
	}

	s := startServer(t, data)
	base := "http://" + s.addr
	code, out, errOut := cli(t, "", "admin", "reset", "--data", data, "--email", "ada@example.com", "--base-url", base)
	if code != 0 {
		t.Fatalf("reset: %d %s %s", code, out, errOut)
	}
	m := regexp.MustCompile(`(` + regexp.QuoteMeta(base) + `/login/reset\?token=[0-9a-f]{64})`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("reset printed no link:\n%s", out)
	}
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(u string) (int, string, string) {
		t.Helper()
		resp, err := c.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp.Header.Get("Location")
	}
	post := func(path string, form url.Values) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, base+path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", base)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("Location")
	}
	csrfRE := regexp.MustCompile(`name="csrf-token" content="([0-9a-f]+)"`)
	status, body, _ := get(m[1])
	if status != http.StatusOK || !strings.Contains(body, "ada@example.com") {
		t.Fatalf("reset link: %d\n%s", status, body)
	}
	tok := csrfRE.FindStringSubmatch(body)[1]
	signIn := func(pw string) (int, string) {
		_, page, _ := get(base + "/login")
		return post("/login", url.Values{"csrf_token": {csrfRE.FindStringSubmatch(page)[1]}, "email": {"ada@example.com"}, "password": {pw}})
	}
	if st, _ := signIn("a long admin password"); st != http.StatusUnauthorized {
		t.Errorf("the old password still signs in: %d", st)
	}
	if st, loc := post("/login/reset", url.Values{"csrf_token": {tok}, "token": {strings.TrimPrefix(m[1], base+"/login/reset?token=")},
		"password": {"a brand new password"}, "confirm": {"a brand new password"}}); st != http.StatusSeeOther || loc != "/login" {
		t.Fatalf("set password: %d %s", st, loc)
	}
	if st, loc := signIn("a brand new password"); st != http.StatusSeeOther || !strings.HasPrefix(loc, "/login/enrol") {
		t.Errorf("sign-in after the reset: %d %s, want the enrolment", st, loc)
	}
	if st, _, _ := get(m[1]); st != http.StatusNotFound {
		t.Errorf("the link works twice: %d", st)
	}
	if code, _, errOut := cli(t, "", "admin", "reset", "--data", data, "--email", "nobody@example.com"); code == 0 || !strings.Contains(errOut, "No administrator") {
		t.Errorf("reset of an unknown address: %d %q", code, errOut)
	}
}
