package reminders

import (
	"testing"
	"time"

	"golang.org/x/text/language"

	"github.com/writeback/writeback/services/i18n"
)

// TestReminderTextInALanguage: the text message of a reminder is in the
// language asked for; English stays as it was.
func TestReminderTextInALanguage(t *testing.T) {
	left := 6*24*time.Hour + 3*time.Hour
	for _, tc := range []struct {
		tag       language.Tag
		org, want string
	}{
		{i18n.English, "Example Corp", "Example Corp: your password expires in 6 days 3 hours. Change it now at https://p.example/change"},
		{i18n.German, "Example Corp", "Example Corp: Ihr Kennwort läuft bald ab (noch 6 Tage 3 Stunden). Ändern Sie es jetzt unter https://p.example/change"},
		{i18n.French, "", "Votre organisation : votre mot de passe expire dans 6 jours 3 heures. Modifiez-le dès maintenant sur https://p.example/change"},
		{i18n.Spanish, "Example Corp", "Example Corp: su contraseña caduca en 6 días 3 horas. Cámbiela ahora en https://p.example/change"},
	} {
		if got := reminderText(tc.tag, tc.org, left, "https://p.example/change"); got != tc.want {
			t.Errorf("%v: %q, want %q", tc.tag, got, tc.want)
		}
	}
	if got, want := LeftIn(i18n.English, time.Hour), LeftText(time.Hour); got != want {
		t.Errorf("English %q, LeftText %q", got, want)
	}
}
