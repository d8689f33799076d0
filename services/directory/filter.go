package directory

import (
	"errors"
	"strings"

	"github.com/go-ldap/ldap/v3"

	"github.com/writeback/writeback/services/errs"
)

// loginFilter is the filter that finds the user who typed login: the user
// filter and an equality match of login on any login attribute. login must
// have passed NormalizeIdentifier; it is escaped here, so no character of it
// can end the assertion or open a filter of its own.
func loginFilter(userFilter string, attrs []string, login string) string {
	return anyOf(userFilter, attrs, ldap.EscapeFilter(login))
}

// substringFilter is the helpdesk search's filter: the user filter and q
// anywhere in any of attrs. q is escaped, so a '*' in it is a literal star,
// not a wildcard.
func substringFilter(userFilter string, attrs []string, q string) string {
	return anyOf(userFilter, attrs, "*"+ldap.EscapeFilter(q)+"*")
}

// anyOf builds (&userFilter(|(a1=v)(a2=v)…)) from an already escaped value.
func anyOf(userFilter string, attrs []string, escaped string) string {
	var b strings.Builder
	b.WriteString("(&")
	b.WriteString(userFilter)
	b.WriteString("(|")
	for _, a := range attrs {
		b.WriteString("(" + a + "=" + escaped + ")")
	}
	b.WriteString("))")
	return b.String()
}

// identifierArg checks a login or search text for op with
// NormalizeIdentifier, as defence in depth behind the callers' own check, and
// returns it trimmed. Its error keeps the identifier error in its chain
// (IsIdentifierError) and carries an *OpError like every error here.
func identifierArg(op, s, emptyMsg string) (string, error) {
	v, err := NormalizeIdentifier(s)
	if err == nil {
		return v, nil
	}
	msg := errs.MessageOf(err)
	if emptyMsg != "" && errors.Is(err, ErrIdentifierEmpty) {
		msg = emptyMsg
	}
	return "", fail(CodeInvalid, msg, &OpError{Op: op, Err: err})
}
