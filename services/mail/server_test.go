package mail_test

import (
	"testing"

	"github.com/writeback/writeback/services/mail"
)

func TestSameServer(t *testing.T) {
	base := mail.Config{Host: "mail.example.com", Port: 587, TLS: mail.TLSStartTLS, From: "a@example.com", Username: "u", CAPEM: ""}
	for _, tc := range []struct {
		name string
		o    func(*mail.Config)
		same bool
	}{
		{"identical", func(*mail.Config) {}, true},
		{"letter case and trailing dot", func(c *mail.Config) { c.Host = "MAIL.Example.com." }, true},
		{"other sender, user and password", func(c *mail.Config) { c.From, c.Username, c.Password = "b@example.com", "v", "x" }, true},
		{"CA with surrounding space", func(c *mail.Config) { c.CAPEM = "  \n" }, true},
		{"other host", func(c *mail.Config) { c.Host = "mail.evil.example" }, false},
		{"other port", func(c *mail.Config) { c.Port = 465 }, false},
		{"other TLS mode", func(c *mail.Config) { c.TLS = mail.TLSImplicit }, false},
		{"other CA", func(c *mail.Config) { c.CAPEM = "-----BEGIN CERTIFICATE-----" }, false},
	} {
		o := base
		tc.o(&o)
		if got := base.SameServer(o); got != tc.same {
			t.Errorf("%s: SameServer = %v", tc.name, got)
		}
		if got := base.ServerID() == o.ServerID(); got != tc.same {
			t.Errorf("%s: equal ServerID = %v", tc.name, got)
		}
	}
}
