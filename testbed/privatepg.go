package testbed

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// Postgres is a PostgreSQL cluster of one test's own, for tests that stop
// and start the server under a running portal. It listens on the test bed's
// PostgreSQL address (this run's) and a free port, with trust logins, and is
// removed when the test ends.
type Postgres struct {
	// URL is a database of the cluster, ready for the portal.
	URL string

	bin, dir, addr string
	port           int
}

// PrivatePostgres starts a cluster of this test's own. It needs root (the
// cluster runs as the postgres user, which initdb requires) and the server
// binaries; without them the test fails when CI is set and is skipped
// otherwise.
func (e Env) PrivatePostgres(t testing.TB) *Postgres {
	t.Helper()
	skip := func(why string) {
		if os.Getenv("CI") != "" {
			t.Fatal("testbed: private PostgreSQL: " + why)
		}
		t.Skip("testbed: private PostgreSQL: " + why)
	}
	if os.Geteuid() != 0 {
		skip("needs root")
	}
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(bins) == 0 {
		skip("no PostgreSQL server binaries under /usr/lib/postgresql")
	}
	sort.Strings(bins)
	addr := "127.0.0.1"
	if u, err := url.Parse(e.PostgresURL); err == nil && u.Hostname() != "" {
		addr = u.Hostname() // this run's address: another run's tests never meet it
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(addr, "0"))
	if err != nil {
		t.Fatalf("testbed: private PostgreSQL: a free port on %s: %v", addr, err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	dir, err := os.MkdirTemp("", "writeback-pg-")
	if err != nil {
		t.Fatal(err)
	}
	p := &Postgres{bin: filepath.Dir(bins[len(bins)-1]), dir: dir, addr: addr, port: port}
	t.Cleanup(func() {
		_ = p.pgctl("stop", "-m", "immediate")
		os.RemoveAll(dir)
	})
	if out, err := exec.Command("chown", "postgres:", dir).CombinedOutput(); err != nil {
		t.Fatalf("testbed: private PostgreSQL: chown: %v %s", err, out)
	}
	if out, err := exec.Command("runuser", "-u", "postgres", "--", filepath.Join(p.bin, "initdb"), "-D", filepath.Join(dir, "data"),
		"-A", "trust", "-U", "postgres", "--no-sync").CombinedOutput(); err != nil {
		t.Fatalf("testbed: private PostgreSQL: initdb: %v\n%s", err, out)
	}
	p.Start(t)
	out, err := exec.Command(filepath.Join(p.bin, "psql"), "-h", addr, "-p", strconv.Itoa(port), "-U", "postgres", "-qc", "CREATE DATABASE writeback").CombinedOutput()
	if err != nil {
		t.Fatalf("testbed: private PostgreSQL: create database: %v %s", err, out)
	}
	p.URL = fmt.Sprintf("postgres://postgres@%s/writeback?sslmode=disable", net.JoinHostPort(addr, strconv.Itoa(port)))
	return p
}

func (p *Postgres) pgctl(args ...string) error {
	argv := append([]string{"-u", "postgres", "--", filepath.Join(p.bin, "pg_ctl"), "-D", filepath.Join(p.dir, "data"), "-w"}, args...)
	out, err := exec.Command("runuser", argv...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("pg_ctl %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

// Stop stops the server at once (as a crash or a restart would).
func (p *Postgres) Stop(t testing.TB) {
	t.Helper()
	if err := p.pgctl("stop", "-m", "immediate"); err != nil {
		t.Fatalf("testbed: %v", err)
	}
}

// Start starts the server (again).
func (p *Postgres) Start(t testing.TB) {
	t.Helper()
	opts := fmt.Sprintf("-c listen_addresses=%s -p %d -k %s -c fsync=off", p.addr, p.port, p.dir)
	if err := p.pgctl("-l", filepath.Join(p.dir, "log"), "-o", opts, "start"); err != nil {
		t.Fatalf("testbed: %v", err)
	}
}
