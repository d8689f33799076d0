package e2e

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"math/big"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// netns is a network namespace of this test run joined to the host by a
// veth pair on a /30 of its own: the portal listens on nsIP inside it, and
// nothing in it has a route anywhere but to hostIP.
type netns struct {
	name         string
	hostIf, nsIf string
	hostIP, nsIP netip.Addr
	prefix       netip.Prefix
	lock         *os.File // held while the test runs: the /30 is this run's
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func randInt(n int64) int64 {
	v, err := rand.Int(rand.Reader, big.NewInt(n))
	if err != nil {
		panic(err)
	}
	return v.Int64()
}

// ipCmd runs ip with args.
func ipCmd(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// canNetns tells whether this test may make namespaces: root and ip.
// WRITEBACK_E2E_NETNS=off makes it run the fallback (the portal on
// loopback, its sockets asserted) on a machine that could do both.
func canNetns() (bool, string) {
	if os.Getenv("WRITEBACK_E2E_NETNS") == "off" {
		return false, "WRITEBACK_E2E_NETNS=off"
	}
	if os.Geteuid() != 0 {
		return false, "not root"
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return false, "no ip command"
	}
	return true, ""
}

var addrRE = regexp.MustCompile(`\b(\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3})(/\d{1,2})?\b`)

// usedPrefixes lists the IPv4 addresses and routes the host knows now.
func usedPrefixes() ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, args := range [][]string{{"-o", "-4", "addr", "show"}, {"-4", "route", "show", "table", "all"}} {
		b, err := exec.Command("ip", args...).Output()
		if err != nil {
			return nil, fmt.Errorf("ip %s: %w", strings.Join(args, " "), err)
		}
		for _, m := range addrRE.FindAllStringSubmatch(string(b), -1) {
			s := m[1] + m[2]
			if m[2] == "" {
				s += "/32"
			}
			if p, err := netip.ParsePrefix(s); err == nil {
				out = append(out, p.Masked())
			}
		}
	}
	return out, nil
}

// newNetns makes the namespace and its link; everything is removed when
// the test ends, however it ends. Names and the /30 are random per run and
// the /30 is claimed with a lock file and checked unused, so two runs on
// one host never meet, and leftovers of a killed run are never reused.
func newNetns(t *testing.T) *netns {
	t.Helper()
	locks := "/tmp/writeback-netns-locks"
	if err := os.MkdirAll(locks, 0o755); err != nil {
		t.Fatal(err)
	}
	used, err := usedPrefixes()
	if err != nil {
		t.Fatal(err)
	}
	id := randHex(3)
	n := &netns{name: "wbe2e-" + id, hostIf: "wbe" + id + "h", nsIf: "wbe" + id + "n"}
	for attempt := 0; ; attempt++ {
		if attempt == 64 {
			t.Fatal("no free 10.x.y.z/30 found for the test's namespace")
		}
		// 10.A.B.C/30 with A in 200..249, away from the common 10.0/16 and
		// 10.1/16 of container and VPN networks.
		base := netip.AddrFrom4([4]byte{10, byte(200 + randInt(50)), byte(randInt(256)), byte(4 * randInt(64))})
		p := netip.PrefixFrom(base, 30)
		clash := false
		for _, u := range used {
			if u.Bits() > 0 && u.Overlaps(p) {
				clash = true
				break
			}
		}
		if clash {
			continue
		}
		f, err := os.OpenFile(filepath.Join(locks, base.String()+".lock"), os.O_CREATE|os.O_RDWR, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil {
			f.Close()
			continue
		}
		n.lock, n.prefix = f, p
		n.hostIP, n.nsIP = base.Next(), base.Next().Next()
		break
	}
	t.Cleanup(func() {
		// The namespace's end of the pair goes with the namespace, and the
		// host's end with it; the link delete is for a half-made set-up.
		if err := ipCmd("netns", "del", n.name); err != nil {
			t.Logf("cleanup: %v", err)
		}
		exec.Command("ip", "link", "del", n.hostIf).Run()
		os.Remove(n.lock.Name()) // while still held: a run that opened it meanwhile cannot take it
		n.lock.Close()
	})
	steps := [][]string{
		{"netns", "add", n.name},
		{"link", "add", n.hostIf, "type", "veth", "peer", "name", n.nsIf},
		{"link", "set", n.nsIf, "netns", n.name},
		{"addr", "add", netip.PrefixFrom(n.hostIP, 30).String(), "dev", n.hostIf},
		{"link", "set", n.hostIf, "up"},
		{"-n", n.name, "addr", "add", netip.PrefixFrom(n.nsIP, 30).String(), "dev", n.nsIf},
		{"-n", n.name, "link", "set", n.nsIf, "up"},
		{"-n", n.name, "link", "set", "lo", "up"},
	}
	for _, s := range steps {
		if err := ipCmd(s...); err != nil {
			t.Fatal(err)
		}
	}
	return n
}

// exec returns argv run inside the namespace.
func (n *netns) exec(argv ...string) []string {
	return append([]string{"ip", "netns", "exec", n.name}, argv...)
}

// tcpOpens tells whether a TCP connection to host:port opens from inside
// the namespace (ns != nil) or from the host.
func tcpOpens(n *netns, host string, port int) (bool, string) {
	argv := []string{"timeout", "5", "bash", "-c", fmt.Sprintf("exec 3<>/dev/tcp/%s/%d", host, port)}
	if n != nil {
		argv = n.exec(argv...)
	}
	out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	return err == nil, strings.TrimSpace(string(out))
}

// tcpConn is one connected TCP socket.
type tcpConn struct{ local, remote netip.AddrPort }

func (c tcpConn) String() string { return c.local.String() + "→" + c.remote.String() }

// sockets is what /proc says of one process's TCP sockets: the local and
// remote address of each of its open sockets that is connected.
func sockets(pid int) ([]tcpConn, error) {
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return nil, err
	}
	inodes := map[string]bool{}
	for _, fd := range fds {
		l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if err == nil && strings.HasPrefix(l, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = true
		}
	}
	var out []tcpConn
	for _, table := range []string{"tcp", "tcp6"} {
		// The process's own view: inside a namespace, that namespace's table.
		f, err := os.Open(fmt.Sprintf("/proc/%d/net/%s", pid, table))
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(f)
		sc.Scan() // header
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 10 || !inodes[fields[9]] {
				continue
			}
			local, ok1 := parseProcAddr(fields[1])
			remote, ok2 := parseProcAddr(fields[2])
			if ok1 && ok2 && remote.Port() != 0 {
				out = append(out, tcpConn{local, remote})
			}
		}
		f.Close()
	}
	return out, nil
}

// parseProcAddr reads /proc/net/tcp's "0100007F:1F90" (IPv4, host byte
// order in 32-bit words) or its 32-hex-digit IPv6 form.
func parseProcAddr(s string) (netip.AddrPort, bool) {
	h, p, ok := strings.Cut(s, ":")
	if !ok {
		return netip.AddrPort{}, false
	}
	port, err := strconv.ParseUint(p, 16, 16)
	if err != nil {
		return netip.AddrPort{}, false
	}
	raw, err := hex.DecodeString(h)
	if err != nil || (len(raw) != 4 && len(raw) != 16) {
		return netip.AddrPort{}, false
	}
	for i := 0; i+4 <= len(raw); i += 4 { // each 32-bit word is little-endian
		raw[i], raw[i+1], raw[i+2], raw[i+3] = raw[i+3], raw[i+2], raw[i+1], raw[i]
	}
	a, _ := netip.AddrFromSlice(raw)
	return netip.AddrPortFrom(a.Unmap(), uint16(port)), true
}

// socketWatch samples a process's connected sockets every 50 ms while the
// test runs and keeps every connection seen.
type socketWatch struct {
	mu    sync.Mutex
	seen  map[tcpConn]bool
	reads int
	err   error
	stop  chan struct{}
	done  chan struct{}
}

func watchSockets(pid int) *socketWatch {
	w := &socketWatch{seen: map[tcpConn]bool{}, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			remotes, err := sockets(pid)
			w.mu.Lock()
			if err != nil {
				if w.reads == 0 {
					w.err = err
				}
			} else {
				w.reads++
				for _, r := range remotes {
					w.seen[r] = true
				}
			}
			ended := err != nil && w.reads > 0 // the process ended
			w.mu.Unlock()
			if ended {
				return
			}
			select {
			case <-w.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return w
}

// finish stops sampling and returns the connections seen.
func (w *socketWatch) finish() (map[tcpConn]bool, int, error) {
	select {
	case <-w.done:
	default:
		close(w.stop)
		<-w.done
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.seen, w.reads, w.err
}
