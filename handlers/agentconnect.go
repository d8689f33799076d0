package handlers

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"unicode"

	"github.com/coder/websocket"

	"github.com/writeback/writeback/services/agenthub"
	"github.com/writeback/writeback/services/agentwire"
)

// AgentHub is what the agent endpoint needs of services/agenthub.
type AgentHub interface {
	Serve(ctx context.Context, agentID, remote string, c agenthub.Conn) error
}

// agentConnectsPerMinute caps connection attempts to the agent endpoint
// per client address.
const agentConnectsPerMinute = 60

// maxAgentID bounds the agent ID header (the hub looks it up; IDs the
// portal hands out are far shorter).
const maxAgentID = 128

// agentConnect accepts a writeback agent's WebSocket at agentwire.PathConnect
// and hands it to the hub, which authenticates the agent by its key. It
// uses no session and no cookie, so the session and CSRF middleware are
// not in its way; a request that is not a WebSocket upgrade is refused
// (426), and a browser page on another origin is refused by Accept's
// origin check (agents send no Origin).
func (s *Server) agentConnect(w http.ResponseWriter, r *http.Request) {
	if s.agentHub == nil {
		s.renderError(w, r, errNotFound)
		return
	}
	id := r.Header.Get(agentwire.HeaderAgentID)
	if !validAgentID(id) {
		s.log.InfoContext(r.Context(), "agent connection without a usable agent ID", "client_ip", s.clientIP(r))
		http.Error(w, "Missing or malformed "+agentwire.HeaderAgentID+" header.", http.StatusUnauthorized)
		return
	}
	// The server's read and write timeouts are for page requests: the
	// hijack in Accept clears them on this connection, which stays open;
	// the hub watches it with heartbeats.
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{CompressionMode: websocket.CompressionDisabled})
	if err != nil {
		// Accept has answered (426 for a plain request, 403 for a foreign origin).
		s.log.InfoContext(r.Context(), "agent connection refused", "client_ip", s.clientIP(r), "err", err)
		return
	}
	c.SetReadLimit(agentwire.MaxMessage)
	remote := s.clientIP(r)
	err = s.agentHub.Serve(r.Context(), id, remote, wsConn{c})
	s.log.InfoContext(r.Context(), "agent connection ended", "agent_id", id, "client_ip", remote, "err", err)
	_ = c.CloseNow()
}

// validAgentID accepts a short printable ID.
func validAgentID(id string) bool {
	if id == "" || len(id) > maxAgentID {
		return false
	}
	for _, r := range id {
		if r > unicode.MaxASCII || !unicode.IsPrint(r) || r == ' ' {
			return false
		}
	}
	return true
}

// wsConn is a *websocket.Conn as agenthub.Conn: one text message per
// protocol message.
type wsConn struct{ c *websocket.Conn }

func (w wsConn) Read(ctx context.Context) ([]byte, error) {
	typ, b, err := w.c.Read(ctx)
	if err != nil {
		return nil, err
	}
	if typ != websocket.MessageText {
		return nil, errors.New("agent sent a binary message")
	}
	return b, nil
}

func (w wsConn) Write(ctx context.Context, msg []byte) error {
	return w.c.Write(ctx, websocket.MessageText, msg)
}

func (w wsConn) Close(code int, reason string) error {
	if err := w.c.Close(websocket.StatusCode(code), reason); err != nil {
		return fmt.Errorf("close agent connection: %w", err)
	}
	return nil
}
