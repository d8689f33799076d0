package directory

import (
	"context"
	"testing"

	"github.com/writeback/writeback/services/i18n"
)

// TestChecklistLineInTheReadersLanguage: a checklist line keeps its format
// and values, so that the page shows it in the reader's language, with the
// values put in; Detail stays English.
func TestChecklistLineInTheReadersLanguage(t *testing.T) {
	var l Checklist
	l.add("Reachable: dc1", true, "Connected to %s in %d ms.", "dc1.example.com:636", int64(12))
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
	// A line an agent sent carries no Text: it is shown as it came.
	wire := Check{Name: "Directory", Detail: "as sent"}
	if got := wire.DetailIn(i18n.WithLang(context.Background(), i18n.German)); got != "as sent" {
		t.Errorf("wire line: %q", got)
	}
}
