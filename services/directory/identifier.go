package directory

import (
	"errors"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/writeback/writeback/services/errs"
)

// MaxIdentifierLen is the longest user name, UPN or e-mail address a person may type, in bytes.
const MaxIdentifierLen = 256

// Errors of NormalizeIdentifier. Their messages are safe to show to the person who typed the text.
var (
	ErrIdentifierEmpty   = errs.E(errs.Invalid, "Enter your user name or e-mail address.", nil)
	ErrIdentifierTooLong = errs.E(errs.Invalid, "That is too long for a user name or e-mail address.", nil)
	ErrIdentifierInvalid = errs.E(errs.Invalid, "A user name or e-mail address can't contain invisible or control characters.", nil)
)

// NormalizeIdentifier checks what a person typed as their user name, UPN or e-mail address before it goes near a
// directory filter, and returns it without surrounding spaces. Text that is not valid UTF-8 or holds a control or
// format character (NUL, tab, newline, DEL, zero-width, bidi overrides, …) is refused: Samba ends an attribute value
// at a NUL, so "alice\x00junk" would find alice although it is not what alice is called.
func NormalizeIdentifier(s string) (string, error) {
	s = strings.TrimFunc(s, func(r rune) bool { return r == ' ' })
	switch {
	case s == "":
		return "", ErrIdentifierEmpty
	case len(s) > MaxIdentifierLen:
		return "", ErrIdentifierTooLong
	case !utf8.ValidString(s):
		return "", ErrIdentifierInvalid
	}
	for _, r := range s {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || r == utf8.RuneError {
			return "", ErrIdentifierInvalid
		}
	}
	return s, nil
}

// IsIdentifierError reports whether err came from NormalizeIdentifier.
func IsIdentifierError(err error) bool {
	return errors.Is(err, ErrIdentifierEmpty) || errors.Is(err, ErrIdentifierTooLong) || errors.Is(err, ErrIdentifierInvalid)
}
