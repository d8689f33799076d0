package campaign_test

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/campaign"
	"github.com/writeback/writeback/services/directory"
	"github.com/writeback/writeback/services/keyring"
	"github.com/writeback/writeback/services/mail"
	"github.com/writeback/writeback/services/mail/mailtest"
	"github.com/writeback/writeback/services/selfservice"
	"github.com/writeback/writeback/services/settings"
	"github.com/writeback/writeback/services/writeback"
	"github.com/writeback/writeback/store"
	"github.com/writeback/writeback/testbed"
)

// These tests run against the Samba AD DC and slapd of the test bed, with
// a policy scoped to a group each test creates (other tests' accounts are
// in the same directories), and mail through a real SMTP sink.

// baseURL has a path: the link must keep it.
const baseURL = "https://intranet.example/password/"

const registerLink = "https://intranet.example/password/register"

// people is one directory's accounts for a test.
type people struct {
	group      string
	a, b       testbed.TestUser // members, nothing registered
	registered testbed.TestUser // member, one method registered
	stale      testbed.TestUser // member, registered 200 days ago (re-confirmation due after 180)
	noMail     testbed.TestUser // member, nothing registered, no mail address
	disabled   testbed.TestUser // member, disabled
	outside    testbed.TestUser // not a member, nothing registered
}

func newPeople(t *testing.T, env testbed.Env, typ directory.Type) people {
	newUser, newGroup := env.NewLDAPUser, env.NewLDAPGroup
	if typ == directory.TypeAD {
		newUser, newGroup = env.NewADUser, env.NewADGroup
	}
	g := newGroup(t, "")
	in := testbed.UserOptions{Groups: []string{g}}
	return people{group: g, a: newUser(t, in), b: newUser(t, in), registered: newUser(t, in), stale: newUser(t, in),
		noMail:   newUser(t, testbed.UserOptions{Groups: []string{g}, NoMail: true}),
		disabled: newUser(t, testbed.UserOptions{Groups: []string{g}, Disabled: true}),
		outside:  newUser(t, testbed.UserOptions{})}
}

// sent is one mail as the fixture's mailer saw it go.
type sent struct {
	to string
	at time.Time
}

// fixture is the campaign on a fresh database against one directory.
type fixture struct {
	db   *store.DB
	sink *mailtest.Sink
	dir  *directory.Client
	mk   func() *campaign.Service
	// mkOn builds the service on another handle of the same database (a
	// second replica).
	mkOn func(db *store.DB) *campaign.Service
	at   time.Duration // how far the services' clock runs ahead
	mu   sync.Mutex
	sent []sent
	// onSend, when set, runs after each mail the sink took.
	onSend func(to string)
	// noServer makes every mail fail as with no mail server configured.
	noServer bool
}

func newFixture(t *testing.T, env testbed.Env, typ directory.Type, p people) *fixture {
	return newFixtureOn(t, env, typ, p, "")
}

// openDB opens (and migrates) the database at url, "" for a fresh SQLite
// file.
func openDB(t *testing.T, url string) *store.DB {
	t.Helper()
	ctx := context.Background()
	db, err := store.OpenDatabase(ctx, url, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return db
}

// newFixtureOn is newFixture on the database at url.
func newFixtureOn(t *testing.T, env testbed.Env, typ directory.Type, p people, url string) *fixture {
	t.Helper()
	ctx := context.Background()
	db := openDB(t, url)
	log := slog.New(slog.DiscardHandler)
	keys := keyring.New(make([]byte, 32))
	wb := writeback.New(db, settings.New(db), keys, log)
	t.Cleanup(func() { wb.Close() })
	ss := selfservice.New(db, wb, keys, log, baseURL)
	t.Cleanup(ss.Wait)
	f := &fixture{db: db, sink: mailtest.Start(t, mailtest.Options{})}
	host, port := f.sink.Addr()
	if _, err := ss.SaveMail(ctx, audit.CommandLine, 0, selfservice.MailInput{Host: host, Port: port, TLS: mail.TLSNone, From: "portal@example.com"}); err != nil {
		t.Fatal(err)
	}
	d := env.LDAP
	if typ == directory.TypeAD {
		d = env.AD
	}
	cfg := directory.Defaults(typ, d.BaseDN)
	cfg.URLs, cfg.CAPEM = []string{d.URL}, env.CAPEM()
	cfg.BindDN, cfg.BindPassword = d.BindDN, d.BindPassword
	cfg.BaseDNs = []string{d.PeopleDN}
	var err error
	if f.dir, err = directory.New(cfg, log); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.dir.Close() })
	scope := campaign.Scope{Enabled: selfservice.EnabledGroup, Group: p.group, OrgName: "Example Corp", Required: 1, ReconfirmDays: 180}
	m := mailer{f: f, next: ss}
	f.mkOn = func(db *store.DB) *campaign.Service {
		s := campaign.New(campaign.Config{DB: db, Mail: m, Log: log, BaseURL: baseURL,
			Directory: func(context.Context) (campaign.Lister, error) { return f.dir, nil },
			Scope:     func(context.Context) (campaign.Scope, error) { return scope, nil }})
		s.SetClock(func() time.Time { return time.Now().Add(f.at) })
		return s
	}
	f.mk = func() *campaign.Service { return f.mkOn(db) }
	f.register(t, p.registered, 0)
	f.register(t, p.stale, 200*24*time.Hour)
	return f
}

// mailer sends through the self-service's mail server and notes each mail.
type mailer struct {
	f    *fixture
	next campaign.Mailer
}

func (m mailer) SendMail(ctx context.Context, msg mail.Message) error {
	m.f.mu.Lock()
	none := m.f.noServer
	m.f.mu.Unlock()
	if none {
		return selfservice.ErrNoMail
	}
	if err := m.next.SendMail(ctx, msg); err != nil {
		return err
	}
	m.f.mu.Lock()
	m.f.sent = append(m.f.sent, sent{to: msg.To, at: time.Now()})
	on := m.f.onSend
	m.f.mu.Unlock()
	if on != nil {
		on(msg.To)
	}
	return nil
}

func (f *fixture) mailed() []sent {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.sent)
}

// register gives u one method, confirmed ago.
func (f *fixture) register(t *testing.T, u testbed.TestUser, ago time.Duration) {
	t.Helper()
	ctx := context.Background()
	du, _, err := f.dir.Find(ctx, u.Login)
	if err != nil {
		t.Fatalf("find %s: %v", u.Login, err)
	}
	if err := f.db.InTx(ctx, func(tx *store.Tx) error {
		return tx.PutMethod(ctx, store.Method{UserID: du.ID, Method: "questions", Secret: "sealed", ConfirmedMS: time.Now().Add(-ago).UnixMilli()})
	}); err != nil {
		t.Fatal(err)
	}
}

func recipients(s []sent) []string {
	var out []string
	for _, m := range s {
		out = append(out, m.to)
	}
	slices.Sort(out)
	return out
}

func TestCampaign(t *testing.T) {
	env := testbed.Load(t)
	for _, typ := range []directory.Type{directory.TypeAD, directory.TypeOpenLDAP} {
		t.Run(string(typ), func(t *testing.T) {
			p := newPeople(t, env, typ)
			f := newFixture(t, env, typ, p)
			ctx := context.Background()
			svc := f.mk()

			// Dry run: in scope are the six enabled members; a, b and the
			// stale one would be mailed (the one without an address is
			// counted, not mailed); nothing is sent.
			e, err := svc.DryRun(ctx)
			if err != nil {
				t.Fatalf("DryRun: %v", err)
			}
			if e.InScope != 5 || e.NotRegistered != 3 || e.ReconfirmDue != 1 || e.ToMail != 3 || e.NoAddress != 1 {
				t.Fatalf("dry run %+v", e)
			}
			var logins []string
			for _, s := range e.Sample {
				logins = append(logins, s.Login)
				if !strings.Contains(s.To, "•••") || strings.Contains(s.To, s.Login) {
					t.Errorf("sample address not masked: %q", s.To)
				}
				if (s.Login == p.stale.Login) != (s.Why == campaign.WhyReconfirm) {
					t.Errorf("sample %+v: wrong reason", s)
				}
			}
			slices.Sort(logins)
			want := []string{p.a.Login, p.b.Login, p.stale.Login}
			slices.Sort(want)
			if !slices.Equal(logins, want) {
				t.Fatalf("sample %v, want %v", logins, want)
			}
			if n := len(f.sink.Messages()); n != 0 {
				t.Fatalf("the dry run sent %d messages", n)
			}
			if sc, err := f.db.RegistrationScope(ctx); err != nil || sc.InScope != 5 || sc.NotRegistered != 3 || sc.ReconfirmDue != 1 {
				t.Fatalf("stored enumeration %+v %v", sc, err)
			}

			// Settings out of bounds are refused and change nothing.
			if _, err := svc.Save(ctx, audit.CommandLine, 0, campaign.Settings{IntervalDays: 0, PerMinute: 5000}); err == nil {
				t.Fatal("Save accepted out-of-bounds settings")
			}
			if _, err := svc.Save(ctx, audit.CommandLine, 0, campaign.Settings{Enabled: true, IntervalDays: 1, PerMinute: 120,
				NotRegistered: true, ReconfirmDue: true}); err != nil {
				t.Fatalf("Save: %v", err)
			}

			// Start, then the first mail goes; right after it the first of a
			// and b not mailed yet registers, and the worker stops (a
			// restart).
			if _, err := svc.Start(ctx, audit.CommandLine); err != nil {
				t.Fatalf("Start: %v", err)
			}
			if _, err := svc.Start(ctx, audit.CommandLine); err == nil {
				t.Fatal("a second Start while the run is under way: no error")
			}
			wctx, stop := context.WithCancel(ctx)
			var late testbed.TestUser
			f.onSend = func(to string) {
				f.onSend = nil
				late = p.a
				if to == p.a.Mail {
					late = p.b
				}
				f.register(t, late, 0)
				stop()
			}
			if err := svc.Work(wctx); err == nil {
				t.Fatal("Work cut off by its context: no error")
			}
			if got := f.mailed(); len(got) != 1 {
				t.Fatalf("before the restart: %d mails", len(got))
			}
			// Restarted: the rest, the one who registered skipped, nobody
			// mailed twice.
			svc = f.mk()
			if err := svc.Work(ctx); err != nil {
				t.Fatalf("Work after the restart: %v", err)
			}
			got := recipients(f.mailed())
			wantTo := []string{p.a.Mail, p.b.Mail, p.stale.Mail}
			wantTo = slices.DeleteFunc(wantTo, func(s string) bool { return s == late.Mail })
			slices.Sort(wantTo)
			if !slices.Equal(got, wantTo) {
				t.Fatalf("mailed %v, want %v (%s registered mid-run)", got, wantTo, late.Login)
			}
			st, err := svc.Status(ctx)
			if err != nil || st.Running || st.Last == nil || st.Last.State != store.CampaignFinished ||
				st.Last.Sent != 2 || st.Last.Skipped != 1 || st.Last.Failed != 0 || st.Last.Total() != 3 {
				t.Fatalf("status %+v %+v %v", st, st.Last, err)
			}
			if want := time.UnixMilli(st.Last.StartedMS).Add(24 * time.Hour); !st.Next.Equal(want) {
				t.Fatalf("next run %v, want %v", st.Next, want)
			}
			// The mails: the link under the base path, the organisation's
			// name; the stale one asked to re-confirm.
			for _, m := range f.sink.Messages() {
				if !strings.Contains(m.Text, registerLink) || !strings.Contains(m.HTML, `href="`+registerLink+`"`) ||
					!strings.Contains(m.Subject, "Example Corp") {
					t.Errorf("mail to %v: subject %q, text %q", m.To, m.Subject, m.Text)
				}
				if reconfirm := strings.Contains(m.Subject, "Check your"); reconfirm != (m.To[0] == p.stale.Mail) {
					t.Errorf("mail to %v: subject %q", m.To, m.Subject)
				}
			}
			// Audited: start and finish with counts, no address.
			for _, a := range []string{audit.ActivityStartRegistrationCampaign, audit.ActivityFinishRegistrationCampaign} {
				rows, err := f.db.RecentAudit(ctx, a, 5)
				if err != nil || len(rows) != 1 {
					t.Fatalf("%s: %d rows, %v", a, len(rows), err)
				}
				if strings.Contains(rows[0].Details, "@") {
					t.Errorf("%s names an address: %s", a, rows[0].Details)
				}
			}
			if rows, _ := f.db.RecentAudit(ctx, audit.ActivityFinishRegistrationCampaign, 1); !strings.Contains(rows[0].Details, `"sent":2`) ||
				!strings.Contains(rows[0].Details, `"skipped":1`) {
				t.Errorf("finish event %s", rows[0].Details)
			}
			// Addresses are forgotten once the run ended.
			items, err := f.db.CampaignItems(ctx, st.Last.ID, 10)
			if err != nil || len(items) != 3 {
				t.Fatalf("queue %v %v", items, err)
			}
			for _, it := range items {
				if it.Email != "" {
					t.Errorf("the queue keeps %s's address", it.Login)
				}
			}

			// Before the interval, nothing; after it, a new run mails the two
			// still not registered, paced at 120 a minute.
			if err := svc.Work(ctx); err != nil || len(f.mailed()) != 2 {
				t.Fatalf("Work before the interval: %v, %d mails", err, len(f.mailed()))
			}
			f.at = 24*time.Hour + time.Minute
			if err := svc.Work(ctx); err != nil {
				t.Fatalf("Work after the interval: %v", err)
			}
			second := f.mailed()[2:]
			if got := recipients(second); !slices.Equal(got, wantTo) {
				t.Fatalf("the repeat mailed %v, want %v", got, wantTo)
			}
			if gap := second[1].at.Sub(second[0].at); gap < 450*time.Millisecond {
				t.Errorf("two mails %v apart at 120 a minute", gap)
			}
		})
	}
}

// TestCampaignTwoWorkers: workers mail one run at the same time, in one
// process on SQLite and as two replicas on one PostgreSQL database:
// everyone once, nobody twice.
func TestCampaignTwoWorkers(t *testing.T) {
	env := testbed.Load(t)
	t.Run("sqlite", func(t *testing.T) { twoWorkers(t, env, "") })
	t.Run("postgres", func(t *testing.T) { twoWorkers(t, env, env.NewPostgresDB(t)) })
}

func twoWorkers(t *testing.T, env testbed.Env, url string) {
	p := newPeople(t, env, directory.TypeOpenLDAP)
	f := newFixtureOn(t, env, directory.TypeOpenLDAP, p, url)
	ctx := context.Background()
	svc := f.mk()
	other := f.mk()
	if url != "" {
		other = f.mkOn(openDB(t, url))
	}
	if _, err := svc.Save(ctx, audit.CommandLine, 0, campaign.Settings{IntervalDays: 7, PerMinute: campaign.MaxPerMinute, NotRegistered: true}); err != nil {
		t.Fatal(err)
	}
	e, err := svc.Start(ctx, audit.CommandLine)
	if err != nil || e.ToMail != 2 {
		t.Fatalf("Start: %+v %v", e, err)
	}
	var wg sync.WaitGroup
	for _, s := range []*campaign.Service{svc, other, f.mk()} {
		wg.Go(func() {
			if err := s.Work(ctx); err != nil {
				t.Errorf("Work: %v", err)
			}
		})
	}
	wg.Wait()
	want := []string{p.a.Mail, p.b.Mail}
	slices.Sort(want)
	if got := recipients(f.mailed()); !slices.Equal(got, want) {
		t.Fatalf("mailed %v, want %v once each", got, want)
	}
	if n := len(f.sink.Messages()); n != 2 {
		t.Fatalf("the sink took %d mails", n)
	}
	st, err := svc.Status(ctx)
	if err != nil || st.Last.State != store.CampaignFinished || st.Last.Sent != 2 {
		t.Fatalf("status %+v %v", st.Last, err)
	}
	// Stop with no run under way is refused; a stopped run mails nobody
	// else.
	if err := svc.Stop(ctx, audit.CommandLine); err == nil {
		t.Fatal("Stop without a run: no error")
	}
	if _, err := svc.Start(ctx, audit.CommandLine); err != nil {
		t.Fatal(err)
	}
	if err := svc.Stop(ctx, audit.CommandLine); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := svc.Work(ctx); err != nil || len(f.mailed()) != 2 {
		t.Fatalf("Work after Stop: %v, %d mails", err, len(f.mailed()))
	}
	if rows, _ := f.db.RecentAudit(ctx, audit.ActivityStopRegistrationCampaign, 1); len(rows) != 1 || !strings.Contains(rows[0].Details, `"not_mailed":2`) {
		t.Fatalf("stop event %v", rows)
	}
}

// TestCampaignInterruptedMail: a worker that stopped between claiming a
// person and recording their mail leaves them claimed; the next worker
// marks them failed (the mail may have gone) instead of mailing them
// again, and mails the rest.
func TestCampaignInterruptedMail(t *testing.T) {
	f, svc := startedRun(t)
	ctx := context.Background()
	st, _ := svc.Status(ctx)
	var claimed store.CampaignItem
	if err := f.db.InTx(ctx, func(tx *store.Tx) error {
		var ok bool
		var err error
		claimed, ok, err = tx.ClaimCampaignItem(ctx, st.Last.ID, time.Now().UnixMilli())
		if err == nil && !ok {
			t.Fatal("nothing to claim")
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	f.at = 2 * time.Minute // past staleAfter
	if err := f.mk().Work(ctx); err != nil {
		t.Fatal(err)
	}
	got := recipients(f.mailed())
	if len(got) != 1 || got[0] == claimed.Email {
		t.Fatalf("mailed %v; %s was claimed by the worker that stopped", got, claimed.Email)
	}
	st, _ = svc.Status(ctx)
	if st.Last.State != store.CampaignFinished || st.Last.Sent != 1 || st.Last.Failed != 1 {
		t.Fatalf("status %+v", st.Last)
	}
}

// TestCampaignWaitsForMailServer: with no mail server configured a run
// marks nobody failed: it waits, and goes on once there is one.
func TestCampaignWaitsForMailServer(t *testing.T) {
	f, svc := startedRun(t)
	ctx := context.Background()
	f.noServer = true
	if err := svc.Work(ctx); !errors.Is(err, campaign.ErrNoMail) {
		t.Fatalf("Work without a mail server: %v", err)
	}
	st, _ := svc.Status(ctx)
	if !st.Running || st.Last.Queued != 2 || st.Last.Failed != 0 || st.Last.Sending != 0 {
		t.Fatalf("status without a mail server %+v", st.Last)
	}
	f.noServer = false
	if err := svc.Work(ctx); err != nil {
		t.Fatal(err)
	}
	if got := recipients(f.mailed()); len(got) != 2 {
		t.Fatalf("mailed %v once the server is back", got)
	}
}

// startedRun is a run on OpenLDAP at the fastest pace, started, for the
// two people who registered nothing.
func startedRun(t *testing.T) (*fixture, *campaign.Service) {
	t.Helper()
	env := testbed.Load(t)
	f := newFixture(t, env, directory.TypeOpenLDAP, newPeople(t, env, directory.TypeOpenLDAP))
	ctx := context.Background()
	svc := f.mk()
	if _, err := svc.Save(ctx, audit.CommandLine, 0, campaign.Settings{IntervalDays: 7, PerMinute: campaign.MaxPerMinute, NotRegistered: true}); err != nil {
		t.Fatal(err)
	}
	if e, err := svc.Start(ctx, audit.CommandLine); err != nil || e.ToMail != 2 {
		t.Fatalf("Start: %+v %v", e, err)
	}
	return f, svc
}
