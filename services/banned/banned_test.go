package banned_test

import (
	"strings"
	"testing"

	"github.com/writeback/writeback/services/banned"
)

func TestCheck(t *testing.T) {
	c := banned.Checker{Common: banned.Common(), Custom: banned.NewList([]string{"Contoso", "Fabrikam", "widgetpro"})}
	personal := []string{"asmith", "Alice Smith", "alice.smith@example.com", "Example Corp"}
	cases := []struct {
		pw   string
		rule banned.Rule // "" when accepted
	}{
		// The bundled list, with decoration and substitutions.
		{"Winter2026!", banned.RuleCommon},
		{"winter2026", banned.RuleCommon},
		{"P@ssw0rd1", banned.RuleCommon},
		{"P@ssw0rd2026!", banned.RuleCommon},
		{"Password123!", banned.RuleCommon},
		{"!Welcome1", banned.RuleCommon},
		{"@dmin2026!", banned.RuleCommon},
		{"qwerty123", banned.RuleCommon},
		{"Dragon!!", banned.RuleCommon},
		{"Passwrd2026!", banned.RuleCommon}, // one letter left out
		{"Sunshlne99", banned.RuleCommon},   // one letter wrong
		{"123456789", banned.RuleCommon},
		// The organisation's list: inside a longer password too.
		{"Contoso2026!", banned.RuleCustom},
		{"C0nt0s0#1", banned.RuleCustom},
		{"MyContoso!", banned.RuleCustom}, // my + contoso + ! = 4
		{"MyContoso1!", ""},               // 5 points, as Entra counts
		{"FabrikamContoso", banned.RuleCustom},
		{"Widgetpro-24", banned.RuleCustom},
		// The person's own names and login, and the organisation's name.
		{"AliceSmith#77", banned.RulePersonal},
		{"Smith2026!", banned.RulePersonal},
		{"asmith!1", banned.RulePersonal},
		{"Alice.2026", banned.RulePersonal},
		{"ExampleCorp1!", banned.RulePersonal},
		// Accepted: long enough beyond the terms in them, or no term at all.
		{"correct horse battery staple", ""},
		{"Tr0ub4dor&3-mango-lake", ""},
		{"Winter-kettle-orbit-91", ""},
		{"Dragon8472916!", ""},
		{"Alice loves quiet mountain lakes", ""},
		{"Contoso is where I work since 2019", ""},
		{"vX9#qLm2$Tz", ""},
		{"Zq7!", ""}, // short, but no term: the directory's length rule is for that
	}
	for _, tc := range cases {
		r, ok := c.Check(tc.pw, personal)
		if got := map[bool]banned.Rule{true: ""}[ok]; !ok {
			got = r.Rule
			if tc.rule != got {
				t.Errorf("%q: refused by %s (%q), want %q", tc.pw, got, r.Term, tc.rule)
			}
		} else if tc.rule != "" {
			t.Errorf("%q: accepted, want refused by %s", tc.pw, tc.rule)
		}
	}
}

func TestCheckWithoutLists(t *testing.T) {
	// With the bundled list off, only the organisation's and the person's
	// terms count.
	c := banned.Checker{}
	if _, ok := c.Check("Winter2026!", nil); !ok {
		t.Error("Winter2026! refused with no list")
	}
	if r, ok := c.Check("Smith2026!", []string{"Alice Smith"}); ok || r.Rule != banned.RulePersonal {
		t.Errorf("Smith2026!: %v %v", r, ok)
	}
	if _, ok := c.Check("", []string{"x"}); !ok {
		t.Error("empty password refused (the callers ask for one)")
	}
}

func TestCommonList(t *testing.T) {
	l := banned.Common()
	if l.Len() < 40000 {
		t.Fatalf("the bundled list has %d terms", l.Len())
	}
	if banned.Normalize("P@$$W0RD!") != "passwordl" {
		t.Errorf("normalize: %q", banned.Normalize("P@$$W0RD!"))
	}
}

// FuzzCheck: any input is checked without a panic, in bounded time.
func FuzzCheck(f *testing.F) {
	for _, s := range []string{"Winter2026!", "", "ÄÖÜ", strings.Repeat("a", 300), "\x00\xff"} {
		f.Add(s, "Alice Smith")
	}
	c := banned.Checker{Common: banned.Common(), Custom: banned.NewList([]string{"contoso"})}
	f.Fuzz(func(t *testing.T, pw, name string) {
		c.Check(pw, []string{name})
	})
}
