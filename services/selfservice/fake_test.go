package selfservice

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/writeback/writeback/services/admins"
	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/directory"
	"github.com/writeback/writeback/services/errs"
	"github.com/writeback/writeback/services/keyring"
	"github.com/writeback/writeback/services/settings"
	"github.com/writeback/writeback/services/writeback"
	"github.com/writeback/writeback/store"
)

// fakeDir is a Directory built from function fields; a nil field answers as
// a healthy directory holding the users in users (by login and by DN).
type fakeDir struct {
	mu     sync.Mutex
	users  []directory.User
	state  func() (writeback.State, error)
	lookup func(login string) (directory.User, error)
	get    func(dn string) (directory.User, error)
	reset  func(u directory.User, password string) (directory.Result, error)
	unlock func(u directory.User) (directory.Result, error)
	calls  map[string]int
}

func (d *fakeDir) called(op string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.calls == nil {
		d.calls = map[string]int{}
	}
	d.calls[op]++
}

func (d *fakeDir) count(op string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.calls[op]
}

func (d *fakeDir) State(ctx context.Context) (writeback.State, error) {
	if d.state != nil {
		return d.state()
	}
	return writeback.State{Configured: true, Writeback: true, Unlock: true}, nil
}

func (d *fakeDir) Lookup(ctx context.Context, login string) (directory.User, error) {
	d.called("lookup")
	if d.lookup != nil {
		return d.lookup(login)
	}
	for _, u := range d.users {
		if strings.EqualFold(u.Login, login) || strings.EqualFold(u.Email, login) {
			return u, nil
		}
	}
	return directory.User{}, errs.E(errs.NotFound, "No account matches that name.", &directory.OpError{Op: "find", Code: directory.CodeNotFound})
}

func (d *fakeDir) Get(ctx context.Context, dn string) (directory.User, error) {
	d.called("get")
	return d.read(dn)
}

// read is a read of the entry dn (counted by the caller).
func (d *fakeDir) read(dn string) (directory.User, error) {
	if d.get != nil {
		return d.get(dn)
	}
	for _, u := range d.users {
		if u.DN == dn {
			return u, nil
		}
	}
	return directory.User{}, errs.E(errs.NotFound, "No account matches that name.", &directory.OpError{Op: "get", Code: directory.CodeNotFound})
}

func (d *fakeDir) MemberOf(ctx context.Context, u directory.User, groupDN string) (bool, error) {
	d.called("member-of")
	return true, nil
}

func (d *fakeDir) Policy(ctx context.Context, u directory.User) (directory.Policy, error) {
	return directory.Policy{MinLength: 7, Complexity: true}, nil
}

// Reset reads the account as the real client does (counted as a "get"),
// refuses another ID at the DN, then writes.
func (d *fakeDir) Reset(ctx context.Context, u directory.User, password string, opt directory.ResetOptions) (directory.User, directory.Result, error) {
	d.called("get")
	cur, err := d.read(u.DN)
	if err != nil {
		return directory.User{}, directory.Result{}, err
	}
	if u.ID != "" && cur.ID != u.ID {
		return cur, directory.Result{}, errs.E(errs.NotFound, "The account changed since it was looked up; look it up again.", &directory.OpError{Op: "reset", Code: directory.CodeNotFound})
	}
	d.called("reset")
	if d.reset != nil {
		res, err := d.reset(cur, password)
		return cur, res, err
	}
	return cur, directory.Result{Server: "ldaps://fake"}, nil
}

func (d *fakeDir) Unlock(ctx context.Context, u directory.User) (directory.Result, error) {
	d.called("unlock")
	if d.unlock != nil {
		return d.unlock(u)
	}
	return directory.Result{Server: "ldaps://fake"}, nil
}

// cheap keeps argon2id fast in tests.
var cheap = admins.HashParams{Memory: 1024, Time: 1, Threads: 1}

var alice = directory.User{ID: "S-1-5-21-alice", DN: "CN=Alice Example,OU=People,DC=example,DC=test", Login: "alice",
	DisplayName: "Alice Example", Email: "alice@example.com", Locked: true}

// fixture is a Service on a real SQLite store in t.TempDir() with a fake
// directory, self-service on for everyone, and no mail server (so code
// mails fail in the background, as they may in production).
type fixture struct {
	t   *testing.T
	s   *Service
	db  *store.DB
	dir *fakeDir
}

func newFixture(t *testing.T, methods Methods, users ...directory.User) *fixture {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, filepath.Join(t.TempDir(), store.FileName))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	keys := keyring.New(make([]byte, 32))
	wb := writeback.New(db, settings.New(db), keys, log)
	t.Cleanup(func() { wb.Close() })
	s := New(db, wb, keys, log, "http://portal.test")
	s.Pacer, s.AnswerParams = NewPacer(0), cheap
	t.Cleanup(s.Wait)
	d := &fakeDir{users: users}
	s.SetDirectory(d)
	if _, err := s.SavePolicy(ctx, audit.CommandLine, 0, "test", func(p *Policy) {
		p.Enabled, p.Methods, p.Required = EnabledAll, methods, 1
	}); err != nil {
		t.Fatal(err)
	}
	return &fixture{t: t, s: s, db: db, dir: d}
}

// registerApp stores an authenticator app for u and returns its secret.
func (fx *fixture) registerApp(u directory.User, secret string) {
	fx.t.Helper()
	sealed, err := fx.s.keys.Seal(methodContext(u.ID, MethodApp), []byte(secret))
	if err != nil {
		fx.t.Fatal(err)
	}
	fx.put(store.Method{UserID: u.ID, Method: MethodApp, Secret: sealed, ConfirmedMS: time.Now().UnixMilli()})
}

// registerQuestions stores answers for u to the first n policy questions.
func (fx *fixture) registerQuestions(u directory.User, answers ...string) []string {
	fx.t.Helper()
	qs := DefaultPolicy().Questions[:len(answers)]
	m := map[string]string{}
	for i, q := range qs {
		h, err := admins.HashPassword(normalizeAnswer(answers[i]), cheap)
		if err != nil {
			fx.t.Fatal(err)
		}
		m[q] = h
	}
	b := mustJSON(fx.t, m)
	sealed, err := fx.s.keys.Seal(methodContext(u.ID, MethodQuestions), b)
	if err != nil {
		fx.t.Fatal(err)
	}
	fx.put(store.Method{UserID: u.ID, Method: MethodQuestions, Secret: sealed, ConfirmedMS: time.Now().UnixMilli()})
	return qs
}

func (fx *fixture) put(m store.Method) {
	fx.t.Helper()
	if err := fx.db.InTx(context.Background(), func(tx *store.Tx) error { return tx.PutMethod(context.Background(), m) }); err != nil {
		fx.t.Fatal(err)
	}
}

// audit returns the audit rows of an activity, newest first.
func (fx *fixture) audit(activity string) []store.AuditEvent {
	fx.t.Helper()
	fx.s.Wait()
	rows, err := fx.db.RecentAudit(context.Background(), activity, 100000)
	if err != nil {
		fx.t.Fatal(err)
	}
	return rows
}

// start opens a flow of kind for login in the browser session browser.
func (fx *fixture) start(kind, login, browser string) string {
	fx.t.Helper()
	id, err := fx.s.Start(context.Background(), kind, login, browser, audit.Actor{Type: "anonymous", ClientIP: "192.0.2.1"})
	if err != nil {
		fx.t.Fatalf("start %s %q: %v", kind, login, err)
	}
	return id
}

func (fx *fixture) choose(id, browser, method string) {
	fx.t.Helper()
	if err := fx.s.Choose(context.Background(), id, browser, method, audit.Actor{}); err != nil {
		fx.t.Fatalf("choose %s: %v", method, err)
	}
}

func (fx *fixture) view(id, browser string) View {
	fx.t.Helper()
	v, err := fx.s.View(context.Background(), id, browser)
	if err != nil {
		fx.t.Fatalf("view: %v", err)
	}
	return v
}
