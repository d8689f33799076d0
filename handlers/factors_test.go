package handlers_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/writeback/writeback/services/admins"
	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/store"
)

// defaultSecondFactorPolicy puts back the policy a new portal has (the
// harness makes the second factor optional for the tests not about it).
func defaultSecondFactorPolicy(t *testing.T, h *harness) {
	t.Helper()
	setPolicy(t, h, admins.DefaultPolicy)
}

func setPolicy(t *testing.T, h *harness, p admins.Policy) {
	t.Helper()
	_, meta, err := h.admins.Policy(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.admins.SavePolicy(context.Background(), audit.CommandLine, meta.Version, p); err != nil {
		t.Fatal(err)
	}
}

// password is the first step of a sign-in: the page the browser is sent to.
func (c *client) password(email string) string {
	c.t.Helper()
	p := c.post("/login", url.Values{"csrf_token": {c.csrf("/login")}, "email": {email}, "password": {testPassword}})
	if p.Status != http.StatusSeeOther {
		c.t.Fatalf("password of %s: status %d\n%s", email, p.Status, p.Body)
	}
	return p.Location
}

var (
	secretRE   = regexp.MustCompile(`data-testid="totp-secret">([A-Z2-7]+)<`)
	recoveryRE = regexp.MustCompile(`<li><code>([a-z2-9]{5}-[a-z2-9]{5})</code></li>`)
)

// enrolApp sets up an authenticator app on the enrolment page at path (as
// a person would: reads the key the page shows, computes the code) and
// returns the key and the page that followed.
func (c *client) enrolApp(path string) (string, page) {
	c.t.Helper()
	p := c.get(path)
	m := secretRE.FindStringSubmatch(p.Body)
	if m == nil {
		c.t.Fatalf("no authenticator key on %s (status %d)\n%s", path, p.Status, p.Body)
	}
	code, err := totp.GenerateCode(m[1], time.Now())
	if err != nil {
		c.t.Fatal(err)
	}
	action := strings.TrimSuffix(path, "/add")
	if strings.HasPrefix(path, "/login/enrol") {
		action = "/login/enrol"
	}
	return m[1], c.post(action+"/app", url.Values{"csrf_token": {c.csrf(path)}, "code": {code}, "app-name": {"Phone"}})
}

// codeAt is the code of secret one time step on (the window accepts it):
// the step of now was used by the enrolment.
func codeAt(t *testing.T, secret string, at time.Time) string {
	t.Helper()
	code, err := totp.GenerateCode(secret, at)
	if err != nil {
		t.Fatal(err)
	}
	return code
}

func recoveryCodes(t *testing.T, body string) []string {
	t.Helper()
	var out []string
	for _, m := range recoveryRE.FindAllStringSubmatch(body, -1) {
		out = append(out, m[1])
	}
	return out
}

// enrolledAdmin signs a Global Administrator in for the first time under
// the default policy: password, enrolment of an app, recovery codes.
func enrolledAdmin(t *testing.T, h *harness, email string) (*client, string, []string) {
	t.Helper()
	h.addAdmin(email, admins.GlobalAdmin)
	c := h.client()
	if loc := c.password(email); !strings.HasPrefix(loc, "/login/enrol") {
		t.Fatalf("after the password: %s, want /login/enrol", loc)
	}
	secret, p := c.enrolApp("/login/enrol")
	if p.Status != http.StatusOK {
		t.Fatalf("enrol: status %d\n%s", p.Status, p.Body)
	}
	codes := recoveryCodes(t, p.Body)
	if len(codes) != admins.RecoveryCodeCount {
		t.Fatalf("%d recovery codes shown, want %d\n%s", len(codes), admins.RecoveryCodeCount, p.Body)
	}
	return c, secret, codes
}

// TestSecondFactorPolicyAtSignIn: under the default policy a Global
// Administrator without a factor is sent to enrol right after the
// password, and a Helpdesk Administrator ("optional") signs in; with
// "required" for Helpdesk Administrators they are sent to enrol too, and
// with the Global Administrators' requirement off those sign in at once.
func TestSecondFactorPolicyAtSignIn(t *testing.T) {
	cases := []struct {
		name   string
		policy admins.Policy
		role   admins.Role
		want   string
	}{
		{"default, Global Administrator", admins.DefaultPolicy, admins.GlobalAdmin, "/login/enrol"},
		{"default, Helpdesk Administrator", admins.DefaultPolicy, admins.HelpdeskAdmin, onPremPath},
		{"default, Reports Reader", admins.DefaultPolicy, admins.ReportsReader, onPremPath},
		{"helpdesk required", admins.Policy{GlobalAdmin: true, HelpdeskAdmin: true}, admins.HelpdeskAdmin, "/login/enrol"},
		{"reports required", admins.Policy{GlobalAdmin: true, ReportsReader: true}, admins.ReportsReader, "/login/enrol"},
		{"global off", admins.Policy{}, admins.GlobalAdmin, onPremPath},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			setPolicy(t, h, tc.policy)
			email := string(tc.role) + "@example.com"
			h.addAdmin(email, tc.role)
			c := h.client()
			tok := c.csrf("/login")
			p := c.post("/login", url.Values{"csrf_token": {tok}, "email": {email}, "password": {testPassword}, "next": {onPremPath}})
			if p.Status != http.StatusSeeOther || !strings.HasPrefix(p.Location, tc.want) {
				t.Fatalf("after the password: %d %s, want %s", p.Status, p.Location, tc.want)
			}
			if tc.want == onPremPath {
				if got := c.get(onPremPath); got.Status != http.StatusOK {
					t.Errorf("signed in, but %s answers %d", onPremPath, got.Status)
				}
				return
			}
			if !strings.Contains(p.Location, "next="+url.QueryEscape(onPremPath)) {
				t.Errorf("the enrolment forgot where the administrator was going: %s", p.Location)
			}
			if got := c.get(p.Location); got.Status != http.StatusOK || !strings.Contains(got.Body, "Set up a second way to sign in") {
				t.Errorf("enrolment page: %d\n%s", got.Status, got.Body)
			}
		})
	}
}

// TestHalfSignedInReachesNoAdminPage: between the password and the second
// factor (or its enrolment) no page behind sign-in opens, and no form
// behind it is accepted.
func TestHalfSignedInReachesNoAdminPage(t *testing.T) {
	h := newHarness(t)
	defaultSecondFactorPolicy(t, h)
	h.connectDirectory(t, true)
	// One administrator at the enrolment stage, one at the factor stage.
	enrolling := h.client()
	h.addAdmin("new@example.com", admins.GlobalAdmin)
	if loc := enrolling.password("new@example.com"); !strings.HasPrefix(loc, "/login/enrol") {
		t.Fatalf("after the password: %s", loc)
	}
	_, _, _ = enrolledAdmin(t, h, "ada@example.com")
	factor := h.client()
	if loc := factor.password("ada@example.com"); !strings.HasPrefix(loc, "/login/factor") {
		t.Fatalf("after the password: %s", loc)
	}
	for name, c := range map[string]*client{"enrol": enrolling, "factor": factor} {
		for _, path := range []string{"/admin", onPremPath, "/admin/administrators", "/admin/audit", "/admin/security", "/admin/users", "/admin/directory"} {
			p := c.get(path)
			if p.Status != http.StatusSeeOther || !strings.HasPrefix(p.Location, "/login") {
				t.Errorf("%s stage: GET %s answered %d %s", name, path, p.Status, p.Location)
			}
		}
		tok := c.csrf("/login")
		before := auditCount(t, h)
		for _, path := range []string{onPremPath, "/admin/administrators", "/admin/security/recovery-codes", "/admin/administrators/1/reset"} {
			p := c.post(path, url.Values{"csrf_token": {tok}, "writeback": {"yes"}, "unlock": {"yes"}, "version": {"1"},
				"email": {"evil@example.com"}, "name": {"Evil"}, "role": {"global-admin"}, "password": {"a long enough password"}})
			if p.Status != http.StatusUnauthorized {
				t.Errorf("%s stage: POST %s answered %d", name, path, p.Status)
			}
		}
		if got := auditCount(t, h); got != before {
			t.Errorf("%s stage: refused posts wrote %d audit rows", name, got-before)
		}
		// The other stage's pages send it back to its own.
		other := map[string]string{"enrol": "/login/factor", "factor": "/login/enrol"}[name]
		if p := c.get(other); p.Status != http.StatusSeeOther || !strings.HasPrefix(p.Location, "/login/"+name) {
			t.Errorf("%s stage: GET %s answered %d %s", name, other, p.Status, p.Location)
		}
	}
	if _, err := h.db.AdminByEmail(context.Background(), "evil@example.com"); err == nil {
		t.Error("an administrator was added from the half-signed-in state")
	}
}

// TestHalfSignedInExpires: the second step is open for PendingTTL only.
func TestHalfSignedInExpires(t *testing.T) {
	h := newHarness(t)
	defaultSecondFactorPolicy(t, h)
	_, secret, _ := enrolledAdmin(t, h, "ada@example.com")
	c := h.client()
	c.password("ada@example.com")
	now := time.Now()
	h.admins.SetClock(func() time.Time { return now.Add(admins.PendingTTL + time.Second) })
	p := c.get("/login/factor")
	if p.Status != http.StatusSeeOther || !strings.HasPrefix(p.Location, "/login") || strings.HasPrefix(p.Location, "/login/") {
		t.Fatalf("after %s: %d %s", admins.PendingTTL, p.Status, p.Location)
	}
	if got := c.get(p.Location); !strings.Contains(got.Body, "Your sign-in has timed out") {
		t.Errorf("the sign-in page does not say why\n%s", got.Body)
	}
	code := codeAt(t, secret, now.Add(admins.PendingTTL+time.Second))
	if p := c.post("/login/factor/app", url.Values{"csrf_token": {c.csrf("/login")}, "code": {code}}); p.Status != http.StatusSeeOther ||
		!strings.HasPrefix(p.Location, "/login") {
		t.Errorf("a code after the timeout: %d %s", p.Status, p.Location)
	}
	if p := c.get(onPremPath); p.Status != http.StatusSeeOther {
		t.Errorf("signed in after the timeout: %d", p.Status)
	}
}

// TestSecondFactorTOTPSignIn: a Global Administrator enrols an app at the
// first sign-in (its code read from the page's key), and signs in with it
// afterwards; a wrong code is refused, and a code that signed in once does
// not sign in again.
func TestSecondFactorTOTPSignIn(t *testing.T) {
	h := newHarness(t)
	defaultSecondFactorPolicy(t, h)
	first, secret, codes := enrolledAdmin(t, h, "ada@example.com")
	if p := first.get(onPremPath); p.Status != http.StatusOK {
		t.Fatalf("after enrolment %s answers %d", onPremPath, p.Status)
	}
	c := h.client()
	loc := c.password("ada@example.com")
	if !strings.HasPrefix(loc, "/login/factor") {
		t.Fatalf("after the password: %s", loc)
	}
	p := c.get(loc)
	if !strings.Contains(p.Body, `data-testid="step-app"`) || strings.Contains(p.Body, `data-testid="step-passkey"`) {
		t.Errorf("the second step offers other ways than the enrolled app\n%s", p.Body)
	}
	tok := c.csrf(loc)
	wrong := c.post("/login/factor/app", url.Values{"csrf_token": {tok}, "code": {"000000"}})
	if wrong.Status != http.StatusUnauthorized || !strings.Contains(wrong.Body, "That code is not right") {
		t.Fatalf("wrong code: %d\n%s", wrong.Status, wrong.Body)
	}
	// The enrolment used this time step: the code of the next one signs in.
	code := codeAt(t, secret, time.Now().Add(30*time.Second))
	ok := c.post("/login/factor/app", url.Values{"csrf_token": {tok}, "code": {code}, "next": {"/admin/audit"}})
	if ok.Status != http.StatusSeeOther || ok.Location != "/admin/audit" {
		t.Fatalf("right code: %d %s\n%s", ok.Status, ok.Location, ok.Body)
	}
	if p := c.get("/admin/audit"); p.Status != http.StatusOK {
		t.Errorf("signed in, but /admin/audit answers %d", p.Status)
	}
	// The same code again, in another sign-in: refused.
	again := h.client()
	again.password("ada@example.com")
	replay := again.post("/login/factor/app", url.Values{"csrf_token": {again.csrf("/login/factor")}, "code": {code}})
	if replay.Status != http.StatusUnauthorized || !strings.Contains(replay.Body, "used already") {
		t.Errorf("replayed code: %d\n%s", replay.Status, replay.Body)
	}
	rows, err := h.db.RecentAudit(context.Background(), audit.ActivityAdminSecondFactor, 10)
	if err != nil {
		t.Fatal(err)
	}
	var okRows, failRows int
	for _, r := range rows {
		if !strings.Contains(r.Details, "Authenticator app") {
			t.Errorf("second-factor event without the factor: %s", r.Details)
		}
		if r.Result == audit.Success {
			okRows++
		} else {
			failRows++
		}
	}
	if okRows != 2 || failRows != 2 {
		t.Errorf("%d successful and %d failed second-factor events, want 2 and 2", okRows, failRows)
	}
	assertActivities(t, h, audit.ActivityAddAdminFactor, audit.ActivityRecoveryCodes)
	assertNoSecrets(t, h, append([]string{secret, code}, codes...)...)
}

// TestRecoveryCodeSingleUse: a recovery code signs in once in place of the
// factor; the same code then fails.
func TestRecoveryCodeSingleUse(t *testing.T) {
	h := newHarness(t)
	defaultSecondFactorPolicy(t, h)
	_, _, codes := enrolledAdmin(t, h, "ada@example.com")
	c := h.client()
	c.password("ada@example.com")
	typed := " " + strings.ToUpper(codes[3]) + " " // as someone might type it
	p := c.post("/login/factor/recovery", url.Values{"csrf_token": {c.csrf("/login/factor")}, "recovery": {typed}})
	if p.Status != http.StatusSeeOther || p.Location != "/admin" {
		t.Fatalf("recovery code: %d %s\n%s", p.Status, p.Location, p.Body)
	}
	if got := c.get(onPremPath); got.Status != http.StatusOK {
		t.Errorf("signed in with a recovery code, but %s answers %d", onPremPath, got.Status)
	}
	again := h.client()
	again.password("ada@example.com")
	p = again.post("/login/factor/recovery", url.Values{"csrf_token": {again.csrf("/login/factor")}, "recovery": {codes[3]}})
	if p.Status != http.StatusUnauthorized || !strings.Contains(p.Body, "used already") {
		t.Errorf("the same recovery code again: %d\n%s", p.Status, p.Body)
	}
	rows, _ := h.db.RecentAudit(context.Background(), audit.ActivityAdminSecondFactor, 5)
	if len(rows) < 2 || rows[1].Result != audit.Success || !strings.Contains(rows[1].Details, `"factor":"Recovery code"`) ||
		!strings.Contains(rows[1].Details, `"recovery_codes_left":9`) {
		t.Errorf("recovery sign-in not audited as such: %+v", rows)
	}
	// The page shows how many are left.
	if p := c.get("/admin/security"); !strings.Contains(p.Body, "9 of 10 recovery codes left") {
		t.Errorf("sign-in methods page\n%s", p.Body)
	}
	assertNoSecrets(t, h, codes...)
}

// TestSecondFactorWrongCodesLimited: after FactorAttempts wrong codes the
// second step refuses even the right one for the window, and signing in
// again with the (right) password does not give new tries.
func TestSecondFactorWrongCodesLimited(t *testing.T) {
	h := newHarness(t)
	defaultSecondFactorPolicy(t, h)
	_, secret, codes := enrolledAdmin(t, h, "ada@example.com")
	c := h.client()
	c.password("ada@example.com")
	tok := c.csrf("/login/factor")
	for i := range admins.FactorAttempts {
		if p := c.post("/login/factor/app", url.Values{"csrf_token": {tok}, "code": {"12345" + string(rune('0'+i))}}); p.Status != http.StatusUnauthorized {
			t.Fatalf("wrong code %d: %d", i+1, p.Status)
		}
	}
	right := codeAt(t, secret, time.Now().Add(30*time.Second))
	if p := c.post("/login/factor/app", url.Values{"csrf_token": {tok}, "code": {right}}); p.Status != http.StatusTooManyRequests ||
		!strings.Contains(p.Body, "Too many wrong codes") {
		t.Fatalf("right code after %d wrong ones: %d\n%s", admins.FactorAttempts, p.Status, p.Body)
	}
	fresh := h.client()
	fresh.password("ada@example.com")
	if p := fresh.post("/login/factor/recovery", url.Values{"csrf_token": {fresh.csrf("/login/factor")}, "recovery": {codes[0]}}); p.Status != http.StatusTooManyRequests {
		t.Errorf("a new sign-in got new tries: %d", p.Status)
	}
	if left, _ := h.db.RecoveryCodesLeft(context.Background(), 1); left != admins.RecoveryCodeCount {
		t.Errorf("a refused attempt used a recovery code: %d left", left)
	}
	rows, _ := h.db.RecentAudit(context.Background(), audit.ActivityAdminSecondFactor, 1)
	if len(rows) != 1 || rows[0].Result != audit.Failure || !strings.Contains(rows[0].Reason, "throttled") {
		t.Errorf("throttling not audited: %+v", rows)
	}
}

// TestRemoveLastFactor: the last factor of someone whose role requires one
// cannot be removed; with the requirement off it can (and the recovery
// codes go with it).
func TestRemoveLastFactor(t *testing.T) {
	h := newHarness(t)
	defaultSecondFactorPolicy(t, h)
	c, _, _ := enrolledAdmin(t, h, "ada@example.com")
	fs, _ := h.db.AdminFactors(context.Background(), 1)
	if len(fs) != 1 {
		t.Fatalf("%d factors", len(fs))
	}
	path := "/admin/security/factors/" + formatInt(fs[0].ID) + "/remove"
	p := c.post(path, url.Values{"csrf_token": {c.csrf("/admin/security")}})
	if p.Status != http.StatusConflict || !strings.Contains(p.Body, "This is your last second factor and your role requires one") {
		t.Fatalf("removing the last required factor: %d\n%s", p.Status, p.Body)
	}
	if fs, _ := h.db.AdminFactors(context.Background(), 1); len(fs) != 1 {
		t.Fatal("the factor was removed")
	}
	if rows, _ := h.db.RecentAudit(context.Background(), audit.ActivityRemoveAdminFactor, 1); len(rows) != 1 || rows[0].Result != audit.Failure {
		t.Errorf("the refusal is not audited: %+v", rows)
	}
	setPolicy(t, h, admins.Policy{})
	// A wrong code while adding an app is refused and audited too.
	if p := c.get("/admin/security/add"); p.Status != http.StatusOK {
		t.Fatalf("add page: %d", p.Status)
	}
	if p := c.post("/admin/security/app", url.Values{"csrf_token": {c.csrf("/admin/security")}, "code": {"000000"}}); p.Status != http.StatusUnprocessableEntity ||
		!strings.Contains(p.Body, "That code is not right") {
		t.Errorf("wrong code while adding an app: %d", p.Status)
	}
	if rows, _ := h.db.RecentAudit(context.Background(), audit.ActivityAddAdminFactor, 1); len(rows) != 1 || rows[0].Result != audit.Failure ||
		rows[0].Reason != "wrong code from the new app" {
		t.Errorf("the refused enrolment is not audited: %+v", rows)
	}
	p = c.post(path, url.Values{"csrf_token": {c.csrf("/admin/security")}})
	if p.Status != http.StatusSeeOther {
		t.Fatalf("removing an optional factor: %d\n%s", p.Status, p.Body)
	}
	if fs, _ := h.db.AdminFactors(context.Background(), 1); len(fs) != 0 {
		t.Error("the factor is still there")
	}
	if n, _ := h.db.RecoveryCodesLeft(context.Background(), 1); n != 0 {
		t.Errorf("%d recovery codes left without a factor", n)
	}
	assertActivities(t, h, audit.ActivityRemoveAdminFactor)
	// Without a factor and not required, the next sign-in needs none.
	if loc := h.client().password("ada@example.com"); loc != "/admin" {
		t.Errorf("after the password: %s", loc)
	}
}

// TestResetSignInForcesReEnrolment: a Global Administrator resets another
// one's sign-in from the Administrators page: their sessions end, their
// password and factors stop working, and with the one-time link they
// choose a password and must enrol again at the next sign-in — a Helpdesk
// Administrator whose factor was optional too.
func TestResetSignInForcesReEnrolment(t *testing.T) {
	h := newHarness(t)
	defaultSecondFactorPolicy(t, h)
	gc, _, _ := enrolledAdmin(t, h, "ada@example.com")
	bob, _, _ := enrolledAdmin(t, h, "bob@example.com")
	h.addAdmin("hal@example.com", admins.HelpdeskAdmin)
	hal := h.client()
	hal.login("hal@example.com")
	if _, p := hal.enrolApp("/admin/security/add"); p.Status != http.StatusOK {
		t.Fatalf("helpdesk enrols an optional app: %d\n%s", p.Status, p.Body)
	}
	for _, who := range []struct {
		email string
		c     *client
	}{{"bob@example.com", bob}, {"hal@example.com", hal}} {
		a, _ := h.db.AdminByEmail(context.Background(), who.email)
		p := gc.post("/admin/administrators/"+formatInt(a.ID)+"/reset", url.Values{"csrf_token": {gc.csrf("/admin/administrators")}})
		if p.Status != http.StatusOK {
			t.Fatalf("reset %s: %d\n%s", who.email, p.Status, p.Body)
		}
		m := regexp.MustCompile(`data-testid="reset-link">([^<]+)<`).FindStringSubmatch(p.Body)
		if m == nil || !strings.HasPrefix(m[1], testBaseURL+"/login/reset?token=") {
			t.Fatalf("no reset link\n%s", p.Body)
		}
		link := strings.TrimPrefix(m[1], testBaseURL)
		if got := who.c.get(onPremPath); got.Status != http.StatusSeeOther {
			t.Errorf("%s is still signed in after the reset: %d", who.email, got.Status)
		}
		if fs, _ := h.db.AdminFactors(context.Background(), a.ID); len(fs) != 0 {
			t.Errorf("%s keeps %d factors", who.email, len(fs))
		}
		old := h.client()
		if p := old.post("/login", url.Values{"csrf_token": {old.csrf("/login")}, "email": {who.email}, "password": {testPassword}}); p.Status != http.StatusUnauthorized {
			t.Errorf("the old password of %s still works: %d", who.email, p.Status)
		}
		c := h.client()
		form := c.get(link)
		if form.Status != http.StatusOK || !strings.Contains(form.Body, who.email) {
			t.Fatalf("reset link page: %d\n%s", form.Status, form.Body)
		}
		tok := strings.TrimPrefix(link, "/login/reset?token=")
		if p := c.post("/login/reset", url.Values{"csrf_token": {c.csrf(link)}, "token": {tok}, "password": {testPassword}, "confirm": {testPassword}}); p.Status != http.StatusSeeOther {
			t.Fatalf("set password: %d\n%s", p.Status, p.Body)
		}
		if p := c.get(link); p.Status != http.StatusNotFound {
			t.Errorf("the reset link works twice: %d", p.Status)
		}
		if loc := c.password(who.email); !strings.HasPrefix(loc, "/login/enrol") {
			t.Errorf("%s after the reset and the new password: %s, want /login/enrol", who.email, loc)
		}
	}
	// One cannot reset oneself from the page.
	self, _ := h.db.AdminByEmail(context.Background(), "ada@example.com")
	if p := gc.post("/admin/administrators/"+formatInt(self.ID)+"/reset", url.Values{"csrf_token": {gc.csrf("/admin/administrators")}}); p.Status != http.StatusConflict {
		t.Errorf("self reset: %d", p.Status)
	}
	assertActivities(t, h, audit.ActivityResetAdminSignIn, audit.ActivityAdminSetPassword)
	rows, _ := h.db.RecentAudit(context.Background(), audit.ActivityResetAdminSignIn, 5)
	for _, r := range rows {
		if strings.Contains(r.Details, "token") && !strings.Contains(r.Details, "link_valid_hours") {
			t.Errorf("reset event details: %s", r.Details)
		}
	}
}

// TestSecondFactorPolicyPage: a Global Administrator saves the policy on
// the Administrators page; it is audited and applies at the next sign-in.
func TestSecondFactorPolicyPage(t *testing.T) {
	h := newHarness(t)
	defaultSecondFactorPolicy(t, h)
	g, _, _ := enrolledAdmin(t, h, "ada@example.com")
	page := g.get("/admin/administrators")
	if !strings.Contains(page.Body, `id="global_admin-yes" name="global_admin" value="yes" checked`) ||
		!strings.Contains(page.Body, `id="helpdesk_admin-optional" name="helpdesk_admin" value="optional" checked`) {
		t.Fatalf("the page does not show the default policy\n%s", page.Body)
	}
	ver := regexp.MustCompile(`action="/admin/administrators/policy"[^>]*>.*?name="version" value="(\d+)"`).FindStringSubmatch(strings.ReplaceAll(page.Body, "\n", " "))
	if ver == nil {
		t.Fatal("no policy version on the page")
	}
	p := g.post("/admin/administrators/policy", url.Values{"csrf_token": {g.csrf("/admin/administrators")}, "version": {ver[1]},
		"global_admin": {"yes"}, "helpdesk_admin": {"required"}, "reports_reader": {"optional"}})
	if p.Status != http.StatusSeeOther {
		t.Fatalf("save policy: %d\n%s", p.Status, p.Body)
	}
	pol, _, _ := h.admins.Policy(context.Background())
	if !pol.GlobalAdmin || !pol.HelpdeskAdmin || pol.ReportsReader {
		t.Errorf("policy %+v", pol)
	}
	rows, _ := h.db.RecentAudit(context.Background(), audit.ActivityUpdateAdminPolicy, 1)
	var d map[string]audit.Change
	if len(rows) != 1 || json.Unmarshal([]byte(rows[0].Details), &d) != nil || d["helpdesk_admin"].New != "Required" {
		t.Errorf("policy change not audited: %+v", rows)
	}
	h.addAdmin("hal@example.com", admins.HelpdeskAdmin)
	if loc := h.client().password("hal@example.com"); !strings.HasPrefix(loc, "/login/enrol") {
		t.Errorf("Helpdesk Administrator after the policy change: %s", loc)
	}
	// Only Global Administrators may change it (the route is theirs).
	hd := h.client()
	h.addAdmin("hd@example.com", admins.HelpdeskAdmin)
	setPolicy(t, h, admins.DefaultPolicy)
	hd.login("hd@example.com")
	if p := hd.post("/admin/administrators/policy", url.Values{"csrf_token": {hd.csrf("/admin/security")}, "version": {"9"},
		"global_admin": {"no"}, "helpdesk_admin": {"optional"}, "reports_reader": {"optional"}}); p.Status != http.StatusForbidden {
		t.Errorf("Helpdesk Administrator saves the policy: %d", p.Status)
	}
}

// sanity: the store constants the tests use exist with these names.
var _ = store.StageEnrol
