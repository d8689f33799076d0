package agents_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/writeback/writeback/services/agents"
	"github.com/writeback/writeback/services/agentwire"
	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/directory"
	"github.com/writeback/writeback/services/errs"
	"github.com/writeback/writeback/store"
)

// registry is the agent hub's Registry (AGENT10.md §4), which Service
// implements.
type registry interface {
	Agent(ctx context.Context, id string) (name string, pub agentwire.Public, revoked bool, err error)
	Connected(ctx context.Context, id string, st agentwire.Status, remoteAddr string) error
	Heartbeat(ctx context.Context, id string, st agentwire.Status) error
	Disconnected(ctx context.Context, id string, reason string) error
	JobDone(ctx context.Context, id, op string, err error) error
}

var _ registry = (*agents.Service)(nil)

var ada = audit.Actor{Type: "admin", ID: "1", Name: "Ada Admin", ClientIP: "192.0.2.1"}

type fixture struct {
	db   *store.DB
	svc  *agents.Service
	path string
	now  time.Time
	mu   sync.Mutex
	cut  []string // Disconnect calls
}

func (f *fixture) Disconnect(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cut = append(f.cut, id)
}

func (f *fixture) advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = f.now.Add(d)
}

func (f *fixture) clock() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), store.FileName)
	db, err := store.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	f := &fixture{db: db, path: path, now: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)}
	f.svc = agents.New(db, slog.New(slog.NewTextHandler(io.Discard, nil)))
	f.svc.SetClock(f.clock)
	f.svc.SetDisconnector(f)
	return f
}

func (f *fixture) add(t *testing.T, name string) agents.Token {
	t.Helper()
	tok, err := f.svc.Add(context.Background(), ada, name)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func request(t *testing.T, token string) (agentwire.EnrollRequest, *agentwire.Identity) {
	t.Helper()
	id, err := agentwire.NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	return agentwire.EnrollRequest{Token: token, Public: id.Public(), Proof: id.SignEnroll(token), Host: "srv-dc1", Version: "1.0.0"}, id
}

func (f *fixture) enroll(t *testing.T, name string) (agentwire.EnrollResponse, *agentwire.Identity) {
	t.Helper()
	tok := f.add(t, name)
	req, id := request(t, tok.Token)
	resp, err := f.svc.Enroll(context.Background(), req, "198.51.100.9")
	if err != nil {
		t.Fatal(err)
	}
	return resp, id
}

func (f *fixture) info(t *testing.T, name string) agents.Info {
	t.Helper()
	list, err := f.svc.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range list {
		if in.Name == name {
			return in
		}
	}
	t.Fatalf("no agent %q in %+v", name, list)
	return agents.Info{}
}

// fileHas reports whether the database file (with its WAL) holds s.
func (f *fixture) fileHas(t *testing.T, s string) bool {
	t.Helper()
	for _, p := range []string{f.path, f.path + "-wal"} {
		b, err := os.ReadFile(p)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		if strings.Contains(string(b), s) {
			return true
		}
	}
	return false
}

func TestAddMakesOneTimeTokenStoredAsHash(t *testing.T) {
	f := newFixture(t)
	tok := f.add(t, "  Paris DC  ")
	if tok.Name != "Paris DC" || !strings.HasPrefix(tok.Token, agents.TokenPrefix) || len(tok.Token) != len(agents.TokenPrefix)+43 {
		t.Fatalf("token %+v", tok)
	}
	if !tok.ExpiresAt.Equal(f.now.Add(time.Hour)) {
		t.Errorf("expires %v, want an hour from now", tok.ExpiresAt)
	}
	if other := f.add(t, "Lyon"); other.Token == tok.Token {
		t.Error("two tokens are the same")
	}
	secret := strings.TrimPrefix(tok.Token, agents.TokenPrefix)
	if f.fileHas(t, secret) {
		t.Error("the token itself is in the database file")
	}
	if !f.fileHas(t, agentwire.TokenHash(tok.Token)) {
		t.Error("the token's hash is not in the database file (is the check above looking in the right place?)")
	}
	rows, _ := f.db.RecentAudit(context.Background(), agents.ActivityAddToken, 5)
	if len(rows) != 2 || rows[1].TargetName != "Paris DC" || rows[1].ActorName != "Ada Admin" {
		t.Fatalf("audit %+v", rows)
	}
}

func TestAddRefusesBadAndTakenNames(t *testing.T) {
	f := newFixture(t)
	f.enroll(t, "Paris")
	f.add(t, "Lyon") // a token waiting reserves its name too
	for _, name := range []string{"", "   ", strings.Repeat("a", 65), "a/b", "x\ny", "semi;colon", "<b>", "paris", "LYON"} {
		_, err := f.svc.Add(context.Background(), ada, name)
		if errs.KindOf(err) != errs.Invalid || errs.FieldsOf(err)["name"] == "" {
			t.Errorf("Add(%q) = %v, want a name field error", name, err)
		}
	}
	for _, name := range []string{"a", strings.Repeat("é", 64), "DC-01_site.b 2"} {
		if _, err := f.svc.Add(context.Background(), ada, name); err != nil {
			t.Errorf("Add(%q): %v", name, err)
		}
	}
	rows, _ := f.db.RecentAudit(context.Background(), agents.ActivityAddToken, 50)
	if len(rows) != 5 { // Paris, Lyon and the three good ones
		t.Errorf("%d token events, want 5: refusals change nothing", len(rows))
	}
}

func TestEnrollOnceThenRefusedTheSameWay(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	tok := f.add(t, "Paris")
	req, id := request(t, tok.Token)
	resp, err := f.svc.Enroll(ctx, req, "198.51.100.9")
	if err != nil {
		t.Fatal(err)
	}
	if resp.Name != "Paris" || len(resp.AgentID) < 16 {
		t.Fatalf("response %+v", resp)
	}
	name, pub, revoked, err := f.svc.Agent(ctx, resp.AgentID)
	if err != nil || name != "Paris" || revoked || string(pub.SignKey) != string(id.Public().SignKey) || string(pub.SealKey) != string(id.Public().SealKey) {
		t.Fatalf("Agent: %q %v %v", name, revoked, err)
	}
	in := f.info(t, "Paris")
	if in.State != agents.Disconnected || in.Host != "srv-dc1" || in.Version != "1.0.0" || in.EnrolledBy != "Ada Admin" || in.Fingerprint != id.Public().Fingerprint() {
		t.Errorf("info %+v", in)
	}

	// Used, unknown, expired: one answer.
	again, _ := request(t, tok.Token)
	expired := f.add(t, "Lyon")
	unknown, _ := request(t, agents.TokenPrefix+"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	noPrefix, _ := request(t, "hello")
	f.advance(time.Hour)
	exp, _ := request(t, expired.Token)
	for what, r := range map[string]agentwire.EnrollRequest{"used": again, "unknown": unknown, "expired": exp, "malformed": noPrefix} {
		_, err := f.svc.Enroll(ctx, r, "198.51.100.9")
		if !errors.Is(err, agents.ErrTokenInvalid) || errs.MessageOf(err) != errs.MessageOf(agents.ErrTokenInvalid) {
			t.Errorf("%s token: %v", what, err)
		}
	}
	if list, _ := f.svc.List(ctx); len(list) != 1 {
		t.Errorf("%d agents, want 1", len(list))
	}
	// A token a minute short of its hour still works.
	f.advance(-time.Hour)
	soon := f.add(t, "Nice")
	f.advance(time.Hour - time.Minute)
	r, _ := request(t, soon.Token)
	if _, err := f.svc.Enroll(ctx, r, ""); err != nil {
		t.Errorf("59 minutes old: %v", err)
	}
	rows, _ := f.db.RecentAudit(ctx, agents.ActivityEnroll, 50)
	var ok, failed int
	for _, e := range rows {
		if e.Result == audit.Success {
			ok++
		} else {
			failed++
		}
		for _, secret := range []string{tok.Token, expired.Token, soon.Token} {
			if strings.Contains(e.Details+e.Reason+e.TargetName, strings.TrimPrefix(secret, agents.TokenPrefix)) {
				t.Errorf("a token in audit row %+v", e)
			}
		}
	}
	if ok != 2 || failed != 4 {
		t.Errorf("%d enrolments and %d refusals audited, want 2 and 4", ok, failed)
	}
}

func TestEnrollRefusesForgedProofWithoutUsingTheToken(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	tok := f.add(t, "Paris")
	good, _ := request(t, tok.Token)
	other, _ := request(t, tok.Token)

	swapped := good
	swapped.Public = other.Public // keys that did not sign
	wrongToken := good
	wrongToken.Proof = mustIdentity(t, good).SignEnroll("wbat_something-else")
	badSeal := good
	badSeal.Public.SealKey = append([]byte(nil), other.Public.SealKey...) // seal key swapped after signing
	for what, r := range map[string]agentwire.EnrollRequest{"other keys": swapped, "proof for another token": wrongToken, "seal key swapped": badSeal} {
		if _, err := f.svc.Enroll(ctx, r, ""); !errors.Is(err, agents.ErrBadProof) {
			t.Errorf("%s: %v", what, err)
		}
	}
	noKeys := good
	noKeys.Public = agentwire.Public{}
	if _, err := f.svc.Enroll(ctx, noKeys, ""); errs.KindOf(err) != errs.Invalid {
		t.Errorf("no keys: %v", err)
	}
	if _, err := f.svc.Enroll(ctx, good, ""); err != nil {
		t.Errorf("the real agent after the forgeries: %v", err)
	}
}

// mustIdentity recovers nothing: it makes a fresh identity, standing for an
// attacker's key.
func mustIdentity(t *testing.T, _ agentwire.EnrollRequest) *agentwire.Identity {
	t.Helper()
	id, err := agentwire.NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestEnrollConcurrentSameTokenOneAgent(t *testing.T) {
	f := newFixture(t)
	tok := f.add(t, "Paris")
	var wg sync.WaitGroup
	var mu sync.Mutex
	var ok, refused int
	for range 12 {
		r, _ := request(t, tok.Token)
		wg.Go(func() {
			_, err := f.svc.Enroll(context.Background(), r, "")
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				ok++
			case errors.Is(err, agents.ErrTokenInvalid):
				refused++
			default:
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if ok != 1 || refused != 11 {
		t.Errorf("%d enrolled, %d refused; want 1 and 11", ok, refused)
	}
}

func TestRevokeRefusesAndDisconnects(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	resp, _ := f.enroll(t, "Paris")
	st := agentwire.Status{Version: "1.0.0", Host: "srv-dc1", Configured: true, PasswordWriteback: true}
	if err := f.svc.Connected(ctx, resp.AgentID, st, "198.51.100.9"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Revoke(ctx, ada, "nobody"); errs.KindOf(err) != errs.NotFound {
		t.Errorf("unknown name: %v", err)
	}
	if len(f.cut) != 0 {
		t.Fatal("a failed revoke disconnected someone")
	}
	in, err := f.svc.Revoke(ctx, ada, "PARIS")
	if err != nil || in.State != agents.Revoked {
		t.Fatalf("revoke: %+v %v", in, err)
	}
	if len(f.cut) != 1 || f.cut[0] != resp.AgentID {
		t.Errorf("Disconnect calls %v, want [%s]", f.cut, resp.AgentID)
	}
	if _, _, revoked, err := f.svc.Agent(ctx, resp.AgentID); err != nil || !revoked {
		t.Errorf("Agent after revoke: revoked=%v %v", revoked, err)
	}
	if got := f.info(t, "Paris"); got.State != agents.Revoked || got.RevokedBy != "Ada Admin" || !got.ConnectedSince.IsZero() {
		t.Errorf("info %+v", got)
	}
	if err := f.svc.Connected(ctx, resp.AgentID, st, ""); !errors.Is(err, agents.ErrUnknownAgent) {
		t.Errorf("a revoked agent connecting: %v", err)
	}
	if err := f.svc.Heartbeat(ctx, resp.AgentID, st); !errors.Is(err, agents.ErrRevoked) {
		t.Errorf("a revoked agent's heartbeat: %v", err)
	}
	if _, err := f.svc.Revoke(ctx, ada, "Paris"); errs.KindOf(err) != errs.NotFound {
		t.Errorf("second revoke: %v", err)
	}
	if _, err := f.svc.RevokeByID(ctx, ada, resp.AgentID); errs.KindOf(err) != errs.NotFound {
		t.Errorf("second revoke by ID: %v", err)
	}
	rows, _ := f.db.RecentAudit(ctx, agents.ActivityRevoke, 5)
	if len(rows) != 1 || rows[0].TargetID != resp.AgentID || rows[0].ActorName != "Ada Admin" {
		t.Errorf("revoke audit %+v", rows)
	}
	// The name is free for a replacement.
	f.enroll(t, "Paris")
	if _, _, _, err := f.svc.Agent(ctx, "no-such-agent-id-0"); !errors.Is(err, agents.ErrUnknownAgent) {
		t.Errorf("unknown agent: %v", err)
	}
}

func TestConnectionStateHeartbeatsAndOperations(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	resp, _ := f.enroll(t, "Paris")
	id := resp.AgentID
	st := agentwire.Status{Version: "1.0.1", Host: "srv-dc1", Configured: true, PasswordWriteback: true, Directory: "Active Directory ldaps://dc1"}
	start := f.clock()
	if err := f.svc.Connected(ctx, id, st, "198.51.100.9"); err != nil {
		t.Fatal(err)
	}
	in := f.info(t, "Paris")
	if in.State != agents.Connected || !in.ConnectedSince.Equal(start) || in.Version != "1.0.1" || !in.PasswordWriteback || in.RemoteAddr != "198.51.100.9" {
		t.Fatalf("after connect %+v", in)
	}
	// Silent for longer than DeadAfter: shown disconnected.
	f.advance(agentwire.DeadAfter + time.Second)
	if in := f.info(t, "Paris"); in.State != agents.Disconnected {
		t.Errorf("silent agent: %s", in.State)
	}
	if err := f.svc.Heartbeat(ctx, id, st); err != nil {
		t.Fatal(err)
	}
	if in := f.info(t, "Paris"); in.State != agents.Connected || !in.LastHeartbeat.Equal(f.clock()) {
		t.Errorf("after heartbeat %+v", in)
	}

	// Operations: counted at once on the page, in the database with the
	// next heartbeat; only the agent's and the directory's errors become
	// its last error.
	for range 3 {
		_ = f.svc.JobDone(ctx, id, agentwire.OpFind, nil)
	}
	_ = f.svc.JobDone(ctx, id, agentwire.OpChangeLogin, errs.E(errs.Invalid, "The current password is wrong.", nil))
	if in := f.info(t, "Paris"); in.OpsLastHour != 4 || in.LastError != "" {
		t.Errorf("after 4 jobs: %+v", in)
	}
	unavailable := errs.E(errs.Unavailable, "Your organisation's directory could not be reached.", &directory.OpError{Op: "reset", Code: directory.CodeUnavailable, Server: "ldaps://dc1", Err: errors.New("i/o timeout")})
	_ = f.svc.JobDone(ctx, id, agentwire.OpResetUser, unavailable)
	in = f.info(t, "Paris")
	if in.OpsLastHour != 5 || !strings.Contains(in.LastError, "i/o timeout") || !strings.HasPrefix(in.LastError, "reset_user: ") {
		t.Errorf("after an outage: %+v", in)
	}
	_ = f.svc.JobDone(ctx, id, agentwire.OpResetUser, errs.E(errs.Forbidden, "Refused.", &agentwire.RefusedError{Reason: agentwire.RefusedWritebackOff}))
	if in := f.info(t, "Paris"); !strings.Contains(in.LastError, agentwire.RefusedWritebackOff) {
		t.Errorf("after a refusal: %q", in.LastError)
	}
	// The same outage again within the minute is not written again; a
	// minute on, it is (with its new time).
	refusedAt := f.info(t, "Paris").LastErrorAt
	_ = f.svc.JobDone(ctx, id, agentwire.OpResetUser, unavailable)
	firstAt := f.info(t, "Paris").LastErrorAt
	f.advance(10 * time.Second)
	_ = f.svc.JobDone(ctx, id, agentwire.OpResetUser, unavailable)
	if got := f.info(t, "Paris"); !got.LastErrorAt.Equal(firstAt) || !strings.Contains(got.LastError, "i/o timeout") || refusedAt.IsZero() {
		t.Errorf("the same error 10 s later was written again: %v, first %v", got.LastErrorAt, firstAt)
	}
	f.advance(time.Minute)
	_ = f.svc.JobDone(ctx, id, agentwire.OpResetUser, unavailable)
	if got := f.info(t, "Paris"); !got.LastErrorAt.Equal(f.clock()) {
		t.Errorf("a minute later: %v, want %v", got.LastErrorAt, f.clock())
	}
	other := agents.New(f.db, slog.New(slog.NewTextHandler(io.Discard, nil))) // another process: sees only what was written
	other.SetClock(f.clock)
	count := func() int64 {
		list, err := other.List(ctx)
		if err != nil || len(list) != 1 {
			t.Fatalf("%+v %v", list, err)
		}
		return list[0].OpsLastHour
	}
	if n := count(); n != 0 {
		t.Errorf("before the heartbeat another process sees %d operations", n)
	}
	if err := f.svc.Heartbeat(ctx, id, st); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 9 {
		t.Errorf("after the heartbeat another process sees %d operations, want 9", n)
	}
	if in := f.info(t, "Paris"); in.OpsLastHour != 9 {
		t.Errorf("counted twice? %d", in.OpsLastHour)
	}
	// An hour on, they have aged out.
	f.advance(OpsWindowPlus)
	if err := f.svc.Heartbeat(ctx, id, st); err != nil {
		t.Fatal(err)
	}
	if in := f.info(t, "Paris"); in.OpsLastHour != 0 {
		t.Errorf("an hour later: %d operations", in.OpsLastHour)
	}

	// The agent's own reported error.
	st.LastError = "bind failed: invalid credentials\x1b[2K"
	if err := f.svc.Heartbeat(ctx, id, st); err != nil {
		t.Fatal(err)
	}
	if in := f.info(t, "Paris"); in.LastError != "bind failed: invalid credentials [2K" {
		t.Errorf("reported error %q", in.LastError)
	}

	// A connection that replaces another is reported Connected again; only
	// the current one's end is reported.
	if err := f.svc.Connected(ctx, id, st, "198.51.100.10"); err != nil {
		t.Fatal(err)
	}
	if in := f.info(t, "Paris"); in.State != agents.Connected || in.RemoteAddr != "198.51.100.10" {
		t.Errorf("after the replacement: %+v", in)
	}
	if err := f.svc.Disconnected(ctx, id, "closed by the agent"); err != nil {
		t.Fatal(err)
	}
	if in := f.info(t, "Paris"); in.State != agents.Disconnected || !in.ConnectedSince.IsZero() {
		t.Errorf("after it ended: %+v", in)
	}
	conn, _ := f.db.RecentAudit(ctx, agents.ActivityConnected, 10)
	disc, _ := f.db.RecentAudit(ctx, agents.ActivityDisconnected, 10)
	if len(conn) != 2 || len(disc) != 1 || disc[0].Reason != "closed by the agent" ||
		!strings.Contains(conn[0].Details, `"replaced_connection":true`) || !strings.Contains(conn[1].Details, `"replaced_connection":false`) {
		t.Errorf("audit: %d connected %+v, %d disconnected %+v", len(conn), conn, len(disc), disc)
	}
	for _, call := range []error{
		f.svc.Heartbeat(ctx, "no-such-agent-id-0", st),
		f.svc.Connected(ctx, "no-such-agent-id-0", st, ""),
		f.svc.Disconnected(ctx, "no-such-agent-id-0", "x"),
	} {
		if !errors.Is(call, agents.ErrUnknownAgent) {
			t.Errorf("unknown agent: %v", call)
		}
	}
}

// OpsWindowPlus is a little more than the window of counted operations.
const OpsWindowPlus = agents.OpsWindow + 2*time.Minute

// TestRevokeFromAnotherProcess: `writeback agent revoke` runs in its own
// process, without the hub; the serving process's watcher cuts the agent
// off, and its next heartbeat is answered ErrRevoked.
func TestRevokeFromAnotherProcess(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	paris, _ := f.enroll(t, "Paris")
	lyon, _ := f.enroll(t, "Lyon")
	st := agentwire.Status{Version: "1"}
	for _, id := range []string{paris.AgentID, lyon.AgentID} {
		if err := f.svc.Connected(ctx, id, st, ""); err != nil {
			t.Fatal(err)
		}
	}
	cli := agents.New(f.db, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if _, err := cli.Revoke(ctx, audit.CommandLine, "Paris"); err != nil {
		t.Fatal(err)
	}
	if len(f.cut) != 0 {
		t.Fatal("disconnected before the watcher looked")
	}
	f.svc.CheckRevocations(ctx)
	if len(f.cut) != 1 || f.cut[0] != paris.AgentID {
		t.Errorf("Disconnect calls %v, want only Paris %s", f.cut, paris.AgentID)
	}
	f.svc.CheckRevocations(ctx)
	if len(f.cut) != 1 {
		t.Errorf("cut off twice: %v", f.cut)
	}
	if err := f.svc.Heartbeat(ctx, paris.AgentID, st); !errors.Is(err, agents.ErrRevoked) {
		t.Errorf("heartbeat after revocation: %v", err)
	}
	if err := f.svc.Heartbeat(ctx, lyon.AgentID, st); err != nil {
		t.Errorf("Lyon's heartbeat: %v", err)
	}
	// The watcher loop itself.
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { f.svc.WatchRevocations(wctx, 10*time.Millisecond); close(done) }()
	if _, err := cli.Revoke(ctx, audit.CommandLine, "Lyon"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		f.mu.Lock()
		n := len(f.cut)
		f.mu.Unlock()
		if n == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the watcher did not cut Lyon off")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
}

func TestFlushKeepsCountsNotYetWritten(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	resp, _ := f.enroll(t, "Paris")
	for range 4 {
		_ = f.svc.JobDone(ctx, resp.AgentID, agentwire.OpFind, nil)
	}
	if err := f.svc.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	other := agents.New(f.db, slog.New(slog.NewTextHandler(io.Discard, nil)))
	other.SetClock(f.clock)
	list, err := other.List(ctx)
	if err != nil || len(list) != 1 || list[0].OpsLastHour != 4 {
		t.Errorf("after Flush another process sees %+v %v", list, err)
	}
	if in := f.info(t, "Paris"); in.OpsLastHour != 4 {
		t.Errorf("flushed counts counted twice: %d", in.OpsLastHour)
	}
}
