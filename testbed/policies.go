package testbed

import (
	"strconv"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// NewADPSO creates a fine-grained password policy (a Password Settings Object) on the Samba DC with the maximum
// password age maxAge, no lockout and the domain's length and complexity rules, applied to the groups and users
// appliesTo (precedence 50, ahead of the domain policy; the service accounts' own PSO has 1 but applies only to
// them). It is deleted when the test ends. Only those accounts' passwords expire sooner, so tests sharing the DC
// are not disturbed. It returns the PSO's DN.
func (e Env) NewADPSO(t testing.TB, maxAge time.Duration, appliesTo ...string) string {
	t.Helper()
	dn := "CN=wbpso" + randHex(4) + ",CN=Password Settings Container,CN=System," + e.AD.BaseDN
	add := ldap.NewAddRequest(dn, nil)
	add.Attribute("objectClass", []string{"msDS-PasswordSettings"})
	add.Attribute("msDS-PasswordSettingsPrecedence", []string{"50"})
	add.Attribute("msDS-PasswordReversibleEncryptionEnabled", []string{"FALSE"})
	add.Attribute("msDS-PasswordHistoryLength", []string{"0"})
	add.Attribute("msDS-PasswordComplexityEnabled", []string{"TRUE"})
	add.Attribute("msDS-MinimumPasswordLength", []string{"7"})
	add.Attribute("msDS-MinimumPasswordAge", []string{"0"})
	// AD intervals are negative counts of 100 ns.
	add.Attribute("msDS-MaximumPasswordAge", []string{strconv.FormatInt(-int64(maxAge/100), 10)})
	add.Attribute("msDS-LockoutThreshold", []string{"0"})
	add.Attribute("msDS-LockoutObservationWindow", []string{"-18000000000"})
	add.Attribute("msDS-LockoutDuration", []string{"-18000000000"})
	add.Attribute("msDS-PSOAppliesTo", appliesTo)
	e.addEntry(t, e.AD, add, nil)
	return dn
}

// NewLDAPPolicy creates a ppolicy entry of its own in slapd (ou=policies) with pwdMaxAge maxAge and no lockout, and
// gives it to users (pwdPolicySubentry), deleted when the test ends. Each user then gets a new random password
// (written back to the TestUser): slapd stamps pwdChangedTime on an add only when the policy in force ages
// passwords, which the default one does not, and the expiry counts from that stamp. It returns the policy's DN.
func (e Env) NewLDAPPolicy(t testing.TB, maxAge time.Duration, users ...*TestUser) string {
	t.Helper()
	dn := "cn=wbp" + randHex(4) + ",ou=policies," + e.LDAP.BaseDN
	add := ldap.NewAddRequest(dn, nil)
	add.Attribute("objectClass", []string{"device", "pwdPolicy"})
	add.Attribute("pwdAttribute", []string{"userPassword"})
	add.Attribute("pwdMaxAge", []string{strconv.FormatInt(int64(maxAge/time.Second), 10)})
	add.Attribute("pwdLockout", []string{"FALSE"})
	e.addEntry(t, e.LDAP, add, nil)
	c := e.AdminConn(t, e.LDAP)
	for _, u := range users {
		mod := ldap.NewModifyRequest(u.DN, nil)
		mod.Replace("pwdPolicySubentry", []string{dn})
		if err := c.Modify(mod); err != nil {
			t.Fatalf("testbed: set pwdPolicySubentry of %s: %v", u.DN, err)
		}
		// Cleanups run last-in first-out: the users (made before) are deleted after the policy would be, so
		// they stop naming it first.
		t.Cleanup(func() {
			mod := ldap.NewModifyRequest(u.DN, nil)
			mod.Delete("pwdPolicySubentry", nil)
			if err := e.withAdmin(e.LDAP, func(c *ldap.Conn) error { return c.Modify(mod) }); err != nil &&
				!ldap.IsErrorAnyOf(err, ldap.LDAPResultNoSuchObject, ldap.LDAPResultNoSuchAttribute) {
				t.Logf("testbed: cleanup: drop pwdPolicySubentry of %s: %v", u.DN, err)
			}
		})
		e.SetLDAPPassword(t, u)
	}
	return dn
}

// SetLDAPPassword gives u a new random password with the Password Modify operation, as the rootdn (slapd stamps
// pwdChangedTime), and writes it to u.Password.
func (e Env) SetLDAPPassword(t testing.TB, u *TestUser) {
	t.Helper()
	pw := RandomPassword()
	if _, err := e.AdminConn(t, e.LDAP).PasswordModify(ldap.NewPasswordModifyRequest(u.DN, "", pw)); err != nil {
		t.Fatalf("testbed: set the password of %s: %v", u.DN, err)
	}
	u.Password = pw
}

// SetADPassword gives u a new random password as Administrator (pwdLastSet becomes now) and writes it to
// u.Password.
func (e Env) SetADPassword(t testing.TB, u *TestUser) {
	t.Helper()
	pw := RandomPassword()
	mod := ldap.NewModifyRequest(u.DN, nil)
	mod.Replace("unicodePwd", []string{ADPassword(pw)})
	if err := e.AdminConn(t, e.AD).Modify(mod); err != nil {
		t.Fatalf("testbed: set the password of %s: %v", u.DN, err)
	}
	u.Password = pw
}
