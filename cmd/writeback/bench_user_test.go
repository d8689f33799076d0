package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/writeback/writeback/testbed"
	"github.com/writeback/writeback/testbed/bench"
)

// commandLineTarget is item 7's bound on a command-line reset's p50 over its
// floor's.
const commandLineTarget = 1.20

// commandLineFigure is the report line of one directory's command-line
// reset; no ratio (no rounds) is never met.
func commandLineFigure(dir string, cli, floor bench.Stats, ratio float64) bench.Figure {
	return bench.Figure{
		Name:   "command-line reset, " + dir + ", one process each, p50",
		Value:  bench.Ms(cli.P50),
		Floor:  "bare write, new process " + bench.Ms(floor.P50),
		Ratio:  bench.Times(ratio),
		Target: "≤ " + bench.Times(commandLineTarget),
		Met:    ratio > 0 && ratio <= commandLineTarget,
	}
}

// goBuild builds the package pkg (a path relative to this directory) into
// out.
func goBuild(b *testing.B, out, pkg string) {
	b.Helper()
	cmd := exec.Command("go", "build", "-o", out, pkg)
	if msg, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("go build %s: %v\n%s", pkg, err, msg)
	}
}

// runProcess runs bin with args and stdin and fails with its output.
func runProcess(bin, stdin string, args ...string) error {
	cmd := exec.Command(bin, args...)
	cmd.Stdin = bytes.NewBufferString(stdin)
	cmd.Env = append(os.Environ(), "WRITEBACK_DATA=")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s %v: %w\n%s", filepath.Base(bin), args, err, out)
	}
	return nil
}

// BenchmarkCommandLineReset is item 7's command-line figure: `writeback user
// reset LOGIN --password-stdin`, one process each time (the binary built
// once, a data folder configured against the test directory with the
// binary's own commands), against the floor of a fresh process that dials,
// binds as the service account and writes the password (testdata/barewrite:
// the same process start-up a one-shot command cannot avoid, the same new
// TLS connection and bind, the same write). The two alternate in rounds and
// the verdict is the median of the rounds' p50 ratios. It runs only with
// WRITEBACK_BENCH=1 (make bench); WRITEBACK_BENCH_OPS sets the resets of
// each kind per directory (default and most 96). It ignores b.N.
func BenchmarkCommandLineReset(b *testing.B) {
	if !bench.Enabled() {
		b.Skip("set WRITEBACK_BENCH=1 (make bench does) to run the command-line reset benchmark against the test bed")
	}
	env := testbed.Load(b)
	ops := 96
	if v := os.Getenv("WRITEBACK_BENCH_OPS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 8 {
			b.Fatalf("WRITEBACK_BENCH_OPS=%q: want a number ≥ 8", v)
		}
		ops = min(n, 96)
	}
	const rounds = 8
	tmp := b.TempDir()
	wb, bare := filepath.Join(tmp, "writeback"), filepath.Join(tmp, "barewrite")
	goBuild(b, wb, ".")
	goBuild(b, bare, "./testdata/barewrite")

	var figs []bench.Figure
	for _, tc := range []struct {
		name, typ string
		dir       testbed.Directory
		newUser   func(testing.TB, testbed.UserOptions) testbed.TestUser
	}{
		{"ad", "ad", env.AD, env.NewADUser},
		{"openldap", "openldap", env.LDAP, env.NewLDAPUser},
	} {
		data := filepath.Join(tmp, "data-"+tc.name)
		pwFile := filepath.Join(tmp, "bindpw-"+tc.name)
		if err := os.WriteFile(pwFile, []byte(tc.dir.BindPassword+"\n"), 0o600); err != nil {
			b.Fatal(err)
		}
		for _, args := range [][]string{
			{"directory", "set", "--data", data, "--type", tc.typ, "--url", tc.dir.URL, "--ca-file", env.CAFile,
				"--bind-dn", tc.dir.BindDN, "--bind-password-file", pwFile, "--base-dn", tc.dir.PeopleDN, "--password-writeback", "on"},
			{"settings", "set", "--data", data, "--writeback", "yes", "--unlock", "yes"},
		} {
			if err := runProcess(wb, "", args...); err != nil {
				b.Fatal(err)
			}
		}
		tu := tc.newUser(b, testbed.UserOptions{})
		cli := func(int, int) error {
			return runProcess(wb, testbed.RandomPassword()+"\n", "user", "reset", tu.Login, "--password-stdin", "--data", data)
		}
		floor := func(int, int) error {
			return runProcess(bare, tc.dir.BindPassword+"\n"+testbed.RandomPassword()+"\n",
				"-type", tc.typ, "-url", tc.dir.URL, "-ca", env.CAFile, "-bind-dn", tc.dir.BindDN, "-dn", tu.DN)
		}
		for _, f := range []func(int, int) error{floor, cli} { // warm-up: page cache, TLS session caches on the servers
			if _, err := bench.Run(1, 2, f); err != nil {
				b.Fatalf("%s warm-up: %v", tc.name, err)
			}
		}
		per := max(1, ops/rounds)
		r, err := bench.Interleave(rounds,
			func(int) (bench.Timing, error) { return bench.Run(1, per, cli) },
			func(int) (bench.Timing, error) { return bench.Run(1, per, floor) })
		if err != nil {
			b.Fatalf("%s: %v", tc.name, err)
		}
		c, fl := r.All(0).Stats(), r.All(1).Stats()
		fmt.Fprintf(os.Stdout, "command-line reset, %s: %d of each; writeback user reset p50 %s p99 %s; barewrite p50 %s p99 %s\n",
			tc.name, c.N, bench.Ms(c.P50), bench.Ms(c.P99), bench.Ms(fl.P50), bench.Ms(fl.P99))
		figs = append(figs, commandLineFigure(tc.name, c, fl, r.MedianRatio(0, 1, bench.P50)))
	}
	bench.Print(os.Stdout, "Command-line reset (writeback user reset, a process each) vs a fresh process that dials, binds and writes", figs)
	b.ReportMetric(0, "ns/op")
}

func TestCommandLineFigure(t *testing.T) {
	s := bench.Stats{N: 8, P50: 40_000_000}
	for _, tc := range []struct {
		ratio float64
		met   bool
	}{{1.19, true}, {1.20, true}, {1.21, false}, {0, false}} {
		if f := commandLineFigure("ad", s, s, tc.ratio); f.Met != tc.met || f.Target != "≤ 1.20×" {
			t.Errorf("ratio %.2f: %+v", tc.ratio, f)
		}
	}
}
