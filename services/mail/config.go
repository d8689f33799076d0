// Package mail sends the portal's e-mail: verification codes and the notices
// people and administrators receive after a reset or an unlock.
//
// Config holds the mail server settings an administrator saves; Sender
// delivers a Message through that server with github.com/wneessen/go-mail,
// always over verified TLS unless the relay runs on this machine; and the
// template functions (VerificationCode, PasswordReset, ...) build each
// Message with a plain-text and an HTML part.
//
// Two rules hold for every message this package builds: it never contains a
// password, and the only link it may contain is the portal's configured base
// URL. Verification codes are typed by people, never consumed by opening a
// link, because mail scanners open links.
package mail

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"net"
	netmail "net/mail"
	"strconv"
	"strings"

	"github.com/writeback/writeback/services/errs"
	"github.com/writeback/writeback/services/i18n"
)

// TLSMode says how the connection to the mail server is protected.
type TLSMode string

// The TLS modes. TLS is verified against the system roots (plus Config.CAPEM)
// in both encrypted modes.
const (
	// TLSNone sends in the clear; Validate accepts it only for a relay on a
	// loopback address, where the traffic never leaves the machine.
	TLSNone TLSMode = "none"
	// TLSStartTLS connects in the clear and requires the server to upgrade
	// with STARTTLS before anything else is sent (usually port 587 or 25).
	TLSStartTLS TLSMode = "starttls"
	// TLSImplicit speaks TLS from the first byte (usually port 465).
	TLSImplicit TLSMode = "tls"
)

// Config holds the mail server settings.
type Config struct {
	Host     string  // host name or IP address of the SMTP server
	Port     int     // TCP port, 1–65535
	TLS      TLSMode // how the connection is protected
	From     string  // sender address, e.g. "Password portal <portal@example.com>"
	Username string  // SMTP AUTH user name; empty means no authentication
	Password string  // SMTP AUTH password; never logged or shown
	// CAPEM is an optional PEM bundle of extra certificate authorities to
	// trust besides the system roots, for private relays and tests.
	CAPEM string
}

// The field keys Validate uses in errs.Error.Fields.
const (
	FieldHost     = "host"
	FieldPort     = "port"
	FieldTLS      = "tls"
	FieldFrom     = "from"
	FieldUsername = "username"
	FieldPassword = "password"
	FieldCAPEM    = "ca_pem"
)

// Validate checks the settings and returns an *errs.Error of Kind
// errs.Invalid whose Fields name each setting with a problem (keys
// FieldHost … FieldCAPEM), or nil. Messages never repeat the password.
func (c Config) Validate() error {
	fields := map[string]string{}

	host := strings.TrimSpace(c.Host)
	switch {
	case host == "":
		fields[FieldHost] = i18n.Key("Enter the mail server's host name or IP address.")
	case host != c.Host || !validHost(host):
		fields[FieldHost] = i18n.Key("Enter a host name such as mail.example.com, or an IP address.")
	}

	if c.Port < 1 || c.Port > 65535 {
		fields[FieldPort] = i18n.Key("Enter a port between 1 and 65535.")
	}

	switch c.TLS {
	case TLSStartTLS, TLSImplicit:
	case TLSNone:
		if _, bad := fields[FieldHost]; !bad && !isLoopback(host) {
			fields[FieldTLS] = i18n.Key("Unencrypted mail is only allowed to a relay on this machine.")
		}
	default:
		fields[FieldTLS] = i18n.Key("Choose none, starttls or tls.")
	}

	if strings.TrimSpace(c.From) == "" {
		fields[FieldFrom] = i18n.Key("Enter the address the portal sends mail from.")
	} else if _, err := netmail.ParseAddress(c.From); err != nil {
		fields[FieldFrom] = i18n.Key("Enter a valid e-mail address, such as portal@example.com.")
	}

	switch {
	case c.Username == "" && c.Password != "":
		fields[FieldUsername] = i18n.Key("Enter the user name that goes with the password.")
	case hasControl(c.Username):
		fields[FieldUsername] = i18n.Key("The user name cannot contain line breaks or other control characters.")
	}
	switch {
	case c.Username != "" && c.Password == "":
		fields[FieldPassword] = i18n.Key("Enter the password for this user name.")
	case strings.ContainsAny(c.Password, "\x00\r\n"):
		// SASL PLAIN separates fields with NUL; a line break is almost
		// always a pasted file's trailing newline.
		fields[FieldPassword] = i18n.Key("The password cannot contain line breaks.")
	}

	if strings.TrimSpace(c.CAPEM) != "" && !x509.NewCertPool().AppendCertsFromPEM([]byte(c.CAPEM)) {
		fields[FieldCAPEM] = i18n.Key("The CA certificate could not be read; paste it in PEM format.")
	}

	if len(fields) > 0 {
		return errs.FieldErrors(fields)
	}
	return nil
}

// SameServer reports whether c and o reach the same server in the same way:
// host (letter case aside), port, TLS mode and trusted CA certificates. A
// stored SMTP password belongs to one server: when any of these change, the
// password is not carried over to the new one, or whoever controls the new
// server would receive it with the first mail.
func (c Config) SameServer(o Config) bool {
	return strings.EqualFold(strings.TrimSuffix(strings.TrimSpace(c.Host), "."), strings.TrimSuffix(strings.TrimSpace(o.Host), ".")) &&
		c.Port == o.Port && c.TLS == o.TLS && strings.TrimSpace(c.CAPEM) == strings.TrimSpace(o.CAPEM)
}

// ServerID names the server c reaches (host, port, TLS mode and a digest of
// the trusted CAs), for binding a sealed password to it. Configs for which
// SameServer holds have the same ServerID.
func (c Config) ServerID() string {
	sum := sha256.Sum256([]byte(strings.TrimSpace(c.CAPEM)))
	host := strings.ToLower(strings.TrimSuffix(strings.TrimSpace(c.Host), "."))
	return host + "|" + strconv.Itoa(c.Port) + "|" + string(c.TLS) + "|" + hex.EncodeToString(sum[:8])
}

// isLoopback reports whether host names this machine: "localhost" or a
// loopback IP address. It does not resolve names, so a DNS record pointing at
// 127.0.0.1 does not count.
func isLoopback(host string) bool {
	h := strings.TrimSuffix(host, ".")
	if strings.EqualFold(h, "localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// validHost accepts an IP address or a DNS name made of letters, digits,
// hyphens and underscores; anything else (URLs, "unix://" sockets, ports,
// spaces) is a mistake in this field.
func validHost(h string) bool {
	if net.ParseIP(h) != nil {
		return true
	}
	h = strings.TrimSuffix(h, ".")
	if h == "" || len(h) > 253 {
		return false
	}
	for label := range strings.SplitSeq(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return false
			}
		}
	}
	return true
}

func hasControl(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f })
}
