package testbed

import (
	"io"
	"net"
	"sync"
	"testing"
)

// Proxy forwards TCP connections to a target while it runs: a server a test
// can take away and bring back. Stop closes the listener and every
// connection it carries, as a DC going away would; Start listens again on
// the same address.
type Proxy struct {
	// Addr is the address it listens on (host:port).
	Addr   string
	t      testing.TB
	target string

	mu    sync.Mutex
	ln    net.Listener
	conns []net.Conn
}

// NewProxy starts a proxy on listen (e.g. "127.0.0.1:0") to target,
// stopped when the test ends.
func NewProxy(t testing.TB, listen, target string) *Proxy {
	t.Helper()
	p := &Proxy{Addr: listen, t: t, target: target}
	p.Start()
	p.Addr = p.ln.Addr().String()
	t.Cleanup(p.Stop)
	return p
}

// Start listens on Addr again after Stop.
func (p *Proxy) Start() {
	ln, err := net.Listen("tcp", p.Addr)
	if err != nil {
		p.t.Fatal(err)
	}
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			go func() { io.Copy(up, c); up.Close() }()
			go func() { io.Copy(c, up); c.Close() }()
		}
	}()
}

// Stop closes the listener and the connections it carries.
func (p *Proxy) Stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}
