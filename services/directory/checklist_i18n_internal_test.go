package directory

import (
	"context"
	"strings"
	"testing"

	"github.com/writeback/writeback/services/errs"
	"github.com/writeback/writeback/services/i18n"
)

// TestChecklistLineInTheReadersLanguage: a checklist line keeps its format
// and values, so that the page shows it in the reader's language, with the
// values put in; Detail stays English.
func TestChecklistLineInTheReadersLanguage(t *testing.T) {
	var l Checklist
	l.add(errs.Textf("Reachable: %s", "dc1"), true, "Connected to %s in %d ms.", "dc1.example.com:636", int64(12))
	it := l.Items[0]
	if it.Detail != "Connected to dc1.example.com:636 in 12 ms." {
		t.Errorf("Detail = %q", it.Detail)
	}
	for _, tc := range []struct{ lang, want string }{
		{"en", "Connected to dc1.example.com:636 in 12 ms."},
		{"de", "Mit dc1.example.com:636 in 12 ms verbunden."},
		{"fr", "Connecté à dc1.example.com:636 en 12 ms."},
		{"es", "Conectado a dc1.example.com:636 en 12 ms."},
	} {
		tag, _ := i18n.Parse(tc.lang)
		if got := it.DetailIn(i18n.WithLang(context.Background(), tag)); got != tc.want {
			t.Errorf("%s: DetailIn = %q, want %q", tc.lang, got, tc.want)
		}
	}
	// The line's name, and a value that is itself a text (yes/no, a nested
	// message), are in the reader's language too.
	l.add(errs.Textf("Rights on %s", "ada"), true, "Write lockoutTime (unlock): %s; write pwdLastSet (must change at next sign-in): %s; "+
		"Reset Password: cannot be determined without changing a password, so nothing was tried (delegate \"Reset password\" on the users' OU).",
		yesNoText(true), yesNoText(false))
	de := i18n.WithLang(context.Background(), i18n.German)
	if got := l.Items[0].NameIn(de); got != "Erreichbar: dc1" {
		t.Errorf("German name %q", got)
	}
	if got, en := l.Items[1].DetailIn(de), l.Items[1].Detail; !strings.Contains(got, "ja") || !strings.Contains(got, "nein") || strings.Contains(got, "yes") ||
		!strings.Contains(en, "yes; write") {
		t.Errorf("German detail %q, English %q", got, en)
	}
	// A line an agent sent carries no Text: it is shown as it came.
	wire := Check{Name: "Directory", Detail: "as sent"}
	if got := wire.DetailIn(i18n.WithLang(context.Background(), i18n.German)); got != "as sent" {
		t.Errorf("wire line: %q", got)
	}
}
