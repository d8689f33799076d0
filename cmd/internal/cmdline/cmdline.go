// Package cmdline is the command-line plumbing that the portal's and the
// agent's commands share: flag sets whose mistakes are one-line usage
// errors and whose --help is an answer on standard output, secrets read
// from files or standard input (never from arguments that show in ps),
// and on/off values.
package cmdline

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// Env is how a command reads the environment (tests pass their own).
type Env func(string) string

// IO bundles the streams a command uses.
type IO struct {
	In       io.Reader
	Out, Err io.Writer
}

// UsageError is a bad flag or value: one line naming it, exit code 2.
type UsageError struct{ Msg string }

func (e UsageError) Error() string { return e.Msg }

// Usagef builds a UsageError.
func Usagef(format string, args ...any) error { return UsageError{fmt.Sprintf(format, args...)} }

// NewFlags makes a flag set named name (the program and command, e.g.
// "writeback-agent enroll") whose errors become one-line usage errors and
// whose --help prints the flags on out: help is an answer, not an error
// ("writeback-agent run --help | less" works and exits 0).
func NewFlags(name string, out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(out)
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

// Parse parses flags; a bad flag is returned as a one-line usage error,
// --help as flag.ErrHelp after printing the usage, and stray arguments are
// refused.
func Parse(fs *flag.FlagSet, args []string) error {
	if err := ParseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return Usagef("unexpected argument %q", fs.Arg(0))
	}
	return nil
}

// ParseFlags parses flags and leaves positional arguments in fs.Args().
func ParseFlags(fs *flag.FlagSet, args []string) error {
	out := fs.Output()
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(out)
			fs.Usage()
			return flag.ErrHelp
		}
		return UsageError{err.Error()}
	}
	return nil
}

// Given returns the names of the flags set on the command line, so that a
// command can tell "not given" from "given its default".
func Given(fs *flag.FlagSet) map[string]bool {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	return set
}

// EnvOr is the environment variable key, or def when it is empty.
func EnvOr(getenv Env, key, def string) string {
	if v := getenv(key); v != "" {
		return v
	}
	return def
}

// IsHelp reports whether an argument asks for help rather than naming a
// subcommand or a flag (the flag package itself accepts -h and -help with
// one or two dashes).
func IsHelp(arg string) bool {
	switch arg {
	case "help", "-h", "--h", "-help", "--help":
		return true
	}
	return false
}

// FirstLine reads one line (without its line ending) from r: how secrets
// come in, from standard input or a file, so they never show in ps or
// shell history.
func FirstLine(r io.Reader) string {
	line, _ := bufio.NewReader(r).ReadString('\n')
	return strings.TrimRight(line, "\r\n")
}

// SecretFile reads the first line of the file a flag names.
func SecretFile(flagName, path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", Usagef("--%s %q: %v", flagName, path, err)
	}
	defer f.Close()
	s := FirstLine(f)
	if s == "" {
		return "", Usagef("--%s %q: the file is empty", flagName, path)
	}
	return s, nil
}

// OnOff parses an on/off flag value (yes/no and true/false too).
func OnOff(flagName, v string) (bool, error) {
	switch strings.ToLower(v) {
	case "on", "yes", "true":
		return true, nil
	case "off", "no", "false":
		return false, nil
	}
	return false, Usagef("--%s %q: want on or off", flagName, v)
}

// OnOffWord prints a switch.
func OnOffWord(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

// ListFlag collects a repeatable flag.
type ListFlag []string

func (l *ListFlag) String() string { return strings.Join(*l, ",") }

// Set appends one value.
func (l *ListFlag) Set(v string) error { *l = append(*l, v); return nil }
