package mail

import (
	"fmt"
	htmltemplate "html/template"
	"net/url"
	"strconv"
	"strings"
	texttemplate "text/template"
	"time"
)

// The templates below are parsed on each call rather than kept in package
// variables: parsing takes microseconds, mail is rare, and the package then
// holds no state at all. Every template is executed by the tests, so a
// mistake in one fails there, not in front of a person.

// VerificationCode is the message carrying a one-time code that proves the
// recipient can read mail at this address. The code is meant to be typed into
// the page that asked for it; the message holds no link, because mail
// scanners open links and a link must never be able to use up a code.
func VerificationCode(to, orgName, code string, validFor time.Duration) Message {
	v := newView(orgName)
	v.Subject = "Your verification code for " + v.Org
	v.Code = oneLine(code)
	v.ValidFor = humanDuration(validFor)
	return v.render(to, verificationText, verificationHTML)
}

// PasswordReset tells a person that their password was reset through the
// portal at when, and what to do if it was not them. portalURL, the portal's
// configured base URL, is the only link; it is left out unless it is an
// absolute http(s) URL.
func PasswordReset(to, orgName, displayName string, when time.Time, portalURL string) Message {
	v := newView(orgName)
	v.Subject = "Your " + v.Org + " password was reset"
	v.Name = oneLine(displayName)
	v.When = humanTime(when)
	v.PortalURL = safeURL(portalURL)
	return v.render(to, resetText, resetHTML)
}

// AccountUnlocked tells a person that their account was unlocked through the
// portal at when, with the password left as it was, and what to do if it was
// not them. portalURL is handled as in PasswordReset.
func AccountUnlocked(to, orgName, displayName string, when time.Time, portalURL string) Message {
	v := newView(orgName)
	v.Subject = "Your " + v.Org + " account was unlocked"
	v.Name = oneLine(displayName)
	v.When = humanTime(when)
	v.PortalURL = safeURL(portalURL)
	return v.render(to, unlockText, unlockHTML)
}

// MethodsRemoved tells a person that the helpdesk removed what they had
// registered to prove who they are (methods: their names), at when.
func MethodsRemoved(to, orgName, displayName string, methods []string, when time.Time, portalURL string) Message {
	v := newView(orgName)
	v.Subject = "Your " + v.Org + " password reset methods were removed"
	v.Name = oneLine(displayName)
	v.When = humanTime(when)
	v.PortalURL = strings.TrimRight(safeURL(portalURL), "/")
	v.Items = make([]string, len(methods))
	for i, m := range methods {
		v.Items[i] = oneLine(m)
	}
	return v.render(to, removedText, removedHTML)
}

// AdminPasswordResetNotice tells an administrator that the administrator
// adminName reset their own password through the portal at when.
func AdminPasswordResetNotice(to, orgName, adminName string, when time.Time) Message {
	v := newView(orgName)
	v.Subject = "An administrator's password was reset at " + v.Org
	v.Name = oneLine(adminName)
	v.When = humanTime(when)
	return v.render(to, adminText, adminHTML)
}

// PasswordExpiry reminds a person that their password expires at expires
// (left is the time until then), with a link to changeURL, the portal's
// change-password page; the link is left out unless it is an absolute
// http(s) URL.
func PasswordExpiry(to, orgName, displayName string, expires time.Time, left time.Duration, changeURL string) Message {
	v := newView(orgName)
	v.Name = oneLine(displayName)
	v.When = humanTime(expires)
	v.Left = humanDays(left)
	v.PortalURL = safeURL(changeURL)
	v.Subject = "Your " + v.Org + " password expires " + v.Left
	return v.render(to, expiryText, expiryHTML)
}

// RegistrationCampaign is the registration campaign's mail: the person has
// not registered enough methods to reset their password themselves, or
// (reconfirm) should check that what they registered is still right; the
// link is the portal's /register.
func RegistrationCampaign(to, orgName, displayName, registerURL string, reconfirm bool) Message {
	v := newView(orgName)
	v.Name = oneLine(displayName)
	v.PortalURL = safeURL(registerURL)
	if reconfirm {
		v.Subject = fmt.Sprintf("Check your %s password reset details", v.Org)
		return v.render(to, reconfirmText, reconfirmHTML)
	}
	v.Subject = fmt.Sprintf("Set up password reset for your %s account", v.Org)
	return v.render(to, campaignText, campaignHTML)
}

// humanDays says how far off d is, in whole days: "in 6 days", "in 1 day",
// "within a day".
func humanDays(d time.Duration) string {
	switch n := int64(d / (24 * time.Hour)); {
	case n <= 0:
		return "within a day"
	case n == 1:
		return "in 1 day"
	default:
		return "in " + strconv.FormatInt(n, 10) + " days"
	}
}

// TestMessage is the message behind "Send test mail": it shows that the mail
// server settings work.
func TestMessage(to, orgName string) Message {
	v := newView(orgName)
	v.Subject = "Test message from the " + v.Org + " password portal"
	return v.render(to, testText, testHTML)
}

// view is what every template sees.
type view struct {
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

func newView(orgName string) view {
	org := oneLine(orgName)
	if org == "" {
		org = "Writeback"
	}
	return view{Org: org}
}

func (v view) render(to, textBody, htmlBody string) Message {
	var text, html strings.Builder
	tt := texttemplate.Must(texttemplate.Must(texttemplate.New("layout").Parse(textLayout)).Parse(textBody))
	if err := tt.Execute(&text, v); err != nil {
		panic("mail: text template: " + err.Error())
	}
	ht := htmltemplate.Must(htmltemplate.Must(htmltemplate.New("layout").Parse(htmlLayout)).Parse(htmlBody))
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

func humanTime(t time.Time) string {
	if t.IsZero() {
		t = time.Now()
	}
	return t.Format("Monday 2 January 2006 at 15:04 MST")
}

func humanDuration(d time.Duration) string {
	unit := func(n int64, word string) string {
		if n == 1 {
			return "1 " + word
		}
		return strconv.FormatInt(n, 10) + " " + word + "s"
	}
	switch {
	case d >= time.Hour && d%time.Hour == 0:
		return unit(int64(d/time.Hour), "hour")
	case d >= time.Minute:
		return unit(int64((d+time.Minute/2)/time.Minute), "minute")
	case d > 0:
		return unit(int64((d+time.Second/2)/time.Second), "second")
	default:
		return "a short time"
	}
}

const textLayout = `{{template "content" .}}
-- 
This message was sent automatically by the {{.Org}} password portal.
`

const htmlLayout = `<!DOCTYPE html>
<html lang="en">
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
<tr><td style="padding:16px 24px;border-top:1px solid #dddddd;font-size:12px;color:#595959;">This message was sent automatically by the {{.Org}} password portal.</td></tr>
</table>
</td></tr></table>
</body>
</html>
`

const verificationText = `{{define "content"}}Hello,

Someone asked the {{.Org}} password portal for a code to confirm this e-mail address. Your verification code is:

    {{.Code}}

Type this code into the page where you asked for it. It works once and for {{.ValidFor}}.

If you did not ask for a code, ignore this message: nothing changes unless the code is typed in. Never give this code to anyone; nobody at {{.Org}} will ask you for it.
{{end}}`

const verificationHTML = `{{define "content"}}<p style="margin:0 0 16px;">Hello,</p>
<p style="margin:0 0 16px;">Someone asked the {{.Org}} password portal for a code to confirm this e-mail address. Your verification code is:</p>
<p style="margin:0 0 16px;font-size:28px;font-weight:700;letter-spacing:4px;font-family:Consolas,'Courier New',monospace;">{{.Code}}</p>
<p style="margin:0 0 16px;">Type this code into the page where you asked for it. It works once and for {{.ValidFor}}.</p>
<p style="margin:0;">If you did not ask for a code, ignore this message: nothing changes unless the code is typed in. Never give this code to anyone; nobody at {{.Org}} will ask you for it.</p>
{{end}}`

const resetText = `{{define "content"}}Hello{{if .Name}} {{.Name}}{{end}},

The password for your {{.Org}} account was reset through the password portal on {{.When}}.

If this was you, there is nothing more to do. Other devices, such as your phone, may keep using the old password for a while until you sign in on them again.

If this was not you, contact your helpdesk or administrator right away: someone else may be able to sign in as you.{{if .PortalURL}} You can also reset your password again yourself at:

{{.PortalURL}}{{end}}
{{end}}`

const resetHTML = `{{define "content"}}<p style="margin:0 0 16px;">Hello{{if .Name}} {{.Name}}{{end}},</p>
<p style="margin:0 0 16px;">The password for your {{.Org}} account was reset through the password portal on {{.When}}.</p>
<p style="margin:0 0 16px;">If this was you, there is nothing more to do. Other devices, such as your phone, may keep using the old password for a while until you sign in on them again.</p>
<p style="margin:0;"><strong>If this was not you</strong>, contact your helpdesk or administrator right away: someone else may be able to sign in as you.{{if .PortalURL}} You can also reset your password again yourself at <a href="{{.PortalURL}}">{{.PortalURL}}</a>.{{end}}</p>
{{end}}`

const removedText = `{{define "content"}}Hello{{if .Name}} {{.Name}}{{end}},

On {{.When}} the helpdesk removed what you had registered to reset your {{.Org}} password yourself:
{{range .Items}}
- {{.}}{{end}}

To reset your password yourself again later, register again{{if .PortalURL}} at:

{{.PortalURL}}/register{{else}} on the password portal.{{end}}

If you did not ask for this, contact your helpdesk.
{{end}}`

const removedHTML = `{{define "content"}}<p style="margin:0 0 16px;">Hello{{if .Name}} {{.Name}}{{end}},</p>
<p style="margin:0 0 8px;">On {{.When}} the helpdesk removed what you had registered to reset your {{.Org}} password yourself:</p>
<ul style="margin:0 0 16px;">{{range .Items}}<li>{{.}}</li>{{end}}</ul>
<p style="margin:0 0 16px;">To reset your password yourself again later, register again{{if .PortalURL}} at <a href="{{.PortalURL}}/register">{{.PortalURL}}/register</a>{{else}} on the password portal{{end}}.</p>
<p style="margin:0;">If you did not ask for this, contact your helpdesk.</p>
{{end}}`

const unlockText = `{{define "content"}}Hello{{if .Name}} {{.Name}}{{end}},

Your {{.Org}} account was unlocked through the password portal on {{.When}}. Your password was not changed.

If this was you, there is nothing more to do.

If this was not you, contact your helpdesk or administrator right away: someone else may be trying to sign in as you.{{if .PortalURL}} You can also reset your password yourself at:

{{.PortalURL}}{{end}}
{{end}}`

const unlockHTML = `{{define "content"}}<p style="margin:0 0 16px;">Hello{{if .Name}} {{.Name}}{{end}},</p>
<p style="margin:0 0 16px;">Your {{.Org}} account was unlocked through the password portal on {{.When}}. Your password was not changed.</p>
<p style="margin:0 0 16px;">If this was you, there is nothing more to do.</p>
<p style="margin:0;"><strong>If this was not you</strong>, contact your helpdesk or administrator right away: someone else may be trying to sign in as you.{{if .PortalURL}} You can also reset your password yourself at <a href="{{.PortalURL}}">{{.PortalURL}}</a>.{{end}}</p>
{{end}}`

const adminText = `{{define "content"}}Hello,

The password of the administrator {{if .Name}}{{.Name}}{{else}}account{{end}} was reset through the {{.Org}} password portal on {{.When}}.

You receive this because you are an administrator and notices about administrators' password resets are turned on.

If this reset was not expected, check with {{if .Name}}{{.Name}}{{else}}the account's owner{{end}} by phone or in person, and look at the portal's audit log.
{{end}}`

const adminHTML = `{{define "content"}}<p style="margin:0 0 16px;">Hello,</p>
<p style="margin:0 0 16px;">The password of the administrator {{if .Name}}<strong>{{.Name}}</strong>{{else}}account{{end}} was reset through the {{.Org}} password portal on {{.When}}.</p>
<p style="margin:0 0 16px;">You receive this because you are an administrator and notices about administrators' password resets are turned on.</p>
<p style="margin:0;">If this reset was not expected, check with {{if .Name}}{{.Name}}{{else}}the account's owner{{end}} by phone or in person, and look at the portal's audit log.</p>
{{end}}`

const expiryText = `{{define "content"}}Hello{{if .Name}} {{.Name}}{{end}},

The password of your {{.Org}} account expires {{.Left}}, on {{.When}}. After that you cannot sign in with it until it is changed.

Change it now, while you still know the current one{{if .PortalURL}}, at:

{{.PortalURL}}{{else}}, on the password portal or on your computer.{{end}}

Other devices, such as your phone, will ask for the new password the next time they sign in.

This reminder never asks for your password: if a message like this one asks you to type it anywhere but your organisation's own pages, report it to your helpdesk.
{{end}}`

const expiryHTML = `{{define "content"}}<p style="margin:0 0 16px;">Hello{{if .Name}} {{.Name}}{{end}},</p>
<p style="margin:0 0 16px;">The password of your {{.Org}} account expires <strong>{{.Left}}</strong>, on {{.When}}. After that you cannot sign in with it until it is changed.</p>
<p style="margin:0 0 16px;">Change it now, while you still know the current one{{if .PortalURL}}: <a href="{{.PortalURL}}">{{.PortalURL}}</a>{{else}}, on the password portal or on your computer{{end}}.</p>
<p style="margin:0 0 16px;">Other devices, such as your phone, will ask for the new password the next time they sign in.</p>
<p style="margin:0;">This reminder never asks for your password: if a message like this one asks you to type it anywhere but your organisation's own pages, report it to your helpdesk.</p>
{{end}}`

const campaignText = `{{define "content"}}Hello{{if .Name}} {{.Name}}{{end}},

You have not yet set up enough ways to prove who you are, so you cannot reset your {{.Org}} password yourself if you forget it or your account is locked.

It takes two minutes{{if .PortalURL}}, at:

{{.PortalURL}}{{else}}, on the password portal.{{end}}

Sign in there with your current password and follow the steps.

This message never asks for your password: if a message like this one asks you to type it anywhere but your organisation's own pages, report it to your helpdesk.
{{end}}`

const campaignHTML = `{{define "content"}}<p style="margin:0 0 16px;">Hello{{if .Name}} {{.Name}}{{end}},</p>
<p style="margin:0 0 16px;">You have not yet set up enough ways to prove who you are, so you cannot reset your {{.Org}} password yourself if you forget it or your account is locked.</p>
<p style="margin:0 0 16px;">It takes two minutes{{if .PortalURL}}: <a href="{{.PortalURL}}">{{.PortalURL}}</a>{{else}}, on the password portal{{end}}.</p>
<p style="margin:0 0 16px;">Sign in there with your current password and follow the steps.</p>
<p style="margin:0;">This message never asks for your password: if a message like this one asks you to type it anywhere but your organisation's own pages, report it to your helpdesk.</p>
{{end}}`

const reconfirmText = `{{define "content"}}Hello{{if .Name}} {{.Name}}{{end}},

Please check that the details you use to reset your {{.Org}} password are still right: an old phone number or address would leave you unable to reset it.

Check them{{if .PortalURL}} at:

{{.PortalURL}}{{else}} on the password portal.{{end}}

Sign in there with your current password, then confirm or update what you registered.

This message never asks for your password: if a message like this one asks you to type it anywhere but your organisation's own pages, report it to your helpdesk.
{{end}}`

const reconfirmHTML = `{{define "content"}}<p style="margin:0 0 16px;">Hello{{if .Name}} {{.Name}}{{end}},</p>
<p style="margin:0 0 16px;">Please check that the details you use to reset your {{.Org}} password are still right: an old phone number or address would leave you unable to reset it.</p>
<p style="margin:0 0 16px;">Check them{{if .PortalURL}}: <a href="{{.PortalURL}}">{{.PortalURL}}</a>{{else}} on the password portal{{end}}.</p>
<p style="margin:0 0 16px;">Sign in there with your current password, then confirm or update what you registered.</p>
<p style="margin:0;">This message never asks for your password: if a message like this one asks you to type it anywhere but your organisation's own pages, report it to your helpdesk.</p>
{{end}}`

const testText = `{{define "content"}}Hello,

This is a test message from the {{.Org}} password portal. If you can read it, the mail server settings work.

There is nothing else to do.
{{end}}`

const testHTML = `{{define "content"}}<p style="margin:0 0 16px;">Hello,</p>
<p style="margin:0 0 16px;">This is a test message from the {{.Org}} password portal. If you can read it, the mail server settings work.</p>
<p style="margin:0;">There is nothing else to do.</p>
{{end}}`
