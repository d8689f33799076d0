package selfservice

import (
	"testing"

	"github.com/writeback/writeback/services/errs"
)

func TestMask(t *testing.T) {
	cases := map[string]string{
		"alice@example.com":      "a•••@e•••.com",
		"Ünal@müller.de":         "Ü•••@m•••.de",
		"x@localhost":            "x•••@l•••",
		"not-an-address":         "•••",
		"@example.com":           "•••",
		"bob.smith@mail.corp.io": "b•••@m•••.io",
	}
	for in, want := range cases {
		if got := Mask(in); got != want {
			t.Errorf("Mask(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestNormalizeAnswer(t *testing.T) {
	cases := map[string]string{
		"  Paris ":          "paris",
		"Rex  the\tDog!":    "rex the dog",
		"O'Brien":           "obrien",
		"São Paulo":         "são paulo",
		"1st Street, No. 5": "1st street no 5",
	}
	for in, want := range cases {
		if got := normalizeAnswer(in); got != want {
			t.Errorf("normalizeAnswer(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestPolicyValidate(t *testing.T) {
	ok := DefaultPolicy()
	ok.Enabled = EnabledAll
	cases := []struct {
		name  string
		edit  func(*Policy)
		field string
	}{
		{"default all", func(p *Policy) {}, ""},
		{"group without DN", func(p *Policy) { p.Enabled, p.Group = EnabledGroup, "" }, "group"},
		{"no methods", func(p *Policy) { p.Methods = Methods{} }, "methods"},
		{"two required of one", func(p *Policy) { p.Methods, p.Required = Methods{App: true}, 2 }, "required"},
		{"answer more than registered", func(p *Policy) { p.QuestionsToAnswer = 4 }, "questions_to_answer"},
		{"too few questions", func(p *Policy) { p.Methods.Questions, p.Questions = true, p.Questions[:2] }, "questions"},
		{"bad helpdesk", func(p *Policy) { p.Helpdesk = "call Bob" }, "helpdesk"},
		{"helpdesk URL", func(p *Policy) { p.Helpdesk = "https://help.example.com" }, ""},
		{"reconfirm too long", func(p *Policy) { p.ReconfirmDays = 1000 }, "reconfirm_days"},
		{"public limit default", func(p *Policy) { p.PublicPerMinute = 0 }, ""},
		{"public limit lowest", func(p *Policy) { p.PublicPerMinute = 1 }, ""},
		{"public limit highest", func(p *Policy) { p.PublicPerMinute = MaxPerMinute }, ""},
		{"public limit too high", func(p *Policy) { p.PublicPerMinute = MaxPerMinute + 1 }, "public_per_minute"},
		{"public limit negative", func(p *Policy) { p.PublicPerMinute = -1 }, "public_per_minute"},
		{"sign-in limit too high", func(p *Policy) { p.SignInPerMinute = 100000 }, "signin_per_minute"},
		{"sign-in limit negative", func(p *Policy) { p.SignInPerMinute = -5 }, "signin_per_minute"},
	}
	for _, tc := range cases {
		p := ok
		p.Questions = append([]string(nil), ok.Questions...)
		tc.edit(&p)
		err := p.Validate()
		switch {
		case tc.field == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.field != "" && (err == nil || fieldsOf(err)[tc.field] == ""):
			t.Errorf("%s: want a problem with %s, got %v", tc.name, tc.field, err)
		}
	}
}

func fieldsOf(err error) map[string]string { return errs.FieldsOf(err) }
