package directory

import (
	"bytes"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/writeback/writeback/services/errs"
)

func validConfig() Config {
	c := Defaults(TypeAD, "DC=example,DC=com")
	c.URLs = []string{"ldaps://dc1.example.com", "ldap://dc2.example.com:389"}
	c.BindDN = "CN=svc,OU=Service,DC=example,DC=com"
	c.BindPassword = "Secret-Service-1"
	return c
}

func TestDefaults(t *testing.T) {
	ad := Defaults(TypeAD, "DC=example,DC=com")
	if ad.UserFilter != DefaultADUserFilter || len(ad.LoginAttributes) != 3 || ad.RecoveryEmailAttribute != "mail" ||
		ad.Timeout != 10*time.Second {
		t.Fatalf("AD defaults: %+v", ad)
	}
	// Every group AdminSDHolder covers, in the domain of the base DN.
	want := []string{
		"CN=Account Operators,CN=Builtin,DC=example,DC=com", "CN=Administrators,CN=Builtin,DC=example,DC=com",
		"CN=Backup Operators,CN=Builtin,DC=example,DC=com", "CN=Domain Admins,CN=Users,DC=example,DC=com",
		"CN=Domain Controllers,CN=Users,DC=example,DC=com", "CN=Enterprise Admins,CN=Users,DC=example,DC=com",
		"CN=Enterprise Key Admins,CN=Users,DC=example,DC=com", "CN=Key Admins,CN=Users,DC=example,DC=com",
		"CN=Print Operators,CN=Builtin,DC=example,DC=com", "CN=Read-only Domain Controllers,CN=Users,DC=example,DC=com",
		"CN=Replicator,CN=Builtin,DC=example,DC=com", "CN=Schema Admins,CN=Users,DC=example,DC=com",
		"CN=Server Operators,CN=Builtin,DC=example,DC=com",
	}
	if got := Defaults(TypeAD, "OU=People,DC=example,DC=com").ExcludedGroups; strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("AD default excluded groups:\n got %q\nwant %q", got, want)
	}
	if len(adProtectedDomainRIDs)+len(adProtectedBuiltinRIDs) != len(want) {
		t.Fatalf("%d protected RIDs, %d default groups", len(adProtectedDomainRIDs)+len(adProtectedBuiltinRIDs), len(want))
	}
	ol := Defaults(TypeOpenLDAP, "dc=example,dc=com")
	if ol.UserFilter != DefaultOpenLDAPUserFilter || strings.Join(ol.LoginAttributes, ",") != "uid,mail" ||
		len(ol.ExcludedGroups) != 0 || ol.BaseDNs[0] != "dc=example,dc=com" {
		t.Fatalf("OpenLDAP defaults: %+v", ol)
	}
	// Empty fields with a per-type default are filled in by New.
	c := Config{Type: TypeOpenLDAP}.withDefaults()
	if c.UserFilter != DefaultOpenLDAPUserFilter || c.Timeout != DefaultTimeout || c.RecoveryEmailAttribute != "mail" {
		t.Fatalf("withDefaults: %+v", c)
	}
}

func TestValidate(t *testing.T) {
	if err := validConfig().Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	tests := []struct {
		name  string
		edit  func(*Config)
		field string
		want  string // part of the message
	}{
		{"no type", func(c *Config) { c.Type = "" }, "type", "Choose"},
		{"bad type", func(c *Config) { c.Type = "novell" }, "type", "Unknown"},
		{"no urls", func(c *Config) { c.URLs = nil }, "urls", "at least one"},
		{"http url", func(c *Config) { c.URLs = []string{"https://dc1"} }, "urls", "ldaps://"},
		{"no scheme", func(c *Config) { c.URLs = []string{"dc1.example.com"} }, "urls", "not a server URL"},
		{"bad port", func(c *Config) { c.URLs = []string{"ldaps://dc1:99999"} }, "urls", "port"},
		{"path", func(c *Config) { c.URLs = []string{"ldaps://dc1/dc=x"} }, "urls", "only the scheme"},
		{"credentials in url", func(c *Config) { c.URLs = []string{"ldaps://a:b@dc1"} }, "urls", "only the scheme"},
		{"ca without certificate", func(c *Config) { c.CAPEM = "hello" }, "ca", "no certificate"},
		{"ca garbage block", func(c *Config) {
			c.CAPEM = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
		}, "ca", "not a valid X.509 certificate"},
		{"no bind dn", func(c *Config) { c.BindDN = " " }, "bind_dn", "Enter"},
		{"bad bind dn", func(c *Config) { c.BindDN = "svc" }, "bind_dn", "not a valid DN"},
		{"no bind password", func(c *Config) { c.BindPassword = "" }, "bind_password", "anonymous"},
		{"no base", func(c *Config) { c.BaseDNs = nil }, "base_dns", "at least one"},
		{"bad base", func(c *Config) { c.BaseDNs = []string{"people"} }, "base_dns", "not a valid DN"},
		{"filter unbalanced", func(c *Config) { c.UserFilter = "(&(objectClass=user)" }, "user_filter", "does not parse"},
		{"filter without parens", func(c *Config) { c.UserFilter = "objectClass=user" }, "user_filter", "parentheses"},
		{"bad login attribute", func(c *Config) { c.LoginAttributes = []string{"uid", "mail)(x"} }, "login_attributes", "not an attribute"},
		{"duplicate login attribute", func(c *Config) { c.LoginAttributes = []string{"uid", "UID"} }, "login_attributes", "twice"},
		{"bad recovery attribute", func(c *Config) { c.RecoveryEmailAttribute = "mail address" }, "recovery_email_attribute", "not an attribute"},
		{"bad excluded group", func(c *Config) { c.ExcludedGroups = []string{"Domain Admins"} }, "excluded_groups", "not a valid group DN"},
		{"timeout too small", func(c *Config) { c.Timeout = time.Millisecond }, "timeout", "between"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig()
			tt.edit(&c)
			err := c.Validate()
			if errs.KindOf(err) != errs.Invalid {
				t.Fatalf("want Invalid, got %v", err)
			}
			f := errs.FieldsOf(err)
			if !strings.Contains(f[tt.field], tt.want) {
				t.Fatalf("field %q = %q, want it to contain %q (all: %v)", tt.field, f[tt.field], tt.want, f)
			}
			if len(f) != 1 {
				t.Fatalf("more fields than %q: %v", tt.field, f)
			}
		})
	}
	t.Run("plain ldap without StartTLS may be saved", func(t *testing.T) {
		c := validConfig()
		c.URLs, c.StartTLS = []string{"ldap://dc1.example.com"}, false
		if err := c.Validate(); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("empty optional fields", func(t *testing.T) {
		c := validConfig()
		c.UserFilter, c.LoginAttributes, c.RecoveryEmailAttribute, c.Timeout, c.ExcludedGroups = "", nil, "", 0, nil
		if err := c.Validate(); err != nil {
			t.Fatal(err)
		}
	})
}

func TestParseServerURL(t *testing.T) {
	tests := []struct{ in, hostport, host, scheme string }{
		{"ldaps://dc1.example.com", "dc1.example.com:636", "dc1.example.com", "ldaps"},
		{"ldap://dc1.example.com", "dc1.example.com:389", "dc1.example.com", "ldap"},
		{"LDAPS://127.0.0.2:1636/", "127.0.0.2:1636", "127.0.0.2", "ldaps"},
		{"ldaps://[::1]", "[::1]:636", "::1", "ldaps"},
	}
	for _, tt := range tests {
		u, err := parseServerURL(tt.in)
		if err != nil || u.hostport != tt.hostport || u.host != tt.host || u.scheme != tt.scheme {
			t.Errorf("parseServerURL(%q) = %+v, %v", tt.in, u, err)
		}
	}
}

func TestEncodeUnicodePwd(t *testing.T) {
	tests := []struct{ pw, hex string }{
		{"", "22002200"},
		{"ab1", "22006100620031002200"},
		{"Pä", "22005000e4002200"},
		{"Ω", "2200a9032200"},
		{"😀", "22003dd800de2200"}, // a surrogate pair
	}
	for _, tt := range tests {
		if got := hex.EncodeToString([]byte(encodeUnicodePwd(tt.pw))); got != tt.hex {
			t.Errorf("encodeUnicodePwd(%q) = %s, want %s", tt.pw, got, tt.hex)
		}
	}
	// The non-ASCII test password: quoted, 2 bytes per UTF-16 unit, no BOM.
	got := []byte(encodeUnicodePwd("Pässwörd-Ω1x"))
	if len(got) != 2*(12+2) || got[0] != '"' || got[1] != 0 || got[len(got)-2] != '"' {
		t.Fatalf("encodeUnicodePwd: % x", got)
	}
}

func TestCheckPassword(t *testing.T) {
	for _, pw := range []string{"", "a\x00b", string([]byte{0xff, 0xfe}), strings.Repeat("x", 257)} {
		if err := checkPassword("reset", "new password", pw); errs.KindOf(err) != errs.Invalid {
			t.Errorf("checkPassword(%q) = %v, want Invalid", pw, err)
		}
	}
	if err := checkPassword("reset", "new password", "Pässwörd-Ω1x"); err != nil {
		t.Fatal(err)
	}
}

func TestFormatGUID(t *testing.T) {
	b, _ := hex.DecodeString("f182cb4c7f914344803403b6cceaa8d3")
	if got, want := formatGUID(b), "4ccb82f1-917f-4443-8034-03b6cceaa8d3"; got != want {
		t.Fatalf("formatGUID = %s, want %s", got, want)
	}
}

func TestTimes(t *testing.T) {
	if got := parseFiletime("116444736000000000"); !got.Equal(time.Unix(0, 0)) {
		t.Errorf("epoch: %v", got)
	}
	for _, never := range []string{"0", "9223372036854775807", "", "x"} {
		if !parseFiletime(never).IsZero() {
			t.Errorf("parseFiletime(%q) not zero", never)
		}
	}
	if got := parseADInterval("-18000000000"); got != 30*time.Minute {
		t.Errorf("lockoutDuration: %v", got)
	}
	if got := parseADInterval("-9223372036854775808"); got != 0 {
		t.Errorf("never: %v", got)
	}
	if got, ok := parseGeneralizedTime("20241125101500Z"); !ok || !got.Equal(time.Date(2024, 11, 25, 10, 15, 0, 0, time.UTC)) {
		t.Errorf("generalized time: %v %v", got, ok)
	}
	if _, ok := parseGeneralizedTime("20241125101500.123Z"); !ok {
		t.Errorf("fractional generalized time not parsed")
	}
}

func TestADCodes(t *testing.T) {
	code, ok := adErrorCode("0000052D: Constraint violation - check_password_restrictions: the password is too short.")
	if !ok || code != adErrPasswordRestriction {
		t.Errorf("adErrorCode: %x %v", code, ok)
	}
	if _, ok := adErrorCode("Password fails quality checking policy"); ok {
		t.Errorf("adErrorCode matched an OpenLDAP text")
	}
	data, ok := adBindData("80090308: LdapErr: DSID-0C0903A9, comment: AcceptSecurityContext error, data 775, v1db1")
	if !ok || data != 0x775 {
		t.Errorf("adBindData: %x %v", data, ok)
	}
}

func TestClassifyBind(t *testing.T) {
	adErr := func(data string) error {
		return ldap.NewError(ldap.LDAPResultInvalidCredentials,
			errors.New("80090308: LdapErr: DSID-0C09041C, comment: AcceptSecurityContext error, data "+data+", v4563"))
	}
	pp := func(code int8) *ldap.ControlBeheraPasswordPolicy {
		c := ldap.NewControlBeheraPasswordPolicy()
		c.Error = code
		return c
	}
	tests := []struct {
		name       string
		t          Type
		err        error
		pp         *ldap.ControlBeheraPasswordPolicy
		code       Code
		passwordOK bool
	}{
		{"52e", TypeAD, adErr("52e"), nil, CodeBadPassword, false},
		{"525", TypeAD, adErr("525"), nil, CodeNotFound, false},
		{"530", TypeAD, adErr("530"), nil, CodeDisabled, false},
		{"532", TypeAD, adErr("532"), nil, CodeExpired, true},
		{"533", TypeAD, adErr("533"), nil, CodeDisabled, false},
		{"701", TypeAD, adErr("701"), nil, CodeDisabled, false},
		{"773", TypeAD, adErr("773"), nil, CodeExpired, true},
		{"775", TypeAD, adErr("775"), nil, CodeLocked, false},
		{"ppolicy locked", TypeOpenLDAP, ldap.NewError(49, errors.New("")), pp(1), CodeLocked, false},
		{"ppolicy expired", TypeOpenLDAP, ldap.NewError(49, errors.New("")), pp(0), CodeExpired, false},
		{"plain 49", TypeOpenLDAP, ldap.NewError(49, errors.New("")), nil, CodeBadPassword, false},
		{"strong auth", TypeAD, ldap.NewError(8, errors.New("00002028: Strong(er) authentication required")), nil, CodeInsecure, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bf := classifyBind(tt.t, tt.err, tt.pp)
			if bf.code != tt.code || bf.passwordOK != tt.passwordOK || bf.reason == "" {
				t.Fatalf("classifyBind = %+v, want %s (passwordOK %t)", bf, tt.code, tt.passwordOK)
			}
		})
	}
}

func TestExplainPolicy(t *testing.T) {
	p := Policy{MinLength: 7, Complexity: true, HistoryLength: 24, MinAge: 24 * time.Hour}
	now := time.Date(2025, 1, 2, 12, 0, 0, 0, time.UTC)
	names := []string{"alice", "Alice Smith-Jones"}
	tests := []struct {
		name, pw string
		change   bool
		lastSet  time.Time
		rule     string
		msg      string
	}{
		{"short", "Ab1-x", false, time.Time{}, "length", "too short: at least 7 characters"},
		{"short counts characters not bytes", "Ää1-Ω", false, time.Time{}, "length", "at least 7"},
		{"lower only", "abcdefghij", false, time.Time{}, "complexity", "not complex enough: use three of upper case, lower case, digits and symbols"},
		{"two classes", "abcdefGHIJ", false, time.Time{}, "complexity", "not complex enough"},
		{"contains account name", "xxALICE-99", false, time.Time{}, "name", "account name"},
		{"contains part of the full name", "Smith-2024x", false, time.Time{}, "name", "full name"},
		{"non-ASCII complex", "Pässwörd-Ω1x", false, time.Time{}, "", "does not meet the password policy"},
		{"too recent", "Fine-Passw0rd", true, now.Add(-time.Hour), "age", "too recently: you can change it again after"},
		{"old enough: history left", "Fine-Passw0rd", true, now.Add(-48 * time.Hour), "", "does not meet the password policy"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ex := explainPolicy(p, tt.pw, names, tt.change, tt.lastSet, now)
			if ex.rule != tt.rule || !strings.Contains(ex.text(), tt.msg) {
				t.Fatalf("explainPolicy(%q) = %+v, want rule %q and %q", tt.pw, ex, tt.rule, tt.msg)
			}
		})
	}
}

func TestExplainPPolicy(t *testing.T) {
	p := Policy{MinLength: 9, MinAge: time.Hour}
	last := time.Date(2025, 1, 2, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		code int8
		want Code
		msg  string
	}{
		{0, CodeExpired, "expired"},
		{1, CodeLocked, "locked"},
		{5, CodePolicy, "quality"},
		{6, CodePolicy, "too short: at least 9 characters"},
		{7, CodePolicy, "change it again after"},
		{8, CodePolicy, "not used recently"},
	}
	for _, tt := range tests {
		code, ex := explainPPolicy(tt.code, p, last)
		if code != tt.want || !strings.Contains(ex.text(), tt.msg) {
			t.Errorf("explainPPolicy(%d) = %s %+v", tt.code, code, ex)
		}
	}
}

func TestGenericClassification(t *testing.T) {
	ctx := t.Context()
	tests := []struct {
		name string
		err  error
		code Code
		kind errs.Kind
	}{
		{"network", ldap.NewError(ldap.ErrorNetwork, errors.New("connection closed")), CodeUnavailable, errs.Unavailable},
		{"no such object", ldap.NewError(32, errors.New("")), CodeNotFound, errs.NotFound},
		{"insufficient access", ldap.NewError(50, errors.New("")), CodeNotPermitted, errs.Forbidden},
		{"AD needs TLS", ldap.NewError(53, errors.New("0000001F: SvcErr: DSID-031A12D2, problem 5003 (WILL_NOT_PERFORM)")), CodeInsecure, errs.Forbidden},
		{"busy", ldap.NewError(51, errors.New("")), CodeUnavailable, errs.Unavailable},
		{"other", ldap.NewError(80, errors.New("odd")), CodeInternal, errs.Internal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := generic(newOpError("reset", "ldaps://dc1", tt.err), ctx)
			var oe *OpError
			if !errors.As(err, &oe) || oe.Code != tt.code || err.Kind != tt.kind || oe.Server != "ldaps://dc1" {
				t.Fatalf("generic = %v (kind %s)", err, err.Kind)
			}
			var le *ldap.Error
			if !errors.As(err, &le) {
				t.Fatalf("the ldap error is not reachable with errors.As")
			}
		})
	}
	for _, c := range []Code{CodePolicy, CodeLocked, CodeDisabled, CodeExpired, CodeNotPermitted, CodeInsecure, CodeUnavailable,
		CodeNotFound, CodeAmbiguous, CodeConflict, CodeProtected, CodeBadPassword, CodeCertificate, CodeServiceAccount, CodeInvalid} {
		if kindOf(c) == errs.Internal {
			t.Errorf("code %s has no kind", c)
		}
	}
}

func TestOpErrorText(t *testing.T) {
	oe := &OpError{Op: "authenticate", Server: "ldaps://dc1", Code: CodeExpired, Rule: "must change",
		Err: ldap.NewError(ldap.LDAPResultInvalidCredentials, nil)}
	if got := oe.Error(); !strings.Contains(got, "LDAP Result Code 49") || !strings.Contains(got, "ldaps://dc1") {
		t.Fatalf("Error() = %q", got)
	}
	oe = newOpError("reset", "ldaps://dc1", ldap.NewError(19, errors.New("0000052D: Constraint violation")))
	if got := oe.Error(); strings.Count(got, "0000052D") != 1 || oe.LDAPResult != 19 {
		t.Fatalf("Error() = %q", got)
	}
}

func TestTLSFailure(t *testing.T) {
	cert := &x509.Certificate{DNSNames: []string{"dc1.example.com"}}
	if r := tlsFailure(x509.UnknownAuthorityError{}, "dc1"); !strings.Contains(r, "certificate signed by unknown authority — add your CA under Trusted CA certificates") {
		t.Errorf("unknown authority: %q", r)
	}
	if r := tlsFailure(fmt.Errorf("tls: %w", x509.HostnameError{Certificate: cert, Host: "10.0.0.1"}), "10.0.0.1"); !strings.Contains(r, "not valid for 10.0.0.1 (it is for dc1.example.com)") {
		t.Errorf("hostname: %q", r)
	}
	if r := tlsFailure(errors.New("connection reset"), "dc1"); r != "" {
		t.Errorf("not a certificate problem: %q", r)
	}
}

// TestNoPasswordInStrings: the service account's password stays out of every
// printed form of the configuration.
func TestNoPasswordInStrings(t *testing.T) {
	c := validConfig()
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("config", "cfg", c)
	for _, s := range []string{c.String(), fmt.Sprintf("%v", c), fmt.Sprintf("%+v", c), fmt.Sprintf("%#v", c), buf.String()} {
		if strings.Contains(s, c.BindPassword) {
			t.Errorf("password printed: %s", s)
		}
	}
	if !strings.Contains(c.String(), "BindPassword: set") {
		t.Errorf("String: %s", c.String())
	}
}

func TestNewRejectsInvalid(t *testing.T) {
	c := validConfig()
	c.URLs = nil
	if _, err := New(c, nil); errs.KindOf(err) != errs.Invalid {
		t.Fatalf("New: %v", err)
	}
	cl, err := New(validConfig(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !cl.servers[1].startTLS || cl.servers[0].startTLS || cl.servers[1].plain {
		t.Fatalf("servers: %+v %+v", cl.servers[0], cl.servers[1])
	}
	cl.Close()
	if _, _, err := cl.Find(t.Context(), "x"); errs.KindOf(err) != errs.Unavailable {
		t.Fatalf("Find after Close: %v", err)
	}
}

func TestPolicyString(t *testing.T) {
	p := Policy{MinLength: 7, Complexity: true, HistoryLength: 24, MaxAge: 42 * 24 * time.Hour, LockoutThreshold: 3, LockoutDuration: 30 * time.Minute}
	if got := p.String(); got != "minimum length 7, complexity on, history 24, minimum age none, maximum age 42 days, lockout after 3 bad passwords for 30 minutes" {
		t.Fatalf("String: %s", got)
	}
}

func TestSID(t *testing.T) {
	// Backup Operators and a domain's Domain Admins, as the test DC stores them.
	for _, tt := range []struct {
		b64, want string
	}{
		{"AQIAAAAAAAUgAAAAJwIAAA==", "S-1-5-32-551"},
		{"AQUAAAAAAAUVAAAA60Myydk3s89QUgBSAAIAAA==", "S-1-5-21-3375514603-3484628953-1375752784-512"},
	} {
		b, _ := base64.StdEncoding.DecodeString(tt.b64)
		s, ok := parseSID(b)
		if !ok || s.String() != tt.want || !bytes.Equal(s.bytes(), b) {
			t.Errorf("parseSID(%s) = %v %v, bytes %x; want %s", tt.b64, s, ok, s.bytes(), tt.want)
		}
	}
	dom, _ := parseSID([]byte{1, 4, 0, 0, 0, 0, 0, 5, 21, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0})
	if got := dom.child(512).String(); got != "S-1-5-21-1-2-3-512" {
		t.Errorf("child: %s", got)
	}
	if got := builtinSID.child(544).filterValue(); got != `\01\02\00\00\00\00\00\05\20\00\00\00\20\02\00\00` {
		t.Errorf("filterValue: %s", got)
	}
	for _, bad := range [][]byte{nil, {1}, {2, 1, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0}, {1, 2, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0}} {
		if _, ok := parseSID(bad); ok {
			t.Errorf("parseSID(%x) accepted", bad)
		}
	}
}

func TestSameDN(t *testing.T) {
	for _, tt := range []struct {
		a, b string
		want bool
	}{
		{"CN=svc,CN=Users,DC=x,DC=y", "cn=svc, cn=users, dc=x, dc=y", true},
		{"CN=svc,CN=Users,DC=x,DC=y", "CN=svc2,CN=Users,DC=x,DC=y", false},
		{"CN=a\\,b,DC=x", "CN=a\\2Cb,DC=x", true},
		{"not a dn", "NOT A DN", true},
	} {
		if got := sameDN(tt.a, tt.b); got != tt.want {
			t.Errorf("sameDN(%q, %q) = %v", tt.a, tt.b, got)
		}
	}
}
