package agenthub_test

import (
	"testing"

	"github.com/writeback/writeback/services/i18n"
)

// TestChecklistInTheReadersLanguage: the hub's own checklist line is shown
// in the reader's language, and stays English for logs and the API.
func TestChecklistInTheReadersLanguage(t *testing.T) {
	h := newHarness(t)
	l := h.hub.Test(ctxT(t), "")
	if len(l.Items) != 1 || l.OK {
		t.Fatalf("checklist without an agent: %+v", l)
	}
	it := l.Items[0]
	const en = "No writeback agent is connected. Start `writeback-agent run` on a server inside your network; the Writeback agents page lists the enrolled agents."
	if it.Detail != en {
		t.Errorf("Detail = %q, want English %q", it.Detail, en)
	}
	for _, tc := range []struct {
		lang string
		want string
	}{
		{"en", en},
		{"de", "Kein Writeback-Agent ist verbunden. Starten Sie `writeback-agent run` auf einem Server in Ihrem Netzwerk; die Seite Writeback-Agents listet die registrierten Agents auf."},
		{"fr", "Aucun agent Writeback n'est connecté. Lancez `writeback-agent run` sur un serveur de votre réseau ; la page Agents Writeback liste les agents inscrits."},
		{"es", "No hay ningún agente de Writeback conectado. Inicie `writeback-agent run` en un servidor de su red; la página Agentes de Writeback muestra los agentes inscritos."},
	} {
		tag, _ := i18n.Parse(tc.lang)
		if got := it.DetailIn(i18n.WithLang(ctxT(t), tag)); got != tc.want {
			t.Errorf("%s: DetailIn = %q, want %q", tc.lang, got, tc.want)
		}
	}
}
