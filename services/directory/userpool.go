package directory

import (
	"errors"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// Connections for binds as a person. A bind with a person's own password
// (AuthenticateUser, the OpenLDAP change) must never happen on a connection
// the service account's operations use next: the server would then run them
// as that person. The old way, a new TLS connection for every such bind,
// cost a handshake each time (on the test bed's slapd twice the bind and the
// change together). These connections are kept in a pool of their own per
// server (server.users), apart from the service account's, and are only ever
// handed to userBind, which binds as the next person before anything else is
// sent: whoever a connection was bound as before does not matter, as no
// request but that bind goes out on it first. A failed bind leaves a
// connection anonymous (RFC 4511 §4.2.1), and it is used for nothing more
// before the next bind either. A connection whose request failed on the
// network, or that a context cut short, is closed, never kept (see doneUser);
// one taken for a person is never released into the service account's pool
// (pconn.asUser, checked by server.release).

// userConn returns a connection to the session's server for a bind as a
// person: an idle one from the server's pool for people when it still
// works, otherwise a new one. It is not bound.
func (s *session) userConn() (*pconn, error) {
	srv := s.srv
	for pc := srv.popFrom(&srv.users); pc != nil; pc = srv.popFrom(&srv.users) {
		idle := time.Since(pc.lastUsed)
		if pc.conn.IsClosing() || pc.broken.Load() || idle > maxIdleTime {
			pc.close()
			continue
		}
		if idle > checkIdleAfter {
			// A base search of the root DSE, which any identity may read:
			// a bind on a connection the server dropped would fail on the
			// network, not count as a wrong password, but it would fail.
			s.c.note(Request{Op: "ping", Kind: KindSearch, Server: srv.u.raw})
			if err := pc.guard(s.ctx, func() error {
				_, err := pc.conn.Search(ldap.NewSearchRequest("", ldap.ScopeBaseObject, ldap.NeverDerefAliases, 1, 0,
					false, "(objectClass=*)", []string{"1.1"}, nil))
				return err
			}); err != nil {
				s.c.log.Debug("directory: dropping idle connection for binds as people", "server", srv.u.raw, "err", err)
				pc.close()
				continue
			}
		}
		return pc, nil
	}
	s.c.note(Request{Op: s.op, Kind: KindDial, Server: srv.u.raw})
	pc, err := connect(s.ctx, srv.u, srv.startTLS, srv.tls)
	if err != nil {
		return nil, classifyConnect(s.ctx, s.op, srv.u, err)
	}
	pc.asUser = true
	return pc, nil
}

// doneUser hands back a connection from userConn after its last request,
// which ended with err: it is kept for the next bind as a person when the
// server answered that request (a wrong password included), closed when the
// request failed on the network or was cut short.
func (s *session) doneUser(pc *pconn, err error) {
	s.srv.releaseUser(pc, serverAnswered(err))
}

// serverAnswered tells whether err (nil: success) is the server's own
// answer, with an LDAP result code, rather than a failure to get one.
func serverAnswered(err error) bool {
	if err == nil {
		return true
	}
	var le *ldap.Error
	return errors.As(err, &le) && le.ResultCode < ldap.ErrorNetwork && !isNetworkError(err)
}

// releaseUser returns pc to the pool for binds as people when it is still
// good (at most maxIdlePerServer of them wait).
func (s *server) releaseUser(pc *pconn, healthy bool) { s.pushTo(&s.users, pc, healthy && pc.asUser) }
