package main

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/store"
	"github.com/writeback/writeback/testbed"
)

// TestDBCopy: a data folder filled by the commands and the store
// (administrators, one with a second factor and a session, settings, the
// self-service policy and an employee's methods, an agent, thousands of
// audit events) is copied by `writeback db copy --to URL`; every command
// shows the same on the copy as on the folder, `audit verify --full
// --database URL` passes, and a second copy into the now full database is
// refused in one line and changes nothing.
func TestDBCopy(t *testing.T) {
	ctx := context.Background()
	data := t.TempDir()
	pwFile := filepath.Join(t.TempDir(), "bind.pw")
	if err := os.WriteFile(pwFile, []byte("service password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range [][]string{
		{"", "directory", "set", "--data", data, "--type", "ad", "--url", "ldaps://127.0.0.1:1",
			"--bind-dn", "CN=svc,DC=example,DC=com", "--bind-password-file", pwFile, "--base-dn", "OU=People,DC=example,DC=com"},
		{"a long admin password\n", "admin", "create", "--data", data, "--email", "ada@example.com", "--name", "Ada", "--role", "global-admin"},
		{"another long password\n", "admin", "create", "--data", data, "--email", "grace@example.com", "--name", "Grace", "--role", "helpdesk-admin"},
		{"", "settings", "set", "--data", data, "--writeback", "yes", "--unlock", "yes"},
		{"", "sspr", "set", "--data", data, "--enabled", "all", "--methods", "email,app", "--required", "1"},
		{"", "agent", "add", "--data", data, "--name", "Branch"},
	} {
		if code, out, errOut := cli(t, c[0], c[1:]...); code != 0 {
			t.Fatalf("%v: %d %s %s", c[1:], code, out, errOut)
		}
	}
	_, out, _ := cli(t, "", "agent", "add", "--data", data, "--name", "Enrolled")
	enrollWith(t, data, lastLine(out))

	src, err := store.Open(ctx, filepath.Join(data, store.FileName))
	if err != nil {
		t.Fatal(err)
	}
	admins, err := src.ListAdmins(ctx)
	if err != nil || len(admins) != 2 {
		t.Fatalf("admins %v %v", admins, err)
	}
	ada := admins[0]
	err = src.InTx(ctx, func(tx *store.Tx) error {
		if _, err := tx.InsertAdminFactor(ctx, store.AdminFactor{AdminID: ada.ID, Kind: store.FactorTOTP, Name: "Phone", Secret: "sealed", CreatedMS: 1000}); err != nil {
			return err
		}
		return tx.PutMethod(ctx, store.Method{UserID: "u-alice", Method: "email", Secret: "sealed-address", ConfirmedMS: 1000})
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := src.InsertSession(ctx, store.Session{IDHash: strings.Repeat("e", 64), AdminID: ada.ID, CreatedMS: 1000, LastSeenMS: 2000, ClientIP: "10.0.0.9", UserAgent: "Firefox"}); err != nil {
		t.Fatal(err)
	}
	for batch := range 5 {
		err := src.InTx(ctx, func(tx *store.Tx) error {
			for i := range 1000 {
				if _, err := audit.Record(ctx, tx, audit.Entry{Category: audit.CategoryUserManagement, Activity: audit.ActivityResetSelfService,
					Actor: audit.Actor{Type: "user", ID: fmt.Sprint("u", i), Name: "Zoë", ClientIP: "10.1.2.3"}, Target: audit.Target{Type: "User", Name: "Zoë"},
					Details: map[string]any{"batch": batch, "i": i}}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	src.Close()
	if code, out, errOut := cli(t, "", "audit", "verify", "--data", data); code != 0 {
		t.Fatalf("verify the folder: %s %s", out, errOut)
	}

	dbURL := testbed.NewPostgresDB(t)
	code, out, errOut := cli(t, "", "db", "copy", "--data", data, "--to", dbURL)
	if code != 0 || !regexp.MustCompile(`audit log verified in the copy: 50\d\d events`).MatchString(out) || !strings.Contains(out, "copied audit_events") {
		t.Fatalf("db copy: %d\n%s\n%s", code, out, errOut)
	}
	pw, _ := func() (string, bool) { u, _ := url.Parse(dbURL); return u.User.Password() }()
	if pw != "" && strings.Contains(out+errOut, pw) {
		t.Error("db copy printed the database password")
	}
	// Every command shows the same on the copy.
	for _, args := range [][]string{{"admin", "list"}, {"settings", "show"}, {"sspr", "show"}, {"agent", "list"}, {"admin", "policy"}, {"directory", "show"}} {
		_, a, _ := cli(t, "", append(args, "--data", data)...)
		code, b, errOut := cli(t, "", append(args, "--data", data, "--database", dbURL)...)
		if code != 0 || a != b || a == "" {
			t.Errorf("%v differs on the copy (%d %s):\nSQLite:\n%s\nPostgreSQL:\n%s", args, code, errOut, a, b)
		}
	}
	// A replica elsewhere opens the copy with the folder's key file, and
	// only with it: the copy carries the key's check value.
	if code, out, errOut := cli(t, "", "audit", "verify", "--full", "--data", t.TempDir(), "--database", dbURL,
		"--key-file", filepath.Join(data, "writeback.key")); code != 0 || !strings.Contains(out, "chain intact") {
		t.Errorf("audit verify --database on the copy: %d %s %s", code, out, errOut)
	}
	if code, _, errOut := cli(t, "", "audit", "verify", "--data", t.TempDir(), "--database", dbURL); code == 0 ||
		!strings.Contains(errOut, "another key file") {
		t.Errorf("the copy opened with another key: %d %s", code, errOut)
	}
	dst, err := store.OpenPostgres(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	if f, err := dst.AdminFactors(ctx, ada.ID); err != nil || len(f) != 1 || f[0].Name != "Phone" || f[0].Secret != "sealed" {
		t.Errorf("factors on the copy: %+v %v", f, err)
	}
	if s, a, err := dst.SessionAdmin(ctx, strings.Repeat("e", 64)); err != nil || a.Email != "ada@example.com" || s.LastSeenMS != 2000 {
		t.Errorf("session on the copy: %+v %+v %v", s, a, err)
	}
	if s, err := dst.SessionByHash(ctx, strings.Repeat("e", 64)); err != nil || s.UserAgent != "Firefox" || s.ClientIP != "10.0.0.9" {
		t.Errorf("session on the copy: %+v %v", s, err)
	}
	if m, err := dst.Methods(ctx, "u-alice"); err != nil || len(m) != 1 || m[0].Secret != "sealed-address" {
		t.Errorf("methods on the copy: %+v %v", m, err)
	}
	events := func(db *store.DB) []store.AuditEvent {
		ev, err := db.RecentAudit(ctx, "", 10000)
		if err != nil {
			t.Fatal(err)
		}
		return ev
	}
	src, err = store.Open(ctx, filepath.Join(data, store.FileName))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if a, b := events(src), events(dst); len(a) < 5000 || !slices.Equal(a, b) {
		t.Errorf("the audit log differs on the copy: %d events in SQLite, %d in PostgreSQL", len(a), len(b))
	}

	// Again: refused in one line, nothing changed.
	before := len(events(dst))
	code, out, errOut = cli(t, "", "db", "copy", "--data", data, "--to", dbURL)
	line := strings.TrimSpace(errOut)
	if code != 1 || strings.Count(line, "\n") != 0 || !strings.Contains(line, "is not empty") || !strings.Contains(line, "admins") {
		t.Errorf("copy into a full database: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if after := len(events(dst)); after != before {
		t.Errorf("%d events before the refused copy, %d after", before, after)
	}
}

// TestDBCopyBadTarget: a target that cannot be used stops db copy with one
// line naming the host and the reason, never the password, and leaves the
// folder alone.
func TestDBCopyBadTarget(t *testing.T) {
	const secret = "Not-In-Any-Output-42"
	dead, hostPort := deadDatabase(t, secret)
	data := t.TempDir()
	cli(t, "a long admin password\n", "admin", "create", "--data", data, "--email", "ada@example.com", "--name", "Ada", "--role", "global-admin")
	cases := []struct {
		name string
		args []string
		vars map[string]string
		want string
	}{
		{"unreachable", []string{"--to", dead}, nil, "PostgreSQL at " + hostPort},
		{"unreachable from the environment", nil, map[string]string{"WRITEBACK_DATABASE_URL": dead}, "PostgreSQL at " + hostPort},
		{"not a URL", []string{"--to", "postgres://ada:" + secret + "@host:port/x"}, nil, "not a valid URL"},
		{"not PostgreSQL", []string{"--to", "mysql://ada:" + secret + "@db.example.com/x"}, nil, `scheme "mysql" is not supported`},
		{"no target", nil, nil, "--to postgres://"},
		{"no folder", []string{"--to", dead, "--data", t.TempDir()}, nil, "no SQLite database to copy"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			args := append([]string{"db", "copy", "--data", data}, c.args...)
			code, out, errOut := cliEnv(t, c.vars, "", args...)
			line := strings.TrimSpace(errOut)
			if code == 0 || strings.Count(line, "\n") != 0 || !strings.Contains(line, c.want) {
				t.Errorf("exit %d, stderr %q; want one line containing %q", code, errOut, c.want)
			}
			if strings.Contains(out+errOut, secret) {
				t.Errorf("the password is in the output: %q %q", out, errOut)
			}
		})
	}
}
