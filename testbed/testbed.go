// Package testbed gives Go tests access to the real directories that testbed/up.sh starts for `make test`: a Samba
// AD domain controller and an OpenLDAP slapd with ppolicy, both behind TLS from a test CA. Their addresses differ
// from run to run (testbed/with.sh gives every run its own), so tests take them from Env, never from a literal.
//
// A test calls Load to get the addresses and credentials, then creates its own throw-away users with
// Env.NewADUser / Env.NewLDAPUser (deleted again by t.Cleanup), so tests never share accounts and can lock, reset
// and unlock them freely:
//
//	env := testbed.Load(t)
//	u := env.NewADUser(t, testbed.UserOptions{})
//	env.LockAD(t, u)
//
// Everything here talks TLS verified against the test CA; nothing ever skips certificate verification.
package testbed

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf16"

	"github.com/go-ldap/ldap/v3"
	"github.com/jackc/pgx/v5"
)

// DefaultDir is the state directory of up.sh when WRITEBACK_TESTBED_DIR is not set (the manual test bed of
// `make testbed-up`; `make test` runs get their own dirs and set WRITEBACK_TESTBED_ENV).
const DefaultDir = "/tmp/writeback-testbed"

// Directory is one directory server of the test bed (Samba AD or OpenLDAP).
type Directory struct {
	URL         string // ldaps://…
	StartTLSURL string // ldap://… on which StartTLS works
	PlainURL    string // the same ldap:// URL, for tests that (must fail to) bind without TLS
	BaseDN      string
	PeopleDN    string // where test users live
	// BindDN is the portal's service account: Reset Password (AD) / write on userPassword (OpenLDAP) and unlock
	// rights over PeopleDN. It has no lockout, so tests may try wrong passwords on it.
	BindDN, BindPassword string
	// NoRightsDN can bind and read but holds no delegated rights (also without lockout).
	NoRightsDN, NoRightsPassword string
	// AdminDN is Administrator (AD) / the rootdn (OpenLDAP, bypasses ppolicy): for test set-up only.
	AdminDN, AdminPassword string
}

// Host is the server's IP address (from URL). It differs from run to run, so a test that dials the server itself
// uses this and never a literal such as 127.0.0.2. The test certificate names Host and also 127.0.0.1, so a proxy
// that a test puts in front of the server may listen on either (port 0).
func (d Directory) Host() string {
	u, err := url.Parse(d.URL)
	if err != nil {
		panic("testbed: bad URL " + d.URL)
	}
	return u.Hostname()
}

// Env is the content of the env file written by up.sh (keys in testbed/README.md).
type Env struct {
	CAFile      string // WB_TEST_CA_FILE: PEM of the CA that issued both servers' certificates
	WrongCAFile string // WB_TEST_WRONG_CA_FILE: PEM of an unrelated CA
	DeadURL     string // WB_TEST_DEAD_URL: ldaps:// URL where nothing listens
	Chromium    string // WB_TEST_CHROMIUM: path of the Chromium binary
	AD          Directory
	LDAP        Directory
	// PostgresURL (WB_TEST_POSTGRES_URL) is the throw-away PostgreSQL server's URL as its superuser, on its
	// maintenance database; empty when the env file has none (WRITEBACK_TEST_POSTGRES_URL may then name one). Tests
	// never use it directly: NewPostgresDB gives each its own database on it.
	PostgresURL string

	// Path is the env file this Env was loaded from.
	Path string
}

// UserOptions describes a throw-away test user. The zero value is a valid, enabled user with a random login, a
// random policy-compliant password and a mail address.
type UserOptions struct {
	Login    string // random unique if empty (keep it ≤ 20 characters for AD's sAMAccountName)
	Password string // random and compliant with both password policies if empty
	Mail     string // <login>@writeback.test if empty (see NoMail)
	NoMail   bool   // create the user without a mail attribute
	Mobile   string // the mobile attribute, when not empty
	// Disabled: AD userAccountControl 514. OpenLDAP has no disabled flag; there it sets pwdAccountLockedTime to
	// 000001010000Z, ppolicy's "locked until an administrator unlocks".
	Disabled   bool
	AdminCount bool     // AD only: adminCount=1, as on a protected (AdminSDHolder) account
	Groups     []string // DNs of existing groups to add the user to (member attribute)
}

// TestUser is a user created by NewADUser or NewLDAPUser.
type TestUser struct {
	Login    string // sAMAccountName (AD) / uid (OpenLDAP)
	DN       string
	Password string // the password the user was created with
	Mail     string // empty with UserOptions.NoMail
	UPN      string // AD: login@writeback.test; OpenLDAP: empty
}

// The env file keys, in the order of testbed/README.md.
var envKeys = []string{
	"WB_TEST_CA_FILE", "WB_TEST_WRONG_CA_FILE", "WB_TEST_DEAD_URL", "WB_TEST_CHROMIUM",
	"WB_TEST_AD_URL", "WB_TEST_AD_STARTTLS_URL", "WB_TEST_AD_PLAIN_URL",
	"WB_TEST_AD_BASE_DN", "WB_TEST_AD_PEOPLE_DN",
	"WB_TEST_AD_BIND_DN", "WB_TEST_AD_BIND_PASSWORD",
	"WB_TEST_AD_NORIGHTS_DN", "WB_TEST_AD_NORIGHTS_PASSWORD",
	"WB_TEST_AD_ADMIN_DN", "WB_TEST_AD_ADMIN_PASSWORD",
	"WB_TEST_LDAP_URL", "WB_TEST_LDAP_STARTTLS_URL", "WB_TEST_LDAP_PLAIN_URL",
	"WB_TEST_LDAP_BASE_DN", "WB_TEST_LDAP_PEOPLE_DN",
	"WB_TEST_LDAP_BIND_DN", "WB_TEST_LDAP_BIND_PASSWORD",
	"WB_TEST_LDAP_NORIGHTS_DN", "WB_TEST_LDAP_NORIGHTS_PASSWORD",
	"WB_TEST_LDAP_ADMIN_DN", "WB_TEST_LDAP_ADMIN_PASSWORD",
}

// EnvPath is the env file Load reads: $WRITEBACK_TESTBED_ENV, else $WRITEBACK_TESTBED_DIR/env, else
// /tmp/writeback-testbed/env.
func EnvPath() string {
	if p := os.Getenv("WRITEBACK_TESTBED_ENV"); p != "" {
		return p
	}
	dir := os.Getenv("WRITEBACK_TESTBED_DIR")
	if dir == "" {
		dir = DefaultDir
	}
	return filepath.Join(dir, "env")
}

// Load reads the env file written by up.sh (see EnvPath). Without it the test is skipped, or fails when the CI
// environment variable is set, so CI cannot pass by silently skipping every directory test.
func Load(t testing.TB) Env {
	t.Helper()
	path := EnvPath()
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		msg := fmt.Sprintf("testbed: %s not found: these tests need the real directories; run `make test` "+
			"(as root, it starts them with testbed/up.sh) or `sudo bash testbed/up.sh` once", path)
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	if err != nil {
		t.Fatalf("testbed: %v", err)
	}
	defer f.Close()

	vals := map[string]string{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("testbed: %s:%d: not KEY=VALUE: %q", path, n, line)
		}
		if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
			v = v[1 : len(v)-1]
		}
		vals[strings.TrimSpace(k)] = v
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("testbed: reading %s: %v", path, err)
	}
	var missing []string
	for _, k := range envKeys {
		if vals[k] == "" {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		t.Fatalf("testbed: %s lacks %s; rerun testbed/up.sh", path, strings.Join(missing, ", "))
	}

	dir := func(p string) Directory {
		g := func(k string) string { return vals["WB_TEST_"+p+"_"+k] }
		return Directory{
			URL: g("URL"), StartTLSURL: g("STARTTLS_URL"), PlainURL: g("PLAIN_URL"),
			BaseDN: g("BASE_DN"), PeopleDN: g("PEOPLE_DN"),
			BindDN: g("BIND_DN"), BindPassword: g("BIND_PASSWORD"),
			NoRightsDN: g("NORIGHTS_DN"), NoRightsPassword: g("NORIGHTS_PASSWORD"),
			AdminDN: g("ADMIN_DN"), AdminPassword: g("ADMIN_PASSWORD"),
		}
	}
	e := Env{
		CAFile:      vals["WB_TEST_CA_FILE"],
		WrongCAFile: vals["WB_TEST_WRONG_CA_FILE"],
		DeadURL:     vals["WB_TEST_DEAD_URL"],
		Chromium:    vals["WB_TEST_CHROMIUM"],
		AD:          dir("AD"),
		LDAP:        dir("LDAP"),
		PostgresURL: vals["WB_TEST_POSTGRES_URL"],
		Path:        path,
	}
	for _, p := range []string{e.CAFile, e.WrongCAFile} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("testbed: %v (stale %s? rerun testbed/up.sh)", err, path)
		}
	}
	return e
}

// CAPEM returns the PEM of the test CA (what an administrator would paste into the portal's settings).
func (e Env) CAPEM() string { return mustRead(e.CAFile) }

// WrongCAPEM returns the PEM of a CA that issued neither server certificate.
func (e Env) WrongCAPEM() string { return mustRead(e.WrongCAFile) }

// RootCAs returns a pool holding only the test CA.
func (e Env) RootCAs() *x509.CertPool {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(e.CAPEM())) {
		panic("testbed: no certificate in " + e.CAFile)
	}
	return pool
}

// TLSConfig returns a client configuration trusting only the test CA, for the host of rawURL (StartTLS in go-ldap
// needs ServerName set).
func (e Env) TLSConfig(rawURL string) *tls.Config {
	host := rawURL
	if u, err := url.Parse(rawURL); err == nil && u.Host != "" {
		host = u.Hostname()
	}
	return &tls.Config{RootCAs: e.RootCAs(), ServerName: host, MinVersion: tls.VersionTLS12}
}

func mustRead(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		panic("testbed: " + err.Error())
	}
	return string(b)
}

// dial opens an LDAPS connection to d.URL verified with the test CA.
func (e Env) dial(d Directory) (*ldap.Conn, error) {
	c, err := ldap.DialURL(d.URL,
		ldap.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}),
		ldap.DialWithTLSConfig(e.TLSConfig(d.URL)))
	if err != nil {
		return nil, err
	}
	c.SetTimeout(15 * time.Second)
	return c, nil
}

// Conn returns an LDAPS connection to d bound as dn, closed when the test ends. It fails the test when the server
// cannot be reached or the bind fails.
func (e Env) Conn(t testing.TB, d Directory, dn, password string) *ldap.Conn {
	t.Helper()
	c, err := e.dial(d)
	if err != nil {
		t.Fatalf("testbed: dial %s: %v", d.URL, err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Bind(dn, password); err != nil {
		t.Fatalf("testbed: bind to %s as %s: %v", d.URL, dn, err)
	}
	return c
}

// AdminConn is Conn bound as d's administrator.
func (e Env) AdminConn(t testing.TB, d Directory) *ldap.Conn {
	t.Helper()
	return e.Conn(t, d, d.AdminDN, d.AdminPassword)
}

// BindAs opens a fresh LDAPS connection to d, makes a simple bind as dn and returns the bind error (nil when the
// password works). The test fails if d cannot be reached at all, so a dead server never passes for a bad password.
// An empty password is refused here: LDAP treats it as an anonymous bind that "succeeds".
func (e Env) BindAs(t testing.TB, d Directory, dn, password string) error {
	t.Helper()
	if password == "" {
		t.Fatalf("testbed: BindAs %s with an empty password (that is an unauthenticated bind)", dn)
	}
	c, err := e.dial(d)
	if err != nil {
		t.Fatalf("testbed: dial %s: %v", d.URL, err)
	}
	defer c.Close()
	return c.Bind(dn, password)
}

// randHex returns n random bytes as hex.
func randHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// RandomLogin returns a fresh login like "wbt3f9a1c2e" (11 characters, lower case).
func RandomLogin() string { return "wbt" + randHex(4) }

// RandomPassword returns a password accepted by both test policies (≥ 7 characters, upper, lower, digit and
// symbol, never containing a login).
func RandomPassword() string {
	var b [4]byte
	rand.Read(b[:])
	return fmt.Sprintf("Pw-%s-%04dQx", randHex(5), binary.BigEndian.Uint32(b[:])%10000)
}

func (o UserOptions) fill() (login, password, mail string) {
	login, password, mail = o.Login, o.Password, o.Mail
	if login == "" {
		login = RandomLogin()
	}
	if password == "" {
		password = RandomPassword()
	}
	if o.NoMail {
		mail = ""
	} else if mail == "" {
		mail = login + "@writeback.test"
	}
	return login, password, mail
}

// ADPassword encodes a password for AD's unicodePwd: in double quotes, UTF-16LE, no BOM.
func ADPassword(password string) string {
	u := utf16.Encode([]rune(`"` + password + `"`))
	b := make([]byte, 2*len(u))
	for i, r := range u {
		binary.LittleEndian.PutUint16(b[2*i:], r)
	}
	return string(b)
}

// NewADUser creates an enabled (or Disabled) user in OU=People of the Samba DC, as Administrator, and deletes it
// when the test ends.
func (e Env) NewADUser(t testing.TB, opts UserOptions) TestUser {
	t.Helper()
	login, password, mail := opts.fill()
	u := TestUser{
		Login:    login,
		DN:       "CN=" + ldap.EscapeDN(login) + "," + e.AD.PeopleDN,
		Password: password,
		Mail:     mail,
		UPN:      login + "@writeback.test",
	}
	uac := "512" // NORMAL_ACCOUNT
	if opts.Disabled {
		uac = "514" // NORMAL_ACCOUNT | ACCOUNTDISABLE
	}
	add := ldap.NewAddRequest(u.DN, nil)
	add.Attribute("objectClass", []string{"top", "person", "organizationalPerson", "user"})
	add.Attribute("sAMAccountName", []string{login})
	add.Attribute("userPrincipalName", []string{u.UPN})
	add.Attribute("givenName", []string{"Test"})
	add.Attribute("sn", []string{login})
	add.Attribute("displayName", []string{"Test " + login})
	if mail != "" {
		add.Attribute("mail", []string{mail})
	}
	if opts.Mobile != "" {
		add.Attribute("mobile", []string{opts.Mobile})
	}
	add.Attribute("unicodePwd", []string{ADPassword(password)})
	add.Attribute("userAccountControl", []string{uac})
	if opts.AdminCount {
		add.Attribute("adminCount", []string{"1"})
	}
	e.addEntry(t, e.AD, add, opts.Groups)
	return u
}

// NewLDAPUser creates an inetOrgPerson uid=<login> under ou=people of slapd, as the rootdn (the server hashes the
// password), and deletes it when the test ends.
func (e Env) NewLDAPUser(t testing.TB, opts UserOptions) TestUser {
	t.Helper()
	if opts.AdminCount {
		t.Fatalf("testbed: UserOptions.AdminCount exists only in AD")
	}
	login, password, mail := opts.fill()
	u := TestUser{
		Login:    login,
		DN:       "uid=" + ldap.EscapeDN(login) + "," + e.LDAP.PeopleDN,
		Password: password,
		Mail:     mail,
	}
	add := ldap.NewAddRequest(u.DN, nil)
	add.Attribute("objectClass", []string{"inetOrgPerson"})
	add.Attribute("uid", []string{login})
	add.Attribute("cn", []string{"Test " + login})
	add.Attribute("givenName", []string{"Test"})
	add.Attribute("sn", []string{login})
	add.Attribute("displayName", []string{"Test " + login})
	if mail != "" {
		add.Attribute("mail", []string{mail})
	}
	if opts.Mobile != "" {
		add.Attribute("mobile", []string{opts.Mobile})
	}
	add.Attribute("userPassword", []string{password})
	if opts.Disabled {
		add.Attribute("pwdAccountLockedTime", []string{"000001010000Z"})
	}
	e.addEntry(t, e.LDAP, add, opts.Groups)
	return u
}

// addEntry adds an entry as d's administrator, adds it to groups and registers its removal.
func (e Env) addEntry(t testing.TB, d Directory, add *ldap.AddRequest, groups []string) {
	t.Helper()
	c := e.AdminConn(t, d)
	if err := c.Add(add); err != nil {
		t.Fatalf("testbed: add %s: %v", add.DN, err)
	}
	// Registered before the group changes, so a failing group add still removes the entry. Cleanups run last-in
	// first-out: memberships are undone before the entry goes.
	e.cleanupDelete(t, d, add.DN)
	for _, g := range groups {
		mod := ldap.NewModifyRequest(g, nil)
		mod.Add("member", []string{add.DN})
		if err := c.Modify(mod); err != nil {
			t.Fatalf("testbed: add %s to group %s: %v", add.DN, g, err)
		}
		t.Cleanup(func() {
			// AD drops memberships of deleted objects itself; slapd (no refint overlay) keeps dangling members.
			mod := ldap.NewModifyRequest(g, nil)
			mod.Delete("member", []string{add.DN})
			if err := e.withAdmin(d, func(c *ldap.Conn) error { return c.Modify(mod) }); err != nil &&
				!ldap.IsErrorAnyOf(err, ldap.LDAPResultNoSuchObject, ldap.LDAPResultNoSuchAttribute) {
				t.Logf("testbed: cleanup: remove %s from %s: %v", add.DN, g, err)
			}
		})
	}
}

// cleanupDelete deletes dn when the test ends, on a fresh connection (the test's may be closed by then). An entry
// the test already deleted is fine.
func (e Env) cleanupDelete(t testing.TB, d Directory, dn string) {
	t.Cleanup(func() {
		err := e.withAdmin(d, func(c *ldap.Conn) error { return c.Del(ldap.NewDelRequest(dn, nil)) })
		if err != nil && !ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject) {
			t.Errorf("testbed: cleanup: delete %s: %v", dn, err)
		}
	})
}

func (e Env) withAdmin(d Directory, f func(*ldap.Conn) error) error {
	c, err := e.dial(d)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Bind(d.AdminDN, d.AdminPassword); err != nil {
		return err
	}
	return f(c)
}

// NewADGroup creates a global security group CN=<name> in OU=People (random name if empty), deleted when the test
// ends, and returns its DN. Pass it in UserOptions.Groups.
func (e Env) NewADGroup(t testing.TB, name string) string {
	t.Helper()
	if name == "" {
		name = "wbg" + randHex(4)
	}
	add := ldap.NewAddRequest("CN="+ldap.EscapeDN(name)+","+e.AD.PeopleDN, nil)
	add.Attribute("objectClass", []string{"top", "group"})
	add.Attribute("sAMAccountName", []string{name})
	e.addEntry(t, e.AD, add, nil)
	return add.DN
}

// NewLDAPGroup creates a groupOfNames cn=<name> under ou=people (random name if empty), deleted when the test ends,
// and returns its DN. groupOfNames needs at least one member, so the rootdn is a permanent placeholder member.
func (e Env) NewLDAPGroup(t testing.TB, name string) string {
	t.Helper()
	if name == "" {
		name = "wbg" + randHex(4)
	}
	add := ldap.NewAddRequest("cn="+ldap.EscapeDN(name)+","+e.LDAP.PeopleDN, nil)
	add.Attribute("objectClass", []string{"groupOfNames"})
	add.Attribute("cn", []string{name})
	add.Attribute("member", []string{e.LDAP.AdminDN})
	e.addEntry(t, e.LDAP, add, nil)
	return add.DN
}

// lockoutThreshold is the number of bad passwords after which both test directories lock an account.
const lockoutThreshold = 3

// badBinds makes lockoutThreshold simple binds with a wrong password and fails the test on any other outcome than
// "invalid credentials".
func (e Env) badBinds(t testing.TB, d Directory, u TestUser) {
	t.Helper()
	wrong := "Wrong-" + randHex(6) + "9"
	for i := 0; i < lockoutThreshold; i++ {
		err := e.BindAs(t, d, u.DN, wrong)
		if !ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials) {
			t.Fatalf("testbed: bad bind %d as %s: want invalid credentials (49), got %v", i+1, u.DN, err)
		}
	}
}

// LockAD locks u out of AD with wrong-password binds and fails the test unless the DC then reports it locked.
func (e Env) LockAD(t testing.TB, u TestUser) {
	t.Helper()
	e.badBinds(t, e.AD, u)
	if !e.ADLocked(t, u) {
		t.Fatalf("testbed: %s is not locked after %d bad binds", u.DN, lockoutThreshold)
	}
}

// LockLDAP locks u out of slapd with wrong-password binds and fails the test unless pwdAccountLockedTime is set.
func (e Env) LockLDAP(t testing.TB, u TestUser) {
	t.Helper()
	e.badBinds(t, e.LDAP, u)
	if !e.LDAPLocked(t, u) {
		t.Fatalf("testbed: %s is not locked after %d bad binds", u.DN, lockoutThreshold)
	}
}

// ADLocked reports whether AD considers u locked out now: bit UF_LOCKOUT (0x10) of the constructed
// msDS-User-Account-Control-Computed (a non-zero lockoutTime alone does not mean locked).
func (e Env) ADLocked(t testing.TB, u TestUser) bool {
	t.Helper()
	v := e.ReadAttr(t, e.AD, u.DN, "msDS-User-Account-Control-Computed")
	var n int64
	if _, err := fmt.Sscan(v, &n); err != nil {
		t.Fatalf("testbed: %s: msDS-User-Account-Control-Computed %q: %v", u.DN, v, err)
	}
	return n&0x10 != 0
}

// LDAPLocked reports whether slapd's ppolicy has locked u (pwdAccountLockedTime present, read as the rootdn).
func (e Env) LDAPLocked(t testing.TB, u TestUser) bool {
	t.Helper()
	return e.ReadAttr(t, e.LDAP, u.DN, "pwdAccountLockedTime") != ""
}

// ReadAttr returns the first value of attr on dn, read as d's administrator ("" when absent). Constructed
// attributes (msDS-User-Account-Control-Computed, msDS-ResultantPSO, …) work too: they are requested by name.
func (e Env) ReadAttr(t testing.TB, d Directory, dn, attr string) string {
	t.Helper()
	var res *ldap.SearchResult
	err := e.withAdmin(d, func(c *ldap.Conn) (err error) {
		res, err = c.Search(ldap.NewSearchRequest(dn, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 1, 10, false,
			"(objectClass=*)", []string{attr}, nil))
		return err
	})
	if err != nil {
		t.Fatalf("testbed: read %s of %s: %v", attr, dn, err)
	}
	if len(res.Entries) != 1 {
		t.Fatalf("testbed: read %s of %s: %d entries", attr, dn, len(res.Entries))
	}
	return res.Entries[0].GetAttributeValue(attr)
}

// AddADMember makes memberDN (a user or a group) a member of the AD group groupDN, as Administrator, and undoes it
// when the test ends. Use it to nest groups: AddADMember(t, outer, inner).
func (e Env) AddADMember(t testing.TB, groupDN, memberDN string) {
	t.Helper()
	mod := ldap.NewModifyRequest(groupDN, nil)
	mod.Add("member", []string{memberDN})
	if err := e.withAdmin(e.AD, func(c *ldap.Conn) error { return c.Modify(mod) }); err != nil {
		t.Fatalf("testbed: add %s to group %s: %v", memberDN, groupDN, err)
	}
	t.Cleanup(func() {
		mod := ldap.NewModifyRequest(groupDN, nil)
		mod.Delete("member", []string{memberDN})
		if err := e.withAdmin(e.AD, func(c *ldap.Conn) error { return c.Modify(mod) }); err != nil &&
			!ldap.IsErrorAnyOf(err, ldap.LDAPResultNoSuchObject, ldap.LDAPResultNoSuchAttribute, ldap.LDAPResultUnwillingToPerform) {
			t.Logf("testbed: cleanup: remove %s from %s: %v", memberDN, groupDN, err)
		}
	})
}

// SetADPrimaryGroup makes the AD group groupDN u's primary group (primaryGroupID = the group's RID), as
// Administrator: u becomes a member first, as AD requires. The primary group is Domain Users (513) again when the
// test ends. AD then no longer lists the group in u's memberOf: only primaryGroupID tells.
func (e Env) SetADPrimaryGroup(t testing.TB, u TestUser, groupDN string) {
	t.Helper()
	rid := e.ReadAttr(t, e.AD, groupDN, "primaryGroupToken")
	if rid == "" {
		t.Fatalf("testbed: %s has no primaryGroupToken (not a global group?)", groupDN)
	}
	e.AddADMember(t, groupDN, u.DN)
	set := func(v string) error {
		mod := ldap.NewModifyRequest(u.DN, nil)
		mod.Replace("primaryGroupID", []string{v})
		return e.withAdmin(e.AD, func(c *ldap.Conn) error { return c.Modify(mod) })
	}
	if err := set(rid); err != nil {
		t.Fatalf("testbed: set the primary group of %s to %s (RID %s): %v", u.DN, groupDN, rid, err)
	}
	t.Cleanup(func() {
		if err := set("513"); err != nil && !ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject) {
			t.Logf("testbed: cleanup: reset the primary group of %s: %v", u.DN, err)
		}
	})
}

// SelfSignedCAPEM returns a freshly made self-signed CA certificate in PEM
// (ECDSA P-256), one that issued neither test server's certificate: a CA an
// administrator might paste that is not the test CA.
func SelfSignedCAPEM(t testing.TB) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "someone else's CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

// SyncBuffer is a bytes.Buffer that a server's or a logger's goroutines may
// write to while a test reads it.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// PostgresOverride names an environment variable that, when set, is the PostgreSQL server tests use instead of the
// env file's WB_TEST_POSTGRES_URL (a superuser URL, e.g. a developer's own cluster next to a shared test bed that has
// none).
const PostgresOverride = "WRITEBACK_TEST_POSTGRES_URL"

// NewPostgresDB creates a fresh, empty PostgreSQL database of this test's own (a unique name, dropped with everything
// in it when the test ends) and returns its postgres:// URL, so tests on one server never see each other's rows.
// The server is $WRITEBACK_TEST_POSTGRES_URL, else the env file's. Without either the test is skipped, or fails when
// CI is set.
func (e Env) NewPostgresDB(t testing.TB) string {
	t.Helper()
	server := os.Getenv(PostgresOverride)
	if server == "" {
		server = e.PostgresURL
	}
	return newPostgresDB(t, server, e.Path)
}

// NewPostgresDB is Env.NewPostgresDB for tests that need no directory: it reads the env file only when
// $WRITEBACK_TEST_POSTGRES_URL is not set, and then only for WB_TEST_POSTGRES_URL.
func NewPostgresDB(t testing.TB) string {
	t.Helper()
	if server := os.Getenv(PostgresOverride); server != "" {
		return newPostgresDB(t, server, "")
	}
	server, _ := readEnvKey(EnvPath(), "WB_TEST_POSTGRES_URL")
	return newPostgresDB(t, server, EnvPath())
}

// readEnvKey returns one key of an env file ("" when the file or the key is missing).
func readEnvKey(path, key string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	for line := range strings.Lines(string(b)) {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), "="); ok && strings.TrimSpace(k) == key {
			return v, nil
		}
	}
	return "", nil
}

func newPostgresDB(t testing.TB, server, envPath string) string {
	t.Helper()
	if server == "" {
		msg := fmt.Sprintf("testbed: no PostgreSQL server: %s has no WB_TEST_POSTGRES_URL and %s is not set; run "+
			"`make test` (testbed/with.sh starts one) or point %s at a server of your own", envPath, PostgresOverride,
			PostgresOverride)
		if envPath == "" {
			msg = "testbed: no PostgreSQL server (" + PostgresOverride + " is empty)"
		}
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, server)
	if err != nil {
		t.Fatalf("testbed: connect to the PostgreSQL server: %v", err)
	}
	defer admin.Close(context.Background())
	name := "wbtest_" + randHex(8)
	if _, err := admin.Exec(ctx, `CREATE DATABASE `+name); err != nil {
		t.Fatalf("testbed: create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, server)
		if err != nil {
			t.Errorf("testbed: drop database %s: %v", name, err)
			return
		}
		defer c.Close(context.Background())
		// FORCE: a handle the test forgot to close must not keep the database.
		if _, err := c.Exec(ctx, `DROP DATABASE IF EXISTS `+name+` WITH (FORCE)`); err != nil {
			t.Errorf("testbed: drop database %s: %v", name, err)
		}
	})
	u, err := url.Parse(server)
	if err != nil {
		t.Fatalf("testbed: PostgreSQL server URL: %v", err)
	}
	u.Path = "/" + name
	return u.String()
}
