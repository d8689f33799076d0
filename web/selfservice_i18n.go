package web

import (
	"context"

	"github.com/writeback/writeback/services/i18n"
)

// question is a security question in the reader's language when it is one
// the portal ships (services/selfservice's defaults, in the catalogue);
// one an administrator wrote is shown as written. The form's value stays
// the question as stored.
func question(ctx context.Context, q string) string { return asText(ctx, q) }

// scriptKeys are the texts static/app.js and static/meter.js may show. Every
// page carries them translated in a JSON data block (id "wb-texts", see
// scriptTextsBlock), so that the scripts stay static files and
// the page needs no inline script; a script looks a text up by its English
// words and falls back to them.
var scriptKeys = []string{
	// app.js: show-password toggle.
	i18n.Key("Show"), i18n.Key("Hide"),
	// app.js: passkeys.
	i18n.Key("This browser cannot use passkeys here. Passkeys need a portal address with a name (not an IP address) and https."),
	i18n.Key("The passkey request could not be read. Reload the page and try again."),
	i18n.Key("The passkey request was cancelled or timed out. Try again."),
	i18n.Key("Your browser could not use a passkey (%s). Try again, or use another way."),
	// app.js: the automatic check (services/challenge).
	i18n.Key("Your browser cannot do the automatic check this step needs (it needs a current browser and a portal address with https). Try another browser, or contact your helpdesk."),
	i18n.Key("Checking your browser automatically before this step. This takes a few seconds…"),
	i18n.Key("Check done. You can go on."),
	i18n.Key("The automatic check could not finish. Reload the page to try again."),
	i18n.Key("The automatic check could not run in this browser. Try another browser, or contact your helpdesk."),
	i18n.Key("Almost there: the automatic check is still running, and your request is sent when it is done."),
	// meter.js: the strength meter.
	i18n.Key("Too easy to guess: it is, or is close to, a password many people use."),
	i18n.Key("It contains a word your organisation does not allow in passwords."),
	i18n.Key("Too close to your name, your user name or your organisation's name."),
	i18n.Key("Very weak"), i18n.Key("Weak"), i18n.Key("Fair"), i18n.Key("Good"), i18n.Key("Strong"),
	i18n.Key("Strength: %s"),
}

// scriptTexts are scriptKeys in the reader's language, by their English
// text; empty for English, where the scripts' own words are the texts.
// Texts that take a value keep their %s for the script to fill in.
func scriptTexts(ctx context.Context) map[string]string {
	out := map[string]string{}
	if i18n.LangOf(ctx) == i18n.English {
		return out
	}
	tag := i18n.LangOf(ctx)
	for _, k := range scriptKeys {
		// The translation as written: a %s stays for the script to fill.
		if e, ok := i18n.Translation(tag, k); ok && e.Text != "" {
			out[k] = e.Text
		}
	}
	return out
}
