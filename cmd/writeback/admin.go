package main

import (
	"context"
	"fmt"
	"text/tabwriter"

	"github.com/writeback/writeback/cmd/internal/cmdline"
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
	fmt.Fprintln(tw, "EMAIL\tNAME\tROLE\tSTATE")
	for _, ad := range list {
		st := "active"
		if ad.Disabled {
			st = "disabled"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", ad.Email, ad.Name, ad.Role, st)
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
