package selfservice

import (
	"strings"
	"testing"

	"github.com/writeback/writeback/services/errs"
)

// TestHelpdeskContact: the Customization page's helpdesk contact is an
// e-mail address, a web address or a phone number, each linked the way a
// phone or a browser opens it; anything else is refused with the reason.
func TestHelpdeskContact(t *testing.T) {
	cases := []struct {
		in, href string // href "" when refused
	}{
		{"helpdesk@example.com", "mailto:helpdesk@example.com"},
		{"https://help.example.com/password", "https://help.example.com/password"},
		{"+44 20 7946 0000", "tel:+442079460000"},
		{"(030) 1234-5678", "tel:03012345678"},
		{"+1.415.555.0100", "tel:+14155550100"},
		{"1234", ""},                   // too short for a number
		{"+1 234 567 890 123 456", ""}, // 16 digits
		{"call 555-0100", ""},
		{"12+34567", ""},
		{"javascript:alert(1)", ""},
		{"ftp://help.example.com", ""},
	}
	for _, tc := range cases {
		p := DefaultPolicy()
		p.Helpdesk = tc.in
		err := p.normalize().Validate()
		if tc.href == "" {
			if !strings.HasPrefix(errs.FieldsOf(err)["helpdesk"], "Enter an e-mail address, a web address") {
				t.Errorf("%q accepted (%v)", tc.in, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q refused: %v %v", tc.in, err, errs.FieldsOf(err))
		}
		if got := p.HelpdeskHref(); got != tc.href {
			t.Errorf("%q links to %q, want %q", tc.in, got, tc.href)
		}
	}
}
