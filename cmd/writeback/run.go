package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/writeback/writeback/cmd/internal/cmdline"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

// runFunc is a command or subcommand: its arguments after its name.
type runFunc = cmdline.RunFunc

func commands() []cmdline.Command {
	return []cmdline.Command{
		{Name: "serve", Summary: "run the portal (--listen, --data, --base-url, --trusted-proxy, --audit-syslog …)", Run: cmdServe},
		{Name: "migrate", Summary: "apply database migrations in the data folder and exit", Run: cmdMigrate},
		{Name: "admin", Summary: "manage administrators: admin create|list|disable|enable|reset --email E|policy",
			Subs: []cmdline.Sub{{Name: "create", Run: adminCreate}, {Name: "list", Run: adminList}, {Name: "disable", Run: adminDisable},
				{Name: "enable", Run: adminEnable}, {Name: "reset", Run: adminReset}, {Name: "policy", Run: adminPolicy}}},
		{Name: "directory", Summary: "the directory connection: directory set|show|test",
			Subs: []cmdline.Sub{{Name: "set", Run: directorySet}, {Name: "show", Run: directoryShow}, {Name: "test", Run: directoryTest}}},
		{Name: "agent", Summary: "writeback agents: agent add --name NAME (a one-time enrolment token) | list [--json] | revoke NAME",
			Subs: []cmdline.Sub{{Name: "add", Run: agentAdd}, {Name: "list", Run: agentList}, {Name: "revoke", Run: agentRevoke}}},
		{Name: "token", Summary: "REST API tokens: token create --name N --role R --expires DAYS (shown once) | list [--json] | revoke NAME",
			Subs: []cmdline.Sub{{Name: "create", Run: tokenCreate}, {Name: "list", Run: tokenList}, {Name: "revoke", Run: tokenRevoke}}},
		{Name: "settings", Summary: "On-premises integration switches: settings show|set --writeback yes|no --unlock yes|no",
			Subs: []cmdline.Sub{{Name: "show", Run: settingsShow}, {Name: "set", Run: settingsSet}}},
		{Name: "user", Summary: "helpdesk actions: user show|reset|unlock LOGIN",
			Subs: []cmdline.Sub{{Name: "show", Run: userShow}, {Name: "reset", Run: userReset}, {Name: "unlock", Run: userUnlock}}},
		{Name: "sspr", Summary: "self-service policy: sspr show|set [--enabled none|all|group:DN] [--methods email,app,questions,sms] [--required 1|2] …; sspr banned add|remove TERM… | list; sspr reminders [--dry-run]",
			Subs: []cmdline.Sub{{Name: "show", Run: ssprShow}, {Name: "set", Run: ssprSet}, {Name: "banned", Run: ssprBanned},
				{Name: "reminders", Run: ssprReminders}}},
		{Name: "mail", Summary: "mail server: mail set --host H --port P --tls none|starttls|tls --from ADDR …; mail test --to ADDR",
			Subs: []cmdline.Sub{{Name: "set", Run: mailSet}, {Name: "test", Run: mailTest}}},
		{Name: "sms", Summary: "text message gateway: sms set [--preset twilio|json|get] [--url U --method M --body B …] [--secret-file F]; sms show; sms test --to NUMBER",
			Subs: []cmdline.Sub{{Name: "set", Run: smsSet}, {Name: "show", Run: smsShow}, {Name: "test", Run: smsTest}}},
		{Name: "audit", Summary: "the audit log: audit export --format csv|jsonl [--since --until --activity …]; audit verify [--full]",
			Subs: []cmdline.Sub{{Name: "export", Run: auditExport}, {Name: "verify", Run: auditVerify}}},
		{Name: "backup", Summary: "backup --out FILE: a consistent copy of the SQLite database while the portal runs", Run: cmdBackup},
		{Name: "restore", Summary: "restore --from FILE: put a backup back, with the portal stopped (keeps the database it replaces)", Run: cmdRestore},
		{Name: "db", Summary: "the database: db copy --to postgres://… (the SQLite data folder into an empty PostgreSQL database)",
			Subs: []cmdline.Sub{{Name: "copy", Run: dbCopy}}},
		{Name: "healthcheck", Summary: "exit 0 when the portal at --listen answers /healthz (for container health checks)", Run: cmdHealthcheck},
		{Name: "version", Summary: "print the version", Run: cmdVersion},
	}
}

func cmdVersion(ctx context.Context, args []string, getenv env, io stdio) error {
	if err := cmdline.Parse(newFlags("version", io), args); err != nil {
		return err
	}
	fmt.Fprintln(io.Out, "writeback", version)
	return nil
}

const helpText = `Writeback: self-service password reset with writeback to your on-premises directory.

Usage: writeback <command> [flags]

Commands:
%s
Every command that touches state takes --data DIR (env WRITEBACK_DATA, default ./data) and
--database URL (env WRITEBACK_DATABASE_URL or WRITEBACK_DATABASE_URL_FILE; default SQLite in the data folder).
Run "writeback <command> -h" for its flags.

Examples:
  writeback serve --listen 127.0.0.1:8080 --base-url https://reset.example.com
  echo "$PASSWORD" | writeback admin create --email ada@example.com --name "Ada Admin" --role global-admin
  writeback admin list
  writeback admin disable --email ada@example.com
  writeback admin enable --email ada@example.com
  writeback admin reset --email ada@example.com   # lost second factor: prints a one-time link
  writeback admin policy --helpdesk-admin required
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
  WRITEBACK_DATABASE_URL_FILE=/run/secrets/db writeback db copy --data ./data   # SQLite into an empty PostgreSQL
`

func printHelp(w io.Writer) {
	fmt.Fprintf(w, helpText, cmdline.Summaries(commands(), 12))
}

// run is main without the process: it parses args, runs one command and
// returns the exit code.
func run(ctx context.Context, args []string, getenv env, in io.Reader, out, errOut io.Writer) int {
	return cmdline.Dispatch(ctx, "writeback", commands(), printHelp, args, getenv, stdio{In: in, Out: out, Err: errOut})
}

// newFlags makes the flag set of "writeback NAME" (see cmdline.NewFlags).
func newFlags(name string, io stdio) *flag.FlagSet {
	return cmdline.NewFlags("writeback "+name, io.Out)
}
