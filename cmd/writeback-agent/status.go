package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"text/tabwriter"

	"github.com/writeback/writeback/cmd/internal/cmdline"
	"github.com/writeback/writeback/services/errs"
	"github.com/writeback/writeback/services/keyring"
	"github.com/writeback/writeback/store"
)

const timeFormat = "2006-01-02 15:04:05 UTC"

// cmdStatus prints what the agent is: enrolment, directory connection,
// switches, and whether a run is connected. It creates nothing: a data
// folder that does not exist yet is an agent not enrolled.
func cmdStatus(ctx context.Context, args []string, getenv cmdline.Env, io cmdline.IO) error {
	fs := cmdline.NewFlags(program+" status", io.Out)
	data := dataFlag(fs, getenv)
	needConnected := fs.Bool("connected", false, "exit 1 unless a run is connected to the portal (for container health checks)")
	if err := cmdline.Parse(fs, args); err != nil {
		return err
	}
	if *data == "" {
		return cmdline.Usagef("--data must not be empty")
	}
	cfg, err := readConfig(*data)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(io.Out, 0, 4, 2, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(tw, "%s\t%s\n", k, v) }
	if cfg.enrolled() {
		row("enrolled", "as "+cfg.Name+" with "+cfg.Portal)
		row("agent id", cfg.AgentID)
		row("enrolled at", cfg.EnrolledAt.Format(timeFormat))
	} else {
		row("enrolled", fmt.Sprintf("no (run '%s enroll --portal URL --token TOKEN')", program))
	}

	directoryRow, writebackRow := "not configured", "off"
	if exists(*data, store.FileName) && exists(*data, keyring.FileName) {
		a, err := openApp(ctx, *data, io.Err, slog.LevelWarn)
		if err != nil {
			return err
		}
		conn, _, err := a.wb.Connection(ctx)
		a.Close()
		if err != nil {
			return err
		}
		if conn.Configured() {
			directoryRow = directorySummary(conn.Type, conn.URLs) + " (base " + strings.Join(conn.BaseDNs, " | ") + ")"
			writebackRow = cmdline.OnOffWord(conn.PasswordWriteback)
		}
	}
	row("directory", directoryRow)
	row("password writeback", writebackRow)
	row("writes per minute", fmt.Sprint(cfg.writesPerMinute()))

	st, ok := readStatus(*data)
	connected := ok && st.running() && st.State == stateConnected
	switch {
	case !ok:
		row("run", "not running")
	case connected:
		line := fmt.Sprintf("connected since %s (pid %d)", st.ConnectedSince.Format(timeFormat), st.PID)
		if st.Connections > 1 {
			line += fmt.Sprintf(", to %d portal replicas", st.Connections)
		}
		row("run", line)
	case st.running():
		row("run", fmt.Sprintf("running (pid %d), not connected", st.PID))
	case st.State == stateRevoked:
		row("run", "stopped: the portal revoked this agent at "+st.UpdatedAt.Format(timeFormat))
	default:
		row("run", "not running (last run ended "+st.UpdatedAt.Format(timeFormat)+")")
	}
	if ok && st.LastError != "" {
		row("last error", st.LastError+" ("+st.LastErrorAt.Format(timeFormat)+")")
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if *needConnected && !connected {
		return errs.E(errs.Unavailable, "not connected to the portal", nil)
	}
	return nil
}
