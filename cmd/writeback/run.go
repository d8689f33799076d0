package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/writeback/writeback/services/errs"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

// usageError is a bad flag or value: one line naming it, exit code 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

type command struct {
	name, summary string
	run           func(ctx context.Context, args []string, getenv env, io stdio) error
}

func commands() []command {
	return []command{
		{"serve", "run the portal (--listen, --data, --base-url, --trusted-proxy)", cmdServe},
		{"migrate", "apply database migrations in the data folder and exit", cmdMigrate},
		{"admin", "manage administrators: admin create|list|disable", cmdAdmin},
		{"directory", "the directory connection: directory set|show|test", cmdDirectory},
		{"settings", "On-premises integration switches: settings show|set --writeback yes|no --unlock yes|no", cmdSettings},
		{"user", "helpdesk actions: user show|reset|unlock LOGIN", cmdUser},
		{"sspr", "self-service policy: sspr show|set [--enabled none|all|group:DN] [--methods email,app,questions] [--required 1|2] …", cmdSSPR},
		{"mail", "mail server: mail set --host H --port P --tls none|starttls|tls --from ADDR …; mail test --to ADDR", cmdMail},
		{"audit", "the audit log: audit export --format csv|jsonl [--since --until --activity …]; audit verify", cmdAudit},
		{"healthcheck", "exit 0 when the portal at --listen answers /healthz (for container health checks)", cmdHealthcheck},
		{"version", "print the version", func(ctx context.Context, args []string, getenv env, io stdio) error {
			fmt.Fprintln(io.out, "writeback", version)
			return nil
		}},
	}
}

const helpText = `Writeback: self-service password reset with writeback to your on-premises directory.

Usage: writeback <command> [flags]

Commands:
%s
Every command that touches state takes --data DIR (env WRITEBACK_DATA, default ./data).
Run "writeback <command> -h" for its flags.

Examples:
  writeback serve --listen 127.0.0.1:8080 --base-url https://reset.example.com
  echo "$PASSWORD" | writeback admin create --email ada@example.com --name "Ada Admin" --role global-admin
  writeback admin list
  writeback admin disable --email ada@example.com
  writeback directory set --type ad --url ldaps://dc1.example.com --ca-file ca.pem \
      --bind-dn "CN=wbsvc,CN=Users,DC=example,DC=com" --bind-password-file svc.pw \
      --base-dn "OU=People,DC=example,DC=com" --password-writeback on
  writeback directory test --user alice
  writeback settings set --writeback yes --unlock yes
  echo "$NEW_PASSWORD" | writeback user reset alice --password-stdin --must-change
  writeback user unlock alice
  writeback mail set --host smtp.example.com --port 587 --tls starttls --from no-reply@example.com \
      --username portal --password-file smtp.pw
  writeback mail test --to you@example.com
  writeback audit export --format csv --since 2026-11-01 --activity "Reset password (self-service)" > resets.csv
  writeback audit verify
  writeback sspr set --enabled all --methods email,app --required 1 --notify-users yes --helpdesk help@example.com
`

func printHelp(w io.Writer) {
	var b strings.Builder
	for _, c := range commands() {
		fmt.Fprintf(&b, "  %-12s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(&b, "  %-12s %s\n", "help", "show this help")
	fmt.Fprintf(w, helpText, b.String())
}

// run is main without the process: it parses args, runs one command and
// returns the exit code.
func run(ctx context.Context, args []string, getenv env, in io.Reader, out, errOut io.Writer) int {
	io := stdio{in: in, out: out, err: errOut}
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		printHelp(out)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		err := c.run(ctx, args[1:], getenv, io)
		switch {
		case err == nil:
			return 0
		case errors.Is(err, flag.ErrHelp):
			return 0
		}
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprintln(errOut, "writeback "+c.name+": "+ue.msg)
			return 2
		}
		if k := errs.KindOf(err); k != errs.Internal {
			msg := errs.MessageOf(err)
			for f, m := range errs.FieldsOf(err) {
				msg += " " + f + ": " + m
			}
			fmt.Fprintln(errOut, "writeback "+c.name+": "+msg)
			return 1
		}
		fmt.Fprintln(errOut, "writeback "+c.name+": "+err.Error())
		return 1
	}
	fmt.Fprintf(errOut, "writeback: unknown command %q (run \"writeback help\")\n", args[0])
	return 2
}

// newFlags makes a flag set whose errors become one-line usage errors.
func newFlags(name string, io stdio) *flag.FlagSet {
	fs := flag.NewFlagSet("writeback "+name, flag.ContinueOnError)
	fs.SetOutput(io.err)
	return fs
}

// parse parses flags; a bad flag is returned as a one-line usage error and
// stray arguments are refused.
func parse(fs *flag.FlagSet, args []string) error {
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	return nil
}

// parseFlags parses flags and leaves positional arguments in fs.Args().
func parseFlags(fs *flag.FlagSet, args []string) error {
	out := fs.Output()
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(out)
			fs.Usage()
			return flag.ErrHelp
		}
		return usageError{err.Error()}
	}
	return nil
}

func envOr(getenv env, key, def string) string {
	if v := getenv(key); v != "" {
		return v
	}
	return def
}

// subcommand is one verb of a command with several (admin create, …).
type subcommand struct {
	name string
	run  func(ctx context.Context, args []string, getenv env, io stdio) error
}

// subcommands runs the subcommand named by args[0].
func subcommands(ctx context.Context, args []string, getenv env, io stdio, subs []subcommand) error {
	names := make([]string, len(subs))
	for i, s := range subs {
		names[i] = s.name
	}
	want := strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
	if len(args) == 0 {
		return usagef("want a subcommand: %s", want)
	}
	for _, s := range subs {
		if s.name == args[0] {
			return s.run(ctx, args[1:], getenv, io)
		}
	}
	return usagef("unknown subcommand %q: want %s", args[0], want)
}
