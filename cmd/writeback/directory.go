package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/writeback/writeback/cmd/internal/cmdline"
	"github.com/writeback/writeback/cmd/internal/datadir"
	"github.com/writeback/writeback/cmd/internal/dircmd"
	"github.com/writeback/writeback/services/audit"
)

// listFlag collects a repeatable flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// directoryProgram is the portal's "directory set|show|test": the code is
// shared with writeback-agent (cmd/internal/dircmd); the portal adds the
// choice between its own connection and its agents' (--mode).
//
// A Program serves one command: DataFlag registers --data and --database,
// Open opens what they name once the flags are parsed.
func directoryProgram() dircmd.Program {
	var loc *datadir.Location
	return dircmd.Program{
		Name:  "writeback",
		Modes: true,
		DataFlag: func(fs *flag.FlagSet, getenv cmdline.Env) *string {
			loc = dataFlag(fs.StringVar, getenv)
			return &loc.Dir
		},
		Open: func(ctx context.Context, dataDir string, logOut io.Writer) (dircmd.Connections, func() error, error) {
			at := *loc
			at.Dir = dataDir
			a, err := openApp(ctx, at, logOut)
			if err != nil {
				return nil, nil, err
			}
			return a.wb, a.Close, nil
		},
	}
}

func directorySet(ctx context.Context, args []string, getenv env, io stdio) error {
	return directoryProgram().Set(ctx, args, getenv, io)
}

func directoryShow(ctx context.Context, args []string, getenv env, io stdio) error {
	return directoryProgram().Show(ctx, args, getenv, io)
}

func directoryTest(ctx context.Context, args []string, getenv env, io stdio) error {
	return directoryProgram().Test(ctx, args, getenv, io)
}

func settingsShow(ctx context.Context, args []string, getenv env, io stdio) error {
	fs := newFlags("settings show", io)
	data := dataFlag(fs.StringVar, getenv)
	a, err := openParsed(ctx, fs, args, data, io)
	if err != nil {
		return err
	}
	defer a.Close()
	o, meta, err := a.settings.OnPrem(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(io.Out, "Write back passwords to your on-premises directory: %s\n", yesNoWord(o.Writeback))
	fmt.Fprintf(io.Out, "Allow users to unlock accounts without resetting their password: %s\n", yesNoWord(o.Unlock))
	if meta.UpdatedBy != "" {
		fmt.Fprintf(io.Out, "Last changed by %s at %s\n", meta.UpdatedBy, meta.UpdatedAt.Format("2006-01-02 15:04:05 UTC"))
	}
	return nil
}

func settingsSet(ctx context.Context, args []string, getenv env, io stdio) error {
	fs := newFlags("settings set", io)
	data := dataFlag(fs.StringVar, getenv)
	wbv := fs.String("writeback", "", "yes or no: Write back passwords to your on-premises directory")
	unlock := fs.String("unlock", "", "yes or no: Allow users to unlock accounts without resetting their password")
	a, err := openParsed(ctx, fs, args, data, io)
	if err != nil {
		return err
	}
	defer a.Close()
	o, meta, err := a.settings.OnPrem(ctx)
	if err != nil {
		return err
	}
	if *wbv != "" {
		if o.Writeback, err = yesNoFlag("writeback", *wbv); err != nil {
			return err
		}
	}
	if *unlock != "" {
		if o.Unlock, err = yesNoFlag("unlock", *unlock); err != nil {
			return err
		}
		if o.Unlock && !o.Writeback {
			return cmdline.Usagef("--unlock yes needs --writeback yes: unlocking writes to the directory")
		}
	}
	if *wbv == "" && *unlock == "" {
		return cmdline.Usagef("give --writeback and/or --unlock")
	}
	if o.Writeback {
		// The page's rule: with nothing to write to, Yes would change nothing.
		conn, _, err := a.wb.Connection(ctx)
		if err != nil {
			return err
		}
		if !conn.Configured() {
			return cmdline.Usagef("--writeback yes needs a directory connection first: run 'writeback directory set' (or open Directory connection)")
		}
	}
	changed, _, err := a.settings.SaveOnPrem(ctx, audit.CommandLine, meta.Version, o)
	if err != nil {
		return err
	}
	o = o.Normalize()
	if !changed {
		fmt.Fprintln(io.Out, "nothing changed")
		return nil
	}
	fmt.Fprintf(io.Out, "saved: writeback %s, unlock %s\n", yesNoWord(o.Writeback), yesNoWord(o.Unlock))
	return nil
}

func yesNoFlag(name, v string) (bool, error) {
	switch strings.ToLower(v) {
	case "yes":
		return true, nil
	case "no":
		return false, nil
	}
	return false, cmdline.Usagef("--%s %q: want yes or no", name, v)
}

func yesNoWord(b bool) string {
	if b {
		return "Yes"
	}
	return "No"
}
