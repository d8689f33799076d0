package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/writeback/writeback/cmd/internal/cmdline"
	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/mail"
	"github.com/writeback/writeback/services/selfservice"
)

func mailSet(ctx context.Context, args []string, getenv env, io stdio) error {
	fs := newFlags("mail set", io)
	data := dataFlag(fs.StringVar, getenv)
	host := fs.String("host", "", "SMTP server host name or IP address")
	port := fs.Int("port", 0, "SMTP port, e.g. 587")
	tlsMode := fs.String("tls", "", "none, starttls or tls (none only for a server on a loopback address)")
	from := fs.String("from", "", "sender address")
	user := fs.String("username", "", "SMTP user name (empty: no authentication)")
	pwFile := fs.String("password-file", "", "file holding the SMTP password (first line)")
	caFile := fs.String("ca-file", "", "PEM file with extra trusted CA certificates")
	if err := cmdline.Parse(fs, args); err != nil {
		return err
	}
	for _, req := range []struct{ name, v string }{{"host", *host}, {"tls", *tlsMode}, {"from", *from}} {
		if req.v == "" {
			return cmdline.Usagef("--%s is required", req.name)
		}
	}
	switch mail.TLSMode(*tlsMode) {
	case mail.TLSNone, mail.TLSStartTLS, mail.TLSImplicit:
	default:
		return cmdline.Usagef("--tls %q: want none, starttls or tls", *tlsMode)
	}
	if *port < 1 || *port > 65535 {
		return cmdline.Usagef("--port %d: want 1 to 65535", *port)
	}
	in := selfservice.MailInput{Host: *host, Port: *port, TLS: mail.TLSMode(*tlsMode), From: *from, Username: *user}
	if *pwFile != "" {
		var err error
		if in.Password, err = cmdline.SecretFile("password-file", *pwFile); err != nil {
			return err
		}
	}
	if *caFile != "" {
		b, err := os.ReadFile(*caFile)
		if err != nil {
			return cmdline.Usagef("--ca-file %q: %v", *caFile, err)
		}
		in.CAPEM = string(b)
	}
	a, err := openApp(ctx, *data, io.Err)
	if err != nil {
		return err
	}
	defer a.Close()
	_, meta, err := a.ss.MailSettings(ctx)
	if err != nil {
		return err
	}
	changed, err := a.ss.SaveMail(ctx, audit.CommandLine, meta.Version, in)
	if err != nil {
		return err
	}
	if changed {
		fmt.Fprintln(io.Out, "saved the mail server; run \"writeback mail test --to ADDRESS\" to check it")
	} else {
		fmt.Fprintln(io.Out, "nothing changed")
	}
	return nil
}

func mailTest(ctx context.Context, args []string, getenv env, io stdio) error {
	return sendTest(ctx, args, getenv, io, "mail test", "address to send the test mail to", func(ctx context.Context, a *app, to string) (string, error) {
		return "sent a test mail to " + to, a.ss.SendTestMail(ctx, audit.CommandLine, to)
	})
}

// sendTest is `mail test` and `sms test`: --to is required, send sends
// there through the saved settings and returns what to print.
func sendTest(ctx context.Context, args []string, getenv env, io stdio, name, toHelp string, send func(context.Context, *app, string) (string, error)) error {
	fs := newFlags(name, io)
	data := dataFlag(fs.StringVar, getenv)
	to := fs.String("to", "", toHelp)
	if err := cmdline.Parse(fs, args); err != nil {
		return err
	}
	if *to == "" {
		return cmdline.Usagef("--to is required")
	}
	a, err := openApp(ctx, *data, io.Err)
	if err != nil {
		return err
	}
	defer a.Close()
	msg, err := send(ctx, a, *to)
	if err != nil {
		return err
	}
	fmt.Fprintln(io.Out, msg)
	return nil
}

func ssprShow(ctx context.Context, args []string, getenv env, io stdio) error {
	fs := newFlags("sspr show", io)
	data := dataFlag(fs.StringVar, getenv)
	a, err := openParsed(ctx, fs, args, data, io)
	if err != nil {
		return err
	}
	defer a.Close()
	p, meta, err := a.ss.Policy(ctx)
	if err != nil {
		return err
	}
	enabled := p.Enabled
	if p.Enabled == selfservice.EnabledGroup {
		enabled = "group:" + p.Group
	}
	fmt.Fprintf(io.Out, "enabled         %s\n", enabled)
	fmt.Fprintf(io.Out, "methods         %s\n", strings.Join(p.Methods.List(), ","))
	fmt.Fprintf(io.Out, "required        %d\n", p.Required)
	fmt.Fprintf(io.Out, "questions       register %d, answer %d, %d to choose from\n", p.QuestionsToRegister, p.QuestionsToAnswer, len(p.Questions))
	fmt.Fprintf(io.Out, "reconfirm-days  %d\n", p.ReconfirmDays)
	fmt.Fprintf(io.Out, "notify-users    %s\n", strings.ToLower(yesNoWord(p.NotifyUsers)))
	fmt.Fprintf(io.Out, "notify-admins   %s\n", strings.ToLower(yesNoWord(p.NotifyAdmins)))
	fmt.Fprintf(io.Out, "helpdesk        %s\n", p.Helpdesk)
	fmt.Fprintf(io.Out, "challenge       %s, after %d attempts in an hour\n", strings.ToLower(yesNoWord(!p.ChallengeOff)), p.ChallengeThreshold())
	if meta.UpdatedBy != "" {
		fmt.Fprintf(io.Out, "last changed    by %s at %s\n", meta.UpdatedBy, meta.UpdatedAt.Format("2006-01-02 15:04:05 UTC"))
	}
	return nil
}

func ssprSet(ctx context.Context, args []string, getenv env, io stdio) error {
	fs := newFlags("sspr set", io)
	data := dataFlag(fs.StringVar, getenv)
	enabled := fs.String("enabled", "", "none, all or group:DN")
	methods := fs.String("methods", "", "comma-separated: email,app,questions,sms,passkey")
	required := fs.Int("required", 0, "methods required to reset: 1 or 2")
	notifyUsers := fs.String("notify-users", "", "yes or no")
	notifyAdmins := fs.String("notify-admins", "", "yes or no")
	helpdesk := fs.String("helpdesk", "", "helpdesk link or e-mail shown to people who cannot finish")
	org := fs.String("org-name", "", "organisation name shown on the employee pages and in e-mails")
	challenge := fs.String("challenge", "", "yes or no: ask for a proof-of-work check after repeated attempts")
	challengeAfter := fs.Int("challenge-after", 0, fmt.Sprintf("attempts per account or address in an hour before the check, 1-%d (0: the default, %d)", selfservice.MaxChallengeAfter, selfservice.DefaultChallengeAfter))
	if err := cmdline.Parse(fs, args); err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if len(set) == 0 || (len(set) == 1 && set["data"]) {
		return cmdline.Usagef("give at least one setting, e.g. --enabled all")
	}
	var changes []func(*selfservice.Policy)
	if set["enabled"] {
		v := *enabled
		switch {
		case v == selfservice.EnabledNone || v == selfservice.EnabledAll:
			changes = append(changes, func(p *selfservice.Policy) { p.Enabled, p.Group = v, "" })
		case strings.HasPrefix(v, "group:") && len(v) > len("group:"):
			dn := strings.TrimPrefix(v, "group:")
			changes = append(changes, func(p *selfservice.Policy) { p.Enabled, p.Group = selfservice.EnabledGroup, dn })
		default:
			return cmdline.Usagef("--enabled %q: want none, all or group:DN", v)
		}
	}
	if set["methods"] {
		var m selfservice.Methods
		for _, x := range strings.Split(*methods, ",") {
			switch strings.TrimSpace(x) {
			case selfservice.MethodEmail:
				m.Email = true
			case selfservice.MethodApp:
				m.App = true
			case selfservice.MethodQuestions:
				m.Questions = true
			case selfservice.MethodSMS:
				m.SMS = true
			case selfservice.MethodPasskey:
				m.Passkey = true
			default:
				return cmdline.Usagef("--methods %q: want a comma-separated list of email, app, questions, sms, passkey", *methods)
			}
		}
		changes = append(changes, func(p *selfservice.Policy) { p.Methods = m })
	}
	if set["required"] {
		if *required != 1 && *required != 2 {
			return cmdline.Usagef("--required %d: want 1 or 2", *required)
		}
		n := *required
		changes = append(changes, func(p *selfservice.Policy) { p.Required = n })
	}
	for _, yn := range []struct {
		name string
		v    string
		set  func(*selfservice.Policy, bool)
	}{
		{"notify-users", *notifyUsers, func(p *selfservice.Policy, b bool) { p.NotifyUsers = b }},
		{"notify-admins", *notifyAdmins, func(p *selfservice.Policy, b bool) { p.NotifyAdmins = b }},
		{"challenge", *challenge, func(p *selfservice.Policy, b bool) { p.ChallengeOff = !b }},
	} {
		if !set[yn.name] {
			continue
		}
		b, err := yesNoFlag(yn.name, yn.v)
		if err != nil {
			return err
		}
		f := yn.set
		changes = append(changes, func(p *selfservice.Policy) { f(p, b) })
	}
	if set["helpdesk"] {
		h := *helpdesk
		changes = append(changes, func(p *selfservice.Policy) { p.Helpdesk = h })
	}
	if set["org-name"] {
		o := *org
		changes = append(changes, func(p *selfservice.Policy) { p.OrgName = o })
	}
	if set["challenge-after"] {
		n := *challengeAfter
		if n < 0 || n > selfservice.MaxChallengeAfter {
			return cmdline.Usagef("--challenge-after %d: want 1 to %d, or 0 for the default", n, selfservice.MaxChallengeAfter)
		}
		changes = append(changes, func(p *selfservice.Policy) { p.ChallengeAfter = n })
	}
	a, err := openApp(ctx, *data, io.Err)
	if err != nil {
		return err
	}
	defer a.Close()
	_, meta, err := a.ss.Policy(ctx)
	if err != nil {
		return err
	}
	changed, err := a.ss.SavePolicy(ctx, audit.CommandLine, meta.Version, "command line", func(p *selfservice.Policy) {
		for _, c := range changes {
			c(p)
		}
	})
	if err != nil {
		return err
	}
	if changed {
		fmt.Fprintln(io.Out, "saved the self-service password reset policy")
	} else {
		fmt.Fprintln(io.Out, "nothing changed")
	}
	return nil
}
