package handlers_test

import (
	"context"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/writeback/writeback/services/admins"
	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/campaign"
	"github.com/writeback/writeback/services/i18n"
	"github.com/writeback/writeback/services/selfservice"
	"github.com/writeback/writeback/testbed"
)

var campaignTags = regexp.MustCompile(`<[^>]*>`)

// campaignText is what a person reads of a page's main part: tags dropped,
// entities decoded.
func campaignText(body string) string {
	return html.UnescapeString(campaignTags.ReplaceAllString(between(body, "<main", "</main>"), " "))
}

// campaignEnglish are texts of the campaign page (and its dry run) that a
// German, French or Spanish reader must not see.
var campaignEnglish = []string{"Registration campaign", "Mail everyone in scope", "Progress", "No run yet", "Dry run", "Start a run now",
	"The dry run counts", "Settings", "Repeat the campaign", "When on, a new run", "Days between runs", "A whole number of days",
	"Mails a minute", "Keep it within", "Who is mailed", "People with fewer methods", "People whose re-confirmation", "In scope is everyone",
	"Not changed yet", "The first run starts", "A run now would mail", "In scope:", "Not registered enough", "The first people a run would mail",
	"User name", "Mail to", "Why"}

// TestCampaignPageInTheReadersLanguage: a Global Administrator whose
// browser asks for German, French or Spanish reads the Registration
// campaign page, its dry run and its refusals in that language, with none
// of the English left; bad settings are refused with German field messages
// and change nothing. In German, Start and Stop flash and show the run in
// German with its time formatted for the reader, and Usage & insights
// shows the people in scope in German.
func TestCampaignPageInTheReadersLanguage(t *testing.T) {
	env := testbed.Load(t)
	ctx := context.Background()
	s, users := newCampaignPortal(t, env)

	for _, tc := range []struct {
		lang             string
		page, dryRun     []string
		refused          []string
		englishRefusals  []string
		notRegisteredWhy string
	}{
		{"de",
			[]string{"Kennwortzurücksetzung", "Registrierungskampagne", "Fortschritt", "Noch kein Durchlauf. Versuchen Sie einen Probelauf",
				"Probelauf", "Jetzt einen Durchlauf starten", "nennt die ersten 10; niemand erhält eine E-Mail.", "Einstellungen",
				"Kampagne wiederholen", "Tage zwischen Durchläufen", "Eine ganze Zahl von Tagen zwischen 1 und 365.", "E-Mails pro Minute",
				"Von 1 bis 600.", "Wer eine E-Mail erhält", "Personen, deren erneute Bestätigung fällig ist (Registrierung)",
				"Noch nicht geändert: Dies sind die Standardwerte."},
			[]string{"Ein Durchlauf würde jetzt 2 Personen eine E-Mail senden.", "Im Geltungsbereich: 2 Personen.",
				"Nicht ausreichend registriert: 2; erneute Bestätigung fällig: 0.", "Die ersten Personen, denen ein Durchlauf eine E-Mail senden würde",
				"Benutzername", "E-Mail an", "Grund"},
			[]string{"Geben Sie eine ganze Zahl von Tagen zwischen 1 und 365 ein.", "Geben Sie eine ganze Zahl von E-Mails pro Minute zwischen 1 und 600 ein.",
				"Wählen Sie mindestens eine Personengruppe aus, die eine E-Mail erhalten soll."},
			[]string{"Enter a whole number", "Choose at least one group"}, "Nicht ausreichend registriert"},
		{"fr",
			[]string{"Réinitialisation du mot de passe", "Campagne d'inscription", "Progression", "Aucune exécution pour l'instant.", "Simulation",
				"Lancer une exécution maintenant", "Paramètres", "Répéter la campagne", "Jours entre les exécutions", "E-mails par minute", "Destinataires",
				"Le périmètre comprend toutes les personnes"},
			[]string{"Une exécution maintenant enverrait un e-mail à 2 personnes.", "Dans le périmètre : 2 personnes.", "Nom d'utilisateur", "Motif"},
			[]string{"Saisissez un nombre entier de jours compris entre 1 et 365.", "Choisissez au moins un groupe de personnes à qui envoyer un e-mail."},
			[]string{"Enter a whole number", "Choose at least one group"}, "Inscription insuffisante"},
		{"es",
			[]string{"Restablecimiento de contraseña", "Campaña de registro", "Progreso", "Todavía no hay ninguna ejecución.", "Simulación",
				"Iniciar una ejecución ahora", "Configuración", "Repetir la campaña", "Días entre ejecuciones", "Correos por minuto", "Quién recibe el correo",
				"El ámbito incluye a todas las personas"},
			[]string{"Una ejecución ahora enviaría correo a 2 personas.", "En el ámbito: 2 personas.", "Nombre de usuario", "Motivo"},
			[]string{"Escriba un número entero de días entre 1 y 365.", "Elija al menos un grupo de personas a las que enviar correo."},
			[]string{"Enter a whole number", "Choose at least one group"}, "Registro insuficiente"},
	} {
		t.Run(tc.lang, func(t *testing.T) {
			c := s.client()
			c.speaking(tc.lang)
			c.signedIn(admins.GlobalAdmin)
			p := c.get(campaignPage)
			if p.Status != http.StatusOK || !strings.Contains(p.Body, `lang="`+tc.lang+`"`) {
				t.Fatalf("page: %d\n%s", p.Status, p.Body)
			}
			checkLanguage(t, "page", campaignText(p.Body), tc.page, campaignEnglish)

			token := c.csrf(campaignPage)
			p = c.post(campaignPage+"/dry-run", url.Values{"csrf_token": {token}})
			text := campaignText(p.Body)
			checkLanguage(t, "dry run", text, tc.dryRun, campaignEnglish)
			if n := strings.Count(text, tc.notRegisteredWhy); n < len(users) {
				t.Errorf("dry run: the sample's reason %q shows %d times, want %d or more", tc.notRegisteredWhy, n, len(users))
			}

			// interval 0, 5000 a minute, nobody to mail: refused in the
			// reader's language, nothing stored.
			p = c.post(campaignPage, url.Values{"csrf_token": {token}, "version": {"0"}, "enabled": {"yes"}, "interval_days": {"0"}, "per_minute": {"5000"}})
			if p.Status != http.StatusUnprocessableEntity {
				t.Errorf("refused form: status %d", p.Status)
			}
			checkLanguage(t, "refused form", campaignText(p.Body), tc.refused, append(tc.englishRefusals, campaignEnglish...))
			if st, meta, _ := s.camp.Settings(ctx); meta.Version != 0 || st != campaign.Default() {
				t.Fatalf("a refused form changed the settings: %+v %+v", st, meta)
			}
		})
	}

	// German: Start, the run under way, a second Start, Stop; then Usage &
	// insights.
	c := s.client()
	c.speaking("de-DE,de;q=0.9,en;q=0.5")
	c.signedIn(admins.GlobalAdmin)
	token := c.csrf(campaignPage)
	if p := c.post(campaignPage+"/start", url.Values{"csrf_token": {token}}); p.Status != http.StatusSeeOther {
		t.Fatalf("start: %d\n%s", p.Status, campaignText(p.Body))
	}
	run, err := s.db.LatestCampaignRun(ctx)
	if err != nil {
		t.Fatal(err)
	}
	started := i18n.DateTimeIn(i18n.German, time.UnixMilli(run.StartedMS))
	checkLanguage(t, "under way", campaignText(c.get(campaignPage).Body),
		[]string{"Durchlauf gestartet: 2 Personen erhalten eine E-Mail, 2 im Geltungsbereich.", "Ein Durchlauf läuft, gestartet von", started,
			"Zu senden", "Wartend", "Gesendet", "Übersprungen (inzwischen registriert)", "Fehlgeschlagen", "Durchlauf anhalten"},
		[]string{"Started a run", "A run is under way", "To mail", "Waiting", "Skipped", "Stop the run",
			i18n.DateTimeIn(i18n.English, time.UnixMilli(run.StartedMS))})
	p := c.post(campaignPage+"/start", url.Values{"csrf_token": {token}})
	if p.Status != http.StatusConflict {
		t.Errorf("second start: %d", p.Status)
	}
	checkLanguage(t, "second start", campaignText(p.Body), []string{"Es läuft bereits ein Durchlauf. Halten Sie ihn zuerst an, oder warten Sie, bis er endet."},
		[]string{"A run is under way already"})
	if p := c.post(campaignPage+"/stop", url.Values{"csrf_token": {token}}); p.Status != http.StatusSeeOther {
		t.Fatalf("stop: %d", p.Status)
	}
	checkLanguage(t, "stopped", campaignText(c.get(campaignPage).Body),
		[]string{"Der Durchlauf wurde angehalten. In diesem Durchlauf erhält niemand sonst eine E-Mail.", "Letzter Durchlauf angehalten am"},
		[]string{"Stopped the run", "The last run was stopped"})
	p = c.post(campaignPage+"/stop", url.Values{"csrf_token": {token}})
	if p.Status != http.StatusUnprocessableEntity {
		t.Errorf("stop without a run: %d", p.Status)
	}
	checkLanguage(t, "stop without a run", campaignText(p.Body), []string{"Es läuft kein Durchlauf."}, []string{"No run is under way."})

	reports := campaignText(c.get("/admin/reports").Body)
	checkLanguage(t, "Usage & insights", reports,
		[]string{"Im Geltungsbereich: 2 Personen; davon nicht ausreichend registriert: 2, erneute Bestätigung fällig: 0.", "Stand:"},
		[]string{"In scope:", "As of"})

	// Self-service for nobody: the dry run's and Start's refusals in German.
	_, meta, _ := s.ss.Policy(ctx)
	if _, err := s.ss.SavePolicy(ctx, audit.CommandLine, meta.Version, "test", func(p *selfservice.Policy) { p.Enabled = selfservice.EnabledNone }); err != nil {
		t.Fatal(err)
	}
	nobody := "Die Self-Service-Kennwortzurücksetzung ist für niemanden aktiviert (Kennwortzurücksetzung › Eigenschaften), daher erhält niemand eine E-Mail."
	checkLanguage(t, "dry run for nobody", campaignText(c.post(campaignPage+"/dry-run", url.Values{"csrf_token": {token}}).Body),
		[]string{nobody}, []string{"enabled for nobody"})
	checkLanguage(t, "start for nobody", campaignText(c.post(campaignPage+"/start", url.Values{"csrf_token": {token}}).Body),
		[]string{nobody}, []string{"enabled for nobody"})
}

// TestCampaignCountsInEachLanguage: the campaign's counted messages take
// the plural form of their first value in each language.
func TestCampaignCountsInEachLanguage(t *testing.T) {
	for _, tc := range []struct {
		lang string
		n    int
		want string
	}{
		{"en", 1, "A run now would mail 1 person."},
		{"en", 1234, "A run now would mail 1,234 people."},
		{"de", 1, "Ein Durchlauf würde jetzt 1 Person eine E-Mail senden."},
		{"de", 1234, "Ein Durchlauf würde jetzt 1.234 Personen eine E-Mail senden."},
		{"fr", 1, "Une exécution maintenant enverrait un e-mail à 1 personne."},
		{"fr", 3, "Une exécution maintenant enverrait un e-mail à 3 personnes."},
		{"es", 1, "Una ejecución ahora enviaría correo a 1 persona."},
		{"es", 3, "Una ejecución ahora enviaría correo a 3 personas."},
	} {
		tag, _ := i18n.Parse(tc.lang)
		if got := i18n.In(tag, "A run now would mail %d people.", tc.n); got != tc.want {
			t.Errorf("%s, %d: %q, want %q", tc.lang, tc.n, got, tc.want)
		}
	}
}
