package handlers_test

import (
	"context"
	"encoding/json"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/writeback/writeback/services/admins"
	"github.com/writeback/writeback/services/agentwire"
	"github.com/writeback/writeback/services/audit"
)

// acceptLanguage sends every request with an Accept-Language header, as a
// browser set to that language does.
type acceptLanguage struct {
	lang string
	next http.RoundTripper
}

func (a acceptLanguage) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Accept-Language", a.lang)
	return a.next.RoundTrip(r)
}

// speaking makes c's browser ask for lang.
func (c *client) speaking(lang string) *client {
	c.http.Transport = acceptLanguage{lang: lang, next: http.DefaultTransport}
	return c
}

// visible is the text of a page as a person reads it: tags dropped and
// entities decoded.
func visible(body string) string {
	return html.UnescapeString(tagRE.ReplaceAllString(body, " "))
}

var tagRE = regexp.MustCompile(`<[^>]*>`)

// adminPage is one page of the area, with texts it shows in each language
// and English texts that must not be left on it.
type adminPage struct {
	name, path string
	want       map[string][]string
	english    []string
}

// TestAdminPagesInTheReadersLanguage fetches the administrator pages of
// agents, API tokens, branding, password protection, expiry reminders and
// text messages with a German, French or Spanish browser: each shows its
// texts in that language and none of the English ones.
func TestAdminPagesInTheReadersLanguage(t *testing.T) {
	pages := []adminPage{
		{"API tokens", "/admin/api-tokens", map[string][]string{
			"de": {"API-Token", "Token erstellen", "Zuletzt verwendet", "Läuft ab nach (Tagen)", "Widerrufen", "Aktiv"},
			"fr": {"Jetons d'API", "Créer un jeton", "Dernière utilisation", "Expire après (jours)", "Révoquer", "Actif"},
			"es": {"Tokens de API", "Crear token", "Último uso", "Caduca después de (días)", "Revocar", "Activo"},
		}, []string{"Create token", "Last used", "Expires after (days)", "Token name", "Tokens for scripts", "A token acts with the role"}},
		{"Company branding", "/admin/password-reset/company-branding", map[string][]string{
			"de": {"Unternehmensbranding", "Akzentfarbe", "Logo hochladen", "Noch kein Logo", "Speichern", "Verwerfen"},
			"fr": {"Image de marque de l'entreprise", "Couleur d'accentuation", "Téléverser un logo", "Pas encore de logo", "Enregistrer"},
			"es": {"Personalización de marca de la empresa", "Color de énfasis", "Cargar un logotipo", "Aún no hay logotipo", "Guardar"},
		}, []string{"Accent colour", "Upload a logo", "No logo yet", "Show employees your", "and helpdesk contact are set on", "Not changed yet"}},
		{"Password protection", "/admin/password-reset/password-protection", map[string][]string{
			"de": {"Kennwortschutz", "Diese neuen Kennwörter abweisen", "Gesperrte Begriffe Ihrer Organisation", "Liste kompromittierter Kennwörter (optional)"},
			"fr": {"Protection par mot de passe", "Refuser ces nouveaux mots de passe", "Termes interdits de votre organisation"},
			"es": {"Protección de contraseñas", "Rechazar estas contraseñas nuevas", "Términos prohibidos de su organización"},
		}, []string{"Refuse these new passwords", "Common passwords", "banned terms", "Breached-password list", "These rules apply"}},
		{"Expiry reminders", "/admin/password-reset/expiry-reminders", map[string][]string{
			"de": {"Ablauferinnerungen", "Tage vor dem Ablauf", "Probelauf", "Zeigen, wer jetzt eine E-Mail erhielte"},
			"fr": {"Rappels d'expiration", "Jours avant l'expiration", "Simulation", "Afficher qui recevrait un e-mail maintenant"},
			"es": {"Recordatorios de caducidad", "Días antes de la caducidad", "Simulación", "Mostrar quién recibiría ahora un correo"},
		}, []string{"Days before the expiry", "Dry run", "Show who would be mailed now", "Remind people by e-mail", "The expiry is the directory"}},
		{"Text messages", "/admin/password-reset/text-messages", map[string][]string{
			"de": {"Mit einer Vorlage beginnen", "Gateway-Anfrage", "Anmeldeinformationen", "Nummern und Grenzen", "Testnachricht senden", "Immer: höchstens"},
			"fr": {"Partir d'un modèle", "Requête à la passerelle", "Numéros et limites", "Envoyer un message de test", "Toujours : au plus"},
			"es": {"Empezar con una plantilla", "Solicitud a la puerta de enlace", "Números y límites", "Enviar mensaje de prueba", "Siempre: como máximo"},
		}, []string{"Start from a preset", "Gateway request", "Credentials", "Numbers and limits", "Send test message", "Always: at most", "Body format", "JSON POST with a bearer token"}},
	}
	h := newHarness(t)
	if _, err := h.tokens.Create(context.Background(), audit.CommandLine, "nightly-export", admins.ReportsReader, 30); err != nil {
		t.Fatal(err)
	}
	for _, lang := range []string{"de", "fr", "es"} {
		c := h.client().speaking(lang)
		c.signedIn(admins.GlobalAdmin)
		for _, pg := range pages {
			t.Run(lang+"/"+pg.name, func(t *testing.T) {
				p := c.get(pg.path)
				if p.Status != http.StatusOK {
					t.Fatalf("GET %s: status %d", pg.path, p.Status)
				}
				checkLanguage(t, pg.path, p.Body, pg.want[lang], pg.english)
			})
		}
	}
}

// TestAgentPagesInTheReadersLanguage does the same for the Writeback
// agents pages: the list with an agent, its enrolment token and the
// revocation step.
func TestAgentPagesInTheReadersLanguage(t *testing.T) {
	h := newAgentsHarness(t)
	english := []string{"Add agent", "Agent name", "Connected since", "Last heartbeat", "Operations (last hour)", "Last error", "Disconnected", "Name the agent"}
	for _, tc := range []struct {
		lang                       string
		list, token, revoke, flash []string
	}{
		{"de", []string{"Writeback-Agents", "Agent hinzufügen", "Verbunden seit", "Letzter Heartbeat", "Getrennt", "Widerrufen"},
			[]string{"Registrierungstoken für site-de", "Führen Sie auf dem Server"},
			[]string{"site-de widerrufen?", "Schlüsselfingerabdruck", "Agent widerrufen", "Abbrechen"},
			[]string{"site-de wurde widerrufen."}},
		{"fr", []string{"Agents Writeback", "Ajouter un agent", "Connecté depuis", "Dernier signal de vie", "Déconnecté"},
			[]string{"Jeton d'inscription pour site-fr"},
			[]string{"Révoquer site-fr ?", "Empreinte de la clé", "Révoquer l'agent", "Annuler"},
			[]string{"site-fr a été révoqué."}},
		{"es", []string{"Agentes de Writeback", "Agregar agente", "Conectado desde", "Último latido", "Desconectado"},
			[]string{"Token de inscripción para site-es"},
			[]string{"¿Revocar site-es?", "Huella digital de la clave", "Revocar agente", "Cancelar"},
			[]string{"Se ha revocado site-es."}},
	} {
		t.Run(tc.lang, func(t *testing.T) {
			c := h.client().speaking(tc.lang)
			c.signedIn(admins.GlobalAdmin)
			name := "site-" + tc.lang
			p := c.post("/admin/agents", url.Values{"csrf_token": {c.csrf("/admin/agents")}, "name": {name}})
			if p.Status != http.StatusOK {
				t.Fatalf("add agent: status %d", p.Status)
			}
			checkLanguage(t, "enrolment token", p.Body, tc.token, []string{"Enrolment token for", "Copy it now", "On the server inside your network"})
			// Enrolled and not connected: the list shows it disconnected.
			tok := tokenOn(t, p.Body)
			status, body, _ := h.enrollJSON(agentwire.PathEnroll, enrollBody(t, tok))
			var resp agentwire.EnrollResponse
			if status != http.StatusOK || json.Unmarshal([]byte(body), &resp) != nil {
				t.Fatalf("enrol: %d %s", status, body)
			}
			id := resp.AgentID
			p = c.get("/admin/agents")
			checkLanguage(t, "agents", p.Body, tc.list, english)
			p = c.get("/admin/agents/" + id + "/revoke")
			checkLanguage(t, "revoke", p.Body, tc.revoke, []string{"Revoke agent", "Key fingerprint", "A connected agent is cut off", "Cancel"})
			p = c.post("/admin/agents/"+id+"/revoke", url.Values{"csrf_token": {c.csrf("/admin/agents")}})
			if p.Status != http.StatusSeeOther {
				t.Fatalf("revoke: status %d", p.Status)
			}
			checkLanguage(t, "revoked", c.get("/admin/agents").Body, tc.flash, []string{"It has been disconnected"})
		})
	}
}

// TestAdminFormProblemsInGerman posts forms of the area with bad input from
// a German browser: each field is told what is wrong in German, and
// nothing is stored.
func TestAdminFormProblemsInGerman(t *testing.T) {
	h := newHarness(t)
	c := h.client().speaking("de-DE,de;q=0.9")
	c.signedIn(admins.GlobalAdmin)
	t.Run("API token", func(t *testing.T) {
		p := c.post("/admin/api-tokens", url.Values{"csrf_token": {c.csrf("/admin/api-tokens")}, "name": {""}, "role": {"nobody"}, "expires": {"400"}})
		if p.Status != http.StatusUnprocessableEntity {
			t.Fatalf("status %d, want 422", p.Status)
		}
		checkLanguage(t, "refused token", p.Body, []string{"Es gibt ein Problem", "Geben Sie einen Namen mit 1 bis 64 Zeichen ein.",
			"Wählen Sie eine Rolle: Globaler Administrator", "Geben Sie eine Anzahl Tage von 1 bis 365 ein."},
			[]string{"Enter a name of", "Choose a role", "Enter a number of days"})
		if list, err := h.tokens.List(context.Background()); err != nil || len(list) != 0 {
			t.Errorf("tokens stored after a refused form: %v, %v", list, err)
		}
	})
	t.Run("password protection", func(t *testing.T) {
		path := "/admin/password-reset/password-protection"
		p := c.post(path, url.Values{"csrf_token": {c.csrf(path)}, "version": {"0"}, "common": {"yes"}, "custom": {"acme\nab"}})
		if p.Status != http.StatusUnprocessableEntity {
			t.Fatalf("status %d, want 422", p.Status)
		}
		checkLanguage(t, "refused term", p.Body, []string{`"ab" ist zu kurz: Ein gesperrter Begriff hat 3 oder mehr Zeichen.`}, []string{"is too short"})
		if st, meta, err := h.banned.Settings(context.Background()); err != nil || meta.Version != 0 || len(st.Custom) != 0 {
			t.Errorf("settings changed by a refused form: %+v version %d, %v", st, meta.Version, err)
		}
	})
	t.Run("expiry reminders", func(t *testing.T) {
		path := "/admin/password-reset/expiry-reminders"
		p := c.post(path, url.Values{"csrf_token": {c.csrf(path)}, "version": {"0"}, "enabled": {"yes"}, "thresholds": {"14, 7, 1, 2, 3, 4, 5"}})
		if p.Status != http.StatusUnprocessableEntity {
			t.Fatalf("status %d, want 422", p.Status)
		}
		checkLanguage(t, "refused thresholds", p.Body, []string{"Geben Sie höchstens 6 Anzahlen von Tagen an; hier sind es 7."}, []string{"Give at most"})
		if _, meta, err := h.rem.Settings(context.Background()); err != nil || meta.Version != 0 {
			t.Errorf("settings changed by a refused form: version %d, %v", meta.Version, err)
		}
	})
}

// checkLanguage fails unless body (a page, or its text) shows every text
// of want and none of english (as whole words); what names it in failures.
func checkLanguage(t *testing.T, what, body string, want, english []string) {
	t.Helper()
	text := visible(body)
	failed := false
	for _, w := range want {
		if !strings.Contains(text, w) {
			t.Errorf("%s: %q is not on the page", what, w)
			failed = true
		}
	}
	for _, e := range english {
		// A whole word: the English "Cancel" is not in "Cancelar".
		if regexp.MustCompile(`(^|\P{L})` + regexp.QuoteMeta(e) + `($|\P{L})`).MatchString(text) {
			t.Errorf("%s: English %q is left on the page", what, e)
			failed = true
		}
	}
	if failed {
		t.Logf("%s, page text:\n%s", what, strings.Join(strings.Fields(text), " "))
	}
}
