package mail_test

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/writeback/writeback/services/i18n"
	"github.com/writeback/writeback/services/mail"
	"github.com/writeback/writeback/services/mail/mailtest"
)

const portalURL = "https://passwords.example.com/"

var when = time.Date(2026, time.March, 9, 14, 5, 0, 0, time.UTC)

// linkish finds anything a mail program might turn into a link: URLs with a
// scheme, bare www. names and href/src attributes.
var linkish = regexp.MustCompile(`(?i)\b[a-z][a-z0-9+.-]*://[^\s"'<>]*|\bwww\.[^\s"'<>]*|\b(?:href|src|action)\s*=\s*"[^"]*"`)

// links returns every link-like thing in s, with href="…" reduced to its value.
func links(s string) []string {
	var out []string
	for _, m := range linkish.FindAllString(s, -1) {
		if i := strings.IndexByte(m, '"'); i >= 0 && strings.HasSuffix(m, `"`) {
			m = m[i+1 : len(m)-1]
		}
		out = append(out, m)
	}
	return out
}

func TestTemplates(t *testing.T) {
	const to = "ada@example.com"
	tests := []struct {
		name       string
		msg        mail.Message
		wantLink   bool     // whether the portal URL must appear in both parts
		wantInBoth []string // text each part must contain
	}{
		{
			name:       "verification code",
			msg:        mail.VerificationCode(i18n.English, to, "Example Corp", "48213907", 10*time.Minute),
			wantInBoth: []string{"48213907", "10 minutes", "Type this code", "Example Corp"},
		},
		{
			name:       "password reset",
			msg:        mail.PasswordReset(i18n.English, to, "Example Corp", "Ada Lovelace", when, portalURL),
			wantLink:   true,
			wantInBoth: []string{"Ada Lovelace", "was reset", "9 March 2026 at 14:05 UTC", "If this was not you", "helpdesk"},
		},
		{
			name:       "account unlocked",
			msg:        mail.AccountUnlocked(i18n.English, to, "Example Corp", "Ada Lovelace", when, portalURL),
			wantLink:   true,
			wantInBoth: []string{"Ada Lovelace", "unlocked", "password was not changed", "If this was not you", "helpdesk"},
		},
		{
			name:       "admin notice",
			msg:        mail.AdminPasswordResetNotice(i18n.English, to, "Example Corp", "Grace Hopper", when),
			wantInBoth: []string{"Grace Hopper", "administrator", "audit log", "9 March 2026 at 14:05 UTC"},
		},
		{
			name:       "password expiry",
			msg:        mail.PasswordExpiry(i18n.English, to, "Example Corp", "Ada Lovelace", when, 6*24*time.Hour+3*time.Hour, portalURL),
			wantLink:   true,
			wantInBoth: []string{"Ada Lovelace", "expires", "in 6 days", "9 March 2026 at 14:05 UTC", "never asks for your password"},
		},
		{
			name:       "registration campaign",
			msg:        mail.RegistrationCampaign(i18n.English, to, "Example Corp", "Ada Lovelace", portalURL, false),
			wantLink:   true,
			wantInBoth: []string{"Ada Lovelace", "not yet set up enough ways", "Example Corp", "never asks for your password"},
		},
		{
			name:       "registration re-confirmation",
			msg:        mail.RegistrationCampaign(i18n.English, to, "Example Corp", "Ada Lovelace", portalURL, true),
			wantLink:   true,
			wantInBoth: []string{"Ada Lovelace", "still right", "confirm or update", "never asks for your password"},
		},
		{
			name:       "test message",
			msg:        mail.TestMessage(i18n.English, to, "Example Corp"),
			wantInBoth: []string{"test message", "Example Corp"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := tt.msg
			if m.To != to {
				t.Errorf("To = %q, want %q", m.To, to)
			}
			if m.Subject == "" || strings.ContainsAny(m.Subject, "\r\n") {
				t.Errorf("Subject = %q", m.Subject)
			}
			if strings.TrimSpace(m.Text) == "" || strings.TrimSpace(m.HTML) == "" {
				t.Fatalf("a part is empty:\ntext: %q\nhtml: %q", m.Text, m.HTML)
			}
			if !strings.HasPrefix(m.HTML, "<!DOCTYPE html>") || strings.Contains(m.Text, "<p") {
				t.Errorf("parts mixed up:\ntext: %q\nhtml: %q", m.Text, m.HTML)
			}
			for _, part := range []struct{ name, body string }{{"text", m.Text}, {"html", m.HTML}} {
				for _, want := range tt.wantInBoth {
					if !strings.Contains(part.body, want) {
						t.Errorf("%s part lacks %q:\n%s", part.name, want, part.body)
					}
				}
				if strings.Contains(part.body, "<no value>") {
					t.Errorf("%s part has an unset template value:\n%s", part.name, part.body)
				}
				found := links(part.body)
				for _, l := range found {
					if l != portalURL {
						t.Errorf("%s part has the link %q; only %q is allowed", part.name, l, portalURL)
					}
				}
				if tt.wantLink && len(found) == 0 {
					t.Errorf("%s part lacks the portal link", part.name)
				}
				if !tt.wantLink && len(found) > 0 {
					t.Errorf("%s part has links %q, want none", part.name, found)
				}
			}
			if strings.Contains(m.HTML, "<img") {
				t.Error("HTML loads an image; messages must not fetch remote content")
			}
		})
	}
}

func TestTemplatesDropUnsafePortalURL(t *testing.T) {
	for _, raw := range []string{
		"", "javascript:alert(1)", "/reset", "passwords.example.com",
		"https://admin:secret@passwords.example.com/", "ftp://passwords.example.com/",
		`https://passwords.example.com/"><script>`,
	} {
		for _, m := range []mail.Message{
			mail.PasswordReset(i18n.English, "ada@example.com", "Example Corp", "Ada", when, raw),
			mail.AccountUnlocked(i18n.English, "ada@example.com", "Example Corp", "Ada", when, raw),
			mail.PasswordExpiry(i18n.English, "ada@example.com", "Example Corp", "Ada", when, time.Hour, raw),
			mail.RegistrationCampaign(i18n.English, "ada@example.com", "Example Corp", "Ada", raw, false),
			mail.RegistrationCampaign(i18n.English, "ada@example.com", "Example Corp", "Ada", raw, true),
		} {
			if l := links(m.Text + m.HTML); len(l) > 0 {
				t.Errorf("portal URL %q: links %q, want none", raw, l)
			}
			if raw != "" && strings.Contains(m.Text+m.HTML, raw) {
				t.Errorf("portal URL %q appears in the message", raw)
			}
		}
	}
}

func TestTemplatesEscapeNames(t *testing.T) {
	name := `<b onmouseover="x">Eve</b>`
	m := mail.PasswordReset(i18n.English, "eve@example.com", `Org "&" <Co>`, name, when, portalURL)
	if strings.Contains(m.HTML, name) || strings.Contains(m.HTML, "<b onmouseover") {
		t.Errorf("HTML part holds the unescaped name:\n%s", m.HTML)
	}
	if !strings.Contains(m.Text, name) {
		t.Errorf("text part should hold the name as written:\n%s", m.Text)
	}

	// Line breaks in a directory value must not reach the subject or split
	// a sentence.
	m = mail.AdminPasswordResetNotice(i18n.English, "ada@example.com", "Example\r\nBcc: eve@example.com", "Grace\nHopper", when)
	if strings.ContainsAny(m.Subject, "\r\n") {
		t.Errorf("Subject = %q has a line break", m.Subject)
	}
	if !strings.Contains(m.Text, "Grace Hopper") {
		t.Errorf("name not joined onto one line:\n%s", m.Text)
	}
}

func TestTemplatesDefaults(t *testing.T) {
	m := mail.PasswordReset(i18n.English, "ada@example.com", "", "", when, portalURL)
	if !strings.HasPrefix(m.Text, "Hello,") {
		t.Errorf("without a name the greeting should be plain, got %q", m.Text[:20])
	}
	if strings.Contains(m.Subject, "  ") || strings.Contains(m.Subject, "Your  ") {
		t.Errorf("Subject = %q", m.Subject)
	}
	for _, tt := range []struct {
		d    time.Duration
		want string
	}{
		{10 * time.Minute, "10 minutes"}, {time.Minute, "1 minute"}, {time.Hour, "1 hour"},
		{2 * time.Hour, "2 hours"}, {90 * time.Second, "2 minutes"}, {30 * time.Second, "30 seconds"},
	} {
		m := mail.VerificationCode(i18n.English, "ada@example.com", "Example Corp", "12345678", tt.d)
		if !strings.Contains(m.Text, "for "+tt.want+".") {
			t.Errorf("validFor %s: text lacks %q:\n%s", tt.d, tt.want, m.Text)
		}
	}
}

// TestTemplatesSurviveTransfer sends every template through a real SMTP
// server and checks both parts arrive exactly as built.
func TestTemplatesSurviveTransfer(t *testing.T) {
	sink := mailtest.Start(t, mailtest.Options{TLS: true})
	host, port := sink.Addr()
	sender := mail.NewSender(mail.Config{
		Host: host, Port: port, TLS: mail.TLSStartTLS, From: "portal@example.com", CAPEM: sink.CAPEM(),
	}, nil)
	msgs := []mail.Message{
		mail.VerificationCode(i18n.English, "a@example.com", "Exämple Corp", "48213907", 10*time.Minute),
		mail.PasswordReset(i18n.English, "b@example.com", "Exämple Corp", "Zoë Ørsted", when, portalURL),
		mail.AccountUnlocked(i18n.English, "c@example.com", "Exämple Corp", "Zoë Ørsted", when, portalURL),
		mail.AdminPasswordResetNotice(i18n.English, "d@example.com", "Exämple Corp", "Grace Hopper", when),
		mail.TestMessage(i18n.English, "e@example.com", "Exämple Corp"),
	}
	for _, m := range msgs {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		err := sender.Send(ctx, m)
		cancel()
		if err != nil {
			t.Fatalf("Send(%q) = %v", m.Subject, err)
		}
		r := sink.WaitFor(t, m.To, 5*time.Second)
		if r.Subject != m.Subject || r.Text != m.Text || r.HTML != m.HTML {
			t.Errorf("%q changed in transfer:\nsubject %q\ntext %q\nhtml %q", m.Subject, r.Subject, r.Text, r.HTML)
		}
	}
}
