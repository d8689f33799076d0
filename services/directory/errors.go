package directory

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/go-ldap/ldap/v3"

	"github.com/writeback/writeback/services/errs"
	"github.com/writeback/writeback/services/i18n"
)

// Code classifies a directory failure more finely than errs.Kind, for
// handlers and the audit log.
type Code string

// The codes. Each maps to one errs.Kind (see kindOf).
const (
	// CodePolicy: the password policy refused the new password (Kind Policy).
	CodePolicy Code = "policy"
	// CodeLocked: the account is locked out (Kind Forbidden).
	CodeLocked Code = "locked"
	// CodeDisabled: the account is disabled (Kind Forbidden).
	CodeDisabled Code = "disabled"
	// CodeExpired: the password has expired and can no longer be used to
	// change itself (Kind Forbidden).
	CodeExpired Code = "expired"
	// CodeNotPermitted: the service account lacks a right (Kind Forbidden).
	CodeNotPermitted Code = "not_permitted"
	// CodeInsecure: the connection is not encrypted (Kind Forbidden).
	CodeInsecure Code = "insecure"
	// CodeUnavailable: no server could be reached in time (Kind Unavailable).
	CodeUnavailable Code = "unavailable"
	// CodeNotFound: no such user (Kind NotFound).
	CodeNotFound Code = "not_found"
	// CodeAmbiguous: the login matches several entries (Kind Conflict).
	CodeAmbiguous Code = "ambiguous"
	// CodeProtected: the account is kept out of self-service (Kind Forbidden).
	CodeProtected Code = "protected"
	// CodeConflict: a concurrent change to the same account got in the way;
	// nothing was written and trying again works (Kind Conflict).
	CodeConflict Code = "conflict"
	// CodeBadPassword: the current password given is wrong (Kind Unauthorized).
	CodeBadPassword Code = "bad_password"
	// CodeCertificate: the server's TLS certificate was not trusted (Kind
	// Unavailable).
	CodeCertificate Code = "certificate"
	// CodeServiceAccount: the directory refused the portal's own sign-in
	// (Kind Unavailable).
	CodeServiceAccount Code = "service_account"
	// CodeInvalid: the request itself is unusable, e.g. an empty password
	// (Kind Invalid).
	CodeInvalid Code = "invalid"
	// CodeInternal: anything else (Kind Internal).
	CodeInternal Code = "internal"
)

func kindOf(c Code) errs.Kind {
	switch c {
	case CodePolicy:
		return errs.Policy
	case CodeLocked, CodeDisabled, CodeExpired, CodeNotPermitted, CodeInsecure, CodeProtected:
		return errs.Forbidden
	case CodeUnavailable, CodeCertificate, CodeServiceAccount:
		return errs.Unavailable
	case CodeNotFound:
		return errs.NotFound
	case CodeAmbiguous, CodeConflict:
		return errs.Conflict
	case CodeBadPassword:
		return errs.Unauthorized
	case CodeInvalid:
		return errs.Invalid
	default:
		return errs.Internal
	}
}

// OpError is the hidden cause of every error this package returns: what was
// attempted, on which server, and what the directory answered. Handlers
// errors.As it to write LDAPResult, Diagnostic and Server to the audit log.
// It never holds a password.
type OpError struct {
	// Op is the operation: find, get, reset, change, unlock, policy, test,
	// detect, bind, dial.
	Op string
	// Code classifies the failure.
	Code Code
	// Rule names the policy rule that failed (length, complexity, name, age,
	// history, quality) or the right that is missing; empty when unknown.
	Rule string
	// LDAPResult is the LDAP result code (go-ldap's 200 for network errors);
	// zero when the failure happened before the directory answered.
	LDAPResult uint16
	// Diagnostic is the directory's diagnostic message, verbatim.
	Diagnostic string
	// Server is the URL of the server that answered, if any.
	Server string
	// Err is the underlying error.
	Err error
}

func (e *OpError) Error() string {
	var b strings.Builder
	b.WriteString("directory: ")
	b.WriteString(e.Op)
	if e.Server != "" {
		b.WriteString(" on " + e.Server)
	}
	if e.Code != "" {
		b.WriteString(": " + string(e.Code))
	}
	if e.Rule != "" {
		b.WriteString(" (" + e.Rule + ")")
	}
	if e.LDAPResult != 0 {
		fmt.Fprintf(&b, ": LDAP result %d", e.LDAPResult)
	}
	if e.Diagnostic != "" {
		b.WriteString(": " + strings.TrimSpace(e.Diagnostic))
	}
	if e.Err != nil {
		if t := errText(e.Err); e.Diagnostic == "" || !strings.Contains(t, e.Diagnostic) {
			b.WriteString(": " + t)
		}
	}
	return b.String()
}

// errText is err.Error(), except for an *ldap.Error without an inner error,
// whose Error method would panic.
func errText(err error) string {
	if le, ok := err.(*ldap.Error); ok && le.Err == nil {
		return fmt.Sprintf("LDAP Result Code %d %q", le.ResultCode, ldap.LDAPResultCodeMap[le.ResultCode])
	}
	return err.Error()
}

func (e *OpError) Unwrap() error { return e.Err }

// newOpError describes err, which came from server during op.
func newOpError(op, server string, err error) *OpError {
	oe := &OpError{Op: op, Server: server, Err: err}
	var le *ldap.Error
	if errors.As(err, &le) {
		oe.LDAPResult = le.ResultCode
		if le.Err != nil && le.ResultCode != ldap.ErrorNetwork {
			oe.Diagnostic = le.Err.Error()
		}
	}
	if isNetworkError(err) {
		oe.LDAPResult = ldap.ErrorNetwork
		oe.Code = CodeUnavailable
	}
	return oe
}

// fail turns oe into the error returned to callers.
func fail(code Code, msg string, oe *OpError) *errs.Error {
	oe.Code = code
	return &errs.Error{Kind: kindOf(code), Message: msg, Cause: oe}
}

// failf is fail for a message that takes values (format is the catalogue's key).
func failf(code Code, oe *OpError, format string, args ...any) *errs.Error {
	oe.Code = code
	return errs.Ef(kindOf(code), oe, format, args...)
}

// invalid reports a request that is unusable before the directory is asked.
func invalid(op, msg string) *errs.Error {
	return fail(CodeInvalid, msg, &OpError{Op: op, Err: errors.New(strings.ToLower(msg[:1]) + msg[1:])})
}

// ErrNotReached marks, in an error's chain, a directory that could not be
// reached through a writeback agent: none connected, the agent went away
// before it took the job, or it did not answer in time (a job's deadline
// stops the agent before the portal stops waiting, and a late job is
// dropped, never applied). What the person sees then says MsgNotReached.
var ErrNotReached = errors.New("the directory could not be reached; nothing was changed")

// MsgNotReached is what people see for ErrNotReached.
const MsgNotReached = "Your organisation's directory could not be reached. Nothing was changed."

// Messages used in more than one place.
var (
	msgUnavailable = i18n.Key("The directory is not reachable right now. Please try again in a few minutes.")
	msgTimeout     = i18n.Key("The directory did not answer in time. Please try again in a few minutes.")
	msgInsecure    = i18n.Key("Passwords are only written over LDAPS or StartTLS; the directory would refuse or expose them. Use an ldaps:// URL or turn on StartTLS.")
	msgBadCurrent  = i18n.Key("The current password is not correct.")
	msgNotFound    = i18n.Key("No account matches that name.")
	msgAmbiguous   = i18n.Key("More than one account matches that name; use your full sign-in name or e-mail address.")
	msgPolicy      = i18n.Key("The new password does not meet the password policy.")
)

// isNetworkError tells whether err means the connection is gone or never
// worked, as opposed to an answer from the directory.
func isNetworkError(err error) bool {
	if err == nil {
		return false
	}
	var le *ldap.Error
	if errors.As(err, &le) && le.ResultCode == ldap.ErrorNetwork {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	return errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)
}

// isRetryable tells whether err (as returned by a session operation) means the
// connection broke, so the work may be retried on a fresh one.
func isRetryable(err error) bool {
	var oe *OpError
	return errors.As(err, &oe) && oe.Code == CodeUnavailable && oe.LDAPResult == ldap.ErrorNetwork
}

// generic classifies an LDAP failure no operation-specific rule explained.
func generic(oe *OpError, ctx context.Context) *errs.Error {
	if ctx.Err() != nil {
		if oe.Err == nil {
			oe.Err = ctx.Err()
		}
		oe.LDAPResult = ldap.ErrorNetwork
		return fail(CodeUnavailable, msgTimeout, oe)
	}
	if oe.Code == CodeUnavailable {
		return fail(CodeUnavailable, msgUnavailable, oe)
	}
	switch oe.LDAPResult {
	case ldap.LDAPResultNoSuchObject:
		return fail(CodeNotFound, msgNotFound, oe)
	case ldap.LDAPResultInsufficientAccessRights:
		return fail(CodeNotPermitted, "The portal's service account lacks the right to do this in the directory.", oe)
	case ldap.LDAPResultStrongAuthRequired, ldap.LDAPResultConfidentialityRequired:
		return fail(CodeInsecure, msgInsecure, oe)
	case ldap.LDAPResultBusy, ldap.LDAPResultUnavailable, ldap.LDAPResultServerDown, ldap.LDAPResultTimeLimitExceeded,
		ldap.LDAPResultTimeout, ldap.LDAPResultConnectError:
		return fail(CodeUnavailable, msgUnavailable, oe)
	}
	if code, ok := adErrorCode(oe.Diagnostic); ok && (code == 0x1F || code == 0x2077 || code == 0x2028) {
		return fail(CodeInsecure, msgInsecure, oe)
	}
	return fail(CodeInternal, "The directory refused the request. Your administrator can find the reason in the audit log.", oe)
}

// adCodeRe matches the Win32 error code AD puts at the start of a
// diagnostic, as in "0000052D: Constraint violation ...".
var adCodeRe = regexp.MustCompile(`^\s*([0-9A-Fa-f]{8}):`)

// adErrorCode returns the Win32 error code at the start of an AD diagnostic.
func adErrorCode(diag string) (uint32, bool) {
	m := adCodeRe.FindStringSubmatch(diag)
	if m == nil {
		return 0, false
	}
	n, err := strconv.ParseUint(m[1], 16, 32)
	return uint32(n), err == nil
}

// adDataRe matches the sub-code of an AD bind failure, "data 52e".
var adDataRe = regexp.MustCompile(`\bdata ([0-9A-Fa-f]{1,8})\b`)

// adBindData returns the sub-code of an AD bind failure (0x52e for a bad
// password, 0x775 for a locked account, ...).
func adBindData(diag string) (uint32, bool) {
	m := adDataRe.FindStringSubmatch(diag)
	if m == nil {
		return 0, false
	}
	n, err := strconv.ParseUint(m[1], 16, 32)
	return uint32(n), err == nil
}

// AD Win32 codes seen in diagnostics.
const (
	adErrPasswordRestriction = 0x52D // ERROR_PASSWORD_RESTRICTION: any policy rule
	adErrInvalidPassword     = 0x56  // ERROR_INVALID_PASSWORD: wrong old password on change
	adErrWrongPassword       = 0x52B // ERROR_WRONG_PASSWORD
	adErrAccountLocked       = 0x775 // ERROR_ACCOUNT_LOCKED_OUT
)

// bindFailure is what a failed simple bind means for the account bound as.
type bindFailure struct {
	code   Code
	rule   string // short reason for logs and the audit log
	reason string // for people, completes "the account ..."
	// passwordOK is true when the password was right but the account may not
	// sign in until it changes it (AD 532, 773; ppolicy changeAfterReset).
	passwordOK bool
}

// classifyBind reads a failed simple bind: the AD "data XXX" sub-code or the
// ppolicy response control (pp may be nil).
func classifyBind(t Type, err error, pp *ldap.ControlBeheraPasswordPolicy) bindFailure {
	var le *ldap.Error
	if !errors.As(err, &le) || le.ResultCode != ldap.LDAPResultInvalidCredentials {
		if errors.As(err, &le) && (le.ResultCode == ldap.LDAPResultStrongAuthRequired || le.ResultCode == ldap.LDAPResultConfidentialityRequired) {
			return bindFailure{code: CodeInsecure, rule: "encryption required", reason: "may only sign in over an encrypted connection"}
		}
		return bindFailure{code: CodeInternal, rule: "bind refused", reason: "could not sign in"}
	}
	if t == TypeAD || t == "" {
		if data, ok := adBindData(le.Err.Error()); ok {
			switch data {
			case 0x525:
				return bindFailure{code: CodeNotFound, rule: "525 no such user", reason: "does not exist"}
			case 0x52e:
				return bindFailure{code: CodeBadPassword, rule: "52e bad password", reason: "was given a wrong password"}
			case 0x530:
				return bindFailure{code: CodeDisabled, rule: "530 logon hours", reason: "may not sign in at this time of day"}
			case 0x531:
				return bindFailure{code: CodeDisabled, rule: "531 workstation", reason: "may not sign in from this computer"}
			case 0x532:
				return bindFailure{code: CodeExpired, rule: "532 password expired", reason: "has an expired password", passwordOK: true}
			case 0x533:
				return bindFailure{code: CodeDisabled, rule: "533 disabled", reason: "is disabled"}
			case 0x568:
				return bindFailure{code: CodeNotPermitted, rule: "568 too many SIDs", reason: "is in too many groups to sign in"}
			case 0x701:
				return bindFailure{code: CodeDisabled, rule: "701 account expired", reason: "has expired"}
			case 0x773:
				return bindFailure{code: CodeExpired, rule: "773 must change password", reason: "must change its password first", passwordOK: true}
			case 0x775:
				return bindFailure{code: CodeLocked, rule: "775 locked out", reason: "is locked out"}
			}
		}
	}
	if pp != nil {
		switch pp.Error {
		case 0:
			return bindFailure{code: CodeExpired, rule: "ppolicy passwordExpired", reason: "has an expired password"}
		case 1:
			return bindFailure{code: CodeLocked, rule: "ppolicy accountLocked", reason: "is locked out"}
		}
	}
	return bindFailure{code: CodeBadPassword, rule: "invalid credentials", reason: "was given a wrong DN or password"}
}

// ppolicyControl returns the password policy response control among
// controls, or nil.
func ppolicyControl(controls []ldap.Control) *ldap.ControlBeheraPasswordPolicy {
	for _, c := range controls {
		if pp, ok := c.(*ldap.ControlBeheraPasswordPolicy); ok {
			return pp
		}
	}
	return nil
}

// responseControls decodes the controls of the response carried by an
// *ldap.Error: go-ldap drops them from failed extended and modify operations,
// but the ppolicy reason is only there.
func responseControls(err error) []ldap.Control {
	var le *ldap.Error
	if !errors.As(err, &le) || le.Packet == nil || len(le.Packet.Children) < 3 {
		return nil
	}
	var out []ldap.Control
	for _, child := range le.Packet.Children[2].Children {
		if c, derr := ldap.DecodeControl(child); derr == nil && c != nil {
			out = append(out, c)
		}
	}
	return out
}

// tlsFailure turns a TLS error into a plain reason, or "" when it is not a
// certificate problem.
func tlsFailure(err error, host string) string {
	var ua x509.UnknownAuthorityError
	if errors.As(err, &ua) {
		r := "certificate signed by unknown authority"
		if ua.Cert != nil {
			r += fmt.Sprintf(" (%s, issued by %s)", ua.Cert.Subject, ua.Cert.Issuer)
		}
		return r + " — add your CA under Trusted CA certificates"
	}
	var he x509.HostnameError
	if errors.As(err, &he) {
		names := he.Certificate.DNSNames
		for _, ip := range he.Certificate.IPAddresses {
			names = append(names, ip.String())
		}
		valid := "no names"
		if len(names) > 0 {
			valid = strings.Join(names, ", ")
		}
		return fmt.Sprintf("the certificate is not valid for %s (it is for %s) — use one of those names in the URL or reissue the certificate", host, valid)
	}
	var ci x509.CertificateInvalidError
	if errors.As(err, &ci) {
		switch ci.Reason {
		case x509.Expired:
			if ci.Cert != nil {
				now := time.Now()
				if now.After(ci.Cert.NotAfter) {
					return fmt.Sprintf("the certificate expired on %s — renew it on the server", ci.Cert.NotAfter.UTC().Format(time.DateOnly))
				}
				return fmt.Sprintf("the certificate is not valid before %s — check the clocks", ci.Cert.NotBefore.UTC().Format(time.DateOnly))
			}
			return "the certificate has expired or is not yet valid"
		case x509.NotAuthorizedToSign:
			return "the certificate was issued by a certificate that may not issue certificates"
		case x509.IncompatibleUsage:
			return "the certificate may not be used for a TLS server"
		default:
			return "the certificate is not valid for this use"
		}
	}
	var cve *tls.CertificateVerificationError
	if errors.As(err, &cve) {
		if r := tlsFailure(cve.Err, host); r != "" {
			return r
		}
		return "the certificate could not be verified"
	}
	if x := (x509.SystemRootsError{}); errors.As(err, &x) {
		return "the system has no trusted CA certificates — add your CA under Trusted CA certificates"
	}
	var ce x509.ConstraintViolationError
	if errors.As(err, &ce) {
		return "the certificate violates a constraint of its issuer"
	}
	return ""
}

// policyExplanation says which rule a rejected password breaks.
type policyExplanation struct {
	rule string
	msg  string // the message people see (the catalogue's key; a format when args are given)
	args []any
}

// text is the message in English, its values put in.
func (e policyExplanation) text() string {
	return errs.Textf(e.msg, e.args...).String()
}

// explainPolicy computes which rule of p the password pw breaks, for
// directories that say only "policy" (AD's 0000052D). names are the account
// name and the display name, which AD complexity forbids in the password.
// lastSet and change enable the minimum-age rule.
func explainPolicy(p Policy, pw string, names []string, change bool, lastSet, now time.Time) policyExplanation {
	if n := utf8.RuneCountInString(pw); p.MinLength > 0 && n < p.MinLength {
		return tooShort(p.MinLength)
	}
	if p.Complexity {
		if !complexEnough(pw) {
			return policyExplanation{"complexity", i18n.Key("The new password is not complex enough: use three of upper case, lower case, digits and symbols."), nil}
		}
		if containsName(pw, names) {
			return policyExplanation{"name", i18n.Key("The new password is not complex enough: it must not contain your account name or parts of your full name."), nil}
		}
	}
	if change && p.MinAge > 0 && !lastSet.IsZero() && now.Before(lastSet.Add(p.MinAge)) {
		return tooRecent(lastSet.Add(p.MinAge))
	}
	return policyExplanation{"", msgPolicy, nil}
}

func tooShort(min int) policyExplanation {
	if min <= 0 {
		return policyExplanation{"length", i18n.Key("The new password is too short."), nil}
	}
	return policyExplanation{"length", i18n.Key("The new password is too short: at least %d characters."), []any{min}}
}

func tooRecent(after time.Time) policyExplanation {
	if after.IsZero() {
		return policyExplanation{"age", i18n.Key("The password was changed too recently: you can change it again later."), nil}
	}
	return policyExplanation{"age", i18n.Key("The password was changed too recently: you can change it again after %s."), []any{after}}
}

var reused = policyExplanation{"history", i18n.Key("The new password was used before: choose a password you have not used recently."), nil}

// complexEnough applies AD's complexity rule: characters from three of five
// categories (upper case, lower case, digits, symbols, other letters).
func complexEnough(pw string) bool {
	var upper, lower, digit, symbol, other bool
	for _, r := range pw {
		switch {
		case unicode.IsUpper(r):
			upper = true
		case unicode.IsLower(r):
			lower = true
		case r >= '0' && r <= '9':
			digit = true
		case unicode.IsLetter(r):
			other = true
		case !unicode.IsLetter(r) && !unicode.IsDigit(r):
			symbol = true
		}
	}
	n := 0
	for _, b := range []bool{upper, lower, digit, symbol, other} {
		if b {
			n++
		}
	}
	return n >= 3
}

// containsName applies the other half of AD's complexity rule: the password
// must not contain the account name (if longer than two characters) nor any
// token of three or more characters of the display name.
func containsName(pw string, names []string) bool {
	lp := strings.ToLower(pw)
	for i, name := range names {
		if name == "" {
			continue
		}
		if i == 0 {
			if utf8.RuneCountInString(name) > 2 && strings.Contains(lp, strings.ToLower(name)) {
				return true
			}
			continue
		}
		for _, tok := range strings.FieldsFunc(name, func(r rune) bool { return strings.ContainsRune(",.-_# \t", r) }) {
			if utf8.RuneCountInString(tok) >= 3 && strings.Contains(lp, strings.ToLower(tok)) {
				return true
			}
		}
	}
	return false
}

// explainPPolicy turns a ppolicy response error into a message; p fills in
// the numbers when it is known, lastSet the time of the last change.
func explainPPolicy(code int8, p Policy, lastSet time.Time) (Code, policyExplanation) {
	switch code {
	case 0:
		return CodeExpired, policyExplanation{"expired", i18n.Key("The password has expired; reset it instead of changing it."), nil}
	case 1:
		return CodeLocked, policyExplanation{"locked", i18n.Key("The account is locked."), nil}
	case 2:
		return CodePolicy, policyExplanation{"change after reset", i18n.Key("The password must be changed first."), nil}
	case 3:
		return CodePolicy, policyExplanation{"modification not allowed", i18n.Key("The directory's policy does not allow this password to be changed."), nil}
	case 4:
		return CodePolicy, policyExplanation{"old password required", i18n.Key("The directory's policy requires the current password to change it."), nil}
	case 5:
		return CodePolicy, policyExplanation{"quality", i18n.Key("The new password does not pass the directory's quality check."), nil}
	case 6:
		return CodePolicy, tooShort(p.MinLength)
	case 7:
		var after time.Time
		if !lastSet.IsZero() && p.MinAge > 0 {
			after = lastSet.Add(p.MinAge)
		}
		return CodePolicy, tooRecent(after)
	case 8:
		return CodePolicy, reused
	}
	return CodePolicy, policyExplanation{"", msgPolicy, nil}
}
