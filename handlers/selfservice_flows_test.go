package handlers_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/writeback/writeback/services/admins"
	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/directory"
	"github.com/writeback/writeback/services/mail"
	"github.com/writeback/writeback/services/selfservice"
	"github.com/writeback/writeback/services/settings"
	"github.com/writeback/writeback/services/writeback"
	"github.com/writeback/writeback/testbed"
)

// connect saves the directory connection again with another URL or service
// account (the rest as newSSPR set it).
func (s *sspr) connect(t *testing.T, rawURL, bindDN, bindPassword string) {
	t.Helper()
	ctx := context.Background()
	_, meta, err := s.wb.Connection(ctx)
	if err != nil {
		t.Fatal(err)
	}
	attrs := []string{"sAMAccountName", "userPrincipalName", "mail"}
	if s.d.typ == "openldap" {
		attrs = []string{"uid", "mail"}
	}
	if _, err := s.wb.SaveConnection(ctx, audit.CommandLine, meta.Version, writeback.Input{Type: directory.Type(s.d.typ), URLs: []string{rawURL},
		CAPEM: s.env.CAPEM(), BindDN: bindDN, BindPassword: bindPassword, BaseDNs: []string{s.d.dir.PeopleDN},
		LoginAttributes: attrs, RecoveryEmailAttribute: "mail", PasswordWriteback: true}); err != nil {
		t.Fatal(err)
	}
}

// postFrom posts a form as a browser behind the trusted proxy at address ip.
func (c *client) postFrom(ip, path string, form url.Values) page {
	c.t.Helper()
	req := c.postRequest(path, form)
	req.Header.Set("X-Forwarded-For", ip)
	return c.do(req)
}

// failedVerifications counts the audit rows of wrong answers.
func failedVerifications(t *testing.T, h *harness) int {
	t.Helper()
	rows, err := h.db.RecentAudit(context.Background(), audit.ActivitySelfServiceProgress, 100000)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, r := range rows {
		if strings.HasPrefix(r.Reason, "verification failed") {
			n++
		}
	}
	return n
}

// TestSelfServiceGuessLimitHoldsAcrossFlows is issue 8 item 1 end to end:
// six flows for one account opened first, then 30 wrong guesses sent at once
// across them (codes and security answers, each from its own client address
// so the per-address limit does not hide anything). No more than five are
// evaluated, and every flow is blocked after — the block page saying so once.
func TestSelfServiceGuessLimitHoldsAcrossFlows(t *testing.T) {
	env := testbed.Load(t)
	d := directories(env)[1]
	s := newSSPRWith(t, env, d, selfservice.Methods{Email: true, Questions: true}, []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")})
	user := d.newUser(t, testbed.UserOptions{})
	s.registerQuestions(t, user) // only registered methods are offered
	type open struct {
		c      *client
		path   string
		method string
	}
	var flows []open
	for i := 0; i < 6; i++ {
		c := s.client()
		method := []string{"email", "questions"}[i%2]
		path := c.begin("reset", user.Login)
		if p := c.step(path, "method", url.Values{"method": {method}}); p.Status != http.StatusSeeOther {
			t.Fatalf("choose %s: %d\n%s", method, p.Status, between(p.Body, "<main", "</main>"))
		}
		flows = append(flows, open{c, path, method})
	}
	const guesses = 30
	var wg sync.WaitGroup
	ready := make(chan struct{})
	statuses := make(chan int, guesses)
	for i := 0; i < guesses; i++ {
		fl := flows[i%len(flows)]
		form := url.Values{"method": {fl.method}, "code": {"00000000"}, "answer": {"a", "b", "c"}, "csrf_token": {fl.c.csrf("/")}}
		wg.Add(1)
		go func(ip string) {
			defer wg.Done()
			<-ready
			statuses <- fl.c.postFrom(ip, fl.path+"/verify", form).Status
		}(fmt.Sprintf("198.51.100.%d", i+1))
	}
	close(ready)
	wg.Wait()
	close(statuses)
	count := map[int]int{}
	for st := range statuses {
		count[st]++
	}
	if n := failedVerifications(t, s.harness); n != selfservice.FailuresToBlock {
		t.Errorf("%d wrong answers evaluated and audited, want %d (statuses %v)", n, selfservice.FailuresToBlock, count)
	}
	if count[http.StatusUnauthorized] > selfservice.FailuresToBlock-1 || count[http.StatusTooManyRequests] == 0 || count[http.StatusUnauthorized]+count[http.StatusTooManyRequests] != guesses {
		t.Errorf("statuses %v", count)
	}
	for i, fl := range flows {
		p := fl.c.get(fl.path)
		if !strings.Contains(p.Body, `data-testid="blocked"`) {
			t.Errorf("flow %d (%s) is not blocked:\n%s", i, fl.method, between(p.Body, "<main", "</main>"))
		}
		if n := strings.Count(p.Body, "Too many failed attempts"); n != 1 {
			t.Errorf("flow %d: the blocked message shows %d times", i, n)
		}
	}
	// One more guess on a flow opened before the block: refused without
	// being evaluated, and the answer says it once.
	fl := flows[0]
	p := fl.c.step(fl.path, "verify", url.Values{"method": {fl.method}, "code": {"00000000"}})
	if p.Status != http.StatusTooManyRequests || strings.Count(p.Body, "Too many failed attempts") != 1 {
		t.Errorf("guess after the block: %d, message %d times\n%s", p.Status, strings.Count(p.Body, "Too many failed attempts"), between(p.Body, "<main", "</main>"))
	}
	if n := failedVerifications(t, s.harness); n != selfservice.FailuresToBlock {
		t.Errorf("%d wrong answers after the block", n)
	}
	if d.locked(t, user) {
		t.Error("the portal locked the directory account")
	}
}

// TestSelfServiceUnlockSaysWhatHappened is issue 8 item 5 for /unlock: an
// account that was not locked is told so (after verifying); an unlock the
// directory refuses is not shown as done, the person sees only "something
// is wrong on our side", the audit row keeps the directory's diagnostic, and
// "Try again" works once the service account is fixed.
func TestSelfServiceUnlockSaysWhatHappened(t *testing.T) {
	env := testbed.Load(t)
	for _, d := range directories(env) {
		t.Run(d.name, func(t *testing.T) {
			s := newSSPR(t, env, d, selfservice.Methods{Email: true})

			free := d.newUser(t, testbed.UserOptions{})
			c := s.client()
			flow := c.begin("unlock", free.Login)
			if p := c.get(flow); strings.Contains(p.Body, "was not locked") {
				t.Fatal("says 'not locked' before any verification")
			}
			s.verifyByEmail(t, c, flow, free.Mail)
			p := c.get(flow)
			if !strings.Contains(p.Body, "Your account was not locked") || strings.Contains(p.Body, "Your account is unlocked") {
				t.Errorf("not-locked account:\n%s", between(p.Body, "<main", "</main>"))
			}

			locked := d.newUser(t, testbed.UserOptions{})
			d.lock(t, locked)
			s.connect(t, d.dir.URL, d.dir.NoRightsDN, d.dir.NoRightsPassword)
			c = s.client()
			flow = c.begin("unlock", locked.Login)
			c.step(flow, "method", url.Values{"method": {"email"}})
			code := s.code(t, locked.Mail)
			p = c.step(flow, "verify", url.Values{"method": {"email"}, "code": {code}})
			main := between(p.Body, "<main", "</main>")
			if p.Status != http.StatusServiceUnavailable || !strings.Contains(main, selfservice.MsgOurSide) {
				t.Errorf("refused unlock: %d\n%s", p.Status, main)
			}
			for _, bad := range []string{"Your account is unlocked", "service account", "right to do this", "LDAP"} {
				if strings.Contains(main, bad) {
					t.Errorf("refused unlock shows %q", bad)
				}
			}
			p = c.get(flow)
			if strings.Contains(p.Body, "Your account is unlocked") || !strings.Contains(p.Body, `data-testid="retry-unlock"`) {
				t.Errorf("after the refused unlock:\n%s", between(p.Body, "<main", "</main>"))
			}
			if !d.locked(t, locked) {
				t.Fatal("unlocked by a service account without the right?")
			}
			rows, _ := s.db.RecentAudit(context.Background(), audit.ActivityUnlockSelfService, 10)
			if len(rows) == 0 || rows[0].Result != "failure" || !strings.Contains(rows[0].Details, `"ldap_result":50`) || !strings.Contains(rows[0].Details, `"error_code":"not_permitted"`) {
				t.Errorf("audit of the refused unlock: %+v", rows)
			}
			// The administrators' status panel hears of it at once.
			if st, err := s.settings.Status(context.Background()); err != nil || st.State != settings.StateError ||
				!strings.Contains(strings.Join(st.Details, " "), "unlock") {
				t.Errorf("status panel after the refused unlock: %+v (%v)", st, err)
			}
			s.connect(t, d.dir.URL, d.dir.BindDN, d.dir.BindPassword)
			if p := c.step(flow, "unlock", nil); p.Status != http.StatusSeeOther {
				t.Fatalf("try again: %d\n%s", p.Status, between(p.Body, "<main", "</main>"))
			}
			if p := c.get(flow); !strings.Contains(p.Body, "Your account is unlocked") {
				t.Errorf("after trying again:\n%s", between(p.Body, "<main", "</main>"))
			}
			if d.locked(t, locked) {
				t.Error("still locked after trying again")
			}
		})
	}
}

// TestSelfServiceFailuresOnOurSide is issue 8 item 5 for /reset: with the
// directory unreachable, or refusing the portal's service account, people
// read "Something is wrong on our side…" and nothing meant for
// administrators; each failure is an audit row with the raw diagnostic.
func TestSelfServiceFailuresOnOurSide(t *testing.T) {
	env := testbed.Load(t)
	for _, d := range directories(env) {
		t.Run(d.name, func(t *testing.T) {
			s := newSSPR(t, env, d, selfservice.Methods{Email: true})
			user := d.newUser(t, testbed.UserOptions{})
			c := s.client()
			flow := c.begin("reset", user.Login)
			s.verifyByEmail(t, c, flow, user.Mail)
			shows := func(what string, p page) {
				t.Helper()
				main := between(p.Body, "<main", "</main>")
				if p.Status != http.StatusServiceUnavailable || !strings.Contains(main, selfservice.MsgOurSide) {
					t.Errorf("%s: %d\n%s", what, p.Status, main)
				}
				for _, bad := range []string{"service account", "Global Administrator", "Directory connection", "not reachable", "LDAP", "ldaps://"} {
					if strings.Contains(main, bad) {
						t.Errorf("%s shows %q", what, bad)
					}
				}
			}
			audited := func(what, activity, detail string) {
				t.Helper()
				rows, _ := s.db.RecentAudit(context.Background(), activity, 1)
				if len(rows) == 0 || rows[0].Result != "failure" || !strings.Contains(rows[0].Details, detail) {
					t.Errorf("%s: audit %+v, want a failure with %q", what, rows, detail)
				}
			}
			newPw := "Our-" + testbed.RandomPassword()
			s.connect(t, d.dir.URL, d.dir.BindDN, "Wrong-"+testbed.RandomPassword())
			shows("service account refused", c.step(flow, "password", url.Values{"password": {newPw}, "confirm": {newPw}}))
			audited("service account refused", audit.ActivityResetSelfService, `"ldap_result":49`)

			s.connect(t, env.DeadURL, d.dir.BindDN, d.dir.BindPassword)
			shows("directory unreachable", c.step(flow, "password", url.Values{"password": {newPw}, "confirm": {newPw}}))
			audited("directory unreachable", audit.ActivityResetSelfService, `"error_code":"unavailable"`)
			other := s.client()
			shows("start with the directory unreachable", other.post("/reset", url.Values{"csrf_token": {other.csrf("/")}, "login": {user.Login}}))
			audited("start with the directory unreachable", audit.ActivitySelfServiceProgress, `"error_code":"unavailable"`)

			// Fixed: the same flow finishes.
			s.connect(t, d.dir.URL, d.dir.BindDN, d.dir.BindPassword)
			if p := c.step(flow, "password", url.Values{"password": {newPw}, "confirm": {newPw}}); p.Status != http.StatusSeeOther {
				t.Fatalf("set password after the fix: %d\n%s", p.Status, between(p.Body, "<main", "</main>"))
			}
			if err := env.BindAs(t, d.dir, user.DN, newPw); err != nil {
				t.Errorf("bind with the new password: %v", err)
			}
		})
	}
}

// TestSelfServiceMailOutageTellsNothing is issue 8 item 9: with the mail
// server down, the code page of an existing account is the page an unknown
// name gets; the failure is in the audit log.
func TestSelfServiceMailOutageTellsNothing(t *testing.T) {
	env := testbed.Load(t)
	d := directories(env)[1]
	s := newSSPR(t, env, d, selfservice.Methods{Email: true})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().(*net.TCPAddr).Port
	ln.Close() // nothing listens there now
	ctx := context.Background()
	_, meta, _ := s.ss.MailSettings(ctx)
	if _, err := s.ss.SaveMail(ctx, audit.CommandLine, meta.Version, selfservice.MailInput{Host: "127.0.0.1", Port: dead, TLS: mail.TLSNone, From: "portal@example.com"}); err != nil {
		t.Fatal(err)
	}
	real := d.newUser(t, testbed.UserOptions{})
	idRE := regexp.MustCompile(`/reset/[0-9a-f]{48}`)
	tokenRE := regexp.MustCompile(`name="csrf_token" value="[0-9a-f]+"`)
	norm := func(body string) string {
		body = idRE.ReplaceAllString(body, "/reset/ID")
		body = csrfRE.ReplaceAllString(body, "")
		return tokenRE.ReplaceAllString(body, "")
	}
	var pages []string
	for _, login := range []string{real.Login, "nobody-" + testbed.RandomLogin()} {
		c := s.client()
		flow := c.begin("reset", login)
		c.step(flow, "method", url.Values{"method": {"email"}})
		s.ss.Wait() // the mail has failed by now
		pages = append(pages, norm(c.get(flow).Body))
	}
	if pages[0] != pages[1] {
		t.Errorf("the pages differ during a mail outage:\n%s\n----\n%s", between(pages[0], "<main", "</main>"), between(pages[1], "<main", "</main>"))
	}
	rows, _ := s.db.RecentAudit(ctx, audit.ActivitySelfServiceProgress, 100)
	found := false
	for _, r := range rows {
		found = found || (r.Result == "failure" && strings.HasPrefix(r.Reason, "e-mail could not be sent") && strings.Contains(r.Details, "127.0.0.1"))
	}
	if !found {
		t.Error("no audit row for the failed e-mail")
	}
	// The administrators are told instead: the Mail server page and the
	// setup checklist show the failed delivery.
	admin := s.client().signedIn(admins.GlobalAdmin)
	if p := admin.get("/admin/password-reset/mail-server"); !strings.Contains(p.Body, `data-testid="mail-status"`) ||
		!strings.Contains(between(p.Body, `data-testid="mail-status"`, "</section>"), "The last mail could not be sent") {
		t.Errorf("the Mail server page does not show the failed delivery:\n%s", between(p.Body, "<main", "</main>"))
	}
	if p := admin.get("/admin/password-reset/on-premises-integration"); !strings.Contains(p.Body, `data-testid="setup-mail" data-state="failed"`) {
		t.Errorf("the setup checklist does not show the failed delivery:\n%s", between(p.Body, `data-testid="setup"`, "</section>"))
	}
	// A delivery that works again clears it.
	_, meta, _ = s.ss.MailSettings(ctx)
	host, port := s.sink.Addr()
	if _, err := s.ss.SaveMail(ctx, audit.CommandLine, meta.Version, selfservice.MailInput{Host: host, Port: port, TLS: mail.TLSNone, From: "portal@example.com"}); err != nil {
		t.Fatal(err)
	}
	c := s.client()
	flow := c.begin("reset", real.Login)
	c.step(flow, "method", url.Values{"method": {"email"}})
	s.code(t, real.Mail)
	s.ss.Wait()
	if p := admin.get("/admin/password-reset/mail-server"); !strings.Contains(between(p.Body, `data-testid="mail-status"`, "</section>"), "Sending works") {
		t.Errorf("the Mail server page still shows the failure after a good delivery:\n%s", between(p.Body, `data-testid="mail-status"`, "</section>"))
	}
}

// TestSelfServiceIdentifiers is issue 8 item 7 on the reset pages: a typed
// name with a NUL is refused at once (on Samba "alice\x00junk" would find
// alice and mail her a code); audit rows name the account that matched, not
// what was typed.
func TestSelfServiceIdentifiers(t *testing.T) {
	env := testbed.Load(t)
	d := directories(env)[0]
	s := newSSPR(t, env, d, selfservice.Methods{Email: true})
	user := d.newUser(t, testbed.UserOptions{})
	c := s.client()
	p := c.post("/reset", url.Values{"csrf_token": {c.csrf("/")}, "login": {user.Login + "\x00junk"}})
	if p.Status != http.StatusUnprocessableEntity || !strings.Contains(p.Body, "invisible or control characters") {
		t.Errorf("NUL in the login: %d\n%s", p.Status, between(p.Body, "<main", "</main>"))
	}
	var flows int
	s.db.SQL().QueryRow(`SELECT count(*) FROM sspr_flows`).Scan(&flows)
	if flows != 0 {
		t.Errorf("%d flows opened", flows)
	}
	// Typed as the e-mail address, in other case: rows name the account.
	typed := strings.ToUpper(user.Mail)
	flow := c.begin("reset", typed)
	c.step(flow, "method", url.Values{"method": {"email"}})
	s.code(t, user.Mail)
	c.step(flow, "verify", url.Values{"method": {"email"}, "code": {"00000000"}})
	s.ss.Wait()
	rows, _ := s.db.RecentAudit(context.Background(), audit.ActivitySelfServiceProgress, 100)
	if len(rows) < 3 {
		t.Fatalf("%d rows", len(rows))
	}
	for _, r := range rows {
		if strings.Contains(r.ActorName+r.TargetName+r.Details, typed) {
			t.Errorf("row %q (%s) carries the typed text: actor %q, target %q", r.Reason, r.Details, r.ActorName, r.TargetName)
		}
		if !strings.Contains(r.TargetName, user.Login) || r.TargetID == "" {
			t.Errorf("row names %q (%q)", r.TargetName, r.TargetID)
		}
	}
	// Nothing was mailed for the refused name.
	time.Sleep(200 * time.Millisecond)
	if n := len(s.sink.Messages()); n != 1 {
		t.Errorf("%d mails sent, want the one code", n)
	}
}
