package e2e

import (
	"net"
	"net/netip"
	"os"
	"runtime"
	"testing"
	"time"
)

func TestParseProcAddr(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"0100007F:1F90", "127.0.0.1:8080"},
		{"0264C80A:027C", "10.200.100.2:636"},
		{"00000000000000000000000001000000:0050", "[::1]:80"},
		{"0000000000000000FFFF00000100007F:0D3D", "127.0.0.1:3389"},
	} {
		got, ok := parseProcAddr(tc.in)
		if !ok || got.String() != tc.want {
			t.Errorf("parseProcAddr(%q) = %v, %v; want %s", tc.in, got, ok, tc.want)
		}
	}
	for _, bad := range []string{"", "0100007F", "zz00007F:0050", "0100007F:zz", "01007F:0050"} {
		if _, ok := parseProcAddr(bad); ok {
			t.Errorf("parseProcAddr(%q) accepted", bad)
		}
	}
}

// TestSocketWatchSeesAConnection: the fallback check of the end-to-end
// test (a portal's sockets, read from /proc) sees a connection this
// process opens, so it would see one the portal opened to a directory.
func TestSocketWatchSeesAConnection(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	w := watchSockets(os.Getpid())
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	c.Close()
	seen, reads, err := w.finish()
	if err != nil || reads == 0 {
		t.Fatalf("%d reads, %v", reads, err)
	}
	want := tcpConn{netip.MustParseAddrPort(c.LocalAddr().String()), netip.MustParseAddrPort(ln.Addr().String())}
	if !seen[want] {
		t.Errorf("the watch did not see the connection %s: %v", want, seen)
	}
}
