package sms

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/writeback/writeback/services/errs"
	"github.com/writeback/writeback/services/i18n"
)

// Timeout bounds one request to the gateway.
const Timeout = 15 * time.Second

// Message is one text message to send.
type Message struct {
	To   string // E.164
	Text string
}

// GatewayError is a request the gateway refused or that did not reach it.
// Detail is for administrators (the audit log): the status and the start of
// the gateway's answer, with the number, the text and the secret cut out.
type GatewayError struct {
	Status int
	Detail string
	Err    error
}

func (e *GatewayError) Error() string {
	if e.Status != 0 {
		return fmt.Sprintf("sms: gateway answered %d: %s", e.Status, e.Detail)
	}
	return "sms: gateway not reached: " + e.Detail
}

func (e *GatewayError) Unwrap() error { return e.Err }

// Client sends HTTP requests: an *http.Client.
type Client interface {
	Do(req *http.Request) (*http.Response, error)
}

// MethodGet is the method of a gateway request without body.
const MethodGet = http.MethodGet

// Sender sends messages with one gateway configuration.
type Sender struct {
	cfg    Config
	secret string
	client Client
}

// NewSender returns a sender for cfg with its secret. client nil is a client
// with Timeout that follows no redirects (a gateway that redirects is
// misconfigured, and a redirect would carry the secret elsewhere).
func NewSender(cfg Config, secret string, client Client) *Sender {
	if client == nil {
		client = &http.Client{Timeout: Timeout, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	return &Sender{cfg: cfg, secret: secret, client: client}
}

// Send sends one message. A failure is an *errs.Error of kind Unavailable
// whose message is safe for administrators and whose cause is a
// *GatewayError.
func (s *Sender) Send(ctx context.Context, m Message) error {
	req, err := s.request(ctx, m)
	if err != nil {
		return err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		var ue *url.Error
		detail := err.Error()
		if errors.As(err, &ue) {
			detail = ue.Err.Error() // without the URL, which may hold the secret
		}
		return errs.E(errs.Unavailable, "The SMS gateway could not be reached.", &GatewayError{Detail: s.redact(detail, m), Err: err})
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 2048))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	ge := &GatewayError{Status: resp.StatusCode, Detail: s.redact(strings.TrimSpace(string(b)), m)}
	switch resp.StatusCode {
	case http.StatusUnauthorized, http.StatusForbidden:
		return errs.Ef(errs.Unavailable, ge, "The SMS gateway refused the credentials (HTTP %s): check the user name and secret.", strconv.Itoa(resp.StatusCode))
	}
	return errs.Ef(errs.Unavailable, ge, "The SMS gateway refused the message (HTTP %s %s).", strconv.Itoa(resp.StatusCode), http.StatusText(resp.StatusCode))
}

// request builds the HTTP request for m from the template.
func (s *Sender) request(ctx context.Context, m Message) (*http.Request, error) {
	c := s.cfg
	values := map[string]string{PlaceholderTo: m.To, PlaceholderMessage: m.Text, PlaceholderFrom: c.From, PlaceholderSecret: s.secret}
	target := fill(c.URL, values, url.QueryEscape)
	var body io.Reader
	contentType := ""
	if c.Method != http.MethodGet {
		var text string
		switch c.Encoding {
		case BodyForm:
			text, contentType = fill(c.Body, values, url.QueryEscape), "application/x-www-form-urlencoded"
		case BodyJSON:
			text, contentType = fill(c.Body, values, jsonContent), "application/json"
		default:
			text, contentType = fill(c.Body, values, func(s string) string { return s }), "text/plain; charset=utf-8"
		}
		body = strings.NewReader(text)
	}
	req, err := http.NewRequestWithContext(ctx, c.Method, target, body)
	if err != nil {
		return nil, errs.E(errs.Invalid, "The gateway URL is not valid.", err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("User-Agent", "Writeback")
	noBreaks := func(v string) string { return strings.NewReplacer("\r", " ", "\n", " ", "\x00", "").Replace(v) }
	for _, h := range c.Headers {
		req.Header.Set(h.Name, fill(h.Value, values, noBreaks))
	}
	switch c.Auth {
	case AuthBasic:
		req.SetBasicAuth(c.Username, s.secret)
	case AuthHeader:
		req.Header.Set(c.AuthHead, s.secret)
	}
	return req, nil
}

// fill puts the values into a template, each encoded with enc.
func fill(tmpl string, values map[string]string, enc func(string) string) string {
	pairs := make([]string, 0, 2*len(values))
	for k, v := range values {
		pairs = append(pairs, k, enc(v))
	}
	return strings.NewReplacer(pairs...).Replace(tmpl)
}

// jsonContent is s as the inside of a JSON string.
func jsonContent(s string) string {
	b, _ := json.Marshal(s)
	return string(b[1 : len(b)-1])
}

// checkJSONTemplate says what is wrong with a JSON body template, or "":
// with every placeholder filled it must be a JSON document.
func checkJSONTemplate(body string) string {
	probe := strings.NewReplacer(PlaceholderTo, "1", PlaceholderMessage, "x", PlaceholderFrom, "x", PlaceholderSecret, "x").Replace(body)
	if !json.Valid([]byte(probe)) {
		return i18n.Key(`The body is not JSON once the placeholders are filled: put them inside quotes, e.g. {"to": "{{to}}", "text": "{{message}}"}.`)
	}
	return ""
}

// redact cuts the secret, the number and the text (which holds the code)
// out of what the gateway said, in every encoding the request used.
func (s *Sender) redact(text string, m Message) string {
	var pairs []string
	for _, v := range []struct{ value, as string }{{s.secret, "[secret]"}, {m.Text, "[message]"}, {m.To, "[number]"}} {
		if len(v.value) < 4 {
			continue
		}
		for _, enc := range []string{v.value, url.QueryEscape(v.value), jsonContent(v.value), strings.TrimPrefix(v.value, "+")} {
			pairs = append(pairs, enc, v.as)
		}
	}
	out := strings.NewReplacer(pairs...).Replace(text)
	out = codeDigits.ReplaceAllString(out, "[digits]")
	if len(out) > 300 {
		out = out[:300] + "…"
	}
	return out
}
