package sms

import (
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/nyaruka/phonenumbers"

	"github.com/writeback/writeback/services/errs"
	"github.com/writeback/writeback/services/i18n"
)

// codeDigits finds runs of digits long enough to be a code or a number.
var codeDigits = regexp.MustCompile(`\d{6,}`)

// Why Normalize refuses a number: shown next to the field where it was typed.
var (
	MsgNumberFormat   = i18n.Key("Enter a mobile number with its country code, e.g. +44 7400 123456.")
	MsgNumberNoMobile = i18n.Key("That is not a mobile number: codes are sent by text message, so enter a mobile number.")
	MsgNumberCountry  = i18n.Key("Text messages to numbers in that country are not allowed by your organisation.")
)

// Normalize turns a number as typed or as the directory holds it into E.164
// (+447400123456). A number without its country code is read as a number of
// region (an ISO 3166 code such as GB; "" accepts only numbers with their
// country code). Only mobile numbers are accepted (AD's and OpenLDAP's
// mobile attribute often holds a desk phone; premium-rate numbers are how
// toll fraud earns), and, when allowed is not empty, only numbers of those
// regions. The error is an errs.Invalid with a message for people.
func Normalize(raw, region string, allowed []string) (string, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" || utf8.RuneCountInString(raw) > 40 {
		return "", errs.E(errs.Invalid, MsgNumberFormat, nil)
	}
	n, err := phonenumbers.Parse(raw, strings.ToUpper(region))
	if err != nil || !phonenumbers.IsValidNumber(n) {
		return "", errs.E(errs.Invalid, MsgNumberFormat, err)
	}
	switch phonenumbers.GetNumberType(n) {
	case phonenumbers.MOBILE, phonenumbers.FIXED_LINE_OR_MOBILE:
	default:
		return "", errs.E(errs.Invalid, MsgNumberNoMobile, nil)
	}
	if len(allowed) > 0 {
		r := phonenumbers.GetRegionCodeForNumber(n)
		ok := false
		for _, a := range allowed {
			ok = ok || strings.EqualFold(a, r)
		}
		if !ok {
			return "", errs.E(errs.Invalid, MsgNumberCountry, nil)
		}
	}
	return phonenumbers.Format(n, phonenumbers.E164), nil
}

// ValidRegion reports whether r is a region code numbers can be read for.
func ValidRegion(r string) bool {
	return phonenumbers.GetCountryCodeForRegion(strings.ToUpper(r)) != 0
}

// Mask shows an E.164 number as "+44 •••• ••34 56": the country code and the
// last four digits.
func Mask(e164 string) string {
	n, err := phonenumbers.Parse(e164, "")
	if err != nil {
		return "•••"
	}
	nsn := phonenumbers.GetNationalSignificantNumber(n)
	keep := min(4, len(nsn)/2)
	digits := []rune(strings.Repeat("•", len(nsn)-keep) + nsn[len(nsn)-keep:])
	// Groups from the right: the last two, then fours.
	var groups []string
	end := len(digits)
	for size := 2; end > 0; size = 4 {
		start := max(0, end-size)
		groups = append([]string{string(digits[start:end])}, groups...)
		end = start
	}
	return "+" + strconv.Itoa(int(n.GetCountryCode())) + " " + strings.Join(groups, " ")
}
