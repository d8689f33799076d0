// Package sms sends text messages through an HTTP SMS gateway the
// organisation already has: a request built from a template (URL, method,
// headers, body) into which the number ({{to}}), the text ({{message}}), the
// sender ({{from}}) and the gateway secret ({{secret}}) are put, each encoded
// for where it stands. Presets fill the template for the usual gateway APIs.
//
// It also turns the numbers people type or the directory holds into E.164
// (github.com/nyaruka/phonenumbers) and masks them for display.
package sms

import (
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/writeback/writeback/services/errs"
	"github.com/writeback/writeback/services/i18n"
)

// Body encodings: how values are put into the body template, and the
// Content-Type the request carries.
const (
	BodyForm = "form" // application/x-www-form-urlencoded: values query-escaped
	BodyJSON = "json" // application/json: values as JSON string contents
	BodyText = "text" // text/plain: values as they are
)

// Authentication modes.
const (
	AuthNone   = "none"
	AuthBasic  = "basic"  // HTTP basic authentication: Username and the secret
	AuthHeader = "header" // the secret as the value of the header AuthHeader
)

// Placeholders a template may hold.
const (
	PlaceholderTo      = "{{to}}"
	PlaceholderMessage = "{{message}}"
	PlaceholderFrom    = "{{from}}"
	PlaceholderSecret  = "{{secret}}"
)

// Header is one request header of the template.
type Header struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Config is the gateway's request template. The secret (a password, an API
// key or token) is not part of it: the caller keeps it sealed and passes it
// to Send.
type Config struct {
	Preset   string   `json:"preset,omitempty"`
	Method   string   `json:"method"`
	URL      string   `json:"url"`
	Headers  []Header `json:"headers,omitempty"`
	Encoding string   `json:"encoding,omitempty"` // BodyForm, BodyJSON or BodyText; "" for a request without body
	Body     string   `json:"body,omitempty"`
	From     string   `json:"from,omitempty"` // sender ID or number, for {{from}}
	Auth     string   `json:"auth"`
	Username string   `json:"username,omitempty"`    // AuthBasic
	AuthHead string   `json:"auth_header,omitempty"` // AuthHeader: the header's name, e.g. Authorization
}

// The field keys Validate uses, as the gateway page names its inputs.
const (
	FieldMethod   = "method"
	FieldURL      = "url"
	FieldHeaders  = "headers"
	FieldEncoding = "encoding"
	FieldBody     = "body"
	FieldFrom     = "from"
	FieldAuth     = "auth"
	FieldUsername = "username"
	FieldAuthHead = "auth_header"
	FieldSecret   = "secret"
)

var headerName = regexp.MustCompile(`^[A-Za-z0-9!#$%&'*+.^_` + "`" + `|~-]{1,64}$`)

// Configured reports whether a gateway is set.
func (c Config) Configured() bool { return c.URL != "" }

// NeedsSecret reports whether requests carry the secret.
func (c Config) NeedsSecret() bool {
	if c.Auth == AuthBasic || c.Auth == AuthHeader {
		return true
	}
	for _, s := range c.templates() {
		if strings.Contains(s, PlaceholderSecret) {
			return true
		}
	}
	return false
}

func (c Config) templates() []string {
	out := []string{c.URL, c.Body}
	for _, h := range c.Headers {
		out = append(out, h.Value)
	}
	return out
}

// ServerID names the gateway a secret is for: scheme and host of the URL. A
// stored secret is only ever sent to it.
func (c Config) ServerID() string {
	u, err := url.Parse(c.URL)
	if err != nil {
		return ""
	}
	return strings.ToLower(u.Scheme + "://" + u.Host)
}

// Validate checks the template; the errs.Error's Fields name each input with
// a problem. secret is the secret that will be stored ("" for none); it is
// never repeated in a message.
func (c Config) Validate(secret string) error {
	f := map[string]errs.Text{}
	switch c.Method {
	case http.MethodGet, http.MethodPost, http.MethodPut:
	default:
		f[FieldMethod] = errs.Textf("Choose GET, POST or PUT.")
	}
	if msg := checkURL(c.URL); msg != "" {
		f[FieldURL] = errs.Text{Format: msg}
	}
	for _, h := range c.Headers {
		switch {
		case !headerName.MatchString(h.Name):
			f[FieldHeaders] = errs.Textf("Write one header a line as Name: value; %s is not a header name.", quoteShort(h.Name))
		case strings.ContainsAny(h.Value, "\r\n\x00"):
			f[FieldHeaders] = errs.Textf("A header value cannot hold a line break.")
		case strings.EqualFold(h.Name, "Content-Type") || strings.EqualFold(h.Name, "Content-Length") || strings.EqualFold(h.Name, "Host"):
			f[FieldHeaders] = errs.Textf("%s is set by the portal: remove it (choose the body format instead).", h.Name)
		}
	}
	switch {
	case c.Method == http.MethodGet && (c.Body != "" || c.Encoding != ""):
		f[FieldBody] = errs.Textf("A GET request has no body: put {{to}} and {{message}} into the URL, or choose POST.")
	case c.Method != http.MethodGet && c.Encoding != BodyForm && c.Encoding != BodyJSON && c.Encoding != BodyText:
		f[FieldEncoding] = errs.Textf("Choose form, JSON or plain text.")
	case len(c.Body) > 4000:
		f[FieldBody] = errs.Textf("Use at most 4,000 characters.")
	}
	all := strings.Join(c.templates(), "\n")
	if !strings.Contains(all, PlaceholderTo) || !strings.Contains(all, PlaceholderMessage) {
		key := FieldBody
		if c.Method == http.MethodGet {
			key = FieldURL
		}
		if _, taken := f[key]; !taken {
			f[key] = errs.Textf("Put {{to}} (the number) and {{message}} (the text) where the gateway expects them.")
		}
	}
	if c.Encoding == BodyJSON && c.Body != "" {
		if msg := checkJSONTemplate(c.Body); msg != "" {
			f[FieldBody] = errs.Text{Format: msg}
		}
	}
	if utf8.RuneCountInString(c.From) > 32 || strings.ContainsAny(c.From, "\r\n\x00") {
		f[FieldFrom] = errs.Textf("Use at most 32 characters on one line.")
	}
	switch c.Auth {
	case AuthNone:
	case AuthBasic:
		if c.Username == "" || strings.ContainsAny(c.Username, ":\r\n\x00") || len(c.Username) > 200 {
			f[FieldUsername] = errs.Textf("Enter the user name (account ID) for basic authentication, without a colon.")
		}
	case AuthHeader:
		if !headerName.MatchString(c.AuthHead) {
			f[FieldAuthHead] = errs.Textf("Enter the header that carries the secret, e.g. Authorization or X-API-Key.")
		}
	default:
		f[FieldAuth] = errs.Textf("Choose none, basic authentication or a secret header.")
	}
	switch {
	case c.NeedsSecret() && secret == "":
		f[FieldSecret] = errs.Textf("Enter the gateway's secret (password, API key or token).")
	case strings.ContainsAny(secret, "\r\n\x00"):
		f[FieldSecret] = errs.Textf("The secret cannot hold a line break.")
	case len(secret) > 1000:
		f[FieldSecret] = errs.Textf("Use at most 1,000 characters.")
	}
	if len(f) > 0 {
		return errs.FieldTexts(f)
	}
	return nil
}

// checkURL says what is wrong with a gateway URL template, or "". Plain
// http is accepted only for a gateway on a loopback address, where the
// secret and the codes never leave the machine.
func checkURL(raw string) string {
	probe := strings.NewReplacer(PlaceholderTo, "x", PlaceholderMessage, "x", PlaceholderFrom, "x", PlaceholderSecret, "x").Replace(raw)
	u, err := url.Parse(probe)
	switch {
	case raw == "":
		return i18n.Key("Enter the gateway's URL, e.g. https://sms.example.com/send.")
	case len(raw) > 2000 || strings.ContainsAny(raw, " \r\n\x00"):
		return i18n.Key("Enter one URL without spaces.")
	case err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http"):
		return i18n.Key("Enter an absolute URL starting with https://.")
	case u.User != nil:
		return i18n.Key("Put credentials in the secret, not in the URL.")
	case strings.Contains(u.Host, "{{"):
		return i18n.Key("The host name cannot hold a placeholder.")
	case u.Scheme == "http" && !loopback(u.Hostname()):
		return i18n.Key("Use https:// (plain http only for a gateway on this machine).")
	}
	return ""
}

func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func quoteShort(s string) string {
	if utf8.RuneCountInString(s) > 40 {
		s = string([]rune(s)[:40]) + "…"
	}
	return "\u201c" + s + "\u201d"
}

// ParseHeaders reads headers written one a line as "Name: value"; empty
// lines are skipped. A line without a colon is a field error on "headers".
func ParseHeaders(text string) ([]Header, error) {
	var out []Header
	for line := range strings.SplitSeq(strings.ReplaceAll(text, "\r\n", "\n"), "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok {
			return nil, errs.FieldErrors(map[string]string{FieldHeaders: "Write one header a line as Name: value."})
		}
		out = append(out, Header{Name: strings.TrimSpace(name), Value: strings.TrimSpace(value)})
	}
	if len(out) > 20 {
		return nil, errs.FieldErrors(map[string]string{FieldHeaders: "Use at most 20 headers."})
	}
	return out, nil
}

// HeadersText writes headers as ParseHeaders reads them.
func HeadersText(hs []Header) string {
	var b strings.Builder
	for _, h := range hs {
		b.WriteString(h.Name + ": " + h.Value + "\n")
	}
	return b.String()
}

// Preset is a ready template for a common kind of gateway API.
type Preset struct {
	Key, Label, Help string
	Config           Config
}

// Presets are the templates the gateway page offers.
func Presets() []Preset {
	return []Preset{
		{Key: "twilio", Label: i18n.Key("Twilio-style (form POST, basic authentication)"),
			Help: i18n.Key("Twilio and gateways with the same API: replace ACCOUNT_SID in the URL; the user name is the account SID, the secret the auth token, the sender your number."),
			Config: Config{Preset: "twilio", Method: http.MethodPost, URL: "https://api.twilio.com/2010-04-01/Accounts/ACCOUNT_SID/Messages.json",
				Encoding: BodyForm, Body: "To={{to}}&From={{from}}&Body={{message}}", Auth: AuthBasic, Username: "ACCOUNT_SID"}},
		{Key: "json", Label: i18n.Key("JSON POST with a bearer token"),
			Help: i18n.Key("Gateways that take a JSON document: adjust the URL and the field names; the secret is sent as Authorization: Bearer <secret>."),
			Config: Config{Preset: "json", Method: http.MethodPost, URL: "https://sms.example.com/api/v1/messages",
				Headers:  []Header{{Name: "Authorization", Value: "Bearer {{secret}}"}, {Name: "Accept", Value: "application/json"}},
				Encoding: BodyJSON, Body: `{"to": "{{to}}", "from": "{{from}}", "text": "{{message}}"}`, Auth: AuthNone}},
		{Key: "get", Label: i18n.Key("GET with query parameters"),
			Help: i18n.Key("Simple HTTP gateways and SMS modems: every value goes into the URL's query; the secret as an API key parameter."),
			Config: Config{Preset: "get", Method: http.MethodGet, URL: "https://sms.example.com/send?to={{to}}&text={{message}}&from={{from}}&key={{secret}}",
				Auth: AuthNone}},
	}
}

// PresetByKey finds a preset; ok is false for an unknown key.
func PresetByKey(key string) (Preset, bool) {
	for _, p := range Presets() {
		if p.Key == key {
			return p, true
		}
	}
	return Preset{}, false
}
