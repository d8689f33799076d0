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

// runFunc is a command or subcommand: its arguments after its name.
type runFunc func(ctx context.Context, args []string, getenv env, io stdio) error

// command is one command of the command line: either run, or subs, the
// subcommands that run dispatches to and that "writeback <name> --help" lists
// (one table for both, so help cannot list what dispatch does not accept).
type command struct {
	name, summary string
	run           runFunc
	subs          []subcommand
}

func commands() []command {
	return []command{
		{name: "serve", summary: "run the portal (--listen, --data, --base-url, --trusted-proxy, --audit-syslog …)", run: cmdServe},
		{name: "migrate", summary: "apply database migrations in the data folder and exit", run: cmdMigrate},
		{name: "admin", summary: "manage administrators: admin create|list|disable",
			subs: []subcommand{{"create", adminCreate}, {"list", adminList}, {"disable", adminDisable}}},
		{name: "directory", summary: "the directory connection: directory set|show|test",
			subs: []subcommand{{"set", directorySet}, {"show", directoryShow}, {"test", directoryTest}}},
		{name: "agent", summary: "writeback agents: agent add --name NAME (a one-time enrolment token) | list [--json] | revoke NAME",
			subs: []subcommand{{"add", agentAdd}, {"list", agentList}, {"revoke", agentRevoke}}},
		{name: "settings", summary: "On-premises integration switches: settings show|set --writeback yes|no --unlock yes|no",
			subs: []subcommand{{"show", settingsShow}, {"set", settingsSet}}},
		{name: "user", summary: "helpdesk actions: user show|reset|unlock LOGIN",
			subs: []subcommand{{"show", userShow}, {"reset", userReset}, {"unlock", userUnlock}}},
		{name: "sspr", summary: "self-service policy: sspr show|set [--enabled none|all|group:DN] [--methods email,app,questions] [--required 1|2] …",
			subs: []subcommand{{"show", ssprShow}, {"set", ssprSet}}},
		{name: "mail", summary: "mail server: mail set --host H --port P --tls none|starttls|tls --from ADDR …; mail test --to ADDR",
			subs: []subcommand{{"set", mailSet}, {"test", mailTest}}},
		{name: "audit", summary: "the audit log: audit export --format csv|jsonl [--since --until --activity …]; audit verify [--full]",
			subs: []subcommand{{"export", auditExport}, {"verify", auditVerify}}},
		{name: "healthcheck", summary: "exit 0 when the portal at --listen answers /healthz (for container health checks)", run: cmdHealthcheck},
		{name: "version", summary: "print the version", run: cmdVersion},
	}
}

func cmdVersion(ctx context.Context, args []string, getenv env, io stdio) error {
	if err := parse(newFlags("version", io), args); err != nil {
		return err
	}
	fmt.Fprintln(io.out, "writeback", version)
	return nil
}

// isHelp reports whether an argument asks for help rather than naming a
// subcommand or a flag (the flag package itself accepts -h and -help with one
// or two dashes).
func isHelp(arg string) bool {
	switch arg {
	case "help", "-h", "--h", "-help", "--help":
		return true
	}
	return false
}

// printCommandHelp is "writeback <command> --help" for a command with
// subcommands: the subcommands, and where their flags are described.
func printCommandHelp(w io.Writer, c command) {
	fmt.Fprintf(w, "Usage: writeback %s <subcommand> [flags]\n\n%s\n\nSubcommands: %s\n", c.name, c.summary, strings.Join(subNames(c.subs), ", "))
	fmt.Fprintf(w, "Run \"writeback %s <subcommand> --help\" for its flags.\n", c.name)
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
  writeback audit verify          # what was appended since the last check; --full reads every event
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
	if len(args) >= 2 && args[0] == "help" {
		// "writeback help admin create" is "writeback admin create --help".
		args = append(args[1:len(args):len(args)], "--help")
	}
	if len(args) == 0 || isHelp(args[0]) {
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
		// A command with subcommands answers --help itself; each subcommand's
		// flag set answers "<command> <subcommand> --help".
		if len(c.subs) > 0 && len(args) >= 2 && isHelp(args[1]) {
			printCommandHelp(out, c)
			return 0
		}
		var err error
		if len(c.subs) > 0 {
			err = subcommands(ctx, args[1:], getenv, io, c.subs)
		} else {
			err = c.run(ctx, args[1:], getenv, io)
		}
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

// newFlags makes a flag set whose errors become one-line usage errors and
// whose --help prints the flags on standard output (help is an answer, not an
// error: "writeback serve --help | less" works and exits 0).
func newFlags(name string, io stdio) *flag.FlagSet {
	fs := flag.NewFlagSet("writeback "+name, flag.ContinueOnError)
	fs.SetOutput(io.out)
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "Usage: %s [flags]\n", fs.Name())
		n := 0
		fs.VisitAll(func(*flag.Flag) { n++ })
		if n > 0 {
			fmt.Fprintln(w, "\nFlags:")
			fs.PrintDefaults()
		}
	}
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
	run  runFunc
}

func subNames(subs []subcommand) []string {
	names := make([]string, len(subs))
	for i, s := range subs {
		names[i] = s.name
	}
	return names
}

// subcommands runs the subcommand named by args[0].
func subcommands(ctx context.Context, args []string, getenv env, io stdio, subs []subcommand) error {
	names := subNames(subs)
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
