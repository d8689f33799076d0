package main

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"

	"github.com/writeback/writeback/cmd/internal/cmdline"
	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/writeback"
	"github.com/writeback/writeback/store"
)

// maxWritesPerMinute bounds --writes-per-minute: far above what one domain
// controller takes from a reset portal, low enough to still be a limit.
const maxWritesPerMinute = 100000

// errNoDirectory refuses the switch while there is no connection to switch.
var errNoDirectory = cmdline.Usagef("--password-writeback needs a directory connection first: run '%s directory set'", program)

// cmdSet changes the agent's own switches: the password writeback switch
// (the stored connection's connector switch, so that a running `run` sees
// it at its next job) and the write limit (agent.json, read when `run`
// starts).
func cmdSet(ctx context.Context, args []string, getenv cmdline.Env, io cmdline.IO) error {
	fs := cmdline.NewFlags(program+" set", io.Out)
	data := dataFlag(fs, getenv)
	wbFlag := fs.String("password-writeback", "", "on or off: off, the agent refuses every write (reset, unlock, change) and the portal says so")
	rateFlag := fs.String("writes-per-minute", "", fmt.Sprintf("the agent's own limit on writes per minute (1 to %d; default %d)", maxWritesPerMinute, defaultWritesPerMinute))
	if err := cmdline.Parse(fs, args); err != nil {
		return err
	}
	set := cmdline.Given(fs)
	if !set["password-writeback"] && !set["writes-per-minute"] {
		return cmdline.Usagef("give --password-writeback on|off and/or --writes-per-minute N")
	}
	var on bool
	if set["password-writeback"] {
		var err error
		if on, err = cmdline.OnOff("password-writeback", *wbFlag); err != nil {
			return err
		}
	}
	rate := 0
	if set["writes-per-minute"] {
		n, err := strconv.Atoi(*rateFlag)
		if err != nil || n < 1 || n > maxWritesPerMinute {
			return cmdline.Usagef("--writes-per-minute %q: want a whole number from 1 to %d", *rateFlag, maxWritesPerMinute)
		}
		rate = n
	}
	if set["password-writeback"] && !exists(*data, store.FileName) {
		return errNoDirectory
	}
	cfg, err := readConfig(*data)
	if err != nil {
		return err
	}

	a, err := openApp(ctx, *data, io.Err, slog.LevelWarn)
	if err != nil {
		return err
	}
	defer a.Close()
	if set["password-writeback"] {
		cur, meta, err := a.wb.Connection(ctx)
		if err != nil {
			return err
		}
		if !cur.Configured() {
			return errNoDirectory
		}
		in := writeback.InputOf(cur)
		in.PasswordWriteback = on
		if _, err := a.wb.SaveConnection(ctx, audit.CommandLine, meta.Version, in); err != nil {
			return err
		}
		fmt.Fprintf(io.Out, "password writeback %s\n", cmdline.OnOffWord(on))
	}
	if set["writes-per-minute"] {
		cfg.WritesPerMinute = rate
		if err := writeConfig(*data, cfg); err != nil {
			return err
		}
		fmt.Fprintf(io.Out, "writes per minute %d (a running %s run applies it when it next starts)\n", rate, program)
	}
	return nil
}
