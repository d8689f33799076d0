package main

import (
	"bufio"
	"context"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/writeback/writeback/cmd/internal/cmdline"
	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/directory"
)

func userShow(ctx context.Context, args []string, getenv env, io stdio) error {
	return cmdUser(ctx, "show", args, getenv, io)
}

func userReset(ctx context.Context, args []string, getenv env, io stdio) error {
	return cmdUser(ctx, "reset", args, getenv, io)
}

func userUnlock(ctx context.Context, args []string, getenv env, io stdio) error {
	return cmdUser(ctx, "unlock", args, getenv, io)
}

// cmdUser is "writeback user show|reset|unlock": they share LOGIN and --data.
func cmdUser(ctx context.Context, sub string, rest []string, getenv env, io stdio) error {
	// LOGIN may come before or after the flags.
	login := ""
	if len(rest) > 0 && !strings.HasPrefix(rest[0], "-") {
		login, rest = rest[0], rest[1:]
	}
	fs := newFlags("user "+sub, io)
	data := dataFlag(fs.StringVar, getenv)
	var stdin, mustChange *bool
	switch sub {
	case "show", "unlock":
	case "reset":
		stdin = fs.Bool("password-stdin", false, "read the new password from standard input (required)")
		mustChange = fs.Bool("must-change", false, "require a change at next sign-in")
	}
	if err := cmdline.ParseFlags(fs, rest); err != nil {
		return err
	}
	if login == "" && fs.NArg() > 0 {
		login = fs.Arg(0)
		if fs.NArg() > 1 {
			return cmdline.Usagef("unexpected argument %q", fs.Arg(1))
		}
	} else if fs.NArg() > 0 {
		return cmdline.Usagef("unexpected argument %q", fs.Arg(0))
	}
	if login == "" {
		return cmdline.Usagef("give the user's login, e.g. writeback user %s alice", sub)
	}
	var password string
	if sub == "reset" {
		if !*stdin {
			return cmdline.Usagef("--password-stdin is required: the new password is read from standard input")
		}
		if password = cmdline.FirstLine(io.In); password == "" {
			return cmdline.Usagef("no password on standard input")
		}
	}
	a, err := openApp(ctx, *data, io.Err)
	if err != nil {
		return err
	}
	defer a.Close()
	var u directory.User
	switch sub {
	case "show":
		if u, err = a.wb.Lookup(ctx, login); err != nil {
			return err
		}
	case "reset":
		if u, err = a.wb.AdminReset(ctx, audit.CommandLine, login, password, *mustChange); err != nil {
			return err
		}
		fmt.Fprintf(io.Out, "password reset for %s\n", u.Login)
	case "unlock":
		if u, err = a.wb.AdminUnlock(ctx, audit.CommandLine, login); err != nil {
			return err
		}
		fmt.Fprintf(io.Out, "unlocked %s; the password was not changed\n", u.Login)
	}
	return printUser(io, u)
}

func printUser(io stdio, u directory.User) error {
	// tabwriter's Flush writes cell by cell: unbuffered, that was some 60
	// write calls to standard output.
	out := bufio.NewWriter(io.Out)
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(tw, "%s\t%s\n", k, v) }
	row("login", u.Login)
	row("name", u.DisplayName)
	row("dn", u.DN)
	row("id", u.ID)
	row("email", u.Email)
	row("locked", yesNoWord(u.Locked))
	if !u.LockedUntil.IsZero() {
		row("locked until", u.LockedUntil.UTC().Format(time.RFC3339))
	}
	row("disabled", yesNoWord(u.Disabled))
	row("password expired", yesNoWord(u.PasswordExpired))
	row("must change password", yesNoWord(u.MustChange))
	prot := yesNoWord(u.Protected)
	if u.Protected {
		prot += " (" + u.ProtectedReason + ")"
	}
	row("protected", prot)
	if err := tw.Flush(); err != nil {
		return err
	}
	return out.Flush()
}
