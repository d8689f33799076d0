package web

import (
	"encoding/json"
	"strconv"
)

// Meter is the strength meter under a new-password field: static/meter.js
// (with the zxcvbn-ts bundle, static/zxcvbn.js) shows how guessable the
// password is and ticks the rules while the person types, before anything
// is sent. The server checks every rule again; without JavaScript the rules
// are listed and nothing else happens.
type Meter struct {
	Field     string // the password input's id
	MinLength int    // a length rule the meter lists itself; 0 when the page's rules list has it
	// Banned lists the banned-password rules (services/banned) for this
	// field; the rest are what the page may check of them.
	Banned   bool
	Common   bool
	Personal []string
	// PersonalField names an input whose value is one more personal term
	// (the user name typed on /change).
	PersonalField string
	Salt          string
	Custom        []string
}

func jsonAttr(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func itoaAttr(n int) string { return strconv.Itoa(n) }
