package mail_test

import (
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/writeback/writeback/services/errs"
	"github.com/writeback/writeback/services/mail"
	"github.com/writeback/writeback/services/mail/mailtest"
)

func TestConfigValidate(t *testing.T) {
	// A real PEM certificate, taken from a TLS sink.
	caPEM := mailtest.Start(t, mailtest.Options{TLS: true}).CAPEM()

	good := mail.Config{
		Host: "mail.example.com", Port: 587, TLS: mail.TLSStartTLS,
		From: "Password portal <portal@example.com>", Username: "portal", Password: "s3cret-Pa55",
	}
	with := func(f func(c *mail.Config)) mail.Config {
		c := good
		f(&c)
		return c
	}

	tests := []struct {
		name   string
		cfg    mail.Config
		fields []string // the keys expected in Fields; none means valid
	}{
		{"starttls with auth", good, nil},
		{"implicit tls without auth", with(func(c *mail.Config) {
			c.TLS, c.Port, c.Username, c.Password = mail.TLSImplicit, 465, "", ""
		}), nil},
		{"bare from address", with(func(c *mail.Config) { c.From = "portal@example.com" }), nil},
		{"IPv4 host", with(func(c *mail.Config) { c.Host = "192.0.2.25" }), nil},
		{"IPv6 host", with(func(c *mail.Config) { c.Host = "2001:db8::25" }), nil},
		{"none on 127.0.0.1", with(func(c *mail.Config) { c.Host, c.TLS, c.Port = "127.0.0.1", mail.TLSNone, 25 }), nil},
		{"none on 127.0.0.53", with(func(c *mail.Config) { c.Host, c.TLS = "127.0.0.53", mail.TLSNone }), nil},
		{"none on ::1", with(func(c *mail.Config) { c.Host, c.TLS = "::1", mail.TLSNone }), nil},
		{"none on localhost", with(func(c *mail.Config) { c.Host, c.TLS = "localhost", mail.TLSNone }), nil},
		{"none on LOCALHOST", with(func(c *mail.Config) { c.Host, c.TLS = "LOCALHOST", mail.TLSNone }), nil},
		{"extra CA", with(func(c *mail.Config) { c.CAPEM = caPEM }), nil},

		{"empty", mail.Config{}, []string{"host", "port", "tls", "from"}},
		{"none on a remote host", with(func(c *mail.Config) { c.TLS = mail.TLSNone }), []string{"tls"}},
		{"none on a private address", with(func(c *mail.Config) { c.Host, c.TLS = "10.0.0.25", mail.TLSNone }), []string{"tls"}},
		{"none on a name that only looks local", with(func(c *mail.Config) { c.Host, c.TLS = "localhost.example.com", mail.TLSNone }), []string{"tls"}},
		{"unknown tls mode", with(func(c *mail.Config) { c.TLS = "ssl" }), []string{"tls"}},
		{"host with port", with(func(c *mail.Config) { c.Host = "mail.example.com:587" }), []string{"host"}},
		{"host as URL", with(func(c *mail.Config) { c.Host = "smtp://mail.example.com" }), []string{"host"}},
		{"unix socket", with(func(c *mail.Config) { c.Host = "unix:///run/smtp.sock" }), []string{"host"}},
		{"host with spaces", with(func(c *mail.Config) { c.Host = " mail.example.com" }), []string{"host"}},
		{"host label starting with hyphen", with(func(c *mail.Config) { c.Host = "-mail.example.com" }), []string{"host"}},
		{"port zero", with(func(c *mail.Config) { c.Port = 0 }), []string{"port"}},
		{"port too high", with(func(c *mail.Config) { c.Port = 65536 }), []string{"port"}},
		{"from not an address", with(func(c *mail.Config) { c.From = "the portal" }), []string{"from"}},
		{"from with header injection", with(func(c *mail.Config) { c.From = "portal@example.com\r\nBcc: x@example.com" }), []string{"from"}},
		{"username without password", with(func(c *mail.Config) { c.Password = "" }), []string{"password"}},
		{"password without username", with(func(c *mail.Config) { c.Username = "" }), []string{"username"}},
		{"username with line break", with(func(c *mail.Config) { c.Username = "portal\r\nRSET" }), []string{"username"}},
		{"password with trailing newline", with(func(c *mail.Config) { c.Password = "s3cret-Pa55\n" }), []string{"password"}},
		{"unreadable CA", with(func(c *mail.Config) { c.CAPEM = "not a certificate" }), []string{"ca_pem"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.fields == nil {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			var e *errs.Error
			if !errors.As(err, &e) {
				t.Fatalf("Validate() = %v, want *errs.Error", err)
			}
			if e.Kind != errs.Invalid {
				t.Errorf("Kind = %v, want %v", e.Kind, errs.Invalid)
			}
			got := slices.Sorted(maps.Keys(e.Fields))
			if want := slices.Sorted(slices.Values(tt.fields)); !slices.Equal(got, want) {
				t.Errorf("Fields = %v, want keys %v", e.Fields, want)
			}
			for k, msg := range e.Fields {
				if msg == "" {
					t.Errorf("Fields[%q] is empty", k)
				}
				if tt.cfg.Password != "" && strings.Contains(msg, tt.cfg.Password) {
					t.Errorf("Fields[%q] = %q repeats the password", k, msg)
				}
			}
			if tt.cfg.Password != "" && strings.Contains(err.Error(), tt.cfg.Password) {
				t.Errorf("err.Error() = %q repeats the password", err.Error())
			}
		})
	}
}

func TestConfigValidateLoopbackMessage(t *testing.T) {
	err := mail.Config{Host: "mail.example.com", Port: 25, TLS: mail.TLSNone, From: "p@example.com"}.Validate()
	got := errs.FieldsOf(err)["tls"]
	if want := "Unencrypted mail is only allowed to a relay on this machine."; got != want {
		t.Errorf(`Fields["tls"] = %q, want %q`, got, want)
	}
}
