// Package directory writes passwords and unlocks into an on-premises directory:
// Active Directory (including Samba AD) and OpenLDAP with the ppolicy overlay,
// over LDAPS or StartTLS only.
//
// A Client finds a user by one of its login attributes, reads the state that
// matters for self-service (locked, disabled, expired, must change, protected),
// resets or changes the password and unlocks the account. Every operation runs
// on one server from search to write, so the write is verified against the
// replica that accepted it; the next configured URL is only tried when a server
// cannot be reached.
//
// Every error returned is an *errs.Error whose Message is safe to show and
// whose Cause is an *OpError carrying the LDAP result code, the server's
// diagnostic and the server used, for the audit log. Passwords never appear in
// errors, log lines or the String form of any type here.
package directory

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/writeback/writeback/services/errs"
	"github.com/writeback/writeback/services/i18n"
)

// Type names the kind of directory a Client talks to.
type Type string

// The directory types.
const (
	// TypeAD is Microsoft Active Directory or Samba AD: passwords go to
	// unicodePwd, locks to lockoutTime.
	TypeAD Type = "ad"
	// TypeOpenLDAP is OpenLDAP slapd with the ppolicy overlay: passwords go
	// through the Password Modify extended operation.
	TypeOpenLDAP Type = "openldap"
)

// Default user filters and the default timeout.
const (
	DefaultADUserFilter       = "(&(objectCategory=person)(objectClass=user)(!(objectClass=computer)))"
	DefaultOpenLDAPUserFilter = "(objectClass=inetOrgPerson)"
	DefaultTimeout            = 10 * time.Second
)

// Config describes how to reach and use one directory.
type Config struct {
	// Type is TypeAD or TypeOpenLDAP.
	Type Type
	// URLs are tried in order; a later one is used only when an earlier one
	// cannot be reached. Each is ldaps://host[:port] or ldap://host[:port].
	URLs []string
	// StartTLS upgrades ldap:// URLs with StartTLS. Without it an ldap:// URL
	// may be saved, but nothing that sends a password is done over it.
	StartTLS bool
	// CAPEM holds the certificates of the CAs trusted for the servers' TLS
	// certificates; empty means the system roots.
	CAPEM string
	// BindDN and BindPassword are the portal's service account.
	BindDN       string
	BindPassword string
	// BaseDNs are the subtrees users are searched in (and limited to).
	BaseDNs []string
	// UserFilter narrows the search to user entries; empty means the default
	// of the type.
	UserFilter string
	// LoginAttributes are the attributes a login is matched against; empty
	// means the defaults of the type. The first one present on the entry is
	// the user's Login.
	LoginAttributes []string
	// RecoveryEmailAttribute holds the address recovery mail is sent to;
	// empty means mail.
	RecoveryEmailAttribute string
	// MobileAttribute holds the mobile number text message codes are sent
	// to; empty means mobile.
	MobileAttribute string
	// ExcludedGroups are DNs of groups whose members (nested members and
	// primary group on AD) the portal never resets, unlocks or changes. On
	// AD the protected groups AdminSDHolder covers are left alone whatever
	// this says (they are found by their well-known SIDs), as are accounts
	// with adminCount=1; the service account is left alone everywhere.
	ExcludedGroups []string
	// Timeout bounds each operation, failover included; zero means
	// DefaultTimeout.
	Timeout time.Duration
}

// Defaults returns a configuration with the usual settings of a directory
// type whose users live under baseDN. URLs and the service account are left
// for the caller.
func Defaults(t Type, baseDN string) Config {
	c := Config{
		Type:                   t,
		StartTLS:               true,
		BaseDNs:                []string{baseDN},
		RecoveryEmailAttribute: "mail",
		MobileAttribute:        "mobile",
		Timeout:                DefaultTimeout,
	}
	switch t {
	case TypeAD:
		c.UserFilter = DefaultADUserFilter
		c.LoginAttributes = []string{"sAMAccountName", "userPrincipalName", "mail"}
		c.ExcludedGroups = DefaultADExcludedGroups(DomainDN(baseDN))
	case TypeOpenLDAP:
		c.UserFilter = DefaultOpenLDAPUserFilter
		c.LoginAttributes = []string{"uid", "mail"}
	}
	return c
}

// withDefaults fills the fields that have a per-type default and were left empty.
func (c Config) withDefaults() Config {
	d := Defaults(c.Type, "")
	if c.UserFilter == "" {
		c.UserFilter = d.UserFilter
	}
	if len(c.LoginAttributes) == 0 {
		c.LoginAttributes = d.LoginAttributes
	}
	if c.RecoveryEmailAttribute == "" {
		c.RecoveryEmailAttribute = "mail"
	}
	if c.MobileAttribute == "" {
		c.MobileAttribute = "mobile"
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	return c
}

// String describes the configuration without the service account's password.
func (c Config) String() string {
	pw := "not set"
	if c.BindPassword != "" {
		pw = "set"
	}
	return fmt.Sprintf("directory.Config{Type: %s, URLs: %v, StartTLS: %t, BindDN: %q, BindPassword: %s, BaseDNs: %q, Timeout: %s}",
		c.Type, c.URLs, c.StartTLS, c.BindDN, pw, c.BaseDNs, c.Timeout)
}

// GoString keeps %#v from printing the service account's password.
func (c Config) GoString() string { return c.String() }

// LogValue keeps slog from printing the service account's password.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("type", string(c.Type)),
		slog.Any("urls", c.URLs),
		slog.Bool("start_tls", c.StartTLS),
		slog.String("bind_dn", c.BindDN),
		slog.Bool("bind_password_set", c.BindPassword != ""),
		slog.Any("base_dns", c.BaseDNs),
	)
}

// attrName matches an attribute description: a name or a numeric OID,
// optionally with options (;binary).
var attrName = regexp.MustCompile(`^(?:[A-Za-z][A-Za-z0-9-]*|[0-9]+(?:\.[0-9]+)+)(?:;[A-Za-z0-9-]+)*$`)

// Validate checks the configuration and returns an *errs.Error of kind
// Invalid naming each field with a problem, or nil. An ldap:// URL without
// StartTLS is accepted here; operations refuse it (CodeInsecure).
func (c Config) Validate() error {
	f := map[string]errs.Text{}
	switch c.Type {
	case TypeAD, TypeOpenLDAP:
	case "":
		f["type"] = errs.Textf("Choose the type of directory: Active Directory or OpenLDAP.")
	default:
		f["type"] = errs.Textf("Unknown directory type %q: choose Active Directory or OpenLDAP.", string(c.Type))
	}

	if len(c.URLs) == 0 {
		f["urls"] = errs.Textf("Add at least one server URL, such as ldaps://dc1.example.com.")
	}
	for _, raw := range c.URLs {
		if _, err := parseServerURL(raw); err != nil {
			f["urls"] = errs.Textf("%s", err.Error()) // the parser's own words, English
			break
		}
	}

	if strings.TrimSpace(c.CAPEM) != "" {
		if _, err := parseCAPEM(c.CAPEM); err != nil {
			f["ca"] = errs.Textf("%s", err.Error())
		}
	}

	if strings.TrimSpace(c.BindDN) == "" {
		f["bind_dn"] = errs.Textf("Enter the DN of the service account the portal signs in as.")
	} else if _, err := ldap.ParseDN(c.BindDN); err != nil {
		f["bind_dn"] = errs.Textf("This is not a valid DN (for example CN=svc-writeback,OU=Service,DC=example,DC=com).")
	}
	if c.BindPassword == "" {
		f["bind_password"] = errs.Textf("Enter the service account's password; without one the directory would treat the portal as anonymous.")
	}

	if len(c.BaseDNs) == 0 {
		f["base_dns"] = errs.Textf("Add at least one base DN to search users under.")
	}
	for _, b := range c.BaseDNs {
		if d, err := ldap.ParseDN(b); err != nil || strings.TrimSpace(b) == "" || len(d.RDNs) == 0 {
			f["base_dns"] = errs.Textf("%q is not a valid DN.", b)
			break
		}
	}

	if c.UserFilter != "" {
		if !strings.HasPrefix(strings.TrimSpace(c.UserFilter), "(") {
			f["user_filter"] = errs.Textf("The filter must be enclosed in parentheses, for example (objectClass=inetOrgPerson).")
		} else if _, err := ldap.CompileFilter(c.UserFilter); err != nil {
			f["user_filter"] = errs.Textf("The filter does not parse; check the parentheses and the attribute=value pairs.")
		}
	}

	seen := map[string]bool{}
	for _, a := range c.LoginAttributes {
		if !attrName.MatchString(a) {
			f["login_attributes"] = errs.Textf("%q is not an attribute name.", a)
			break
		}
		if seen[strings.ToLower(a)] {
			f["login_attributes"] = errs.Textf("%q is listed twice.", a)
			break
		}
		seen[strings.ToLower(a)] = true
	}

	if c.RecoveryEmailAttribute != "" && !attrName.MatchString(c.RecoveryEmailAttribute) {
		f["recovery_email_attribute"] = errs.Textf("%q is not an attribute name.", c.RecoveryEmailAttribute)
	}
	if c.MobileAttribute != "" && !attrName.MatchString(c.MobileAttribute) {
		f["mobile_attribute"] = errs.Textf("%q is not an attribute name.", c.MobileAttribute)
	}

	for _, g := range c.ExcludedGroups {
		if d, err := ldap.ParseDN(g); err != nil || len(d.RDNs) == 0 {
			f["excluded_groups"] = errs.Textf("%q is not a valid group DN.", g)
			break
		}
	}

	if c.Timeout != 0 && (c.Timeout < time.Second || c.Timeout > 5*time.Minute) {
		f["timeout"] = errs.Textf("The timeout must be between 1 second and 5 minutes.")
	}

	if len(f) > 0 {
		return errs.FieldTexts(f)
	}
	return nil
}

// serverURL is a parsed, checked server URL.
type serverURL struct {
	raw      string
	scheme   string // ldap or ldaps
	host     string // without port, for TLS ServerName
	hostport string
}

// parseServerURL checks one server URL and returns its parts. Its error text
// is safe to show.
func parseServerURL(raw string) (serverURL, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || u.Host == "" {
		return serverURL{}, fmt.Errorf("%q is not a server URL; write it as ldaps://host or ldaps://host:636", raw)
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "ldap" && scheme != "ldaps" {
		return serverURL{}, fmt.Errorf("%q: the URL must start with ldaps:// (or ldap:// with StartTLS)", raw)
	}
	if u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return serverURL{}, fmt.Errorf("%q: give only the scheme, host and port, for example ldaps://dc1.example.com:636", raw)
	}
	host, port := u.Hostname(), u.Port()
	if host == "" {
		return serverURL{}, fmt.Errorf("%q has no host name", raw)
	}
	if port == "" {
		port = "389"
		if scheme == "ldaps" {
			port = "636"
		}
	} else if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return serverURL{}, fmt.Errorf("%q: the port must be a number from 1 to 65535", raw)
	}
	return serverURL{raw: strings.TrimSpace(raw), scheme: scheme, host: host, hostport: net.JoinHostPort(host, port)}, nil
}

// parseCAPEM reads the certificates in pemText. Its error text is safe to show.
func parseCAPEM(pemText string) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	rest := []byte(pemText)
	n := 0
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d is not a valid X.509 certificate; paste it again, or export it anew from your CA", n+1)
		}
		pool.AddCert(cert)
		n++
	}
	if n == 0 {
		return nil, fmt.Errorf("no certificate found: paste the CA certificate(s) in PEM form, starting with -----BEGIN CERTIFICATE-----")
	}
	return pool, nil
}

// User is the state of one directory account as the portal needs it.
type User struct {
	// ID is stable across renames and moves: the objectGUID (AD, as a GUID
	// string) or the entryUUID (OpenLDAP).
	ID string
	// DN is the entry's DN as the directory returned it.
	DN string
	// Login is the value of the first login attribute present.
	Login       string
	DisplayName string
	// Email is the value of the recovery e-mail attribute.
	Email string
	// Mobile is the value of the mobile number attribute, as the directory
	// holds it (not normalised).
	Mobile string `json:",omitempty"`
	// Locked is true while the directory refuses sign-ins after too many bad
	// passwords.
	Locked bool
	// Disabled is true for a disabled account (AD) or one locked by an
	// administrator (OpenLDAP pwdAccountLockedTime 000001010000Z).
	Disabled bool
	// PasswordExpired is true once the password is older than the maximum
	// age; on AD also while a change is required (pwdLastSet=0).
	PasswordExpired bool
	// MustChange is true when the password must be changed at next sign-in.
	MustChange bool
	// Protected accounts are kept out of self-service; ProtectedReason says why.
	Protected       bool
	ProtectedReason string
	// LockedUntil is when the lock ends; zero when unknown or permanent.
	LockedUntil time.Time
	// PasswordLastSet is zero when unknown or when a change is required.
	PasswordLastSet time.Time
	// PasswordExpires is when the password expires: AD's constructed
	// msDS-UserPasswordExpiryTimeComputed, OpenLDAP's pwdChangedTime plus
	// the applicable policy's pwdMaxAge. Zero when it never expires, when
	// a change is required, or when it was not read.
	PasswordExpires time.Time

	// policySource is the DN of the user's own password policy (AD
	// msDS-ResultantPSO, OpenLDAP pwdPolicySubentry), empty for the domain's
	// or default one; policyKnown tells it was read with the rest, so Policy
	// need not read the user again.
	policySource string
	policyKnown  bool
}

// AfterReset is u as a successful reset with opt leaves it, without reading
// it again: the password set at now (or to be changed at next sign-in with
// opt.MustChange), no longer expired, and unlocked with opt.Unlock.
func (u User) AfterReset(opt ResetOptions, now time.Time) User {
	u.PasswordExpired, u.MustChange = false, opt.MustChange
	u.PasswordLastSet = now
	if opt.MustChange {
		u.PasswordLastSet = time.Time{}
	}
	if opt.Unlock {
		u = u.AfterUnlock()
	}
	return u
}

// AfterUnlock is u as a successful unlock leaves it, without reading it
// again.
func (u User) AfterUnlock() User {
	u.Locked, u.LockedUntil = false, time.Time{}
	return u
}

// Policy is the password and lockout policy that applies to one user.
type Policy struct {
	MinLength int
	// Complexity requires three of: upper case, lower case, digits, symbols.
	Complexity    bool
	HistoryLength int
	MinAge        time.Duration
	// MaxAge is zero when passwords never expire.
	MaxAge time.Duration
	// LockoutThreshold is zero when bad passwords never lock the account.
	LockoutThreshold int
	// LockoutDuration is zero when a lock lasts until an administrator
	// unlocks the account.
	LockoutDuration time.Duration
	// LockoutWindow is how long the directory keeps counting a wrong
	// password toward LockoutThreshold (AD lockOutObservationWindow, "reset
	// account lockout after"; OpenLDAP pwdFailureCountInterval). Zero when
	// unknown or, on OpenLDAP, when failures count until the next successful
	// sign-in.
	LockoutWindow time.Duration
	// HistoryEnforcedOnReset tells whether a reset by the portal is checked
	// against the password history (AD: only with the policy-hints control).
	HistoryEnforcedOnReset bool

	// resetSetsMustChange: OpenLDAP pwdMustChange, which makes slapd set
	// pwdReset on every reset by someone other than the user.
	resetSetsMustChange bool
	// lockout: OpenLDAP pwdLockout; without it slapd ignores
	// pwdAccountLockedTime altogether.
	lockout bool
}

// String summarises the policy for people.
func (p Policy) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "minimum length %d, complexity %s, history %d", p.MinLength, onOff(p.Complexity), p.HistoryLength)
	fmt.Fprintf(&b, ", minimum age %s, maximum age ", humanDuration(p.MinAge))
	if p.MaxAge == 0 {
		b.WriteString("none (passwords never expire)")
	} else {
		b.WriteString(humanDuration(p.MaxAge))
	}
	if p.LockoutThreshold == 0 {
		b.WriteString(", no lockout")
	} else {
		fmt.Fprintf(&b, ", lockout after %d bad passwords ", p.LockoutThreshold)
		if p.LockoutDuration == 0 {
			b.WriteString("until an administrator unlocks")
		} else {
			b.WriteString("for " + humanDuration(p.LockoutDuration))
		}
	}
	return b.String()
}

// Result tells which server an operation ran on.
type Result struct {
	// Server is the URL of the server used.
	Server string
	// Agent names the writeback agent that performed the operation; empty
	// for a direct connection.
	Agent string
}

// ResetOptions tune a password reset.
type ResetOptions struct {
	// MustChange makes the user change the password at next sign-in.
	MustChange bool
	// Unlock also ends a lockout (AD does not unlock on reset by itself).
	Unlock bool
}

// Check is one line of a connection test.
type Check struct {
	Name string
	OK   bool
	// Detail is safe to show to administrators.
	Detail string
	// Text is Detail before its values were put in (the catalogue's key
	// and the values), so that a page shows it in the reader's language
	// (DetailIn). It stays on this side: a line an agent sent has Detail
	// only.
	Text errs.Text `json:"-"`
	// Title is Name likewise (NameIn).
	Title errs.Text `json:"-"`
	// Diagnostic is the raw error behind a failed check, for the audit log
	// only (it can hold Go's and the server's own words).
	Diagnostic string
	// Server is set on a server's "Reachable" line: the server's URL.
	Server string
}

// Checklist is the result of Client.Test; OK when every item is.
type Checklist struct {
	Items []Check
	OK    bool
}

func (l *Checklist) add(name errs.Text, ok bool, format string, args ...any) {
	l.Items = append(l.Items, Check{Name: name.String(), Title: name, OK: ok, Detail: fmt.Sprintf(format, args...), Text: errs.Textf(format, args...)})
}

// DetailIn is the line's detail in the reader's language (ctx); a line
// without its Text (one an agent sent) as it came.
func (c Check) DetailIn(ctx context.Context) string {
	if c.Text.Format == "" {
		return c.Detail
	}
	return c.Text.In(ctx)
}

// NameIn is the line's name in the reader's language (ctx); a line an agent
// sent as it came.
func (c Check) NameIn(ctx context.Context) string {
	if c.Title.Format == "" {
		return c.Name
	}
	return c.Title.In(ctx)
}

// diagnose attaches err's raw text to the last line.
func (l *Checklist) diagnose(err error) {
	if err != nil && len(l.Items) > 0 {
		l.Items[len(l.Items)-1].Diagnostic = errText(err)
	}
}

func (l *Checklist) finish() Checklist {
	l.OK = len(l.Items) > 0 && !slices.ContainsFunc(l.Items, func(c Check) bool { return !c.OK })
	return *l
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

// yesNoText is yesNo as a Text, for a checklist line in the reader's
// language.
func yesNoText(b bool) errs.Text { return errs.Textf(yesNo(b)) }

func yesNo(b bool) string {
	if b {
		return i18n.Key("yes")
	}
	return i18n.Key("no")
}

// humanDuration writes d in days, hours or minutes, as people read it.
func humanDuration(d time.Duration) string {
	switch {
	case d == 0:
		return "none"
	case d%(24*time.Hour) == 0:
		return fmt.Sprintf("%d days", d/(24*time.Hour))
	case d%time.Hour == 0:
		return fmt.Sprintf("%d hours", d/time.Hour)
	case d%time.Minute == 0:
		return fmt.Sprintf("%d minutes", d/time.Minute)
	default:
		return d.Round(time.Second).String()
	}
}
