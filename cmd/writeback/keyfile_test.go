package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/writeback/writeback/services/keyring"
	"github.com/writeback/writeback/store"
	"github.com/writeback/writeback/testbed"
)

// newKeyFile writes a key file as `openssl rand -hex 32` makes one.
func newKeyFile(t *testing.T) string {
	t.Helper()
	b := make([]byte, 32)
	rand.Read(b)
	p := filepath.Join(t.TempDir(), "shared.key")
	if err := os.WriteFile(p, []byte(hex.EncodeToString(b)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// refusedKey checks that a command stopped with the one line that names the
// key file it was given.
func refusedKey(t *testing.T, what string, code int, out, errOut, keyFile string) {
	t.Helper()
	line := strings.TrimSpace(errOut)
	if code != 1 || strings.Count(line, "\n") != 0 ||
		!strings.Contains(line, "this database was set up with another key file: "+keyFile) {
		t.Errorf("%s: exit %d, stderr %q; want exit 1 and one line saying the database was set up with another key file than %s\nstdout: %s",
			what, code, errOut, keyFile, out)
	}
}

// Every command that opens the data takes --key-file and WRITEBACK_KEY_FILE
// and lists it in its help; given a key file other than the one the
// database was set up with, each stops with one line saying so.
func TestKeyFileOnEveryCommand(t *testing.T) {
	data := t.TempDir()
	if code, _, errOut := cli(t, "", "migrate", "--data", data); code != 0 {
		t.Fatalf("migrate: %s", errOut)
	}
	other := newKeyFile(t)
	for _, args := range dataCommands {
		for _, how := range []string{"flag", "env"} {
			name := strings.Join(args[:min(2, len(args))], " ") + " " + how
			full := append(append([]string{}, args...), "--data", data)
			vars := map[string]string{}
			if how == "flag" {
				full = append(full, "--key-file", other)
			} else {
				vars["WRITEBACK_KEY_FILE"] = other
			}
			if args[0] == "serve" {
				full = append(full, "--listen", freeAddr(t))
			}
			code, out, errOut := cliEnv(t, vars, "a long admin password\n", full...)
			refusedKey(t, name, code, out, errOut, other)
		}
		_, help, _ := cliEnv(t, nil, "", append(append([]string{}, args[:min(2, len(args))]...), "-h")...)
		if !strings.Contains(help, "  -key-file ") || !strings.Contains(help, "WRITEBACK_KEY_FILE") {
			t.Errorf("%s -h does not list --key-file:\n%s", strings.Join(args, " "), help)
		}
	}
}

// A SQLite data folder whose key file was replaced or lost refuses to start
// instead of failing on every sealed secret later, and leaves no new key
// file behind; with its own key back it opens again.
func TestKeyFileReplacedInDataFolder(t *testing.T) {
	data := t.TempDir()
	if code, _, errOut := cli(t, "", "migrate", "--data", data); code != 0 {
		t.Fatalf("migrate: %s", errOut)
	}
	keyPath := filepath.Join(data, keyring.FileName)
	orig, err := os.ReadFile(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	other, err := os.ReadFile(newKeyFile(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, other, 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := cli(t, "", "admin", "list", "--data", data)
	refusedKey(t, "a replaced key file", code, out, errOut, keyPath)

	if err := os.Remove(keyPath); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = cli(t, "", "serve", "--data", data, "--listen", freeAddr(t))
	refusedKey(t, "a lost key file", code, out, errOut, keyPath)
	if !strings.Contains(errOut, "did not exist") {
		t.Errorf("a lost key file: %q does not say it did not exist", errOut)
	}
	if _, err := os.Stat(keyPath); err == nil {
		t.Error("the refused start left a new key file in the data folder, which the next start would take for the key")
	}

	if err := os.WriteFile(keyPath, orig, 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := cli(t, "", "admin", "list", "--data", data); code != 0 {
		t.Errorf("with its own key file back: exit %d, %s", code, errOut)
	}
}

// Replicas on one PostgreSQL database, each with a data folder of its own,
// share one key file through --key-file or WRITEBACK_KEY_FILE: what one
// sets up the others use. One started without it (its folder's own new
// key) or with another key file stops with one line before it listens; a
// --key-file that does not exist is never created. A database from before
// the check value gets one on its next start.
func TestKeyFileSharedByReplicas(t *testing.T) {
	dbURL := testbed.NewPostgresDB(t)
	shared, other := newKeyFile(t), newKeyFile(t)
	dataA, dataB := t.TempDir(), t.TempDir()

	a := startServer(t, dataA, "--database", dbURL, "--key-file", shared)
	a.setupLink(t)
	a.stop(t)
	if _, err := os.Stat(filepath.Join(dataA, keyring.FileName)); err == nil {
		t.Error("serve --key-file made a key file in the data folder")
	}
	vars := map[string]string{"WRITEBACK_DATABASE_URL": dbURL, "WRITEBACK_KEY_FILE": shared}
	if code, _, errOut := cliEnv(t, vars, "a long admin password\n", "admin", "create", "--data", dataB,
		"--email", "ada@example.com", "--name", "Ada", "--role", "global-admin"); code != 0 {
		t.Fatalf("admin create with the shared key from WRITEBACK_KEY_FILE: %s", errOut)
	}
	b := startServer(t, dataB, "--database", dbURL, "--key-file", shared)
	b.stop(t)

	// Without the key file: the folder's own, new key does not match.
	own := filepath.Join(t.TempDir(), "data")
	code, out, errOut := cliEnv(t, nil, "", "serve", "--data", own, "--database", dbURL, "--listen", freeAddr(t))
	refusedKey(t, "serve without --key-file", code, out, errOut, filepath.Join(own, keyring.FileName))
	if _, err := os.Stat(filepath.Join(own, keyring.FileName)); err == nil {
		t.Error("the refused replica kept the key file it made")
	}
	addr := freeAddr(t)
	code, out, errOut = cliEnv(t, nil, "", "serve", "--data", dataB, "--database", dbURL, "--key-file", other, "--listen", addr)
	refusedKey(t, "serve with another key file", code, out, errOut, other)
	if strings.Contains(out+errOut, "listening") {
		t.Errorf("the refused replica listened:\n%s%s", out, errOut)
	}
	missing := filepath.Join(t.TempDir(), "not-there.key")
	code, _, errOut = cliEnv(t, nil, "", "admin", "list", "--data", dataB, "--database", dbURL, "--key-file", missing)
	if code != 1 || !strings.Contains(errOut, "--key-file "+missing+": no such file") || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
		t.Errorf("a --key-file that does not exist: exit %d, %q", code, errOut)
	}
	if _, err := os.Stat(missing); err == nil {
		t.Error("a missing --key-file was created")
	}

	// A database from before the check: the next start records its key.
	db, err := store.OpenDatabase(context.Background(), dbURL, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.SQL().Exec(`DELETE FROM key_check`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if code, out, errOut := cliEnv(t, vars, "", "admin", "list", "--data", dataA); code != 0 || !strings.Contains(out, "ada@example.com") {
		t.Fatalf("admin list on a database without a check value: %d %s %s", code, out, errOut)
	}
	code, out, errOut = cliEnv(t, nil, "", "admin", "list", "--data", dataA, "--database", dbURL, "--key-file", other)
	refusedKey(t, "another key after the check was recorded again", code, out, errOut, other)
}
