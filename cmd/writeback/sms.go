package main

import (
	"context"
	"flag"
	"fmt"
	"strings"

	"github.com/writeback/writeback/cmd/internal/cmdline"
	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/selfservice"
	"github.com/writeback/writeback/services/sms"
)

// smsSet saves the text message gateway, starting from the stored one (or
// from --preset) and changing the flags given.
func smsSet(ctx context.Context, args []string, getenv env, io stdio) error {
	fs := newFlags("sms set", io)
	data := dataFlag(fs.StringVar, getenv)
	preset := fs.String("preset", "", "start from a preset: twilio, json or get")
	fs.String("method", "", "GET, POST or PUT")
	fs.String("url", "", "gateway URL (may hold {{to}}, {{message}}, {{from}}, {{secret}})")
	var headers listFlag
	fs.Var(&headers, "header", `request header "Name: value" (repeat; "none" clears them)`)
	fs.String("encoding", "", "body format: form, json or text (none for GET)")
	fs.String("body", "", "body template with {{to}} and {{message}}")
	fs.String("from", "", "sender ID or number for {{from}}")
	fs.String("auth", "", "none, basic or header")
	fs.String("username", "", "user name for basic authentication")
	fs.String("auth-header", "", "header that carries the secret (with --auth header)")
	secretFile := fs.String("secret-file", "", "file holding the gateway secret (first line)")
	region := fs.String("default-country", "", "two-letter country code for numbers written without one")
	allowed := fs.String("allowed-countries", "", "comma-separated country codes codes may be texted to (\"\": any)")
	daily := fs.Int("daily-cap", 0, fmt.Sprintf("text messages per 24 hours for the whole portal (default %d)", selfservice.DefaultSMSDailyCap))
	if err := cmdline.Parse(fs, args); err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	a, err := openApp(ctx, *data, io.Err)
	if err != nil {
		return err
	}
	defer a.Close()
	m, meta, err := a.ss.SMSSettings(ctx)
	if err != nil {
		return err
	}
	c := m.Config
	if set["preset"] {
		p, ok := sms.PresetByKey(*preset)
		if !ok {
			return cmdline.Usagef("--preset %q: want twilio, json or get", *preset)
		}
		c = p.Config
	}
	for name, dst := range map[string]*string{"method": &c.Method, "url": &c.URL, "encoding": &c.Encoding, "body": &c.Body, "from": &c.From,
		"auth": &c.Auth, "username": &c.Username, "auth-header": &c.AuthHead} {
		if set[name] {
			*dst = fs.Lookup(name).Value.String()
		}
	}
	if set["header"] {
		c.Headers = nil
		if !(len(headers) == 1 && headers[0] == "none") {
			hs, err := sms.ParseHeaders(strings.Join(headers, "\n"))
			if err != nil {
				return err
			}
			c.Headers = hs
		}
	}
	in := selfservice.SMSInput{Config: c, DefaultRegion: m.DefaultRegion, AllowedRegions: m.AllowedRegions, DailyCap: m.DailyCap}
	if set["default-country"] {
		in.DefaultRegion = *region
	}
	if set["allowed-countries"] {
		in.AllowedRegions = strings.Split(*allowed, ",")
	}
	if set["daily-cap"] {
		in.DailyCap = *daily
	}
	if *secretFile != "" {
		if in.Secret, err = cmdline.SecretFile("secret-file", *secretFile); err != nil {
			return err
		}
	}
	changed, err := a.ss.SaveSMS(ctx, audit.CommandLine, meta.Version, in)
	if err != nil {
		return err
	}
	if changed {
		fmt.Fprintln(io.Out, "saved the text message gateway; run \"writeback sms test --to NUMBER\" to check it")
	} else {
		fmt.Fprintln(io.Out, "nothing changed")
	}
	return nil
}

// smsShow prints the gateway without its secret.
func smsShow(ctx context.Context, args []string, getenv env, io stdio) error {
	fs := newFlags("sms show", io)
	data := dataFlag(fs.StringVar, getenv)
	a, err := openParsed(ctx, fs, args, data, io)
	if err != nil {
		return err
	}
	defer a.Close()
	m, meta, err := a.ss.SMSSettings(ctx)
	if err != nil {
		return err
	}
	if !m.Configured() {
		fmt.Fprintln(io.Out, "no text message gateway is configured")
		return nil
	}
	secret := "not set"
	if m.SecretSealed != "" {
		secret = "set (encrypted)"
	}
	names := make([]string, len(m.Headers))
	for i, h := range m.Headers {
		names[i] = h.Name
	}
	for _, row := range [][2]string{{"preset", m.Preset}, {"method", m.Method}, {"url", m.URL}, {"headers", strings.Join(names, ", ")},
		{"encoding", m.Encoding}, {"body", m.Body}, {"from", m.From}, {"auth", m.Auth}, {"username", m.Username}, {"auth-header", m.AuthHead},
		{"secret", secret}, {"default-country", m.DefaultRegion}, {"allowed-countries", strings.Join(m.AllowedRegions, ",")},
		{"daily-cap", fmt.Sprint(m.Cap())}} {
		fmt.Fprintf(io.Out, "%-18s %s\n", row[0], row[1])
	}
	if meta.UpdatedBy != "" {
		fmt.Fprintf(io.Out, "%-18s by %s at %s\n", "last changed", meta.UpdatedBy, meta.UpdatedAt.Format("2006-01-02 15:04:05 UTC"))
	}
	return nil
}

func smsTest(ctx context.Context, args []string, getenv env, io stdio) error {
	return sendTest(ctx, args, getenv, io, "sms test", "mobile number to send the test message to", func(ctx context.Context, a *app, to string) (string, error) {
		return "sent a test message", a.ss.SendTestSMS(ctx, audit.CommandLine, to)
	})
}
