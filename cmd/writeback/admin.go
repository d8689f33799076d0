package main

import (
	"context"
	"fmt"
	"net/url"
	"text/tabwriter"

	"github.com/writeback/writeback/cmd/internal/cmdline"
	"github.com/writeback/writeback/handlers"
	"github.com/writeback/writeback/services/admins"
	"github.com/writeback/writeback/services/audit"
)

func adminCreate(ctx context.Context, args []string, getenv env, io stdio) error {
	fs := newFlags("admin create", io)
	data := dataFlag(fs.StringVar, getenv)
	email := fs.String("email", "", "e-mail address (sign-in name)")
	name := fs.String("name", "", "display name")
	role := fs.String("role", "", "global-admin, helpdesk-admin or reports-reader")
	if err := cmdline.Parse(fs, args); err != nil {
		return err
	}
	if *email == "" {
		return cmdline.Usagef("--email is required")
	}
	if *name == "" {
		return cmdline.Usagef("--name is required")
	}
	r, err := admins.ParseRole(*role)
	if err != nil {
		return cmdline.Usagef("--role %q: want global-admin, helpdesk-admin or reports-reader", *role)
	}
	// The password comes from standard input so it never shows in ps or shell history.
	password := cmdline.FirstLine(io.In)
	if password == "" {
		return cmdline.Usagef("the password is read from standard input, and none was given")
	}
	a, err := openApp(ctx, *data, io.Err)
	if err != nil {
		return err
	}
	defer a.Close()
	created, err := a.admins.Create(ctx, audit.CommandLine, admins.NewAdmin{Email: *email, Name: *name, Role: r, Password: password})
	if err != nil {
		return err
	}
	fmt.Fprintf(io.Out, "created %s <%s> as %s\n", created.Name, created.Email, r.Label())
	return nil
}

func adminList(ctx context.Context, args []string, getenv env, io stdio) error {
	fs := newFlags("admin list", io)
	data := dataFlag(fs.StringVar, getenv)
	a, err := openParsed(ctx, fs, args, data, io)
	if err != nil {
		return err
	}
	defer a.Close()
	list, err := a.admins.List(ctx)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(io.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "EMAIL\tNAME\tROLE\tSTATE\tSECOND FACTORS")
	for _, ad := range list {
		st := "active"
		if ad.Disabled {
			st = "disabled"
		}
		fs, _, err := a.admins.Factors(ctx, ad.ID)
		if err != nil {
			return err
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\n", ad.Email, ad.Name, ad.Role, st, len(fs))
	}
	return tw.Flush()
}

func adminDisable(ctx context.Context, args []string, getenv env, io stdio) error {
	fs := newFlags("admin disable", io)
	data := dataFlag(fs.StringVar, getenv)
	email := fs.String("email", "", "e-mail address of the administrator to disable")
	if err := cmdline.Parse(fs, args); err != nil {
		return err
	}
	if *email == "" {
		return cmdline.Usagef("--email is required")
	}
	a, err := openApp(ctx, *data, io.Err)
	if err != nil {
		return err
	}
	defer a.Close()
	ad, err := a.admins.ByEmail(ctx, *email)
	if err != nil {
		return err
	}
	if _, err := a.admins.Update(ctx, audit.CommandLine, ad.ID, admins.Role(ad.Role), true); err != nil {
		return err
	}
	fmt.Fprintf(io.Out, "disabled %s <%s>; their sessions have ended\n", ad.Name, ad.Email)
	return nil
}

func adminEnable(ctx context.Context, args []string, getenv env, io stdio) error {
	fs := newFlags("admin enable", io)
	data := dataFlag(fs.StringVar, getenv)
	email := fs.String("email", "", "e-mail address of the disabled administrator to enable again")
	if err := cmdline.Parse(fs, args); err != nil {
		return err
	}
	if *email == "" {
		return cmdline.Usagef("--email is required")
	}
	a, err := openApp(ctx, *data, io.Err)
	if err != nil {
		return err
	}
	defer a.Close()
	ad, err := a.admins.ByEmail(ctx, *email)
	if err != nil {
		return err
	}
	if !ad.Disabled {
		fmt.Fprintf(io.Out, "%s <%s> is active already\n", ad.Name, ad.Email)
		return nil
	}
	if _, err := a.admins.Update(ctx, audit.CommandLine, ad.ID, admins.Role(ad.Role), false); err != nil {
		return err
	}
	fmt.Fprintf(io.Out, "enabled %s <%s> as %s; they sign in with their password (and second factor) again\n", ad.Name, ad.Email, admins.Role(ad.Role).Label())
	return nil
}

// adminReset is the way back in for an administrator who lost their second
// factor or password, the last Global Administrator included: it removes
// their factors and recovery codes, voids the password, ends their
// sessions, and prints a one-time link to choose a new password.
func adminReset(ctx context.Context, args []string, getenv env, io stdio) error {
	fs := newFlags("admin reset", io)
	data := dataFlag(fs.StringVar, getenv)
	email := fs.String("email", "", "e-mail address of the administrator whose sign-in to reset")
	base := fs.String("base-url", cmdline.EnvOr(getenv, "WRITEBACK_BASE_URL", "http://127.0.0.1:8080"), "public URL of the portal, for the link (env WRITEBACK_BASE_URL)")
	if err := cmdline.Parse(fs, args); err != nil {
		return err
	}
	if *email == "" {
		return cmdline.Usagef("--email is required")
	}
	if u, err := url.Parse(*base); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return cmdline.Usagef("--base-url %q: want an absolute http(s) URL such as https://reset.example.com", *base)
	}
	a, err := openApp(ctx, *data, io.Err)
	if err != nil {
		return err
	}
	defer a.Close()
	ad, err := a.admins.ByEmail(ctx, *email)
	if err != nil {
		return err
	}
	tok, err := a.admins.ResetSignIn(ctx, audit.CommandLine, 0, ad.ID)
	if err != nil {
		return err
	}
	fmt.Fprintf(io.Out, "Reset the sign-in of %s <%s>: their second factors and recovery codes are removed, their password no longer works, their sessions have ended.\n"+
		"Give them this one-time link (valid %d hours) to choose a new password; they set up a second factor again when they sign in:\n\n    %s\n\n",
		ad.Name, ad.Email, int(admins.ResetTokenTTL.Hours()), handlers.ResetLink(*base, tok))
	return nil
}

func adminPolicy(ctx context.Context, args []string, getenv env, io stdio) error {
	fs := newFlags("admin policy", io)
	data := dataFlag(fs.StringVar, getenv)
	flags := map[admins.Role]*string{}
	for _, r := range admins.Roles {
		flags[r] = fs.String(string(r), "", "required or optional: whether "+r.Label()+"s sign in with a second factor")
	}
	if err := cmdline.Parse(fs, args); err != nil {
		return err
	}
	a, err := openApp(ctx, *data, io.Err)
	if err != nil {
		return err
	}
	defer a.Close()
	p, meta, err := a.admins.Policy(ctx)
	if err != nil {
		return err
	}
	set := map[admins.Role]*bool{admins.GlobalAdmin: &p.GlobalAdmin, admins.HelpdeskAdmin: &p.HelpdeskAdmin, admins.ReportsReader: &p.ReportsReader}
	changing := false
	for _, r := range admins.Roles {
		switch *flags[r] {
		case "":
		case "required":
			*set[r], changing = true, true
		case "optional":
			*set[r], changing = false, true
		default:
			return cmdline.Usagef("--%s %q: want required or optional", r, *flags[r])
		}
	}
	if changing {
		if _, err := a.admins.SavePolicy(ctx, audit.CommandLine, meta.Version, p); err != nil {
			return err
		}
	}
	tw := tabwriter.NewWriter(io.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ROLE\tSECOND FACTOR")
	for _, r := range admins.Roles {
		w := "optional"
		if p.Requires(r) {
			w = "required"
		}
		fmt.Fprintf(tw, "%s\t%s\n", r, w)
	}
	return tw.Flush()
}
