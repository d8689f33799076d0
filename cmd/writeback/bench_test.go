package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/writeback/writeback/testbed/bench"
)

// BenchmarkProcess is item 7's process figures for `make bench`: the real
// binary, built once the way the Makefile and the image build it, run as a
// separate process each time.
//
//   - cold start: from exec to exit for `writeback version` and for a command
//     that opens the data folder (`admin list`: key file, database, migration
//     check, services), and from exec to the first answer on the listener
//     (GET /healthz) for `serve`; each beside the same measurement of a
//     static hello-world Go binary, the floor any Go command pays;
//   - idle RSS of `serve` a second after its first answer (VmRSS);
//   - peak RSS (VmHWM) of `serve` through waves of 32 concurrent failed
//     administrator sign-ins, each from its own address, the argon2id path.
//
// Without WRITEBACK_BENCH=1 it skips.
func BenchmarkProcess(b *testing.B) {
	if !bench.Enabled() {
		b.Skip("set WRITEBACK_BENCH=1 (make bench) to run the process benchmark")
	}
	dir := b.TempDir()
	bin := buildBinary(b, dir, ".", "writeback")
	hello := filepath.Join(dir, "hello")
	if err := os.MkdirAll(hello, 0o755); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(hello, "go.mod"), []byte("module hello\n\ngo 1.26\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(hello, "main.go"), []byte("package main\n\nimport \"os\"\n\nfunc main() { os.Stdout.WriteString(\"hello\\n\") }\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	helloBin := buildBinary(b, dir, hello, "hello-world")

	// A data folder as an operator has it: migrated, one administrator.
	data := filepath.Join(dir, "data")
	runOK(b, bin, "", "migrate", "--data", data)
	runOK(b, bin, "a long admin password\n", "admin", "create", "--data", data, "--email", "ada@example.com", "--name", "Ada", "--role", "global-admin")

	const rounds, per = 7, 10
	exit := func(name string, args ...string) func(int) (bench.Timing, error) {
		return func(int) (bench.Timing, error) {
			return bench.Run(1, per, func(int, int) error { return exec.Command(name, args...).Run() })
		}
	}
	// Serve is timed to its first answer, without the shutdown after it.
	serve := func(int) (bench.Timing, error) {
		var t bench.Timing
		for range per {
			t0 := time.Now()
			p, _, err := startServe(bin, data)
			if err != nil {
				return t, err
			}
			d := time.Since(t0)
			t.Lat, t.Wall = append(t.Lat, d), t.Wall+d
			p.stop()
		}
		return t, nil
	}
	// Serve's floor: the hello binary, then a connection to a listener that
	// is already up and the same GET answered by this process.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })}
	go hs.Serve(ln)
	defer hs.Close()
	serveFloor := func(int) (bench.Timing, error) {
		return bench.Run(1, per, func(int, int) error {
			if err := exec.Command(helloBin).Run(); err != nil {
				return err
			}
			return getOnce("http://" + ln.Addr().String() + "/")
		})
	}
	res, err := bench.Interleave(rounds, exit(helloBin), exit(bin, "version"), exit(bin, "admin", "list", "--data", data), serveFloor, serve)
	if err != nil {
		b.Fatal(err)
	}
	median := func(k int) time.Duration {
		var ps []float64
		for _, t := range res.Per[k] {
			ps = append(ps, float64(t.Stats().P50))
		}
		return time.Duration(bench.Median(ps))
	}
	floor, floorServe := median(0), median(3)
	figs := []bench.Figure{
		startFigure("cold start: writeback version (exec→exit)", median(1), "hello-world Go binary", floor),
		startFigure("cold start: admin list, data folder (exec→exit)", median(2), "hello-world Go binary", floor),
		startFigure("cold start: serve (exec→first /healthz answer)", median(4), "hello + GET on a live listener", floorServe),
	}

	// Idle and peak memory of one server.
	p, addr, err := startServe(bin, data, "--trusted-proxy", "127.0.0.1")
	if err != nil {
		b.Fatal(err)
	}
	defer p.stop()
	time.Sleep(time.Second)
	idle, err := procStatusKB(p.cmd.Process.Pid, "VmRSS")
	if err != nil {
		b.Fatal(err)
	}
	figs = append(figs, bench.Figure{Name: "idle RSS of serve, 1 s after its first answer", Value: mb(idle), Target: "< 25 MB", Met: idle < 25<<10})

	const waves, callers = 3, 32
	var outcomes []string
	var lat bench.Timing
	for w := range waves {
		t, out, err := failedSignIns(addr, w, callers)
		if err != nil {
			b.Fatal(err)
		}
		lat.Add(t)
		outcomes = append(outcomes, out)
	}
	peak, err := procStatusKB(p.cmd.Process.Pid, "VmHWM")
	if err != nil {
		b.Fatal(err)
	}
	st := lat.Stats()
	fmt.Fprintf(os.Stdout, "\n%d waves of %d concurrent failed sign-ins: answers %s; p50 %s, p99 %s\n", waves, callers, strings.Join(outcomes, "; "), bench.Ms(st.P50), bench.Ms(st.P99))
	figs = append(figs, bench.Figure{Name: fmt.Sprintf("peak RSS of serve, %d concurrent failed sign-ins", callers), Value: mb(peak),
		Floor: "idle " + mb(idle), Target: "< 100 MB", Met: peak < 100<<10})
	bench.Print(os.Stdout, "Process: cold start and memory (the real binary, one process per start)", figs)
}

func startFigure(name string, d time.Duration, floorName string, floor time.Duration) bench.Figure {
	return bench.Figure{Name: name, Value: bench.Ms(d), Floor: floorName + " " + bench.Ms(floor),
		Ratio: fmt.Sprintf("+%.2f ms", float64(d-floor)/float64(time.Millisecond)), Target: "< 15 ms", Met: d < 15*time.Millisecond}
}

func mb(kb int64) string { return fmt.Sprintf("%.1f MB", float64(kb)/1024) }

// buildBinary builds the main package in pkg as the Makefile's build target
// does (no cgo, trimmed, stripped) into dir/name.
func buildBinary(b *testing.B, dir, pkg, name string) string {
	b.Helper()
	out := filepath.Join(dir, name)
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", out, ".")
	cmd.Dir = pkg
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if msg, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("build %s: %v\n%s", pkg, err, msg)
	}
	return out
}

func runOK(b *testing.B, bin, stdin string, args ...string) {
	b.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Stdin = strings.NewReader(stdin)
	if msg, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, msg)
	}
}

// process is a running `writeback serve`.
type process struct{ cmd *exec.Cmd }

func (p process) stop() {
	_ = p.cmd.Process.Signal(os.Interrupt)
	_ = p.cmd.Wait()
}

// startServe starts serve on a free port and returns once it has answered
// GET /healthz, which is what the cold-start time measures.
func startServe(bin, data string, extra ...string) (process, string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return process{}, "", err
	}
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(bin, append([]string{"serve", "--data", data, "--listen", addr}, extra...)...)
	if err := cmd.Start(); err != nil {
		return process{}, "", err
	}
	p := process{cmd}
	deadline := time.Now().Add(10 * time.Second)
	for {
		// Refused connections come back in microseconds: polling this
		// often adds about that to the figure.
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			p.stop()
			return process{}, "", fmt.Errorf("serve did not listen on %s within 10 s", addr)
		}
		time.Sleep(20 * time.Microsecond)
	}
	if err := getOnce("http://" + addr + "/healthz"); err != nil {
		p.stop()
		return process{}, "", err
	}
	return p, addr, nil
}

func getOnce(u string) error {
	resp, err := http.Get(u)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	return nil
}

var csrfField = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)

// failedSignIns opens the sign-in page in n browsers and then has them all
// send a wrong password at once, each for an unknown address and from its
// own client address (so that the per-account and per-address budgets do
// not refuse any before it is hashed). It returns the latencies of the
// POSTs and a count of the answers by status.
func failedSignIns(addr string, wave, n int) (bench.Timing, string, error) {
	type browser struct {
		c    *http.Client
		csrf string
		ip   string
	}
	bs := make([]browser, n)
	for i := range bs {
		jar, _ := cookiejar.New(nil)
		c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := c.Get("http://" + addr + "/login")
		if err != nil {
			return bench.Timing{}, "", err
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		m := csrfField.FindSubmatch(body)
		if m == nil {
			return bench.Timing{}, "", errors.New("no csrf_token on /login")
		}
		bs[i] = browser{c: c, csrf: string(m[1]), ip: fmt.Sprintf("10.%d.%d.%d", 9, wave, i+1)}
	}
	var mu sync.Mutex
	status := map[int]int{}
	t, err := bench.Run(n, n, func(caller, _ int) error {
		br := bs[caller]
		form := url.Values{"csrf_token": {br.csrf}, "email": {fmt.Sprintf("nobody-%d-%d@example.com", wave, caller)}, "password": {"not the password"}}
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, "http://"+addr+"/login", bytes.NewBufferString(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("X-Forwarded-For", br.ip)
		resp, err := br.c.Do(req)
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		mu.Lock()
		status[resp.StatusCode]++
		mu.Unlock()
		return nil
	})
	if err != nil {
		return t, "", err
	}
	var parts []string
	for code, k := range status {
		parts = append(parts, fmt.Sprintf("%d× %d", k, code))
	}
	return t, strings.Join(parts, ", "), nil
}

// procStatusKB reads a kB figure (VmRSS, VmHWM) of process pid.
func procStatusKB(pid int, key string) (int64, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	return statusKB(string(raw), key)
}

// statusKB finds "key:   1234 kB" in the text of /proc/PID/status.
func statusKB(status, key string) (int64, error) {
	for line := range strings.SplitSeq(status, "\n") {
		v, ok := strings.CutPrefix(line, key+":")
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s: %q: %w", key, v, err)
		}
		return n, nil
	}
	return 0, fmt.Errorf("no %s in /proc status", key)
}

func TestStatusKB(t *testing.T) {
	const status = "Name:\twriteback\nVmPeak:\t  812345 kB\nVmHWM:\t   61234 kB\nVmRSS:\t   17472 kB\n"
	for key, want := range map[string]int64{"VmHWM": 61234, "VmRSS": 17472} {
		if got, err := statusKB(status, key); err != nil || got != want {
			t.Errorf("%s = %d, %v; want %d", key, got, err, want)
		}
	}
	if _, err := statusKB(status, "VmSwap"); err == nil {
		t.Error("a missing key gave no error")
	}
	if f := startFigure("x", 14*time.Millisecond, "f", 3*time.Millisecond); !f.Met || f.Ratio != "+11.00 ms" {
		t.Errorf("14 ms: %+v", f)
	}
	if f := startFigure("x", 15*time.Millisecond, "f", 3*time.Millisecond); f.Met {
		t.Errorf("15 ms met the < 15 ms target: %+v", f)
	}
}

// TestLimitMemory: main sets the soft memory limit, unless the operator
// chose one with GOMEMLIMIT.
func TestLimitMemory(t *testing.T) {
	old := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(old) })
	debug.SetMemoryLimit(math.MaxInt64)
	limitMemory(func(k string) string {
		if k == "GOMEMLIMIT" {
			return "1GiB"
		}
		return ""
	})
	if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
		t.Fatalf("with GOMEMLIMIT set the limit became %d", got)
	}
	limitMemory(noenv)
	if got := debug.SetMemoryLimit(-1); got != memoryLimit || memoryLimit >= 100<<20 {
		t.Fatalf("limit %d, want %d (under 100 MiB)", got, memoryLimit)
	}
}
