package alerts_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/writeback/writeback/services/admins"
	"github.com/writeback/writeback/services/alerts"
	"github.com/writeback/writeback/services/audit"
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

// fixture is the portal's services on a fresh database, with a real SMTP
// sink as the mail server and two active Global Administrators (plus one
// disabled and one Helpdesk Administrator, who get no alerts).
type fixture struct {
	db   *store.DB
	set  *settings.Service
	wb   *writeback.Service
	ss   *selfservice.Service
	log  *audit.Log
	sink *mailtest.Sink
	logs *testbed.SyncBuffer
}

var globals = []string{"ga1@example.com", "ga2@example.com"}

func newFixture(t *testing.T) fixture { t.Helper(); return newFixtureOn(t, "", true) }

// newFixtureOn is newFixture on the database at databaseURL ("" for a
// fresh SQLite file); people: create the administrators (the first of two
// replicas on one database does).
func newFixtureOn(t *testing.T, databaseURL string, people bool) fixture {
	t.Helper()
	ctx := context.Background()
	db, err := store.OpenDatabase(ctx, databaseURL, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	logs := &testbed.SyncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	keys := keyring.New(make([]byte, 32))
	set := settings.New(db)
	wb := writeback.New(db, set, keys, log)
	t.Cleanup(func() { wb.Close() })
	ss := selfservice.New(db, wb, keys, log, "https://reset.example.com")
	t.Cleanup(ss.Wait)
	f := fixture{db: db, set: set, wb: wb, ss: ss, log: audit.NewLog(db, log), logs: logs}
	if !people {
		return f
	}
	f.sink = mailtest.Start(t, mailtest.Options{})
	host, port := f.sink.Addr()
	if _, err := ss.SaveMail(ctx, audit.CommandLine, 0, selfservice.MailInput{Host: host, Port: port, TLS: mail.TLSNone, From: "portal@example.com"}); err != nil {
		t.Fatal(err)
	}
	adm, err := admins.New(db, log, admins.HashParams{Memory: 1024, Time: 1, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []struct {
		email    string
		role     admins.Role
		disabled bool
	}{{globals[0], admins.GlobalAdmin, false}, {globals[1], admins.GlobalAdmin, false},
		{"ga-off@example.com", admins.GlobalAdmin, true}, {"hd@example.com", admins.HelpdeskAdmin, false}} {
		created, err := adm.Create(ctx, audit.CommandLine, admins.NewAdmin{Email: a.email, Name: a.email, Role: a.role, Password: "correct horse battery"})
		if err != nil {
			t.Fatal(err)
		}
		if a.disabled {
			if _, err := adm.Update(ctx, audit.CommandLine, created.ID, a.role, true); err != nil {
				t.Fatal(err)
			}
		}
	}
	return f
}

// alertsSent returns the "Send alert e-mail" events, oldest first.
func (f fixture) alertsSent(t *testing.T) []store.AuditEvent {
	t.Helper()
	evs, _, err := f.db.QueryAudit(context.Background(), store.AuditFilter{Activities: []string{audit.ActivitySendAlert}}, store.Cursor{}, 100)
	if err != nil {
		t.Fatal(err)
	}
	for i, j := 0, len(evs)-1; i < j; i, j = i+1, j-1 {
		evs[i], evs[j] = evs[j], evs[i]
	}
	return evs
}

// wantMails checks that the sink holds exactly n messages per Global
// Administrator, the last one's subject containing subject; it returns
// the last message to the first administrator.
func (f fixture) wantMails(t *testing.T, n int, subject string) mailtest.Received {
	t.Helper()
	var last mailtest.Received
	for _, ga := range globals {
		var got []mailtest.Received
		for _, m := range f.sink.Messages() {
			for _, to := range m.To {
				if to == ga {
					got = append(got, m)
				}
			}
		}
		if len(got) != n {
			t.Fatalf("%s got %d alerts, want %d: %+v", ga, len(got), n, got)
		}
		if n > 0 && !strings.Contains(got[n-1].Subject, subject) {
			t.Fatalf("%s: subject %q, want %q", ga, got[n-1].Subject, subject)
		}
		if n > 0 && ga == globals[0] {
			last = got[n-1]
		}
	}
	if total := len(f.sink.Messages()); total != n*len(globals) {
		t.Fatalf("%d messages in all, want %d (none to disabled or Helpdesk administrators)", total, n*len(globals))
	}
	return last
}

// monitor runs the writeback status monitor, as the leader does, with the
// alerts hooked to it, until the returned function stops it.
func (f fixture) monitor(t *testing.T) (stop func()) {
	t.Helper()
	al := alerts.New(f.db, f.ss, slog.New(slog.NewTextHandler(f.logs, nil)), "https://reset.example.com")
	f.wb.OnHealth(al.Writeback)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { f.wb.Monitor(ctx, 40*time.Millisecond); close(done) }()
	return func() { cancel(); <-done }
}

// readings waits until the monitor has recorded the state want and then n
// more readings.
func (f fixture) readings(t *testing.T, want settings.ServiceState, n int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	seen := 0
	var last time.Time
	for seen < n {
		st, err := f.set.Status(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if st.State == want && !st.CheckedAt.Equal(last) {
			seen++
			last = st.CheckedAt
		}
		if time.Now().After(deadline) {
			t.Fatalf("saw %d readings of %s (last %s: %q), want %d", seen, want, st.State, st.Message, n)
		}
		time.Sleep(15 * time.Millisecond)
	}
	f.ss.Wait()
}

// TestWritebackAlertOncePerIncident: the directory goes away (the listener
// in front of the test bed's OpenLDAP stops) and the Global Administrators
// get exactly one alert each, with the reason and the diagnostic, however
// many checks fail; a restart during the outage mails nothing more; the
// recovery is mailed exactly once; each alert sent is audited.
func TestWritebackAlertOncePerIncident(t *testing.T) {
	env := testbed.Load(t)
	f := newFixture(t)
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(env.LDAP.URL, "ldaps://"))
	dc := testbed.NewProxy(t, net.JoinHostPort(env.LDAP.Host(), "0"), net.JoinHostPort(env.LDAP.Host(), port))
	ctx := context.Background()
	if _, err := f.wb.SaveConnection(ctx, audit.CommandLine, 0, writeback.Input{Type: directory.TypeOpenLDAP,
		URLs: []string{"ldaps://" + dc.Addr}, CAPEM: env.CAPEM(), BindDN: env.LDAP.BindDN, BindPassword: env.LDAP.BindPassword,
		BaseDNs: []string{env.LDAP.PeopleDN}, LoginAttributes: []string{"uid", "mail"}, PasswordWriteback: true}); err != nil {
		t.Fatal(err)
	}
	env.NewLDAPUser(t, testbed.UserOptions{}) // the checklist wants the filter to find someone
	stop := f.monitor(t)
	f.readings(t, settings.StateConnected, 3)
	f.wantMails(t, 0, "")

	dc.Stop()
	f.readings(t, settings.StateError, 5)
	m := f.wantMails(t, 1, "password writeback is failing")
	for _, want := range []string{"turned from Connected to Error", "Reachable: ldaps://" + dc.Addr, "[FAILED]", "diagnostic:", "connection refused",
		"https://reset.example.com/admin/password-reset/on-premises-integration"} {
		if !strings.Contains(m.Text, want) {
			t.Errorf("the alert lacks %q:\n%s", want, m.Text)
		}
	}
	// A restart while it lasts: the incident is in the database.
	stop()
	stop = f.monitor(t)
	f.readings(t, settings.StateError, 4)
	f.wantMails(t, 1, "password writeback is failing")

	dc.Start()
	f.readings(t, settings.StateConnected, 4)
	m = f.wantMails(t, 2, "password writeback works again")
	if !strings.Contains(m.Text, "Connected again") {
		t.Errorf("the recovery mail:\n%s", m.Text)
	}
	stop()

	evs := f.alertsSent(t)
	if len(evs) != 2 {
		t.Fatalf("%d alert events, want 2", len(evs))
	}
	for i, want := range []string{"began", "ended"} {
		var d map[string]any
		if err := json.Unmarshal([]byte(evs[i].Details), &d); err != nil {
			t.Fatal(err)
		}
		if d["incident"] != want || evs[i].Result != audit.Success || evs[i].ActorType != "system" || len(d["recipients"].([]any)) != 2 {
			t.Errorf("alert event %d: %s %s %s", i, evs[i].Result, evs[i].ActorType, evs[i].Details)
		}
		if strings.Contains(evs[i].Details, env.LDAP.BindPassword) {
			t.Errorf("the audit event holds the service account's password")
		}
	}
	if strings.Contains(m.Text, env.LDAP.BindPassword) {
		t.Error("the alert holds the service account's password")
	}
}

// TestWritebackAlertNeedsConnectedFirst: a connection that never worked is
// not an incident (it is being set up): no alert.
func TestWritebackAlertNeedsConnectedFirst(t *testing.T) {
	env := testbed.Load(t)
	f := newFixture(t)
	ctx := context.Background()
	if _, err := f.wb.SaveConnection(ctx, audit.CommandLine, 0, writeback.Input{Type: directory.TypeOpenLDAP,
		URLs: []string{env.DeadURL}, CAPEM: env.CAPEM(), BindDN: env.LDAP.BindDN, BindPassword: env.LDAP.BindPassword,
		BaseDNs: []string{env.LDAP.PeopleDN}, LoginAttributes: []string{"uid", "mail"}, PasswordWriteback: true}); err != nil {
		t.Fatal(err)
	}
	stop := f.monitor(t)
	f.readings(t, settings.StateError, 4)
	stop()
	f.wantMails(t, 0, "")
	if n := len(f.alertsSent(t)); n != 0 {
		t.Errorf("%d alert events, want 0", n)
	}
}

// TestAuditChainAlert: the daily check finds an event altered in the
// database and the Global Administrators get one alert; further checks
// that still find it mail nothing; once the event is put back the next
// check mails the recovery, once.
func TestAuditChainAlert(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	al := alerts.New(f.db, f.ss, slog.New(slog.NewTextHandler(f.logs, nil)), "https://reset.example.com")
	rounds := make(chan audit.Integrity, 100)
	f.log.OnVerified(func(ctx context.Context, in audit.Integrity) {
		al.AuditChain(ctx, in)
		rounds <- in
	})
	done := make(chan struct{})
	go func() {
		f.log.Maintain(ctx, 30*time.Millisecond, func(context.Context) (int, error) { return 365, nil })
		close(done)
	}()
	defer func() { cancel(); <-done }()
	// wait waits for n rounds whose result is ok.
	wait := func(ok bool, n int) {
		t.Helper()
		for seen := 0; seen < n; {
			select {
			case in := <-rounds:
				if in.Result.OK == ok {
					seen++
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("no round of the check found ok=%v", ok)
			}
		}
		f.ss.Wait()
	}
	wait(true, 2)
	f.wantMails(t, 0, "")

	// An event appended after the last check, then altered in place.
	if err := f.db.InTx(ctx, func(tx *store.Tx) error {
		_, err := audit.Record(ctx, tx, audit.Entry{Category: audit.CategoryUserManagement, Activity: audit.ActivityResetByAdmin,
			Actor: audit.CommandLine, Target: audit.Target{Type: "User", ID: "u1"}, Result: audit.Success})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	var id int64
	if err := f.db.SQL().QueryRowContext(ctx, `SELECT max(id) FROM audit_events`).Scan(&id); err != nil {
		t.Fatal(err)
	}
	if _, err := f.db.SQL().ExecContext(ctx, `UPDATE audit_events SET result = 'failure' WHERE id = ?`, id); err != nil {
		t.Fatal(err)
	}
	wait(false, 4)
	m := f.wantMails(t, 1, "audit log failed its integrity check")
	if !strings.Contains(m.Text, "Reason:") || !strings.Contains(m.Text, "/admin/audit") {
		t.Errorf("the alert:\n%s", m.Text)
	}
	if _, err := f.db.SQL().ExecContext(ctx, `UPDATE audit_events SET result = 'success' WHERE id = ?`, id); err != nil {
		t.Fatal(err)
	}
	wait(true, 3)
	f.wantMails(t, 2, "audit log verifies again")
	if evs := f.alertsSent(t); len(evs) != 2 || evs[0].Category != audit.CategoryAuditLog {
		t.Errorf("alert events: %+v", evs)
	}
}

// TestAlertOnceFromTwoReplicas: two replicas on one PostgreSQL database
// take the same readings at once (as around a change of leader): the
// incident's state in the database lets one of them mail it, once.
func TestAlertOnceFromTwoReplicas(t *testing.T) {
	url := testbed.NewPostgresDB(t)
	a := newFixtureOn(t, url, true)
	b := newFixtureOn(t, url, false)
	b.sink = a.sink
	quiet := slog.New(slog.NewTextHandler(a.logs, nil))
	// Several readers per replica, so that the transactions meet.
	var replicas []*alerts.Service
	for range 4 {
		replicas = append(replicas, alerts.New(a.db, a.ss, quiet, "https://reset.example.com"), alerts.New(b.db, b.ss, quiet, "https://reset.example.com"))
	}
	ctx := context.Background()
	both := func(h writeback.Health) {
		var wg sync.WaitGroup
		for _, r := range replicas {
			wg.Go(func() { r.Writeback(ctx, h) })
		}
		wg.Wait()
	}
	both(writeback.Health{State: settings.StateConnected})
	for range 3 {
		both(writeback.Health{State: settings.StateError, Message: "Reachable: ldaps://dc1: Cannot connect.", Lines: []string{"[FAILED] Reachable (diagnostic: refused)"}})
	}
	a.wantMails(t, 1, "password writeback is failing")
	for range 3 {
		both(writeback.Health{State: settings.StateConnected})
	}
	a.wantMails(t, 2, "password writeback works again")
	if n := len(a.alertsSent(t)); n != 2 {
		t.Errorf("%d alert events, want 2", n)
	}
}
