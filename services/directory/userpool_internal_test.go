package directory

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/go-ldap/ldap/v3"

	"github.com/writeback/writeback/testbed"
)

func internalClient(t *testing.T, typ Type, d testbed.Directory, env testbed.Env) *Client {
	t.Helper()
	cfg := Defaults(typ, d.BaseDN)
	cfg.URLs, cfg.CAPEM = []string{d.URL}, env.CAPEM()
	cfg.BindDN, cfg.BindPassword = d.BindDN, d.BindPassword
	cfg.BaseDNs = []string{d.PeopleDN}
	c, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func admitAll(Candidate, error) error { return nil }

// whoAmI asks slapd whom pc is bound as.
func whoAmI(t *testing.T, pc *pconn) string {
	t.Helper()
	res, err := pc.conn.WhoAmI(nil)
	if err != nil {
		t.Fatalf("WhoAmI: %v", err)
	}
	return strings.TrimPrefix(res.AuthzID, "dn:")
}

// TestUserBindsStayApart: the connections that bound as a person are kept
// for the next bind as a person, apart from the service account's, which
// stay bound as the service account whatever the person's bind did (a
// change, a wrong password, a sign-in); once warm, no bind as a person
// dials a new connection; and one taken for a person is closed, not
// pooled, if it is ever released as the service account's.
func TestUserBindsStayApart(t *testing.T) {
	env := testbed.Load(t)
	c := internalClient(t, TypeOpenLDAP, env.LDAP, env)
	srv := c.servers[0]
	tu := env.NewLDAPUser(t, testbed.UserOptions{})
	ctx := context.Background()

	pw := testbed.RandomPassword()
	if _, _, err := c.ChangeLogin(ctx, tu.Login, tu.Password, pw, admitAll); err != nil {
		t.Fatalf("ChangeLogin: %v", err)
	}
	var mu sync.Mutex
	var sent []string
	c.OnRequest(func(r Request) {
		mu.Lock()
		sent = append(sent, r.Op+"/"+r.Kind)
		mu.Unlock()
	})
	if _, _, err := c.AuthenticateLogin(ctx, tu.Login, "Wrong-Passw0rd-x", admitAll); err == nil {
		t.Fatal("a wrong password signed in")
	}
	if _, _, err := c.AuthenticateLogin(ctx, tu.Login, pw, admitAll); err != nil {
		t.Fatalf("AuthenticateLogin: %v", err)
	}
	next := testbed.RandomPassword()
	if _, _, err := c.ChangeLogin(ctx, tu.Login, pw, next, admitAll); err != nil {
		t.Fatalf("ChangeLogin: %v", err)
	}
	if err := env.BindAs(t, env.LDAP, tu.DN, next); err != nil {
		t.Fatalf("bind with the new password: %v", err)
	}
	mu.Lock()
	got := fmt.Sprint(sent)
	mu.Unlock()
	if want := "[authenticate/search authenticate/bind authenticate/search authenticate/bind change/search change/bind change/extended]"; got != want {
		t.Errorf("sent %s, want %s (no dial once warm, one bind per attempt)", got, want)
	}

	srv.mu.Lock()
	idle, users := append([]*pconn{}, srv.idle...), append([]*pconn{}, srv.users...)
	srv.mu.Unlock()
	if len(idle) == 0 || len(users) == 0 {
		t.Fatalf("%d service and %d people's connections idle, want some of each", len(idle), len(users))
	}
	for _, pc := range idle {
		if pc.asUser {
			t.Error("a connection taken for a person is in the service account's pool")
		}
		if who := whoAmI(t, pc); !strings.EqualFold(who, env.LDAP.BindDN) {
			t.Errorf("a service account's connection is bound as %q", who)
		}
	}
	for _, pc := range users {
		if !pc.asUser {
			t.Error("a service account's connection is in the pool for people")
		}
		if who := whoAmI(t, pc); !strings.EqualFold(who, tu.DN) {
			t.Errorf("a people's connection is bound as %q, want the last person's DN", who)
		}
	}

	// Released as the service account's by mistake: closed, not pooled.
	pc := srv.popFrom(&srv.users)
	srv.release(pc, true)
	if !pc.conn.IsClosing() || srv.popFrom(&srv.idle) == pc {
		t.Error("a connection bound as a person went into the service account's pool")
	}
}

// TestUserConnClosedAfterFailure: a connection whose request failed on the
// network or was cut short is closed, never kept for the next person; one
// on which the server answered (a wrong password) is kept.
func TestUserConnClosedAfterFailure(t *testing.T) {
	env := testbed.Load(t)
	c := internalClient(t, TypeOpenLDAP, env.LDAP, env)
	srv := c.servers[0]
	tu := env.NewLDAPUser(t, testbed.UserOptions{})

	// A bind the context cuts short.
	ctx, cancel := context.WithCancel(context.Background())
	s := &session{ctx: ctx, c: c, srv: srv, op: "authenticate"}
	uc, err := s.userConn()
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	err = uc.guard(ctx, func() error { return errors.New("not sent") })
	s.doneUser(uc, err)
	if n := len(srv.users); n != 0 || !uc.conn.IsClosing() {
		t.Fatalf("a connection cut short was kept (%d idle)", n)
	}

	s.ctx = context.Background()
	uc, bres, err := s.userBind(tu.DN, "Wrong-Passw0rd-x")
	if uc == nil || err == nil {
		t.Fatalf("wrong password: %v, %v", bres, err)
	}
	s.doneUser(uc, err)
	if n := len(srv.users); n != 1 {
		t.Fatalf("after a wrong password %d connections idle, want 1", n)
	}
	// A network failure.
	uc = srv.popFrom(&srv.users)
	s.doneUser(uc, ldap.NewError(ldap.ErrorNetwork, errors.New("connection reset")))
	if n := len(srv.users); n != 0 || !uc.conn.IsClosing() {
		t.Fatalf("a connection with a network failure was kept (%d idle)", n)
	}
}

func TestServerAnswered(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{nil, true},
		{ldap.NewError(ldap.LDAPResultInvalidCredentials, errors.New("invalid credentials")), true},
		{&OpError{Err: ldap.NewError(ldap.LDAPResultConstraintViolation, errors.New("too short"))}, true},
		{ldap.NewError(ldap.ErrorNetwork, errors.New("connection reset")), false},
		{errors.New("unable to read LDAP response packet: EOF"), false},
		{context.DeadlineExceeded, false},
	} {
		if got := serverAnswered(c.err); got != c.want {
			t.Errorf("serverAnswered(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}
