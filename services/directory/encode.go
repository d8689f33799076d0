package directory

import (
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"
	"unicode/utf8"
)

// encodeUnicodePwd returns the value AD expects in unicodePwd: the password
// in double quotes, encoded UTF-16LE without a byte order mark.
func encodeUnicodePwd(pw string) string {
	u := utf16.Encode([]rune(`"` + pw + `"`))
	b := make([]byte, 2*len(u))
	for i, c := range u {
		binary.LittleEndian.PutUint16(b[2*i:], c)
	}
	return string(b)
}

// checkPassword rejects passwords no directory should be sent: empty ones
// (an empty simple bind is an anonymous bind that "succeeds"), ones that are
// not UTF-8 and absurdly long ones. what names the password in the message.
func checkPassword(op, what, pw string) error {
	switch {
	case pw == "":
		return invalid(op, "Enter the "+what+".")
	case !utf8.ValidString(pw):
		return invalid(op, "The "+what+" contains characters that cannot be used.")
	case strings.ContainsRune(pw, 0):
		return invalid(op, "The "+what+" contains characters that cannot be used.")
	case utf8.RuneCountInString(pw) > 256:
		return invalid(op, "The "+what+" is too long: at most 256 characters.")
	}
	return nil
}

// formatGUID formats a binary objectGUID the way Windows shows it: the first
// three groups are little-endian.
func formatGUID(b []byte) string {
	if len(b) != 16 {
		return fmt.Sprintf("%x", b)
	}
	return fmt.Sprintf("%08x-%04x-%04x-%x-%x",
		binary.LittleEndian.Uint32(b[0:4]), binary.LittleEndian.Uint16(b[4:6]), binary.LittleEndian.Uint16(b[6:8]),
		b[8:10], b[10:16])
}

// filetimeEpochDelta is the number of 100 ns intervals between 1601-01-01
// (the FILETIME epoch) and 1970-01-01.
const filetimeEpochDelta = 116444736000000000

// parseFiletime reads an AD time stamp (100 ns intervals since 1601). Zero
// and the "never" value give the zero time.
func parseFiletime(s string) time.Time {
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || n <= 0 || n == math.MaxInt64 {
		return time.Time{}
	}
	return time.Unix(0, (n-filetimeEpochDelta)*100).UTC()
}

// parseADInterval reads an AD duration (minPwdAge, lockoutDuration, ...):
// negative 100 ns intervals. The "never" value (MinInt64) and zero give 0.
func parseADInterval(s string) time.Duration {
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || n == math.MinInt64 || n == 0 {
		return 0
	}
	if n < 0 {
		n = -n
	}
	if n > math.MaxInt64/100 {
		return 0
	}
	return time.Duration(n * 100)
}

// parseGeneralizedTime reads an LDAP GeneralizedTime such as
// 20240102030405Z or 20240102030405.123Z.
func parseGeneralizedTime(s string) (time.Time, bool) {
	s = strings.TrimSpace(s)
	for _, layout := range []string{"20060102150405Z", "20060102150405.999999999Z", "20060102150405Z0700", "200601021504Z"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}

// parseInt reads an integer attribute value; absent or malformed gives 0.
func parseInt(s string) int64 {
	n, _ := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	return n
}
