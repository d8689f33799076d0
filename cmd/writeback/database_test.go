package main

import (
	"bytes"
	"context"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/writeback/writeback/cmd/internal/cmdline"
	"github.com/writeback/writeback/store"
	"github.com/writeback/writeback/testbed"
)

// cliEnv is cli with an environment, and stopped after 20 s: a command
// expected to fail that started a server after all ends, and its test fails.
func cliEnv(t *testing.T, vars map[string]string, stdin string, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out, errOut bytes.Buffer
	code := run(ctx, args, func(k string) string { return vars[k] }, strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

// dataCommands is every command that opens the data, with arguments that
// get it as far as opening: each must take --database.
var dataCommands = [][]string{
	{"serve"},
	{"migrate"},
	{"admin", "create", "--email", "ada@example.com", "--name", "Ada", "--role", "global-admin"},
	{"admin", "list"},
	{"admin", "disable", "--email", "ada@example.com"},
	{"directory", "show"},
	{"directory", "set", "--type", "ad"},
	{"directory", "test"},
	{"agent", "add", "--name", "Branch"},
	{"agent", "list"},
	{"agent", "revoke", "Branch"},
	{"settings", "show"},
	{"settings", "set", "--writeback", "no"},
	{"user", "show", "alice"},
	{"user", "unlock", "alice"},
	{"sspr", "show"},
	{"sspr", "set", "--required", "1"},
	{"mail", "set", "--host", "smtp.example.com", "--port", "587", "--tls", "starttls", "--from", "a@example.com"},
	{"mail", "test", "--to", "a@example.com"},
	{"sms", "set", "--daily-cap", "10"},
	{"sms", "show"},
	{"sms", "test", "--to", "+447400123456"},
	{"audit", "export", "--format", "csv"},
	{"audit", "verify"},
}

// deadDatabase is a PostgreSQL URL with a password where nothing listens.
func deadDatabase(t *testing.T, password string) (rawURL, hostPort string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hostPort = ln.Addr().String()
	ln.Close()
	return "postgres://portal:" + password + "@" + hostPort + "/writeback", hostPort
}

// Every command that opens the data takes --database (and its
// environment): pointed at a server that is not there, each stops with one
// line naming the host and why, never the password, and leaves no SQLite
// file behind.
func TestDatabaseFlagOnEveryCommand(t *testing.T) {
	const secret = "Not-In-Any-Output-42"
	dbURL, hostPort := deadDatabase(t, secret)
	for _, args := range dataCommands {
		for _, how := range []string{"flag", "env", "file"} {
			t.Run(strings.Join(args[:min(2, len(args))], " ")+" "+how, func(t *testing.T) {
				data := t.TempDir()
				vars := map[string]string{}
				full := append(append([]string{}, args...), "--data", data)
				switch how {
				case "flag":
					full = append(full, "--database", dbURL)
				case "env":
					vars["WRITEBACK_DATABASE_URL"] = dbURL
				case "file":
					f := filepath.Join(t.TempDir(), "db-url")
					if err := os.WriteFile(f, []byte(dbURL+"\n"), 0o600); err != nil {
						t.Fatal(err)
					}
					vars["WRITEBACK_DATABASE_URL_FILE"] = f
				}
				code, out, errOut := cliEnv(t, vars, "a long admin password\n", full...)
				if code != 1 {
					t.Fatalf("exit %d, want 1\nstdout: %s\nstderr: %s", code, out, errOut)
				}
				line := strings.TrimSpace(errOut)
				if strings.Count(line, "\n") != 0 || !strings.Contains(line, "PostgreSQL at "+hostPort) ||
					!strings.Contains(line, "connection refused") {
					t.Errorf("stderr %q: want one line naming %s and the reason", errOut, hostPort)
				}
				if strings.Contains(errOut+out, secret) {
					t.Errorf("the password is in the output: %q %q", out, errOut)
				}
				if _, err := os.Stat(filepath.Join(data, store.FileName)); err == nil {
					t.Errorf("a SQLite database was made in the data folder although --database named PostgreSQL")
				}
			})
		}
	}
	// Every command and subcommand with --data lists --database beside it
	// (so none that opens the data was left out above), without a URL from
	// the environment as its default: that would print the password.
	seen := 0
	for _, c := range commands() {
		names := [][]string{{c.Name}}
		if len(c.Subs) > 0 {
			names = nil
			for _, s := range cmdline.SubNames(c.Subs) {
				names = append(names, []string{c.Name, s})
			}
		}
		for _, name := range names {
			_, out, _ := cliEnv(t, map[string]string{"WRITEBACK_DATABASE_URL": dbURL}, "", append(name, "-h")...)
			if !strings.Contains(out, "  -data ") {
				continue
			}
			if strings.Join(name, " ") == "db copy" {
				// It reads the SQLite database in --data and writes the one
				// --to names (which takes --database's environment):
				// TestDBCopyBadTarget.
				if !strings.Contains(out, "  -to ") || !strings.Contains(out, "WRITEBACK_DATABASE_URL_FILE") || strings.Contains(out, secret) {
					t.Errorf("db copy -h:\n%s", out)
				}
				continue
			}
			seen++
			if !strings.Contains(out, "  -database ") || !strings.Contains(out, "WRITEBACK_DATABASE_URL_FILE") {
				t.Errorf("%s -h lists --data but not --database:\n%s", strings.Join(name, " "), out)
			}
			if strings.Contains(out, secret) {
				t.Errorf("%s -h prints the password", strings.Join(name, " "))
			}
		}
	}
	if seen < len(dataCommands) {
		t.Errorf("%d commands list --data, fewer than the %d above that open the data", seen, len(dataCommands))
	}
}

func TestDatabaseURLSources(t *testing.T) {
	dbURL, _ := deadDatabase(t, "pw")
	file := filepath.Join(t.TempDir(), "url")
	if err := os.WriteFile(file, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		vars map[string]string
		args []string
		want string
		code int
	}{
		{"both variables", map[string]string{"WRITEBACK_DATABASE_URL": dbURL, "WRITEBACK_DATABASE_URL_FILE": file}, nil,
			"WRITEBACK_DATABASE_URL and WRITEBACK_DATABASE_URL_FILE are both set", 2},
		{"missing file", map[string]string{"WRITEBACK_DATABASE_URL_FILE": file + ".nope"}, nil, "WRITEBACK_DATABASE_URL_FILE " + file + ".nope: no such file", 1},
		{"empty file", map[string]string{"WRITEBACK_DATABASE_URL_FILE": file}, nil, "the file is empty", 1},
		{"not a URL", nil, []string{"--database", "postgres://ada:pw@host:port/x"}, "not a valid URL", 1},
		{"other scheme", nil, []string{"--database", "mysql://db.example.com/x"}, `scheme "mysql" is not supported`, 1},
		// The flag wins over the environment.
		{"flag over env", map[string]string{"WRITEBACK_DATABASE_URL_FILE": file + ".nope"}, []string{"--database", "mysql://x/y"}, `scheme "mysql"`, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, _, errOut := cliEnv(t, c.vars, "", append([]string{"migrate", "--data", t.TempDir()}, c.args...)...)
			if code != c.code || !strings.Contains(errOut, c.want) || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
				t.Errorf("exit %d, stderr %q; want exit %d and one line containing %q", code, errOut, c.code, c.want)
			}
		})
	}
}

// The commands on a real PostgreSQL database: migrate, an administrator
// created by one command and listed by another, serve on the same
// database (it prints the first-run link only while no administrator
// exists), and a wrong password or an unknown database refused in one line
// naming the host.
func TestCommandsOnPostgres(t *testing.T) {
	dbURL := testbed.NewPostgresDB(t)
	data := t.TempDir()
	if code, out, errOut := cli(t, "", "migrate", "--data", data, "--database", dbURL); code != 0 || !strings.Contains(out, "up to date") {
		t.Fatalf("migrate: %d %s %s", code, out, errOut)
	}
	if _, err := os.Stat(filepath.Join(data, store.FileName)); err == nil {
		t.Error("migrate --database made a SQLite file in the data folder")
	}
	s := startServer(t, data, "--database", dbURL)
	s.setupLink(t)
	if !strings.Contains(s.out.String(), "database=postgres") {
		t.Errorf("serve does not say which database it uses:\n%s", s.out.String())
	}
	s.stop(t)

	vars := map[string]string{"WRITEBACK_DATABASE_URL": dbURL}
	if code, _, errOut := cliEnv(t, vars, "a long admin password\n", "admin", "create", "--data", data,
		"--email", "ada@example.com", "--name", "Ada", "--role", "global-admin"); code != 0 {
		t.Fatalf("admin create: %s", errOut)
	}
	file := filepath.Join(t.TempDir(), "url")
	if err := os.WriteFile(file, []byte(dbURL+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := cliEnv(t, map[string]string{"WRITEBACK_DATABASE_URL_FILE": file}, "", "admin", "list", "--data", data)
	if code != 0 || !strings.Contains(out, "ada@example.com") {
		t.Fatalf("admin list from the URL file: %d %s %s", code, out, errOut)
	}
	// The SQLite database of the same folder is another database: empty.
	if code, out, _ := cli(t, "", "admin", "list", "--data", data); code != 0 || strings.Contains(out, "ada@example.com") {
		t.Errorf("admin list without --database shows PostgreSQL's administrators: %d %s", code, out)
	}
	s2 := startServer(t, data, "--database", dbURL)
	if strings.Contains(s2.out.String(), "setup?token=") {
		t.Error("serve printed a setup link although the database has an administrator")
	}
	s2.stop(t)

	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	const wrong = "Wrong-Password-77"
	bad := *u
	bad.User = url.UserPassword(u.User.Username(), wrong)
	for _, c := range []struct{ url, want string }{
		{bad.String(), "password authentication failed"},
		{strings.Replace(dbURL, u.Path, "/nosuch_"+strconv.Itoa(os.Getpid()), 1), "does not exist"},
	} {
		code, out, errOut := cliEnv(t, nil, "", "serve", "--data", data, "--database", c.url, "--listen", freeAddr(t))
		line := strings.TrimSpace(errOut)
		if code != 1 || strings.Count(line, "\n") != 0 || !strings.Contains(line, "PostgreSQL at "+u.Host) || !strings.Contains(line, c.want) {
			t.Errorf("serve with %s: exit %d, stderr %q; want one line naming %s and %q", c.want, code, errOut, u.Host, c.want)
		}
		pw, _ := u.User.Password()
		if strings.Contains(out+errOut, wrong) || (pw != "" && strings.Contains(out+errOut, pw)) {
			t.Errorf("a password is in the output: %q", errOut)
		}
	}
}

// A data folder whose database a newer writeback migrated stops serve (and
// every other command) with one line saying so, on either engine.
func TestServeRefusesNewerSchema(t *testing.T) {
	for _, engine := range []string{"sqlite", "postgres"} {
		t.Run(engine, func(t *testing.T) {
			data := t.TempDir()
			var dbURL string
			var extra []string
			if engine == "postgres" {
				dbURL = testbed.NewPostgresDB(t)
				extra = []string{"--database", dbURL}
			}
			if code, _, errOut := cli(t, "", append([]string{"migrate", "--data", data}, extra...)...); code != 0 {
				t.Fatalf("migrate: %s", errOut)
			}
			db, err := store.OpenDatabase(context.Background(), dbURL, data)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := db.SQL().Exec(db.Rebind(`INSERT INTO schema_migrations (name, applied_ms) VALUES (?, 1)`), "0999_newer.sql"); err != nil {
				t.Fatal(err)
			}
			db.Close()
			for _, args := range [][]string{{"serve", "--listen", freeAddr(t)}, {"admin", "list"}} {
				code, _, errOut := cliEnv(t, nil, "", append(append(args, "--data", data), extra...)...)
				line := strings.TrimSpace(errOut)
				if code != 1 || strings.Count(line, "\n") != 0 || !strings.Contains(line, "schema is newer than this binary") ||
					!strings.Contains(line, "0999_newer.sql") {
					t.Errorf("%s on a newer schema: exit %d, stderr %q", args[0], code, errOut)
				}
			}
		})
	}
}
