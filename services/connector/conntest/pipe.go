// Package conntest is an in-memory connection between a portal's hub and an
// agent's connector, for tests: both ends satisfy agenthub.Conn and
// connector.Conn, messages keep their order, and closing one end makes the
// other's Read return a *connector.CloseError with the code, as a WebSocket
// close frame would.
package conntest

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"

	"github.com/writeback/writeback/services/connector"
)

// ErrClosed is what an end returns once it closed the connection itself.
var ErrClosed = errors.New("conntest: connection closed")

// End is one end of a Pipe.
type End struct {
	in, out chan []byte
	p       *pipe
	side    int
}

type pipe struct {
	frozen atomic.Bool
	mu     sync.Mutex
	done   chan struct{}
	errs   [2]error
	closer int // the side that closed, -1 while open
	code   int
}

// Pipe returns the portal's end and the agent's end of a new connection.
func Pipe() (portal, agent *End) {
	a, b := make(chan []byte, 256), make(chan []byte, 256)
	p := &pipe{done: make(chan struct{}), closer: -1}
	return &End{in: a, out: b, p: p, side: 0}, &End{in: b, out: a, p: p, side: 1}
}

// Read returns the next message, or the reason the connection ended;
// messages sent before the close are still read first.
func (e *End) Read(ctx context.Context) ([]byte, error) {
	select {
	case b := <-e.in:
		return b, nil
	default:
	}
	select {
	case b := <-e.in:
		return b, nil
	case <-e.p.done:
		select {
		case b := <-e.in:
			return b, nil
		default:
		}
		return nil, e.p.errs[e.side]
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Write sends one message.
func (e *End) Write(ctx context.Context, msg []byte) error {
	if e.p.frozen.Load() {
		select {
		case <-e.p.done:
			return e.p.errs[e.side]
		default:
			return nil // into the void, as into a socket buffer on a dead path
		}
	}
	select {
	case <-e.p.done:
		return e.p.errs[e.side]
	default:
	}
	select {
	case e.out <- append([]byte(nil), msg...):
		return nil
	case <-e.p.done:
		return e.p.errs[e.side]
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close ends the connection for both ends with a close code; the first
// close wins.
func (e *End) Close(code int, reason string) error {
	e.p.mu.Lock()
	defer e.p.mu.Unlock()
	if e.p.closer >= 0 {
		return nil
	}
	e.p.closer, e.p.code = e.side, code
	e.p.errs[e.side] = ErrClosed
	e.p.errs[1-e.side] = &connector.CloseError{Code: code, Reason: reason}
	close(e.p.done)
	return nil
}

// Closed tells whether the connection ended, and with which code.
func (e *End) Closed() (closed bool, code int) {
	e.p.mu.Lock()
	defer e.p.mu.Unlock()
	return e.p.closer >= 0, e.p.code
}

// Done is closed when the connection ends.
func (e *End) Done() <-chan struct{} { return e.p.done }

// Ping answers at once while the connection is open, as a peer that reads
// answers a WebSocket ping; after Freeze it blocks until ctx ends.
func (e *End) Ping(ctx context.Context) error {
	if e.p.frozen.Load() {
		<-ctx.Done()
		return ctx.Err()
	}
	select {
	case <-e.p.done:
		return e.p.errs[e.side]
	default:
		return nil
	}
}

// Freeze makes the connection silently stop carrying anything, as a path
// that drops packets: writes still succeed but arrive nowhere, and pings
// go unanswered, until the connection is closed.
func (e *End) Freeze() { e.p.frozen.Store(true) }
