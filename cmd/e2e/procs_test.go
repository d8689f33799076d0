package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/writeback/writeback/testbed"
)

// programs are the two binaries, built once per test run.
type programs struct{ portal, agent string }

var (
	buildOnce sync.Once
	built     programs
	buildErr  error
)

// goTool finds the go command that runs this test.
func goTool() string {
	if p := filepath.Join(runtime.GOROOT(), "bin", "go"); fileExists(p) {
		return p
	}
	return "go"
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// build compiles writeback and writeback-agent into a folder of this test
// run (no -race: the processes are under test, not the test's own code).
func build(t *testing.T) programs {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "writeback-e2e-bin-")
		if err != nil {
			buildErr = err
			return
		}
		built = programs{portal: filepath.Join(dir, "writeback"), agent: filepath.Join(dir, "writeback-agent")}
		for bin, pkg := range map[string]string{built.portal: "./cmd/writeback", built.agent: "./cmd/writeback-agent"} {
			cmd := exec.Command(goTool(), "build", "-o", bin, pkg)
			cmd.Dir = "../.." // the module root, from cmd/e2e
			if out, err := cmd.CombinedOutput(); err != nil {
				buildErr = fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return built
}

// outputs collects everything every program of one test printed, so that
// the test can check at the end that no secret is in any of it.
type outputs struct {
	mu   sync.Mutex
	list []named
}

type named struct {
	name string
	buf  interface{ String() string }
}

func (o *outputs) add(name string, b interface{ String() string }) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.list = append(o.list, named{name, b})
}

func (o *outputs) all() []named {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]named(nil), o.list...)
}

type stringBuf string

func (s stringBuf) String() string { return string(s) }

// command runs one short command to its end and returns its exit code,
// standard output and standard error; both outputs are recorded in outs.
func command(t *testing.T, outs *outputs, argv ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		t.Fatalf("%s: %v", strings.Join(argv, " "), err)
	}
	what := filepath.Base(argv[0]) + " " + strings.Join(argv[1:], " ")
	outs.add(what+" (stdout)", stringBuf(stdout.String()))
	outs.add(what+" (stderr)", stringBuf(stderr.String()))
	return code, stdout.String(), stderr.String()
}

// must is command that fails the test unless the exit code is 0.
func must(t *testing.T, outs *outputs, argv ...string) string {
	t.Helper()
	code, out, errOut := command(t, outs, argv...)
	if code != 0 {
		t.Fatalf("%s: exit %d\n%s%s", strings.Join(argv, " "), code, out, errOut)
	}
	return out
}

// proc is a long-running program (serve, run).
type proc struct {
	name string
	cmd  *exec.Cmd
	out  *testbed.SyncBuffer // stdout and stderr
	done chan struct{}
	code int
}

// start starts a program in the background; it is killed, if still
// running, when the test ends.
func start(t *testing.T, outs *outputs, name string, argv ...string) *proc {
	t.Helper()
	p := &proc{name: name, out: &testbed.SyncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(argv[0], argv[1:]...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	// A test binary killed outright (a -timeout) takes its programs along.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	outs.add(name, p.out)
	go func() {
		err := p.cmd.Wait()
		p.code = 0
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			p.code = exit.ExitCode()
		} else if err != nil {
			p.code = -1
		}
		close(p.done)
	}()
	t.Cleanup(func() { p.kill(syscall.SIGKILL) })
	return p
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// kill sends sig and waits for the process to end.
func (p *proc) kill(sig syscall.Signal) {
	if !p.running() {
		return
	}
	p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}

// wait waits for the process to exit on its own and returns its exit code.
func (p *proc) wait(t *testing.T, within time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
		return p.code
	case <-time.After(within):
		t.Fatalf("%s still runs after %s:\n%s", p.name, within, p.out.String())
		return 0
	}
}

// eventually polls cond every 100 ms until it holds or within passes.
func eventually(t *testing.T, within time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		ok, last := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s; last seen: %s", what, within, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
