package reminders_test

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/directory"
	"github.com/writeback/writeback/services/keyring"
	"github.com/writeback/writeback/services/mail"
	"github.com/writeback/writeback/services/mail/mailtest"
	"github.com/writeback/writeback/services/reminders"
	"github.com/writeback/writeback/services/selfservice"
	"github.com/writeback/writeback/services/settings"
	"github.com/writeback/writeback/services/sms"
	"github.com/writeback/writeback/services/sms/smstest"
	"github.com/writeback/writeback/services/writeback"
	"github.com/writeback/writeback/store"
	"github.com/writeback/writeback/testbed"
)

// These tests run against the Samba AD DC and slapd of the test bed. Each
// gives its own users a short maximum password age that no other test
// shares: on AD a fine-grained password policy (PSO) applied to a group and
// a user the test creates, on OpenLDAP a ppolicy entry of its own named in
// the users' pwdPolicySubentry. The clock of the service moves forward
// instead of waiting days.

const maxAge = 10 * 24 * time.Hour

// baseURL has a path: the link must keep it.
const baseURL = "https://intranet.example/password/"

// world is one directory's accounts for a test.
type world struct {
	typ    directory.Type
	d      testbed.Directory
	group  string
	member testbed.TestUser // in the group, short policy, a mail address
	noMail testbed.TestUser // in the group, short policy, no mail address
	other  testbed.TestUser // short policy, not in the group
	normal testbed.TestUser // in the group, the directory's usual policy
	// change gives u a new password as an administrator would.
	change func(t *testing.T, u testbed.TestUser)
}

func adWorld(t *testing.T, env testbed.Env) world {
	g := env.NewADGroup(t, "")
	w := world{typ: directory.TypeAD, d: env.AD, group: g,
		member: env.NewADUser(t, testbed.UserOptions{Groups: []string{g}}),
		noMail: env.NewADUser(t, testbed.UserOptions{Groups: []string{g}, NoMail: true}),
		other:  env.NewADUser(t, testbed.UserOptions{}),
		normal: env.NewADUser(t, testbed.UserOptions{}),
	}
	// The PSO applies to the group and to "other" directly; "normal" is in
	// neither and keeps the domain's maximum age (42 days).
	env.NewADPSO(t, maxAge, g, w.other.DN)
	w.change = func(t *testing.T, u testbed.TestUser) { env.SetADPassword(t, &u) }
	return w
}

func ldapWorld(t *testing.T, env testbed.Env) world {
	g := env.NewLDAPGroup(t, "")
	w := world{typ: directory.TypeOpenLDAP, d: env.LDAP, group: g,
		member: env.NewLDAPUser(t, testbed.UserOptions{Groups: []string{g}}),
		noMail: env.NewLDAPUser(t, testbed.UserOptions{Groups: []string{g}, NoMail: true}),
		other:  env.NewLDAPUser(t, testbed.UserOptions{}),
		normal: env.NewLDAPUser(t, testbed.UserOptions{Groups: []string{g}}),
	}
	// "normal" keeps the default policy, whose passwords never expire.
	env.NewLDAPPolicy(t, maxAge, &w.member, &w.noMail, &w.other)
	w.change = func(t *testing.T, u testbed.TestUser) {
		// pwdChangedTime counts seconds: the new password must be told
		// from the old one.
		time.Sleep(1100 * time.Millisecond)
		env.SetLDAPPassword(t, &u)
	}
	return w
}

// fixture is the reminders service on a fresh database, mailing through a
// real SMTP sink, against one directory of the test bed.
type fixture struct {
	db    *store.DB
	sink  *mailtest.Sink
	svc   *reminders.Service
	mu    sync.Mutex
	scope reminders.Scope
	at    time.Duration // how far the service's clock runs ahead
	mk    func() *reminders.Service
	ss    *selfservice.Service
	text  bool // mk's service texts reminders too (through ss)
}

func newFixture(t *testing.T, env testbed.Env, w world) *fixture {
	t.Helper()
	ctx := context.Background()
	db, err := store.OpenDatabase(ctx, "", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	keys := keyring.New(make([]byte, 32))
	wb := writeback.New(db, settings.New(db), keys, log)
	t.Cleanup(func() { wb.Close() })
	ss := selfservice.New(db, wb, keys, log, baseURL)
	t.Cleanup(ss.Wait)
	f := &fixture{db: db, sink: mailtest.Start(t, mailtest.Options{}), ss: ss,
		scope: reminders.Scope{Enabled: selfservice.EnabledGroup, Group: w.group, OrgName: "Example Corp"}}
	host, port := f.sink.Addr()
	if _, err := ss.SaveMail(ctx, audit.CommandLine, 0, selfservice.MailInput{Host: host, Port: port, TLS: mail.TLSNone, From: "portal@example.com"}); err != nil {
		t.Fatal(err)
	}
	cfg := directory.Defaults(w.typ, w.d.BaseDN)
	cfg.URLs, cfg.CAPEM = []string{w.d.URL}, env.CAPEM()
	cfg.BindDN, cfg.BindPassword = w.d.BindDN, w.d.BindPassword
	cfg.BaseDNs = []string{w.d.PeopleDN}
	cl, err := directory.New(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	// mk builds the service anew on the same database: a restart, or
	// another replica taking over.
	f.mk = func() *reminders.Service {
		var text reminders.Texter
		if f.text {
			text = ss
		}
		s := reminders.New(reminders.Config{DB: db, Mail: ss, Text: text, Log: log, BaseURL: baseURL,
			Directory: func(context.Context) (reminders.Lister, error) { return cl, nil },
			Scope: func(context.Context) (reminders.Scope, error) {
				f.mu.Lock()
				defer f.mu.Unlock()
				return f.scope, nil
			}})
		s.SetClock(func() time.Time { return time.Now().Add(f.at) })
		return s
	}
	f.svc = f.mk()
	return f
}

func (f *fixture) setScope(s reminders.Scope) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.scope = s
}

// plan is the dry run as login → threshold (-threshold when not mailed).
func (f *fixture) plan(t *testing.T) map[string]int {
	t.Helper()
	due, err := f.svc.Plan(context.Background())
	if err != nil {
		t.Fatalf("Plan: %v", err)
	}
	out := map[string]int{}
	for _, d := range due {
		th := d.Threshold
		if d.Skip != "" {
			th = -th
		}
		out[d.User.Login] = th
	}
	return out
}

// send runs one round and returns the messages the sink received in it.
func (f *fixture) send(t *testing.T) []mailtest.Received {
	t.Helper()
	before := len(f.sink.Messages())
	if _, err := f.svc.Send(context.Background()); err != nil {
		t.Fatalf("Send: %v", err)
	}
	return f.sink.Messages()[before:]
}

func TestReminders(t *testing.T) {
	env := testbed.Load(t)
	for _, tc := range []struct {
		name string
		mk   func(*testing.T, testbed.Env) world
	}{{"ad", adWorld}, {"openldap", ldapWorld}} {
		t.Run(tc.name, func(t *testing.T) {
			w := tc.mk(t, env)
			f := newFixture(t, env, w)
			ctx := context.Background()

			// Dry run, reminders still off: the member and the one without a
			// mail address are at the 14-day threshold (10 days left); the
			// other is outside the group, the normal one never expires soon.
			got := f.plan(t)
			if got[w.member.Login] != 14 || got[w.noMail.Login] != -14 {
				t.Fatalf("dry run %v: want %s at 14 and %s at 14 without mail", got, w.member.Login, w.noMail.Login)
			}
			for _, u := range []testbed.TestUser{w.other, w.normal} {
				if _, ok := got[u.Login]; ok {
					t.Fatalf("dry run lists %s: %v", u.Login, got)
				}
			}
			if n := len(f.sink.Messages()); n != 0 {
				t.Fatalf("the dry run sent %d messages", n)
			}
			// Off: a round sends nothing.
			if msgs := f.send(t); len(msgs) != 0 {
				t.Fatalf("reminders off, yet %d sent", len(msgs))
			}
			if _, err := f.svc.Save(ctx, audit.CommandLine, 0, reminders.Settings{Enabled: true, Thresholds: []int{1, 14, 7}}); err != nil {
				t.Fatalf("Save: %v", err)
			}

			// On: one mail, to the member, with the link under the base URL.
			msgs := f.send(t)
			if len(msgs) != 1 || len(msgs[0].To) != 1 || msgs[0].To[0] != w.member.Mail {
				t.Fatalf("first round sent %+v, want one to %s", msgs, w.member.Mail)
			}
			if m := msgs[0]; !strings.Contains(m.Text, "https://intranet.example/password/change") ||
				!strings.Contains(m.HTML, `href="https://intranet.example/password/change"`) ||
				!strings.Contains(m.Subject, "Example Corp password expires in 9 days") {
				t.Fatalf("reminder: subject %q, text %q", m.Subject, m.Text)
			}
			// Once per threshold: not again, nor from a restarted service.
			if msgs := f.send(t); len(msgs) != 0 {
				t.Fatalf("second round sent %d", len(msgs))
			}
			if got := f.plan(t); got[w.member.Login] != 0 {
				t.Fatalf("dry run after the mail still lists the member: %v", got)
			}
			f.svc = f.mk()
			if msgs := f.send(t); len(msgs) != 0 {
				t.Fatalf("a restarted service sent %d", len(msgs))
			}

			// Four days on: 6 days left, the 7-day reminder, once.
			f.at = 4 * 24 * time.Hour
			if got := f.plan(t); got[w.member.Login] != 7 {
				t.Fatalf("dry run 4 days on: %v", got)
			}
			if msgs := f.send(t); len(msgs) != 1 || !strings.Contains(msgs[0].Subject, "expires in 5 days") {
				t.Fatalf("4 days on: %+v", msgs)
			}
			if msgs := f.send(t); len(msgs) != 0 {
				t.Fatalf("4 days on, again: %d", len(msgs))
			}

			// A new password starts afresh: 10 days from now, 6 on the
			// moved clock, so the 7-day reminder comes again.
			w.change(t, w.member)
			if msgs := f.send(t); len(msgs) != 1 || msgs[0].To[0] != w.member.Mail {
				t.Fatalf("after the change: %+v", msgs)
			}

			// Half a day before the new password expires: the 1-day
			// reminder, once, though two replicas' rounds run at the same
			// time (both see it due; one claims it).
			f.at = maxAge - 12*time.Hour
			before := len(f.sink.Messages())
			var wg sync.WaitGroup
			for _, s := range []*reminders.Service{f.svc, f.mk()} {
				wg.Go(func() {
					if _, err := s.Send(ctx); err != nil {
						t.Errorf("Send: %v", err)
					}
				})
			}
			wg.Wait()
			if msgs := f.sink.Messages()[before:]; len(msgs) != 1 || !strings.Contains(msgs[0].Subject, "within a day") {
				t.Fatalf("1-day reminder: %+v", msgs)
			}

			// Scope "all" brings in the account outside the group.
			f.at = 0
			f.setScope(reminders.Scope{Enabled: selfservice.EnabledAll})
			got = f.plan(t)
			if got[w.other.Login] != 14 {
				t.Fatalf("dry run for all: %v", got)
			}
			if _, ok := got[w.normal.Login]; ok {
				t.Fatalf("dry run for all lists %s, whose password expires later: %v", w.normal.Login, got)
			}
			f.setScope(reminders.Scope{Enabled: selfservice.EnabledNone})
			if _, err := f.svc.Plan(ctx); err == nil {
				t.Fatalf("Plan with self-service off: no error")
			}

			// Every reminder is audited, the address masked.
			events, _, err := f.db.QueryAudit(ctx, store.AuditFilter{Activities: []string{audit.ActivitySendExpiryReminder}}, store.Cursor{}, 50)
			if err != nil {
				t.Fatal(err)
			}
			if len(events) != 4 {
				t.Fatalf("%d reminder events, want 4", len(events))
			}
			for _, e := range events {
				if strings.Contains(e.Details, w.member.Mail) || !strings.Contains(e.Details, "•••") || e.TargetName != w.member.Login {
					t.Fatalf("audit event %+v", e)
				}
			}
		})
	}
}

// TestRemindersAlsoText: with text messages a method and a gateway set, a
// reminder that was mailed is also texted to the person's mobile number
// (the directory's), with the link to /change, and the audit event names
// the number masked; someone without a number is only mailed.
func TestRemindersAlsoText(t *testing.T) {
	env := testbed.Load(t)
	g := env.NewLDAPGroup(t, "")
	w := world{typ: directory.TypeOpenLDAP, d: env.LDAP, group: g,
		member: env.NewLDAPUser(t, testbed.UserOptions{Groups: []string{g}, Mobile: "+44 7400 123456"}),
		noMail: env.NewLDAPUser(t, testbed.UserOptions{Groups: []string{g}}), // here: a mail address but no mobile
	}
	env.NewLDAPPolicy(t, maxAge, &w.member, &w.noMail)
	f := newFixture(t, env, w)
	ctx := context.Background()
	gw := smstest.Start(t)
	if _, err := f.ss.SaveSMS(ctx, audit.CommandLine, 0, selfservice.SMSInput{Config: sms.Config{Method: "POST", URL: gw.URL() + "/send",
		Encoding: sms.BodyForm, Body: "to={{to}}&text={{message}}", Auth: sms.AuthNone}}); err != nil {
		t.Fatal(err)
	}
	_, meta, err := f.ss.Policy(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.ss.SavePolicy(ctx, audit.CommandLine, meta.Version, "test", func(p *selfservice.Policy) {
		p.Methods = selfservice.Methods{Email: true, SMS: true}
	}); err != nil {
		t.Fatal(err)
	}
	f.text = true
	f.svc = f.mk()
	if _, err := f.svc.Save(ctx, audit.CommandLine, 0, reminders.Settings{Enabled: true, Thresholds: []int{14, 7, 1}}); err != nil {
		t.Fatal(err)
	}
	if got := f.send(t); len(got) != 2 {
		t.Fatalf("mailed %d reminders, want 2", len(got))
	}
	req := gw.Wait(t, 1)
	text := req.Form.Get("text")
	if req.Form.Get("to") != "+447400123456" || !strings.Contains(text, "Example Corp: your password expires in ") ||
		!strings.Contains(text, "https://intranet.example/password/change") {
		t.Errorf("text %v", req.Form)
	}
	if n := len(gw.Requests()); n != 1 {
		t.Errorf("%d texts, want 1 (the other person has no mobile number)", n)
	}
	rows, err := f.db.RecentAudit(ctx, audit.ActivitySendExpiryReminder, 5)
	if err != nil || len(rows) != 2 {
		t.Fatalf("reminder events: %d %v", len(rows), err)
	}
	texted := 0
	for _, e := range rows {
		if strings.Contains(e.Details, `"text_to":"+44 •••• ••34 56"`) {
			texted++
		}
		if strings.Contains(e.Details, "7400123456") {
			t.Errorf("the audit row holds the whole number: %s", e.Details)
		}
	}
	if texted != 1 {
		t.Errorf("%d events name the texted number, want 1", texted)
	}
	// The next round sends nothing, by mail or text.
	if got := f.send(t); len(got) != 0 || len(gw.Requests()) != 1 {
		t.Errorf("a second round sent %d mails, %d texts", len(got), len(gw.Requests()))
	}
}
