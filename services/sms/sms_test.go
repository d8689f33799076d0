package sms_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/writeback/writeback/services/errs"
	"github.com/writeback/writeback/services/sms"
	"github.com/writeback/writeback/services/sms/smstest"
)

func TestNormalize(t *testing.T) {
	for _, c := range []struct {
		raw, region string
		allowed     []string
		want, err   string
	}{
		{"+44 7400 123456", "", nil, "+447400123456", ""},
		{"+44 (0)7400 123456", "", nil, "+447400123456", ""},
		{"07400 123456", "GB", nil, "+447400123456", ""},
		{"07400-123-456", "gb", nil, "+447400123456", ""},
		{"0044 7400 123456", "GB", nil, "+447400123456", ""},
		{"+49 151 23456789", "GB", nil, "+4915123456789", ""},
		{"0151 23456789", "DE", nil, "+4915123456789", ""},
		{"+1 (201) 555-0123", "", nil, "+12015550123", ""}, // NANP: fixed line or mobile
		{"+39 312 345 6789", "", nil, "+393123456789", ""},
		{"07400 123456", "", nil, "", sms.MsgNumberFormat},       // no country code, no default
		{"+44 20 7946 0018", "", nil, "", sms.MsgNumberNoMobile}, // London landline
		{"+44 909 879 0000", "", nil, "", sms.MsgNumberNoMobile}, // premium rate
		{"+44 7400 12", "", nil, "", sms.MsgNumberFormat},        // too short
		{"call me", "GB", nil, "", sms.MsgNumberFormat},          // not a number
		{"", "GB", nil, "", sms.MsgNumberFormat},                 // empty
		{"+49 151 23456789", "", []string{"GB", "IE"}, "", sms.MsgNumberCountry},
		{"+44 7400 123456", "", []string{"gb"}, "+447400123456", ""},
	} {
		got, err := sms.Normalize(c.raw, c.region, c.allowed)
		if c.err != "" {
			if err == nil || errs.MessageOf(err) != c.err || errs.KindOf(err) != errs.Invalid {
				t.Errorf("Normalize(%q, %q) = %q, %v; want %q", c.raw, c.region, got, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("Normalize(%q, %q) = %q, %v; want %q", c.raw, c.region, got, err, c.want)
		}
	}
}

func TestMask(t *testing.T) {
	for in, want := range map[string]string{
		"+447400123456":  "+44 •••• ••34 56",
		"+4915123456789": "+49 • •••• ••67 89",
		"+12015550123":   "+1 •••• ••01 23",
		"nonsense":       "•••",
	} {
		if got := sms.Mask(in); got != want {
			t.Errorf("Mask(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestSendEncodesEachValue: the number, the text and the secret go into
// the URL, the headers and the body encoded for where they stand.
func TestSendEncodesEachValue(t *testing.T) {
	g := smstest.Start(t)
	text := `Code 12345678 & "quotes" ü`
	for _, c := range []struct {
		name  string
		cfg   sms.Config
		check func(r smstest.Request) bool
	}{
		{"form", sms.Config{Method: "POST", URL: g.URL() + "/f", Encoding: sms.BodyForm, Body: "To={{to}}&Body={{message}}", Auth: sms.AuthBasic, Username: "u"},
			func(r smstest.Request) bool {
				return r.Form.Get("To") == "+447400123456" && r.Form.Get("Body") == text && r.Password == "s&cr=t"
			}},
		{"json", sms.Config{Method: "POST", URL: g.URL() + "/j", Encoding: sms.BodyJSON, Body: `{"to":"{{to}}","text":"{{message}}"}`,
			Headers: []sms.Header{{Name: "Authorization", Value: "Bearer {{secret}}"}}, Auth: sms.AuthNone},
			func(r smstest.Request) bool {
				return r.ContentType == "application/json" && strings.Contains(r.Body, `"text":"Code 12345678 \u0026 \"quotes\" ü"`) && r.Header.Get("Authorization") == "Bearer s&cr=t"
			}},
		{"get", sms.Config{Method: "GET", URL: g.URL() + "/g?to={{to}}&text={{message}}&key={{secret}}", Auth: sms.AuthNone},
			func(r smstest.Request) bool {
				return r.Query.Get("to") == "+447400123456" && r.Query.Get("text") == text && r.Query.Get("key") == "s&cr=t" && r.Body == ""
			}},
		{"header", sms.Config{Method: "PUT", URL: g.URL() + "/h", Encoding: sms.BodyText, Body: "{{to}} {{message}}", Auth: sms.AuthHeader, AuthHead: "X-API-Key"},
			func(r smstest.Request) bool {
				return r.Method == http.MethodPut && r.Body == "+447400123456 "+text && r.Header.Get("X-API-Key") == "s&cr=t"
			}},
	} {
		if err := c.cfg.Validate("s&cr=t"); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		n := len(g.Requests())
		if err := sms.NewSender(c.cfg, "s&cr=t", nil).Send(context.Background(), sms.Message{To: "+447400123456", Text: text}); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if r := g.Wait(t, n+1); !c.check(r) {
			t.Errorf("%s: gateway received %+v", c.name, r)
		}
	}
}

// TestSendFailureKeepsNoSecret: a refusal is an Unavailable error whose
// detail has the secret, the number and the code cut out.
func TestSendFailureKeepsNoSecret(t *testing.T) {
	g := smstest.Start(t)
	g.Fail(http.StatusBadRequest, `{"error":"bad number +447400123456 for key s3cr3t-key, text Code 12345678"}`)
	cfg := sms.Config{Method: "POST", URL: g.URL() + "/f", Encoding: sms.BodyForm, Body: "To={{to}}&Body={{message}}&k={{secret}}", Auth: sms.AuthNone}
	err := sms.NewSender(cfg, "s3cr3t-key", nil).Send(context.Background(), sms.Message{To: "+447400123456", Text: "Code 12345678"})
	if errs.KindOf(err) != errs.Unavailable || !strings.Contains(errs.MessageOf(err), "HTTP 400") {
		t.Fatalf("err = %v", err)
	}
	for _, leak := range []string{"s3cr3t-key", "447400123456", "12345678"} {
		if strings.Contains(err.Error(), leak) {
			t.Errorf("%q in %v", leak, err)
		}
	}
}
