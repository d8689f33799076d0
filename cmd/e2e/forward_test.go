package e2e

import (
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// forwardEnv makes the test binary a TCP forwarder instead of running
// tests: WRITEBACK_E2E_FORWARD=LISTEN=TARGET. The test starts it inside
// the portal's namespace, where it stands for the company's mail relay
// that the DMZ may reach.
const forwardEnv = "WRITEBACK_E2E_FORWARD"

func TestMain(m *testing.M) {
	if spec := os.Getenv(forwardEnv); spec != "" {
		listen, target, _ := strings.Cut(spec, "=")
		ln, err := net.Listen("tcp", listen)
		if err != nil {
			fmt.Fprintln(os.Stderr, "forward:", err)
			os.Exit(1)
		}
		fmt.Println("forwarding", ln.Addr(), "to", target)
		forward(ln, target)
		return
	}
	code := m.Run()
	if built.portal != "" { // the programs build built for this run
		os.RemoveAll(filepath.Dir(built.portal))
	}
	os.Exit(code)
}

// forward copies each connection accepted on ln to target and back.
func forward(ln net.Listener, target string) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			u, err := net.DialTimeout("tcp", target, 5*time.Second)
			if err != nil {
				return
			}
			defer u.Close()
			done := make(chan struct{}, 2)
			go func() { io.Copy(u, c); done <- struct{}{} }()
			go func() { io.Copy(c, u); done <- struct{}{} }()
			<-done
		}()
	}
}
