package mail_test

import (
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/text/language"

	"github.com/writeback/writeback/services/i18n"
	"github.com/writeback/writeback/services/mail"
)

// TestTemplatesInEveryLanguage writes every message in every language the
// portal speaks: each sentence comes from the catalogue (none missing), the
// HTML part says its language, dates and counts are written the
// language's way, and a language other than English has none of the
// English sentences left.
func TestTemplatesInEveryLanguage(t *testing.T) {
	var mu sync.Mutex
	var missing []string
	i18n.SetMissing(func(k string) { mu.Lock(); missing = append(missing, k); mu.Unlock() })
	t.Cleanup(func() { i18n.SetMissing(nil) })
	all := func(tag language.Tag) []mail.Message {
		return []mail.Message{
			mail.VerificationCode(tag, "a@example.com", "Example Corp", "48213907", 10*time.Minute),
			mail.PasswordReset(tag, "a@example.com", "Example Corp", "Ada", when, portalURL),
			mail.PasswordReset(tag, "a@example.com", "Example Corp", "", when, ""),
			mail.AccountUnlocked(tag, "a@example.com", "Example Corp", "Ada", when, portalURL),
			mail.MethodsRemoved(tag, "a@example.com", "Example Corp", "Ada", []string{"E-mail code", "Security questions"}, when, portalURL),
			mail.MethodsRemoved(tag, "a@example.com", "Example Corp", "", []string{"Passkey"}, when, ""),
			mail.AdminPasswordResetNotice(tag, "a@example.com", "Example Corp", "Grace", when),
			mail.AdminPasswordResetNotice(tag, "a@example.com", "Example Corp", "", when),
			mail.PasswordExpiry(tag, "a@example.com", "Example Corp", "Ada", when, 6*24*time.Hour, portalURL),
			mail.PasswordExpiry(tag, "a@example.com", "Example Corp", "Ada", when, time.Hour, ""),
			mail.TestMessage(tag, "a@example.com", "Example Corp"),
			mail.RegistrationCampaign(tag, "a@example.com", "Example Corp", "Ada", portalURL, false),
			mail.RegistrationCampaign(tag, "a@example.com", "Example Corp", "", "", false),
			mail.RegistrationCampaign(tag, "a@example.com", "Example Corp", "Ada", portalURL, true),
			mail.RegistrationCampaign(tag, "a@example.com", "Example Corp", "", "", true),
		}
	}
	english := all(i18n.English)
	for _, tc := range []struct {
		tag                 language.Tag
		date, days, minutes string
	}{
		{i18n.German, "9. März 2026, 14:05 UTC", "in 6 Tagen", "10 Minuten"},
		{i18n.French, "9 mars 2026, 14:05 UTC", "dans 6 jours", "10 minutes"},
		{i18n.Spanish, "9 mar 2026, 14:05 UTC", "en 6 días", "10 minutos"},
	} {
		t.Run(i18n.Code(tc.tag), func(t *testing.T) {
			msgs := all(tc.tag)
			for i, m := range msgs {
				if m.Subject == english[i].Subject {
					t.Errorf("subject %q is not translated", m.Subject)
				}
				if !strings.Contains(m.HTML, `<html lang="`+i18n.Code(tc.tag)+`">`) {
					t.Errorf("%q: the HTML part does not say its language", m.Subject)
				}
				for _, part := range []string{m.Text, m.HTML} {
					for _, en := range []string{"Hello", "This message was sent automatically", "If this was", "password portal", "helpdesk removed", "never asks", "It takes two minutes", "Check them"} {
						if strings.Contains(part, en) {
							t.Errorf("%q: English %q left:\n%s", m.Subject, en, part)
						}
					}
				}
			}
			if !strings.Contains(msgs[0].Text, tc.minutes) || !strings.Contains(msgs[1].Text, tc.date) || !strings.Contains(msgs[8].Subject, tc.days) {
				t.Errorf("values not written the %s way:\n%s\n%s\n%s", i18n.Code(tc.tag), msgs[0].Text, msgs[1].Text, msgs[8].Subject)
			}
			if !strings.Contains(msgs[4].Text, i18n.In(tc.tag, "Security questions")) {
				t.Errorf("the removed methods are not named in %s:\n%s", i18n.Code(tc.tag), msgs[4].Text)
			}
		})
	}
	mu.Lock()
	defer mu.Unlock()
	if len(missing) > 0 {
		t.Errorf("sentences the catalogue lacks: %q", missing)
	}
}
