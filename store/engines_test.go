package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/writeback/writeback/migrations"
	"github.com/writeback/writeback/testbed"
)

func TestBind(t *testing.T) {
	cases := []struct{ in, want string }{
		{`SELECT 1`, `SELECT 1`},
		{`SELECT a FROM t WHERE a = ? AND b IN (?, ?)`, `SELECT a FROM t WHERE a = $1 AND b IN ($2, $3)`},
		{`SELECT '?' , "a?b", ? FROM t WHERE x LIKE ? ESCAPE '\'`, `SELECT '?' , "a?b", $1 FROM t WHERE x LIKE $2 ESCAPE '\'`},
		{`SELECT 'it''s ?', ?`, `SELECT 'it''s ?', $1`},
	}
	for _, c := range cases {
		if got := enginePostgres.bind(c.in); got != c.want {
			t.Errorf("bind(%q) = %q, want %q", c.in, got, c.want)
		}
		if got := engineSQLite.bind(c.in); got != c.in {
			t.Errorf("SQLite bind(%q) = %q, want it unchanged", c.in, got)
		}
	}
}

// Both engines have the same migrations by name, and none lies outside
// their folders, where neither engine would apply it.
func TestMigrationsAlike(t *testing.T) {
	names := func(dir string) []string {
		m, err := fs.Glob(migrations.FS, dir+"/*.sql")
		if err != nil {
			t.Fatal(err)
		}
		for i := range m {
			m[i] = path.Base(m[i])
		}
		return m
	}
	lite, pg := names("sqlite"), names("postgres")
	if len(lite) == 0 || !slices.Equal(lite, pg) {
		t.Fatalf("sqlite migrations %v, postgres migrations %v: want the same names", lite, pg)
	}
	entries, err := os.ReadDir("../migrations")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".sql") {
			t.Errorf("migrations/%s is applied by neither engine: put it in migrations/sqlite/ and its PostgreSQL edition in migrations/postgres/", e.Name())
		}
	}
}

// The SQLite migrations released before PostgreSQL came are byte for byte
// what data folders in use applied: moving them into migrations/sqlite/
// changed their place, not their SQL, and they must never change (a fix is
// a new migration).
func TestReleasedSQLiteMigrationsUnchanged(t *testing.T) {
	released := map[string]string{
		"0001_init.sql":             "8a5ef1cac75def5a83a2384d06e9db8ed949010f7c4267f6fe23511d2dfa52ee",
		"0002_selfservice.sql":      "f68347509f1aaf95e5d964744766c843d267271dd75b5e25e19f87a105e24904",
		"0003_audit.sql":            "ff5d0d2e79dd861325e61138434d8e08f2c5b575da3f876331569b6500196cf2",
		"0004_totp_step.sql":        "f5a8fc97e627110e430f3b718a96cd521c0f674b769a3f48fd9b0bc26c3bde14",
		"0005_sspr_guesses.sql":     "341a6c4417ca665873f503d385295ef09f5a5bf8003c93c71895a22847352a37",
		"0006_signin_attempts.sql":  "785691e7ee4acda0dca5bd999c689414fc03cd9995eb77cf2e3c0119efa10e11",
		"0007_audit_checkpoint.sql": "57f1285f45f04b641193a482ff9f63872ad4537a042c7545c7ec1a700912161f",
		"0008_agents.sql":           "55f583f796c02f6a7dedd540708bedfb9af574ef7973c3460fb42d8e257376b1",
	}
	for name, want := range released {
		b, err := fs.ReadFile(migrations.FS, "sqlite/"+name)
		if err != nil {
			t.Fatal(err)
		}
		if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) != want {
			t.Errorf("migrations/sqlite/%s changed: data folders that applied it would not have what this one makes", name)
		}
	}
}

// A database that records a migration this binary does not have (a newer
// version migrated it) is refused with a message saying so, and nothing is
// applied; a later binary that has it opens the database.
func TestSchemaNewerThanBinaryRefused(t *testing.T) {
	ForEachBackend(t, func(t *testing.T, b Backend) {
		ctx := context.Background()
		db := b.Migrated(t)
		if _, err := db.sql.ExecContext(ctx, `INSERT INTO schema_migrations (name, applied_ms) VALUES ('9999_from_the_future.sql', 1)`); err != nil {
			t.Fatal(err)
		}
		old := b.Open(t)
		_, err := old.Migrate(ctx)
		if !errors.Is(err, ErrSchemaNewer) || !strings.Contains(err.Error(), "9999_from_the_future.sql") ||
			!strings.Contains(err.Error(), "newer version") {
			t.Fatalf("Migrate on a database from a newer binary: %v; want ErrSchemaNewer naming the migration", err)
		}
		// Also when this binary has a migration of its own pending: refused
		// before anything is applied.
		if _, err := db.sql.ExecContext(ctx, `DELETE FROM schema_migrations WHERE name = '0008_agents.sql'`); err != nil {
			t.Fatal(err)
		}
		if _, err := old.Migrate(ctx); !errors.Is(err, ErrSchemaNewer) {
			t.Fatalf("Migrate with one pending and one unknown: %v", err)
		}
		var n int
		if err := db.sql.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations WHERE name = '0008_agents.sql'`).Scan(&n); err != nil || n != 0 {
			t.Fatalf("a refused Migrate recorded 0008: %d %v", n, err)
		}
	})
}

// Several handles (replicas) migrating one empty PostgreSQL database at
// once apply each migration exactly once between them, and every one ends
// with the schema complete.
func TestConcurrentMigrationAppliesEachOnce(t *testing.T) {
	ctx := context.Background()
	where := testbed.NewPostgresDB(t)
	const replicas = 6
	dbs := make([]*DB, replicas)
	for i := range dbs {
		dbs[i] = Backend{Name: "postgres", Where: where}.Open(t)
	}
	applied := make([][]string, replicas)
	errs := make([]error, replicas)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i, db := range dbs {
		wg.Go(func() {
			<-start
			applied[i], errs[i] = db.Migrate(ctx)
		})
	}
	close(start)
	wg.Wait()
	count := map[string]int{}
	for i := range dbs {
		if errs[i] != nil {
			t.Fatalf("replica %d: %v", i, errs[i])
		}
		for _, n := range applied[i] {
			count[n]++
		}
	}
	list, err := dbs[0].migrations()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range list {
		if count[m.name] != 1 {
			t.Errorf("migration %s applied %d times across %d replicas, want once", m.name, count[m.name], replicas)
		}
	}
	var rows int
	if err := dbs[0].sql.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations`).Scan(&rows); err != nil || rows != len(list) {
		t.Errorf("schema_migrations holds %d rows (%v), want %d", rows, err, len(list))
	}
	for i, db := range dbs {
		if p, err := db.Pending(ctx); err != nil || len(p) != 0 {
			t.Errorf("replica %d: pending %v %v", i, p, err)
		}
	}
}

// Two replicas (two DB handles on one PostgreSQL database, several
// goroutines each) appending at once keep one unbroken chain: the store's
// own verification passes and every event is in it once.
func TestConcurrentAppendsTwoReplicasPostgres(t *testing.T) {
	ctx := context.Background()
	b := Backend{Name: "postgres", Where: testbed.NewPostgresDB(t)}
	a, c := b.Migrated(t), b.Open(t)
	const writers, each = 8, 40
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		db := a
		if w%2 == 1 {
			db = c
		}
		wg.Go(func() {
			for i := range each {
				e := AuditEvent{Category: "UserManagement", Activity: "Reset password (self-service)", ActorType: "user",
					ActorID: "u", TargetID: "w" + string(rune('a'+w)), Reason: strings.Repeat("x", i), Result: "success"}
				if err := db.InTx(ctx, func(tx *Tx) error { return tx.AppendAudit(ctx, &e) }); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	res, err := c.VerifyAudit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK || res.Checked != writers*each {
		t.Fatalf("after %d appends from two replicas: %+v", writers*each, res)
	}
}

// The opener's errors say where and why in one line, and never hold the
// password: a URL it cannot read, a scheme it does not serve, a server
// nobody listens on, a wrong password, a database that does not exist.
func TestOpenPostgresErrors(t *testing.T) {
	ctx := context.Background()
	good := testbed.NewPostgresDB(t)
	gu, err := url.Parse(good)
	if err != nil {
		t.Fatal(err)
	}
	// A port nothing listens on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadPort := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	const secret = "S3cret-Pa55word"
	with := func(mod func(u *url.URL)) string {
		u := *gu
		mod(&u)
		return u.String()
	}
	cases := []struct {
		name, url string
		want      []string // in the message
	}{
		{"not a URL", "postgres://ada:" + secret + "@db.example.com:port/x", []string{"the database URL", "not a valid URL"}},
		{"slash in the password", "postgres://ada:Pa55/" + secret + "@db.example.com/x", []string{"the database URL", "%-encoded"}},
		{"other scheme", "mysql://ada:" + secret + "@db.example.com/x", []string{"scheme \"mysql\" is not supported", "postgres://"}},
		{"unreachable", "postgres://ada:" + secret + "@127.0.0.1:" + strconv.Itoa(deadPort) + "/writeback?connect_timeout=5",
			[]string{"PostgreSQL at 127.0.0.1:" + strconv.Itoa(deadPort) + " (database writeback)", "connection refused"}},
		{"wrong password", with(func(u *url.URL) { u.User = url.UserPassword(u.User.Username(), secret) }),
			[]string{"PostgreSQL at " + gu.Host, "password authentication failed"}},
		{"no such database", with(func(u *url.URL) { u.Path = "/nosuchdb_" + strconv.Itoa(deadPort) }),
			[]string{"PostgreSQL at " + gu.Host, "does not exist"}},
		{"bad option", with(func(u *url.URL) { u.RawQuery = "sslmode=sometimes" }), []string{"PostgreSQL at " + gu.Host, "sslmode"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			defer cancel()
			db, err := OpenDatabase(ctx, c.url, t.TempDir())
			if err == nil {
				db.Close()
				t.Fatalf("opened %s", c.name)
			}
			msg := err.Error()
			t.Log(msg)
			var oe *OpenError
			if !errors.As(err, &oe) {
				t.Errorf("error %T, want *OpenError: %v", err, err)
			}
			for _, w := range c.want {
				if !strings.Contains(msg, w) {
					t.Errorf("message %q lacks %q", msg, w)
				}
			}
			if strings.Contains(msg, secret) || strings.Contains(msg, "Pa55") {
				t.Errorf("message %q holds the password", msg)
			}
			if pw, ok := gu.User.Password(); ok && strings.Contains(msg, pw) {
				t.Errorf("message %q holds the server's password", msg)
			}
			if strings.Contains(msg, "\n") {
				t.Errorf("message %q is more than one line", msg)
			}
		})
	}
	// And the good URL opens, as does "" (SQLite in the data folder).
	db, err := OpenDatabase(ctx, good, "")
	if err != nil {
		t.Fatal(err)
	}
	if db.Engine() != "postgres" {
		t.Errorf("engine %s", db.Engine())
	}
	db.Close()
	dir := t.TempDir()
	db, err = OpenDatabase(ctx, "", dir)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := os.Stat(dir + "/" + FileName); err != nil || db.Engine() != "sqlite" {
		t.Errorf("OpenDatabase(\"\") made no SQLite file in the data folder: %v, %s", err, db.Engine())
	}
}

// An event quoting NUL or invalid UTF-8 is recorded on both engines (on
// PostgreSQL, which refuses them in text, with U+FFFD in their place) and
// the chain verifies.
func TestAuditOddBytes(t *testing.T) {
	ForEachDB(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		e := AuditEvent{Category: "SelfService", Activity: "Reset password (self-service)", ActorType: "anonymous",
			ActorName: "al\x00ice", Reason: "bad \xff\xfe bytes", Result: "failure"}
		if err := db.InTx(ctx, func(tx *Tx) error { return tx.AppendAudit(ctx, &e) }); err != nil {
			t.Fatal(err)
		}
		got, err := db.AuditByID(ctx, e.ID)
		if err != nil {
			t.Fatal(err)
		}
		want := AuditEvent{ActorName: "al\x00ice", Reason: "bad \xff\xfe bytes"}
		if db.engine == enginePostgres {
			want = AuditEvent{ActorName: "al\uFFFDice", Reason: "bad \uFFFD bytes"}
		}
		if got.ActorName != want.ActorName || got.Reason != want.Reason || got.Hash != e.Hash {
			t.Errorf("stored %q %q (hash %s), want %q %q (hash %s)", got.ActorName, got.Reason, got.Hash, want.ActorName, want.Reason, e.Hash)
		}
		if res, err := db.VerifyAudit(ctx); err != nil || !res.OK {
			t.Errorf("verify: %+v %v", res, err)
		}
	})
}
