package testbed

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/go-ldap/ldap/v3"
	"github.com/jackc/pgx/v5"
)

// These tests check the test bed itself: that up.sh built what testbed/README.md promises and that the helpers
// work, including the delegated rights other packages' tests rely on.

func TestEnv(t *testing.T) {
	env := Load(t)
	if !x509.NewCertPool().AppendCertsFromPEM([]byte(env.CAPEM())) {
		t.Error("CAPEM holds no certificate")
	}
	if env.CAPEM() == env.WrongCAPEM() {
		t.Error("the wrong CA is the test CA")
	}
	if fi, err := os.Stat(env.Chromium); err != nil || fi.Mode()&0o111 == 0 {
		t.Errorf("WB_TEST_CHROMIUM %q is not an executable: %v", env.Chromium, err)
	}
	for _, d := range []Directory{env.AD, env.LDAP} {
		if !strings.HasPrefix(d.URL, "ldaps://") || !strings.HasPrefix(d.StartTLSURL, "ldap://") {
			t.Errorf("unexpected URLs %q %q", d.URL, d.StartTLSURL)
		}
		if ip := net.ParseIP(d.Host()); ip == nil || !ip.IsLoopback() || !strings.Contains(d.StartTLSURL, "//"+d.Host()+":") {
			t.Errorf("Host() %q is not the loopback IP of %s and %s", d.Host(), d.URL, d.StartTLSURL)
		}
		if !strings.HasSuffix(d.PeopleDN, ","+d.BaseDN) {
			t.Errorf("PeopleDN %q is not under BaseDN %q", d.PeopleDN, d.BaseDN)
		}
	}
}

func TestServiceAccountsBind(t *testing.T) {
	env := Load(t)
	for name, d := range map[string]Directory{"AD": env.AD, "LDAP": env.LDAP} {
		for _, acc := range [][2]string{{d.BindDN, d.BindPassword}, {d.NoRightsDN, d.NoRightsPassword},
			{d.AdminDN, d.AdminPassword}} {
			if err := env.BindAs(t, d, acc[0], acc[1]); err != nil {
				t.Errorf("%s: bind as %s: %v", name, acc[0], err)
			}
		}
	}
}

// The bind accounts are exempt from lockout (PSO on AD, own ppolicy on OpenLDAP), so tests that try a wrong
// service password cannot break every later test.
func TestServiceAccountsDoNotLock(t *testing.T) {
	env := Load(t)
	for name, d := range map[string]Directory{"AD": env.AD, "LDAP": env.LDAP} {
		for _, acc := range [][2]string{{d.BindDN, d.BindPassword}, {d.NoRightsDN, d.NoRightsPassword}} {
			for i := 0; i <= lockoutThreshold; i++ {
				if err := env.BindAs(t, d, acc[0], "Wrong-Passw0rd"); !ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials) {
					t.Fatalf("%s: bad bind as %s: want 49, got %v", name, acc[0], err)
				}
			}
			if err := env.BindAs(t, d, acc[0], acc[1]); err != nil {
				t.Errorf("%s: %s is locked after %d bad binds: %v", name, acc[0], lockoutThreshold+1, err)
			}
		}
	}
}

func TestTLS(t *testing.T) {
	env := Load(t)
	for name, d := range map[string]Directory{"AD": env.AD, "LDAP": env.LDAP} {
		// StartTLS verified with the test CA.
		c, err := ldap.DialURL(d.StartTLSURL)
		if err != nil {
			t.Fatalf("%s: dial %s: %v", name, d.StartTLSURL, err)
		}
		if err := c.StartTLS(env.TLSConfig(d.StartTLSURL)); err != nil {
			t.Errorf("%s: StartTLS: %v", name, err)
		} else if err := c.Bind(d.BindDN, d.BindPassword); err != nil {
			t.Errorf("%s: bind after StartTLS: %v", name, err)
		}
		c.Close()

		// The wrong CA must not verify the server.
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM([]byte(env.WrongCAPEM()))
		c, err = ldap.DialURL(d.URL, ldap.DialWithTLSConfig(&tls.Config{RootCAs: pool}))
		var uerr x509.UnknownAuthorityError
		if err == nil {
			c.Close()
			t.Errorf("%s: LDAPS verified with the wrong CA", name)
		} else if !errors.As(err, &uerr) {
			t.Errorf("%s: wrong CA: want x509.UnknownAuthorityError, got %v", name, err)
		}
	}

	// AD refuses simple binds without TLS; that is what the plain URL is for.
	c, err := ldap.DialURL(env.AD.PlainURL)
	if err != nil {
		t.Fatal(err)
	}
	err = c.Bind(env.AD.BindDN, env.AD.BindPassword)
	c.Close()
	if !ldap.IsErrorWithCode(err, ldap.LDAPResultStrongAuthRequired) {
		t.Errorf("AD plain bind: want strongerAuthRequired (8), got %v", err)
	}

	if c, err := ldap.DialURL(env.DeadURL); err == nil {
		c.Close()
		t.Errorf("something answers at the dead URL %s", env.DeadURL)
	}
}

func TestADUser(t *testing.T) {
	env := Load(t)
	u := env.NewADUser(t, UserOptions{})
	if err := env.BindAs(t, env.AD, u.DN, u.Password); err != nil {
		t.Fatalf("bind with the initial password: %v", err)
	}
	// AD users log in with their UPN too.
	if err := env.BindAs(t, env.AD, u.UPN, u.Password); err != nil {
		t.Errorf("bind as UPN: %v", err)
	}
	if got := env.ReadAttr(t, env.AD, u.DN, "mail"); got != u.Mail {
		t.Errorf("mail = %q, want %q", got, u.Mail)
	}

	env.LockAD(t, u)
	err := env.BindAs(t, env.AD, u.DN, u.Password)
	if err == nil || !strings.Contains(err.Error(), "data 775") {
		t.Errorf("bind of a locked user with the right password: want data 775, got %v", err)
	}

	// Without delegation: insufficient access.
	newPW := RandomPassword()
	reset := ldap.NewModifyRequest(u.DN, nil)
	reset.Replace("unicodePwd", []string{ADPassword(newPW)})
	reset.Replace("lockoutTime", []string{"0"})
	err = env.Conn(t, env.AD, env.AD.NoRightsDN, env.AD.NoRightsPassword).Modify(reset)
	if !ldap.IsErrorWithCode(err, ldap.LDAPResultInsufficientAccessRights) {
		t.Errorf("reset as %s: want insufficientAccessRights (50), got %v", env.AD.NoRightsDN, err)
	}

	// The service account's delegation: reset and unlock in one Modify.
	svc := env.Conn(t, env.AD, env.AD.BindDN, env.AD.BindPassword)
	if err := svc.Modify(reset); err != nil {
		t.Fatalf("reset+unlock as the service account: %v", err)
	}
	if env.ADLocked(t, u) {
		t.Error("still locked after lockoutTime=0")
	}
	if err := env.BindAs(t, env.AD, u.DN, newPW); err != nil {
		t.Errorf("bind with the reset password: %v", err)
	}
	if err := env.BindAs(t, env.AD, u.DN, u.Password); err == nil {
		t.Error("the old password still works after a reset (old password allowed period?)")
	}
	// pwdLastSet is delegated too: 0 forces a change at next logon.
	mod := ldap.NewModifyRequest(u.DN, nil)
	mod.Replace("pwdLastSet", []string{"0"})
	if err := svc.Modify(mod); err != nil {
		t.Errorf("write pwdLastSet as the service account: %v", err)
	}
}

func TestADUserOptions(t *testing.T) {
	env := Load(t)
	g := env.NewADGroup(t, "")
	u := env.NewADUser(t, UserOptions{Disabled: true, AdminCount: true, NoMail: true, Groups: []string{g}})
	err := env.BindAs(t, env.AD, u.DN, u.Password)
	if err == nil || !strings.Contains(err.Error(), "data 533") {
		t.Errorf("bind of a disabled user: want data 533, got %v", err)
	}
	if got := env.ReadAttr(t, env.AD, u.DN, "adminCount"); got != "1" {
		t.Errorf("adminCount = %q", got)
	}
	if got := env.ReadAttr(t, env.AD, u.DN, "memberOf"); !strings.EqualFold(got, g) {
		t.Errorf("memberOf = %q, want %q", got, g)
	}
	if got := env.ReadAttr(t, env.AD, u.DN, "mail"); got != "" || u.Mail != "" {
		t.Errorf("NoMail user has mail %q / %q", got, u.Mail)
	}
	// Non-ASCII login and password round-trip.
	u2 := env.NewADUser(t, UserOptions{Login: "wbtü" + randHex(3), Password: "Pässwörd-" + randHex(3) + "9"})
	if err := env.BindAs(t, env.AD, u2.DN, u2.Password); err != nil {
		t.Errorf("bind with a non-ASCII password: %v", err)
	}
}

func TestLDAPUser(t *testing.T) {
	env := Load(t)
	u := env.NewLDAPUser(t, UserOptions{})
	if err := env.BindAs(t, env.LDAP, u.DN, u.Password); err != nil {
		t.Fatalf("bind with the initial password: %v", err)
	}
	if h := env.ReadAttr(t, env.LDAP, u.DN, "userPassword"); !strings.HasPrefix(h, "{") || strings.Contains(h, u.Password) {
		t.Errorf("userPassword is stored unhashed: %q", h)
	}
	// Users read their own entry.
	self := env.Conn(t, env.LDAP, u.DN, u.Password)
	res, err := self.Search(ldap.NewSearchRequest(u.DN, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false,
		"(objectClass=*)", []string{"mail"}, nil))
	if err != nil || len(res.Entries) != 1 || res.Entries[0].GetAttributeValue("mail") != u.Mail {
		t.Errorf("self read: %v %v", err, res)
	}

	env.LockLDAP(t, u)
	if err := env.BindAs(t, env.LDAP, u.DN, u.Password); !ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials) {
		t.Errorf("bind of a locked user with the right password: want 49, got %v", err)
	}

	newPW := RandomPassword()
	// Without rights: insufficient access.
	_, err = env.Conn(t, env.LDAP, env.LDAP.NoRightsDN, env.LDAP.NoRightsPassword).
		PasswordModify(ldap.NewPasswordModifyRequest(u.DN, "", newPW))
	if !ldap.IsErrorWithCode(err, ldap.LDAPResultInsufficientAccessRights) {
		t.Errorf("reset as %s: want insufficientAccessRights (50), got %v", env.LDAP.NoRightsDN, err)
	}

	// The service DN resets (Password Modify, hashed by the server) and unlocks.
	svc := env.Conn(t, env.LDAP, env.LDAP.BindDN, env.LDAP.BindPassword)
	if _, err := svc.PasswordModify(ldap.NewPasswordModifyRequest(u.DN, "", newPW)); err != nil {
		t.Fatalf("reset as the service DN: %v", err)
	}
	unlock := ldap.NewModifyRequest(u.DN, nil)
	unlock.Delete("pwdAccountLockedTime", nil)
	if err := svc.Modify(unlock); err != nil && !ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchAttribute) {
		t.Fatalf("unlock as the service DN: %v", err)
	}
	if env.LDAPLocked(t, u) {
		t.Error("still locked")
	}
	if err := env.BindAs(t, env.LDAP, u.DN, newPW); err != nil {
		t.Errorf("bind with the reset password: %v", err)
	}

	// Self-service change: the user changes their own password, subject to ppolicy.
	self = env.Conn(t, env.LDAP, u.DN, newPW)
	if _, err := self.PasswordModify(ldap.NewPasswordModifyRequest("", newPW, "short")); !ldap.IsErrorWithCode(err, ldap.LDAPResultConstraintViolation) {
		t.Errorf("too short a password: want constraint violation (19), got %v", err)
	}
	if _, err := self.PasswordModify(ldap.NewPasswordModifyRequest("", newPW, RandomPassword())); err != nil {
		t.Errorf("self change: %v", err)
	}
}

func TestLDAPUserOptions(t *testing.T) {
	env := Load(t)
	g := env.NewLDAPGroup(t, "")
	u := env.NewLDAPUser(t, UserOptions{Disabled: true, Groups: []string{g}, Mail: "someone@example.test"})
	if err := env.BindAs(t, env.LDAP, u.DN, u.Password); !ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials) {
		t.Errorf("bind of a disabled user: want 49, got %v", err)
	}
	if !env.LDAPLocked(t, u) {
		t.Error("a disabled LDAP user has no pwdAccountLockedTime")
	}
	if got := env.ReadAttr(t, env.LDAP, u.DN, "mail"); got != "someone@example.test" {
		t.Errorf("mail = %q", got)
	}
	c := env.AdminConn(t, env.LDAP)
	res, err := c.Search(ldap.NewSearchRequest(g, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false,
		"(member="+ldap.EscapeFilter(u.DN)+")", []string{"dn"}, nil))
	if err != nil || len(res.Entries) != 1 {
		t.Errorf("%s is not a member of %s: %v", u.DN, g, err)
	}
}

// NewPostgresDB gives each test a database of its own that it can write to, on the run's server, and drops it when
// the test ends.
func TestNewPostgresDB(t *testing.T) {
	ctx := context.Background()
	var urls []string
	t.Run("two", func(t *testing.T) {
		for range 2 {
			u := NewPostgresDB(t)
			c, err := pgx.Connect(ctx, u)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.Exec(ctx, `CREATE TABLE t (x int); INSERT INTO t VALUES (1)`); err != nil {
				t.Fatal(err)
			}
			c.Close(ctx)
			urls = append(urls, u)
		}
	})
	if len(urls) == 0 && !t.Failed() {
		t.Skip("no PostgreSQL server (the subtest says why)")
	}
	if len(urls) != 2 || urls[0] == urls[1] {
		t.Fatalf("databases %v: want two different ones", urls)
	}
	server := os.Getenv(PostgresOverride)
	if server == "" {
		server = Load(t).PostgresURL
	}
	c, err := pgx.Connect(ctx, server)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	for _, raw := range urls {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		var n int
		if err := c.QueryRow(ctx, `SELECT count(*) FROM pg_database WHERE datname = $1`, strings.TrimPrefix(u.Path, "/")).Scan(&n); err != nil || n != 0 {
			t.Errorf("database %s still there after its test (%d, %v)", u.Path, n, err)
		}
	}
}
