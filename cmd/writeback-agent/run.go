package main

import (
	"context"
	"fmt"
	"io"

	"github.com/writeback/writeback/cmd/internal/cmdline"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

const program = "writeback-agent"

func commands() []cmdline.Command {
	dir := directoryProgram()
	return []cmdline.Command{
		{Name: "enroll", Summary: "enrol this agent with the portal: enroll --portal URL --token TOKEN [--ca-file PEM] [--force]", Run: cmdEnroll},
		{Name: "directory", Summary: "the agent's directory connection: directory set|show|test (the same flags as writeback directory …)",
			Subs: []cmdline.Sub{{Name: "set", Run: dir.Set}, {Name: "show", Run: dir.Show}, {Name: "test", Run: dir.Test}}},
		{Name: "set", Summary: "the agent's own switches: set --password-writeback on|off [--writes-per-minute N]", Run: cmdSet},
		{Name: "run", Summary: "connect to the portal and perform its directory operations until stopped", Run: cmdRun},
		{Name: "status", Summary: "enrolment, directory connection, switches and whether a run is connected", Run: cmdStatus},
		{Name: "version", Summary: "print the version", Run: cmdVersion},
	}
}

func cmdVersion(ctx context.Context, args []string, getenv cmdline.Env, io cmdline.IO) error {
	if err := cmdline.Parse(cmdline.NewFlags(program+" version", io.Out), args); err != nil {
		return err
	}
	fmt.Fprintln(io.Out, program, version)
	return nil
}

const helpText = `Writeback agent: performs the Writeback portal's directory operations from inside your network.
It connects out to the portal (HTTPS, port 443); nothing connects to it.

Usage: writeback-agent <command> [flags]

Commands:
%s
Every command takes --data DIR (env WRITEBACK_AGENT_DATA, default ./agent-data): the agent's database, its key
file, agent.json and agent-identity.json. Back the folder up; it holds the only copy of the agent's private key.
Run "writeback-agent <command> -h" for its flags.

Examples:
  writeback agent add --name dc-site-1                   # on the portal: prints a one-time token
  writeback-agent enroll --portal https://reset.example.com --token "$TOKEN"
  writeback-agent directory set --type ad --url ldaps://dc1.example.com --ca-file ca.pem \
      --bind-dn "CN=wbsvc,CN=Users,DC=example,DC=com" --bind-password-file svc.pw \
      --base-dn "OU=People,DC=example,DC=com"
  writeback-agent directory test --user alice
  writeback-agent set --password-writeback on
  writeback-agent run
  writeback-agent status
`

func printHelp(w io.Writer) {
	fmt.Fprintf(w, helpText, cmdline.Summaries(commands(), 10))
}

// run is main without the process: it parses args, runs one command and
// returns the exit code.
func run(ctx context.Context, args []string, getenv cmdline.Env, io cmdline.IO) int {
	return cmdline.Dispatch(ctx, program, commands(), printHelp, args, getenv, io)
}
