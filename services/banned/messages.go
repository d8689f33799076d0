package banned

import (
	"strings"

	"github.com/go-ldap/ldap/v3"

	"github.com/writeback/writeback/services/errs"
	"github.com/writeback/writeback/services/i18n"
)

// EmployeeMessage is what a person choosing their own password is told: the
// rule, never a term of the organisation's list.
func EmployeeMessage(r Rule) string {
	switch r {
	case RuleCustom:
		return i18n.Key("This password contains a word your organisation does not allow in passwords. Choose another.")
	case RulePersonal:
		return i18n.Key("This password is too close to your name, your user name or your organisation's name. Choose another.")
	case RuleBreached:
		return i18n.Key("This password has appeared in a data breach, so attackers try it first. Choose another, one you have not used anywhere else.")
	}
	return i18n.Key("This password is too easy to guess: it is, or is close to, a password many people use. Choose another, for example three or four unrelated words.")
}

// HelpdeskMessage is what an administrator setting someone's password is
// told: the rule, the term of the organisation's list, and the way out.
func HelpdeskMessage(r Refusal) string { return HelpdeskText(r).String() }

// HelpdeskText is HelpdeskMessage as a Text, for errs.FieldTexts, so that
// it is shown in the administrator's language.
func HelpdeskText(r Refusal) errs.Text {
	switch r.Rule {
	case RuleCustom:
		return errs.Textf("This password contains \"%s\", a term on your organisation's banned list. Choose another, or tick \"must change at next sign-in\" to set a temporary one.", r.Term)
	case RulePersonal:
		return errs.Textf("This password is too close to the person's name or user name, or your organisation's name. Choose another, or tick \"must change at next sign-in\" to set a temporary one.")
	case RuleBreached:
		return errs.Textf("This password has appeared in a data breach (it is on your breached-password list). Choose another, or tick \"must change at next sign-in\" to set a temporary one.")
	}
	return errs.Textf("This password is too easy to guess: it is, or is close to, a commonly used password. Choose another, or tick \"must change at next sign-in\" to set a temporary one.")
}

// Personal lists what of an account the personal rule uses: the typed and
// the directory's login, the display name, the e-mail address and the value
// of the entry's first RDN (its CN or uid).
func Personal(dn string, values ...string) []string {
	out := nonEmpty(values)
	if d, err := ldap.ParseDN(dn); err == nil && len(d.RDNs) > 0 && len(d.RDNs[0].Attributes) > 0 {
		out = append(out, d.RDNs[0].Attributes[0].Value)
	}
	return out
}

func nonEmpty(values []string) []string {
	out := make([]string, 0, len(values)+1)
	for _, v := range values {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}
