package mail

import (
	"fmt"
	htmltemplate "html/template"
	"net/url"
	"strconv"
	"strings"
	texttemplate "text/template"
	"time"

	"golang.org/x/text/language"

	"github.com/writeback/writeback/services/i18n"
)

// The templates below are parsed on each call rather than kept in package
// variables: parsing takes microseconds, mail is rare, and the package then
// holds no state at all. Every template is executed by the tests, so a
// mistake in one fails there, not in front of a person.

// Every message is written in the reader's language (tag): the language of
// the request that caused it, or for messages sent in the background the
// organisation's default. Its sentences are the catalogue's (services/i18n),
// keyed by their English words.

// VerificationCode is the message carrying a one-time code that proves the
// recipient can read mail at this address. The code is meant to be typed into
// the page that asked for it; the message holds no link, because mail
// scanners open links and a link must never be able to use up a code.
func VerificationCode(tag language.Tag, to, orgName, code string, validFor time.Duration) Message {
	v := newView(tag, orgName)
	v.Subject = i18n.In(tag, "Your verification code for %s", v.Org)
	v.Code = oneLine(code)
	v.ValidFor = humanDuration(tag, validFor)
	return v.render(to, verificationText, verificationHTML)
}

// PasswordReset tells a person that their password was reset through the
// portal at when, and what to do if it was not them. portalURL, the portal's
// configured base URL, is the only link; it is left out unless it is an
// absolute http(s) URL.
func PasswordReset(tag language.Tag, to, orgName, displayName string, when time.Time, portalURL string) Message {
	v := newView(tag, orgName)
	v.Subject = i18n.In(tag, "Your %s password was reset", v.Org)
	v.Name = oneLine(displayName)
	v.When = humanTime(tag, when)
	v.PortalURL = safeURL(portalURL)
	return v.render(to, resetText, resetHTML)
}

// AccountUnlocked tells a person that their account was unlocked through the
// portal at when, with the password left as it was, and what to do if it was
// not them. portalURL is handled as in PasswordReset.
func AccountUnlocked(tag language.Tag, to, orgName, displayName string, when time.Time, portalURL string) Message {
	v := newView(tag, orgName)
	v.Subject = i18n.In(tag, "Your %s account was unlocked", v.Org)
	v.Name = oneLine(displayName)
	v.When = humanTime(tag, when)
	v.PortalURL = safeURL(portalURL)
	return v.render(to, unlockText, unlockHTML)
}

// MethodsRemoved tells a person that the helpdesk removed what they had
// registered to prove who they are (methods: their names, catalogue keys
// such as selfservice.MethodLabel's), at when.
func MethodsRemoved(tag language.Tag, to, orgName, displayName string, methods []string, when time.Time, portalURL string) Message {
	v := newView(tag, orgName)
	v.Subject = i18n.In(tag, "Your %s password reset methods were removed", v.Org)
	v.Name = oneLine(displayName)
	v.When = humanTime(tag, when)
	v.PortalURL = strings.TrimRight(safeURL(portalURL), "/")
	v.Items = make([]string, len(methods))
	for i, m := range methods {
		v.Items[i] = oneLine(i18n.In(tag, m))
	}
	return v.render(to, removedText, removedHTML)
}

// AdminPasswordResetNotice tells an administrator that the administrator
// adminName reset their own password through the portal at when.
func AdminPasswordResetNotice(tag language.Tag, to, orgName, adminName string, when time.Time) Message {
	v := newView(tag, orgName)
	v.Subject = i18n.In(tag, "An administrator's password was reset at %s", v.Org)
	v.Name = oneLine(adminName)
	v.When = humanTime(tag, when)
	return v.render(to, adminText, adminHTML)
}

// PasswordExpiry reminds a person that their password expires at expires
// (left is the time until then), with a link to changeURL, the portal's
// change-password page; the link is left out unless it is an absolute
// http(s) URL.
func PasswordExpiry(tag language.Tag, to, orgName, displayName string, expires time.Time, left time.Duration, changeURL string) Message {
	v := newView(tag, orgName)
	v.Name = oneLine(displayName)
	v.When = humanTime(tag, expires)
	v.Left = humanDays(tag, left)
	v.PortalURL = safeURL(changeURL)
	v.Subject = i18n.In(tag, "Your %s password expires %s", v.Org, v.Left)
	return v.render(to, expiryText, expiryHTML)
}

// RegistrationCampaign is the registration campaign's mail: the person has
// not registered enough methods to reset their password themselves, or
// (reconfirm) should check that what they registered is still right; the
// link is the portal's /register.
func RegistrationCampaign(tag language.Tag, to, orgName, displayName, registerURL string, reconfirm bool) Message {
	v := newView(tag, orgName)
	v.Name = oneLine(displayName)
	v.PortalURL = safeURL(registerURL)
	if reconfirm {
		v.Subject = i18n.In(tag, "Check your %s password reset details", v.Org)
		return v.render(to, reconfirmText, reconfirmHTML)
	}
	v.Subject = i18n.In(tag, "Set up password reset for your %s account", v.Org)
	return v.render(to, campaignText, campaignHTML)
}

// humanDays says how far off d is, in whole days: "in 6 days", "in 1 day",
// "within a day".
func humanDays(tag language.Tag, d time.Duration) string {
	if n := int64(d / (24 * time.Hour)); n > 0 {
		return i18n.In(tag, "in %d days", n)
	}
	return i18n.In(tag, "within a day")
}

// TestMessage is the message behind "Send test mail": it shows that the mail
// server settings work.
func TestMessage(tag language.Tag, to, orgName string) Message {
	v := newView(tag, orgName)
	v.Subject = i18n.In(tag, "Test message from the %s password portal", v.Org)
	return v.render(to, testText, testHTML)
}

// view is what every template sees.
type view struct {
	lang      language.Tag
	Lang      string // the language's code, for the HTML part's lang
	Subject   string
	Org       string
	Name      string // the person's or administrator's display name; may be empty
	Code      string
	ValidFor  string
	When      string
	Left      string   // how long until When, in words ("in 6 days")
	PortalURL string   // empty unless it is a safe absolute http(s) URL
	Items     []string // a list of names (methods removed)
}

func newView(tag language.Tag, orgName string) view {
	org := oneLine(orgName)
	if org == "" {
		org = "Writeback"
	}
	return view{lang: tag, Lang: i18n.Code(tag), Org: org}
}

// textFuncs let a text template write the catalogue's sentences: t is a
// sentence in the message's language.
func (v view) textFuncs() texttemplate.FuncMap {
	return texttemplate.FuncMap{"t": func(key string, args ...any) string { return i18n.In(v.lang, key, args...) }}
}

// htmlFuncs are textFuncs for the HTML part, where t's sentence is escaped
// like any value, and th is a sentence that has markup among its values
// (%s only): the sentence is escaped, a value of type HTML (from tag, link
// or strong) goes in as it is and any other value escaped.
func (v view) htmlFuncs() htmltemplate.FuncMap {
	return htmltemplate.FuncMap{
		"t": func(key string, args ...any) string { return i18n.In(v.lang, key, args...) },
		"th": func(key string, args ...any) htmltemplate.HTML {
			marks := make([]any, len(args))
			for i := range args {
				marks[i] = "WBVALUE" + strconv.Itoa(i) + "WB"
			}
			out := htmltemplate.HTMLEscapeString(i18n.In(v.lang, key, marks...))
			for i, a := range args {
				h, ok := a.(htmltemplate.HTML)
				if !ok {
					h = htmltemplate.HTML(htmltemplate.HTMLEscapeString(fmt.Sprint(a)))
				}
				out = strings.ReplaceAll(out, marks[i].(string), string(h))
			}
			return htmltemplate.HTML(out)
		},
		// tag is a fixed piece of markup a template writes ("<strong>").
		"tag": func(s string) htmltemplate.HTML { return htmltemplate.HTML(s) },
		// strong is a value in bold.
		"strong": func(s string) htmltemplate.HTML {
			return htmltemplate.HTML("<strong>" + htmltemplate.HTMLEscapeString(s) + "</strong>")
		},
		// link is a link to url (a safeURL) showing url.
		"link": func(url string) htmltemplate.HTML {
			u := htmltemplate.HTMLEscapeString(url)
			return htmltemplate.HTML(`<a href="` + u + `">` + u + `</a>`)
		},
	}
}

func (v view) render(to, textBody, htmlBody string) Message {
	var text, html strings.Builder
	tt := texttemplate.Must(texttemplate.Must(texttemplate.New("layout").Funcs(v.textFuncs()).Parse(textLayout)).Parse(textBody))
	if err := tt.Execute(&text, v); err != nil {
		panic("mail: text template: " + err.Error())
	}
	ht := htmltemplate.Must(htmltemplate.Must(htmltemplate.New("layout").Funcs(v.htmlFuncs()).Parse(htmlLayout)).Parse(htmlBody))
	if err := ht.Execute(&html, v); err != nil {
		panic("mail: html template: " + err.Error())
	}
	return Message{To: to, Subject: v.Subject, Text: text.String(), HTML: html.String()}
}

// oneLine turns a value that goes into a subject or a sentence into one line
// without control characters, so nothing a directory attribute holds can
// start a new header or paragraph.
func oneLine(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	return strings.Join(strings.Fields(s), " ")
}

// safeURL returns raw when it is an absolute http or https URL without user
// information, and "" otherwise, so a mistyped or hostile setting drops the
// link rather than sending one.
func safeURL(raw string) string {
	raw = strings.TrimSpace(raw)
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil ||
		strings.ContainsAny(raw, " \t\r\n\"'<>") {
		return ""
	}
	return u.String()
}

// humanTime is a moment for a sentence ("on …"): in English as before,
// "Monday 2 January 2006 at 15:04 MST" in the moment's own zone; in
// another language its day and time in UTC as i18n writes them.
func humanTime(tag language.Tag, t time.Time) string {
	if t.IsZero() {
		t = time.Now()
	}
	if tag != i18n.English {
		return i18n.DateTimeIn(tag, t)
	}
	return t.Format("Monday 2 January 2006 at 15:04 MST")
}

func humanDuration(tag language.Tag, d time.Duration) string {
	switch {
	case d >= time.Hour && d%time.Hour == 0:
		return i18n.In(tag, "%d hours", int64(d/time.Hour))
	case d >= time.Minute:
		return i18n.In(tag, "%d minutes", int64((d+time.Minute/2)/time.Minute))
	case d > 0:
		return i18n.In(tag, "%d seconds", int64((d+time.Second/2)/time.Second))
	default:
		return i18n.In(tag, "a short time")
	}
}

const textLayout = `{{template "content" .}}
-- 
{{t "This message was sent automatically by the %s password portal." .Org}}
`

const htmlLayout = `<!DOCTYPE html>
<html lang="{{.Lang}}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Subject}}</title>
</head>
<body style="margin:0;padding:0;background:#f4f4f4;color:#1b1b1b;font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;">
<table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0"><tr><td align="center" style="padding:24px 12px;">
<table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0" style="max-width:560px;background:#ffffff;border:1px solid #dddddd;">
<tr><td style="padding:16px 24px;border-bottom:1px solid #dddddd;font-size:14px;font-weight:600;">{{.Org}}</td></tr>
<tr><td style="padding:24px;font-size:15px;line-height:1.5;">
{{template "content" .}}
</td></tr>
<tr><td style="padding:16px 24px;border-top:1px solid #dddddd;font-size:12px;color:#595959;">{{t "This message was sent automatically by the %s password portal." .Org}}</td></tr>
</table>
</td></tr></table>
</body>
</html>
`

// hello is the greeting, with the person's name when there is one.
const helloText = `{{define "hello"}}{{if .Name}}{{t "Hello %s," .Name}}{{else}}{{t "Hello,"}}{{end}}{{end}}`

const verificationText = `{{define "content"}}{{t "Hello,"}}

{{t "Someone asked the %s password portal for a code to confirm this e-mail address. Your verification code is:" .Org}}

    {{.Code}}

{{t "Type this code into the page where you asked for it. It works once and for %s." .ValidFor}}

{{t "If you did not ask for a code, ignore this message: nothing changes unless the code is typed in. Never give this code to anyone; nobody at %s will ask you for it." .Org}}
{{end}}`

const verificationHTML = `{{define "content"}}<p style="margin:0 0 16px;">{{t "Hello,"}}</p>
<p style="margin:0 0 16px;">{{t "Someone asked the %s password portal for a code to confirm this e-mail address. Your verification code is:" .Org}}</p>
<p style="margin:0 0 16px;font-size:28px;font-weight:700;letter-spacing:4px;font-family:Consolas,'Courier New',monospace;">{{.Code}}</p>
<p style="margin:0 0 16px;">{{t "Type this code into the page where you asked for it. It works once and for %s." .ValidFor}}</p>
<p style="margin:0;">{{t "If you did not ask for a code, ignore this message: nothing changes unless the code is typed in. Never give this code to anyone; nobody at %s will ask you for it." .Org}}</p>
{{end}}`

const resetText = helloText + `{{define "content"}}{{template "hello" .}}

{{t "The password for your %s account was reset through the password portal on %s." .Org .When}}

{{t "If this was you, there is nothing more to do. Other devices, such as your phone, may keep using the old password for a while until you sign in on them again."}}

{{t "%[1]sIf this was not you%[2]s, contact your helpdesk or administrator right away: someone else may be able to sign in as you." "" ""}}{{if .PortalURL}} {{t "You can also reset your password again yourself at:"}}

{{.PortalURL}}{{end}}
{{end}}`

const resetHTML = helloText + `{{define "content"}}<p style="margin:0 0 16px;">{{template "hello" .}}</p>
<p style="margin:0 0 16px;">{{t "The password for your %s account was reset through the password portal on %s." .Org .When}}</p>
<p style="margin:0 0 16px;">{{t "If this was you, there is nothing more to do. Other devices, such as your phone, may keep using the old password for a while until you sign in on them again."}}</p>
<p style="margin:0;">{{th "%[1]sIf this was not you%[2]s, contact your helpdesk or administrator right away: someone else may be able to sign in as you." (tag "<strong>") (tag "</strong>")}}{{if .PortalURL}} {{th "You can also reset your password again yourself at %s." (link .PortalURL)}}{{end}}</p>
{{end}}`

const removedText = helloText + `{{define "content"}}{{template "hello" .}}

{{t "On %s the helpdesk removed what you had registered to reset your %s password yourself:" .When .Org}}
{{range .Items}}
- {{.}}{{end}}

{{if .PortalURL}}{{t "To reset your password yourself again later, register again at:"}}

{{.PortalURL}}/register{{else}}{{t "To reset your password yourself again later, register again on the password portal."}}{{end}}

{{t "If you did not ask for this, contact your helpdesk."}}
{{end}}`

const removedHTML = helloText + `{{define "content"}}<p style="margin:0 0 16px;">{{template "hello" .}}</p>
<p style="margin:0 0 8px;">{{t "On %s the helpdesk removed what you had registered to reset your %s password yourself:" .When .Org}}</p>
<ul style="margin:0 0 16px;">{{range .Items}}<li>{{.}}</li>{{end}}</ul>
<p style="margin:0 0 16px;">{{if .PortalURL}}{{th "To reset your password yourself again later, register again at %s." (link (print .PortalURL "/register"))}}{{else}}{{t "To reset your password yourself again later, register again on the password portal."}}{{end}}</p>
<p style="margin:0;">{{t "If you did not ask for this, contact your helpdesk."}}</p>
{{end}}`

const unlockText = helloText + `{{define "content"}}{{template "hello" .}}

{{t "Your %s account was unlocked through the password portal on %s. Your password was not changed." .Org .When}}

{{t "If this was you, there is nothing more to do."}}

{{t "%[1]sIf this was not you%[2]s, contact your helpdesk or administrator right away: someone else may be trying to sign in as you." "" ""}}{{if .PortalURL}} {{t "You can also reset your password yourself at:"}}

{{.PortalURL}}{{end}}
{{end}}`

const unlockHTML = helloText + `{{define "content"}}<p style="margin:0 0 16px;">{{template "hello" .}}</p>
<p style="margin:0 0 16px;">{{t "Your %s account was unlocked through the password portal on %s. Your password was not changed." .Org .When}}</p>
<p style="margin:0 0 16px;">{{t "If this was you, there is nothing more to do."}}</p>
<p style="margin:0;">{{th "%[1]sIf this was not you%[2]s, contact your helpdesk or administrator right away: someone else may be trying to sign in as you." (tag "<strong>") (tag "</strong>")}}{{if .PortalURL}} {{th "You can also reset your password yourself at %s." (link .PortalURL)}}{{end}}</p>
{{end}}`

const adminText = `{{define "content"}}{{t "Hello,"}}

{{if .Name}}{{t "The password of the administrator %s was reset through the %s password portal on %s." .Name .Org .When}}{{else}}{{t "The password of the administrator account was reset through the %s password portal on %s." .Org .When}}{{end}}

{{t "You receive this because you are an administrator and notices about administrators' password resets are turned on."}}

{{if .Name}}{{t "If this reset was not expected, check with %s by phone or in person, and look at the portal's audit log." .Name}}{{else}}{{t "If this reset was not expected, check with the account's owner by phone or in person, and look at the portal's audit log."}}{{end}}
{{end}}`

const adminHTML = `{{define "content"}}<p style="margin:0 0 16px;">{{t "Hello,"}}</p>
<p style="margin:0 0 16px;">{{if .Name}}{{th "The password of the administrator %s was reset through the %s password portal on %s." (strong .Name) .Org .When}}{{else}}{{t "The password of the administrator account was reset through the %s password portal on %s." .Org .When}}{{end}}</p>
<p style="margin:0 0 16px;">{{t "You receive this because you are an administrator and notices about administrators' password resets are turned on."}}</p>
<p style="margin:0;">{{if .Name}}{{t "If this reset was not expected, check with %s by phone or in person, and look at the portal's audit log." .Name}}{{else}}{{t "If this reset was not expected, check with the account's owner by phone or in person, and look at the portal's audit log."}}{{end}}</p>
{{end}}`

const expiryText = helloText + `{{define "content"}}{{template "hello" .}}

{{t "The password of your %s account expires %s, on %s. After that you cannot sign in with it until it is changed." .Org .Left .When}}

{{if .PortalURL}}{{t "Change it now, while you still know the current one, at:"}}

{{.PortalURL}}{{else}}{{t "Change it now, while you still know the current one, on the password portal or on your computer."}}{{end}}

{{t "Other devices, such as your phone, will ask for the new password the next time they sign in."}}

{{t "This reminder never asks for your password: if a message like this one asks you to type it anywhere but your organisation's own pages, report it to your helpdesk."}}
{{end}}`

const expiryHTML = helloText + `{{define "content"}}<p style="margin:0 0 16px;">{{template "hello" .}}</p>
<p style="margin:0 0 16px;">{{th "The password of your %s account expires %s, on %s. After that you cannot sign in with it until it is changed." .Org (strong .Left) .When}}</p>
<p style="margin:0 0 16px;">{{if .PortalURL}}{{th "Change it now, while you still know the current one: %s." (link .PortalURL)}}{{else}}{{t "Change it now, while you still know the current one, on the password portal or on your computer."}}{{end}}</p>
<p style="margin:0 0 16px;">{{t "Other devices, such as your phone, will ask for the new password the next time they sign in."}}</p>
<p style="margin:0;">{{t "This reminder never asks for your password: if a message like this one asks you to type it anywhere but your organisation's own pages, report it to your helpdesk."}}</p>
{{end}}`

const campaignText = helloText + `{{define "content"}}{{template "hello" .}}

{{t "You have not yet set up enough ways to prove who you are, so you cannot reset your %s password yourself if you forget it or your account is locked." .Org}}

{{if .PortalURL}}{{t "It takes two minutes, at:"}}

{{.PortalURL}}{{else}}{{t "It takes two minutes, on the password portal."}}{{end}}

{{t "Sign in there with your current password and follow the steps."}}

{{t "This message never asks for your password: if a message like this one asks you to type it anywhere but your organisation's own pages, report it to your helpdesk."}}
{{end}}`

const campaignHTML = helloText + `{{define "content"}}<p style="margin:0 0 16px;">{{template "hello" .}}</p>
<p style="margin:0 0 16px;">{{t "You have not yet set up enough ways to prove who you are, so you cannot reset your %s password yourself if you forget it or your account is locked." .Org}}</p>
<p style="margin:0 0 16px;">{{if .PortalURL}}{{th "It takes two minutes: %s." (link .PortalURL)}}{{else}}{{t "It takes two minutes, on the password portal."}}{{end}}</p>
<p style="margin:0 0 16px;">{{t "Sign in there with your current password and follow the steps."}}</p>
<p style="margin:0;">{{t "This message never asks for your password: if a message like this one asks you to type it anywhere but your organisation's own pages, report it to your helpdesk."}}</p>
{{end}}`

const reconfirmText = helloText + `{{define "content"}}{{template "hello" .}}

{{t "Please check that the details you use to reset your %s password are still right: an old phone number or address would leave you unable to reset it." .Org}}

{{if .PortalURL}}{{t "Check them at:"}}

{{.PortalURL}}{{else}}{{t "Check them on the password portal."}}{{end}}

{{t "Sign in there with your current password, then confirm or update what you registered."}}

{{t "This message never asks for your password: if a message like this one asks you to type it anywhere but your organisation's own pages, report it to your helpdesk."}}
{{end}}`

const reconfirmHTML = helloText + `{{define "content"}}<p style="margin:0 0 16px;">{{template "hello" .}}</p>
<p style="margin:0 0 16px;">{{t "Please check that the details you use to reset your %s password are still right: an old phone number or address would leave you unable to reset it." .Org}}</p>
<p style="margin:0 0 16px;">{{if .PortalURL}}{{th "Check them: %s." (link .PortalURL)}}{{else}}{{t "Check them on the password portal."}}{{end}}</p>
<p style="margin:0 0 16px;">{{t "Sign in there with your current password, then confirm or update what you registered."}}</p>
<p style="margin:0;">{{t "This message never asks for your password: if a message like this one asks you to type it anywhere but your organisation's own pages, report it to your helpdesk."}}</p>
{{end}}`

const testText = `{{define "content"}}{{t "Hello,"}}

{{t "This is a test message from the %s password portal. If you can read it, the mail server settings work." .Org}}

{{t "There is nothing else to do."}}
{{end}}`

const testHTML = `{{define "content"}}<p style="margin:0 0 16px;">{{t "Hello,"}}</p>
<p style="margin:0 0 16px;">{{t "This is a test message from the %s password portal. If you can read it, the mail server settings work." .Org}}</p>
<p style="margin:0;">{{t "There is nothing else to do."}}</p>
{{end}}`
