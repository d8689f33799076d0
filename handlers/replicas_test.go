package handlers_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/directory"
	"github.com/writeback/writeback/services/mail"
	"github.com/writeback/writeback/services/mail/mailtest"
	"github.com/writeback/writeback/services/selfservice"
	"github.com/writeback/writeback/services/settings"
	"github.com/writeback/writeback/services/writeback"
	"github.com/writeback/writeback/store"
	"github.com/writeback/writeback/testbed"
)

// balancer is the test's own load balancer in front of two replicas: each
// request goes to the replica route names (0 or 1), or, with route -1, to
// the next one in turn.
type balancer struct {
	replicas [2]http.Handler
	route    atomic.Int32
	next     atomic.Uint32
	served   [2]atomic.Int64
}

func (b *balancer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	i := int(b.route.Load())
	if i < 0 {
		i = int(b.next.Add(1) % 2)
	}
	b.served[i].Add(1)
	b.replicas[i].ServeHTTP(w, r)
}

// replicas are two portals on one PostgreSQL database behind a balancer,
// wired to a real directory and a real SMTP sink with self-service on for
// everyone. The sspr's harness is replica A's services behind the
// balancer; b is replica B's.
type replicas struct {
	*sspr
	b  *portal
	lb *balancer
}

func newReplicas(t *testing.T, env testbed.Env, d directoryCase, methods selfservice.Methods) *replicas {
	t.Helper()
	dbURL := env.NewPostgresDB(t)
	pa, pb := newPortalOn(t, dbURL), newPortalOn(t, dbURL)
	lb := &balancer{replicas: [2]http.Handler{pa.handler(nil), pb.handler(nil)}}
	lb.route.Store(-1)
	srv := httptest.NewServer(lb)
	t.Cleanup(srv.Close)
	h := &harness{portal: pa, t: t, srv: srv}

	// Everything configured on replica A only: B reads it from the database.
	ctx := context.Background()
	attrs := []string{"sAMAccountName", "userPrincipalName", "mail"}
	if d.typ == "openldap" {
		attrs = []string{"uid", "mail"}
	}
	if _, err := pa.wb.SaveConnection(ctx, audit.CommandLine, 0, writeback.Input{Type: directory.Type(d.typ), URLs: []string{d.dir.URL},
		CAPEM: env.CAPEM(), BindDN: d.dir.BindDN, BindPassword: d.dir.BindPassword, BaseDNs: []string{d.dir.PeopleDN},
		LoginAttributes: attrs, RecoveryEmailAttribute: "mail", PasswordWriteback: true}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := pa.settings.SaveOnPrem(ctx, audit.CommandLine, 0, settings.OnPrem{Writeback: true, Unlock: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := pa.ss.SavePolicy(ctx, audit.CommandLine, 0, "test", func(p *selfservice.Policy) {
		p.ChallengeOff = true // more attempts than the proof-of-work threshold; challenge_test.go tests it
		p.Enabled, p.Methods, p.Required, p.NotifyUsers = selfservice.EnabledAll, methods, 1, false
		p.Helpdesk, p.OrgName = "help@example.com", "Example Corp"
		// Every request of these tests comes from one address.
		p.PublicPerMinute = selfservice.MaxPerMinute
	}); err != nil {
		t.Fatal(err)
	}
	sink := mailtest.Start(t, mailtest.Options{})
	host, port := sink.Addr()
	if _, err := pa.ss.SaveMail(ctx, audit.CommandLine, 0, selfservice.MailInput{Host: host, Port: port, TLS: mail.TLSNone, From: "portal@example.com"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pb.ss.Wait)
	return &replicas{sspr: &sspr{harness: h, env: env, d: d, sink: sink}, b: pb, lb: lb}
}

// on sends the next requests to replica i (0: A, 1: B; -1: in turn).
func (r *replicas) on(i int32) { r.lb.route.Store(i) }

// TestReplicasFinishWhatAnotherStarted: a self-service reset started on
// replica A (the code mailed by A) is verified and finished on B, and the
// new password binds at the DC; five wrong codes split over A and B block
// the account as five on one would.
func TestReplicasFinishWhatAnotherStarted(t *testing.T) {
	env := testbed.Load(t)
	d := directories(env)[0] // Active Directory
	r := newReplicas(t, env, d, selfservice.Methods{Email: true})

	user := d.newUser(t, testbed.UserOptions{})
	c := r.client()
	r.on(0)
	flow := c.begin("reset", user.Login)
	if p := c.step(flow, "method", url.Values{"method": {"email"}}); p.Status != http.StatusSeeOther {
		t.Fatalf("choose email on A: %d", p.Status)
	}
	code := r.code(t, user.Mail)
	r.on(1)
	if p := c.get(flow); !strings.Contains(p.Body, `data-testid="code-sent"`) {
		t.Fatalf("B does not show A's flow:\n%s", between(p.Body, "<main", "</main>"))
	}
	if p := c.step(flow, "verify", url.Values{"method": {"email"}, "code": {code}}); p.Status != http.StatusSeeOther {
		t.Fatalf("verify on B: %d\n%s", p.Status, between(p.Body, "<main", "</main>"))
	}
	newPw := "Rpl-" + testbed.RandomPassword()
	if p := c.step(flow, "password", url.Values{"password": {newPw}, "confirm": {newPw}}); p.Status != http.StatusSeeOther {
		t.Fatalf("set password on B: %d\n%s", p.Status, between(p.Body, "<main", "</main>"))
	}
	if p := c.get(flow); !strings.Contains(p.Body, `data-testid="done"`) {
		t.Errorf("done page on B:\n%s", between(p.Body, "<main", "</main>"))
	}
	if err := env.BindAs(t, d.dir, user.DN, newPw); err != nil {
		t.Fatalf("the password set through B does not bind: %v", err)
	}
	if a, b := r.lb.served[0].Load(), r.lb.served[1].Load(); a == 0 || b == 0 {
		t.Fatalf("requests served: A %d, B %d", a, b)
	}

	// Five wrong codes, alternating between the replicas: blocked.
	victim := d.newUser(t, testbed.UserOptions{})
	c = r.client()
	r.on(-1)
	flow = c.begin("reset", victim.Login)
	c.step(flow, "method", url.Values{"method": {"email"}})
	r.code(t, victim.Mail)
	var p page
	for i := range selfservice.FailuresToBlock {
		r.on(int32(i % 2))
		p = c.step(flow, "verify", url.Values{"method": {"email"}, "code": {"00000000"}})
	}
	if p.Status != http.StatusTooManyRequests || !strings.Contains(p.Body, "blocked for this account for 24 hours") {
		t.Fatalf("5th failure (on A, after 2 on B): %d\n%s", p.Status, between(p.Body, "<main", "</main>"))
	}
	for i := range int32(2) {
		r.on(i)
		again := r.client()
		f := again.begin("reset", victim.Login)
		if p := again.get(f); !strings.Contains(p.Body, `data-testid="blocked"`) {
			t.Errorf("a new attempt on replica %d is not blocked", i)
		}
	}
}

// TestReplicasConcurrentResets: 200 self-service resets at once over 20
// directory users (ten each, one after the other per user), every request
// on either replica in turn: every reset ends done and binds, every audit
// event is there once, the chain verifies, and no database error reaches
// a person.
func TestReplicasConcurrentResets(t *testing.T) {
	env := testbed.Load(t)
	d := directories(env)[1] // OpenLDAP: quick writes
	r := newReplicas(t, env, d, selfservice.Methods{Questions: true})
	const users, each = 20, 10
	qs := selfservice.DefaultPolicy().Questions[:3]
	answers := map[string]string{qs[0]: "Paris", qs[1]: "Rex", qs[2]: "Volvo"}
	var people []testbed.TestUser
	for range users {
		u := d.newUser(t, testbed.UserOptions{NoMail: true})
		c := r.client()
		p := c.post("/register", url.Values{"csrf_token": {c.csrf("/")}, "login": {u.Login}, "password": {u.Password}})
		if p.Status != http.StatusSeeOther {
			t.Fatalf("register %s: %d\n%s", u.Login, p.Status, between(p.Body, "<main", "</main>"))
		}
		if p := c.post(p.Location+"/questions", url.Values{"csrf_token": {c.csrf("/")}, "question": qs,
			"answer": {answers[qs[0]], answers[qs[1]], answers[qs[2]]}}); p.Status != http.StatusSeeOther {
			t.Fatalf("questions %s: %d\n%s", u.Login, p.Status, between(p.Body, "<main", "</main>"))
		}
		people = append(people, u)
	}
	// Questions are asked in sorted order.
	var sorted []string
	for _, q := range sortedKeys(answers) {
		sorted = append(sorted, answers[q])
	}

	type outcome struct {
		login, pw string
		err       string
	}
	results := make(chan outcome, users*each)
	var wg sync.WaitGroup
	for _, u := range people {
		wg.Go(func() {
			c := r.client()
			var last string
			for i := range each {
				pw := fmt.Sprintf("Cc%d-%s", i, testbed.RandomPassword())
				o := outcome{login: u.Login, pw: pw}
				step := func(name string, p page, want int) bool {
					if p.Status != want {
						o.err = fmt.Sprintf("%s: %d %s", name, p.Status, between(p.Body, "<main", "</main>"))
						return false
					}
					return true
				}
				form := func(v url.Values) url.Values { v.Set("csrf_token", c.csrfQuiet("/")); return v }
				p := c.postQuiet("/reset", form(url.Values{"login": {u.Login}}))
				flow := p.Location
				if step("start", p, http.StatusSeeOther) &&
					step("method", c.postQuiet(flow+"/method", form(url.Values{"method": {"questions"}})), http.StatusSeeOther) &&
					step("verify", c.postQuiet(flow+"/verify", form(url.Values{"method": {"questions"}, "answer": sorted})), http.StatusSeeOther) &&
					step("password", c.postQuiet(flow+"/password", form(url.Values{"password": {pw}, "confirm": {pw}})), http.StatusSeeOther) {
					if p := c.getQuiet(flow); !strings.Contains(p.Body, `data-testid="done"`) {
						o.err = "not done: " + between(p.Body, "<main", "</main>")
					}
				}
				if o.err == "" {
					last = pw
				}
				results <- o
			}
			if last != "" {
				if err := env.BindAs(t, d.dir, u.DN, last); err != nil {
					results <- outcome{login: u.Login, err: "the last password does not bind: " + err.Error()}
				}
			}
		})
	}
	wg.Wait()
	close(results)
	done := 0
	for o := range results {
		if o.err != "" {
			t.Errorf("%s: %s", o.login, o.err)
			continue
		}
		done++
	}
	if done != users*each {
		t.Fatalf("%d of %d resets done", done, users*each)
	}
	if a, b := r.lb.served[0].Load(), r.lb.served[1].Load(); a < 500 || b < 500 {
		t.Fatalf("requests served: A %d, B %d", a, b)
	}

	// Every reset once in the audit log, and one unbroken chain.
	r.ss.Wait()
	rows, err := r.db.RecentAudit(context.Background(), audit.ActivityResetSelfService, 100000)
	if err != nil {
		t.Fatal(err)
	}
	perUser := map[string]int{}
	for _, e := range rows {
		if e.Result == "success" {
			perUser[e.TargetDN]++
		}
	}
	for _, u := range people {
		if n := perUser[u.DN]; n != each {
			t.Errorf("%s: %d successful reset events, want %d", u.Login, n, each)
		}
	}
	if rep, err := r.db.VerifyAuditFull(context.Background(), store.Pace{}); err != nil || !rep.OK || rep.Checked == 0 {
		t.Fatalf("the chain after concurrent appends from two replicas: %+v %v", rep, err)
	}
	for _, p := range []*portal{r.portal, r.b} {
		if out := p.logs.String(); strings.Contains(out, "database is locked") || strings.Contains(out, "could not serialize") ||
			strings.Contains(out, "deadlock") {
			t.Errorf("a database error in a replica's log:\n%s", out)
		}
	}
}

// The client's requests for goroutines: a failed request comes back as
// status 0 with the error as its body, instead of ending the test.
func (c *client) quiet(req *http.Request) page {
	p, err := c.send(req)
	if err != nil {
		return page{Body: err.Error()}
	}
	return p
}

func (c *client) getQuiet(path string) page { return c.quiet(c.getRequest(path)) }

func (c *client) postQuiet(path string, form url.Values) page {
	return c.quiet(c.postRequest(path, form))
}

// csrfQuiet is the session's CSRF token, "" when the page has none.
func (c *client) csrfQuiet(path string) string {
	if m := csrfRE.FindStringSubmatch(c.getQuiet(path).Body); m != nil {
		return m[1]
	}
	return ""
}
