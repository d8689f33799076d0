package cmdline

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/writeback/writeback/services/errs"
)

// RunFunc is a command or subcommand: its arguments after its name.
type RunFunc func(ctx context.Context, args []string, getenv Env, io IO) error

// Command is one command of a program: either Run, or Subs, the
// subcommands that Dispatch runs and that "<program> <name> --help" lists
// (one table for both, so help cannot list what dispatch does not accept).
type Command struct {
	Name, Summary string
	Run           RunFunc
	Subs          []Sub
}

// Sub is one verb of a command with several (directory set, …).
type Sub struct {
	Name string
	Run  RunFunc
}

// Summaries is the commands' part of a program's help: one line per
// command, its name padded to width, then its summary; "help" last.
func Summaries(cmds []Command, width int) string {
	var b strings.Builder
	for _, c := range cmds {
		fmt.Fprintf(&b, "  %-*s %s\n", width, c.Name, c.Summary)
	}
	fmt.Fprintf(&b, "  %-*s %s\n", width, "help", "show this help")
	return b.String()
}

// SubNames lists the subcommands' names in order.
func SubNames(subs []Sub) []string {
	names := make([]string, len(subs))
	for i, s := range subs {
		names[i] = s.Name
	}
	return names
}

// Dispatch is a program's main without the process: it runs the command
// args name and returns the exit code. help prints the program's help
// (for no arguments, exit 2, and for "help", exit 0). Errors print as one
// line "<program> <command>: …": usage errors exit 2, others 1, and an
// errs.Error prints its safe message and fields, never its cause.
func Dispatch(ctx context.Context, program string, cmds []Command, help func(io.Writer), args []string, getenv Env, io IO) int {
	if len(args) >= 2 && args[0] == "help" {
		// "<program> help directory set" is "<program> directory set --help".
		args = append(args[1:len(args):len(args)], "--help")
	}
	if len(args) == 0 || IsHelp(args[0]) {
		help(io.Out)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range cmds {
		if c.Name != args[0] {
			continue
		}
		if len(c.Subs) > 0 && len(args) >= 2 && IsHelp(args[1]) {
			fmt.Fprintf(io.Out, "Usage: %s %s <subcommand> [flags]\n\n%s\n\nSubcommands: %s\n", program, c.Name, c.Summary, strings.Join(SubNames(c.Subs), ", "))
			fmt.Fprintf(io.Out, "Run \"%s %s <subcommand> --help\" for its flags.\n", program, c.Name)
			return 0
		}
		var err error
		if len(c.Subs) > 0 {
			err = subcommands(ctx, args[1:], getenv, io, c.Subs)
		} else {
			err = c.Run(ctx, args[1:], getenv, io)
		}
		return Report(program+" "+c.Name, err, io.Err)
	}
	fmt.Fprintf(io.Err, "%s: unknown command %q (run \"%s help\")\n", program, args[0], program)
	return 2
}

// Report prints err as one line after prefix and returns the exit code:
// 0 for none (or help), 2 for a usage error, 1 otherwise.
func Report(prefix string, err error, w io.Writer) int {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return 0
	}
	var ue UsageError
	if errors.As(err, &ue) {
		fmt.Fprintln(w, prefix+": "+oneLine(ue.Msg))
		return 2
	}
	if k := errs.KindOf(err); k != errs.Internal {
		msg := errs.MessageOf(err)
		for f, m := range errs.FieldsOf(err) {
			msg += " " + f + ": " + m
		}
		fmt.Fprintln(w, prefix+": "+oneLine(msg))
		return 1
	}
	fmt.Fprintln(w, prefix+": "+oneLine(err.Error()))
	return 1
}

// oneLine keeps a message on one line, whatever text it quotes.
func oneLine(s string) string {
	return strings.TrimSpace(strings.NewReplacer("\r\n", " ", "\n", " ", "\r", " ").Replace(s))
}

// subcommands runs the subcommand named by args[0].
func subcommands(ctx context.Context, args []string, getenv Env, io IO, subs []Sub) error {
	names := SubNames(subs)
	want := names[0]
	if len(names) > 1 {
		want = strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
	}
	if len(args) == 0 {
		return Usagef("want a subcommand: %s", want)
	}
	for _, s := range subs {
		if s.Name == args[0] {
			return s.Run(ctx, args[1:], getenv, io)
		}
	}
	return Usagef("unknown subcommand %q: want %s", args[0], want)
}
