package directory

import (
	"testing"

	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/go-ldap/ldap/v3"
)

// filterSeeds are typed values that try to break out of an assertion.
var filterSeeds = []string{
	"alice", "*)(uid=*", "*", `\`, `\2a`, "\x00", "alice\x00junk", ")(|(objectClass=*)", "a)(cn=*))(|(cn=*",
	"(", ")", "Zoë.Müller@example.com", "al\u200bice", "\xff", "  bob  ", "*)(&", `\00`, "a*b*c",
}

var fuzzAttrs = []string{"sAMAccountName", "userPrincipalName", "mail"}

// FuzzLoginFilter: for any typed value, either NormalizeIdentifier refuses
// it, or the filter findEntry sends parses and holds exactly the user filter
// and one equality match per login attribute whose value is the typed value,
// byte for byte: nothing typed can add, remove or widen a filter term.
func FuzzLoginFilter(f *testing.F) {
	for _, s := range filterSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, typed string) {
		v, err := NormalizeIdentifier(typed)
		if err != nil {
			if !IsIdentifierError(err) {
				t.Fatalf("NormalizeIdentifier(%q): not an identifier error: %v", typed, err)
			}
			return
		}
		checkFilter(t, loginFilter(DefaultADUserFilter, fuzzAttrs, v), v, ldap.FilterEqualityMatch)
	})
}

// FuzzSearchFilter is FuzzLoginFilter for the helpdesk search: the typed
// value is one literal "any" part of a substring match, so a '*' typed is a
// star searched for, not a wildcard.
func FuzzSearchFilter(f *testing.F) {
	for _, s := range filterSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, typed string) {
		v, err := NormalizeIdentifier(typed)
		if err != nil {
			return
		}
		checkFilter(t, substringFilter(DefaultOpenLDAPUserFilter, append(fuzzAttrs, "cn"), v), v, ldap.FilterSubstrings)
	})
}

// checkFilter compiles filter and checks its shape: (&<user filter>(|…))
// with one term of kind per attribute, each carrying value unchanged.
func checkFilter(t *testing.T, filter, value string, kind ber.Tag) {
	t.Helper()
	p, err := ldap.CompileFilter(filter)
	if err != nil {
		t.Fatalf("filter for %q does not compile: %v\n%s", value, err, filter)
	}
	if p.Tag != ldap.FilterAnd || len(p.Children) != 2 {
		t.Fatalf("filter for %q: want (&user(|…)), got tag %d with %d parts: %s", value, p.Tag, len(p.Children), filter)
	}
	or := p.Children[1]
	if or.Tag != ldap.FilterOr || len(or.Children) == 0 {
		t.Fatalf("filter for %q: second part is not the OR of login attributes: %s", value, filter)
	}
	for _, term := range or.Children {
		if term.Tag != kind || len(term.Children) != 2 {
			t.Fatalf("filter for %q: term of tag %d, want %d: %s", value, term.Tag, kind, filter)
		}
		var got string
		switch kind {
		case ldap.FilterEqualityMatch:
			got = ber.DecodeString(term.Children[1].Data.Bytes())
		case ldap.FilterSubstrings:
			parts := term.Children[1].Children
			if len(parts) != 1 || parts[0].Tag != ldap.FilterSubstringsAny {
				t.Fatalf("filter for %q: want one 'any' substring, got %d parts: %s", value, len(parts), filter)
			}
			got = ber.DecodeString(parts[0].Data.Bytes())
		}
		if got != value {
			t.Fatalf("filter term value %q, typed %q: %s", got, value, filter)
		}
	}
	if back, err := ldap.DecompileFilter(p); err != nil || back != filter {
		t.Fatalf("filter does not round-trip: %q → %q (%v)", filter, back, err)
	}
}

func TestIdentifierArgRefusesControlCharacters(t *testing.T) {
	for _, in := range []string{"alice\x00junk", "alice\n", "al\u202eice", ""} {
		if _, err := identifierArg("find", in, "empty"); err == nil || !IsIdentifierError(err) || codeOf(err) != CodeInvalid {
			t.Errorf("identifierArg(%q) = %v; want an identifier error with code invalid", in, err)
		}
	}
	if v, err := identifierArg("find", "  alice ", ""); err != nil || v != "alice" {
		t.Errorf("identifierArg(alice) = %q, %v", v, err)
	}
}
