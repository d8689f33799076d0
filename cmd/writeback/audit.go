package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/writeback/writeback/cmd/internal/cmdline"
	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/store"
)

func auditVerify(ctx context.Context, args []string, getenv env, io stdio) error {
	fs := newFlags("audit verify", io)
	data := dataFlag(fs.StringVar, getenv)
	full := fs.Bool("full", false, "read every event of the chain (default: only the events appended since the last verification, after confirming that it still stands; a full check also finds an old event altered in place)")
	a, err := openParsed(ctx, fs, args, data, io)
	if err != nil {
		return err
	}
	defer a.Close()
	verify := a.audit.VerifyIncremental
	if *full {
		verify = a.audit.Verify
	}
	res, err := verify(ctx)
	if err != nil {
		return err
	}
	if !res.OK {
		hint := ""
		if !res.Full {
			hint = "; \"audit verify --full\" reads the whole chain"
		}
		return fmt.Errorf("audit log integrity check failed: %s (verified up to event %d%s)", res.Problem, res.LastGoodID, hint)
	}
	if res.Full {
		fmt.Fprintf(io.Out, "audit log verified: %s, chain intact up to event %d (full check)\n", events(res.Checked), res.LastGoodID)
		return nil
	}
	fmt.Fprintf(io.Out, "audit log verified: %s appended since the last verification at event %d, chain intact up to event %d (incremental check; --full reads every event)\n",
		events(res.Checked), res.FromID, res.LastGoodID)
	return nil
}

func events(n int64) string {
	if n == 1 {
		return "1 event"
	}
	return fmt.Sprintf("%d events", n)
}

// parseTimeFlag accepts a date (UTC midnight) or an RFC 3339 time.
func parseTimeFlag(name, v string) (int64, error) {
	if v == "" {
		return 0, nil
	}
	if t, err := time.Parse("2006-01-02", v); err == nil {
		return t.UnixMilli(), nil
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t.UnixMilli(), nil
	}
	return 0, cmdline.Usagef("--%s %q: want a date like 2026-11-01 or a time like 2026-11-01T08:00:00Z", name, v)
}

func auditExport(ctx context.Context, args []string, getenv env, io stdio) error {
	fs := newFlags("audit export", io)
	data := dataFlag(fs.StringVar, getenv)
	format := fs.String("format", "", "csv or jsonl")
	out := fs.String("out", "", "file to write (default: standard output)")
	since := fs.String("since", "", "events at or after this date or time (UTC)")
	until := fs.String("until", "", "events before this date or time (UTC)")
	var activities, categories listFlag
	fs.Var(&activities, "activity", "activity name (repeat for several)")
	fs.Var(&categories, "category", "category (repeat for several)")
	result := fs.String("result", "", "success or failure")
	actor := fs.String("actor", "", "actor ID or name contains")
	target := fs.String("target", "", "target ID, DN or name contains")
	text := fs.String("text", "", "free text")
	if err := cmdline.Parse(fs, args); err != nil {
		return err
	}
	if *format != audit.FormatCSV && *format != audit.FormatJSONL {
		return cmdline.Usagef("--format %q: want csv or jsonl", *format)
	}
	if *result != "" && *result != audit.Success && *result != audit.Failure {
		return cmdline.Usagef("--result %q: want success or failure", *result)
	}
	f := store.AuditFilter{Activities: activities, Categories: categories, Result: *result, Actor: *actor, Target: *target, Text: *text}
	var err error
	if f.SinceMS, err = parseTimeFlag("since", *since); err != nil {
		return err
	}
	if f.UntilMS, err = parseTimeFlag("until", *until); err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	a, err := openApp(ctx, *data, io.Err)
	if err != nil {
		return err
	}
	defer a.Close()
	w := io.Out
	if *out != "" {
		file, err := os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			return cmdline.Usagef("--out %q: %v", *out, err)
		}
		defer file.Close()
		bw := bufio.NewWriterSize(file, 1<<16)
		defer bw.Flush()
		w = bw
	}
	n, err := a.audit.Export(ctx, w, *format, f, audit.CommandLine)
	if err != nil {
		return err
	}
	if *out != "" {
		fmt.Fprintf(io.Err, "exported %d events to %s\n", n, strings.TrimSpace(*out))
	}
	return nil
}
