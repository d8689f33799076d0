package main

import (
	"context"
	"fmt"

	"github.com/writeback/writeback/cmd/internal/cmdline"
	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/errs"
	"github.com/writeback/writeback/services/reminders"
	"github.com/writeback/writeback/services/selfservice"
)

// ssprReminders is `writeback sspr reminders`: the password-expiry
// reminders' settings (--enabled, --thresholds) and, with --dry-run, who
// would be mailed now, without mailing anyone.
func ssprReminders(ctx context.Context, args []string, getenv env, io stdio) error {
	fs := newFlags("sspr reminders", io)
	data := dataFlag(fs.StringVar, getenv)
	enabled := fs.String("enabled", "", "yes or no: mail people whose directory password expires soon")
	thresholds := fs.String("thresholds", "", "days before the expiry to mail at, e.g. 14,7,1")
	dry := fs.Bool("dry-run", false, "list who would be mailed now, and mail nobody")
	a, err := openParsed(ctx, fs, args, data, io)
	if err != nil {
		return err
	}
	defer a.Close()
	st, meta, err := a.reminders.Settings(ctx)
	if err != nil {
		return err
	}
	if *enabled != "" || *thresholds != "" {
		next := st
		if *enabled != "" {
			if next.Enabled, err = yesNoFlag("enabled", *enabled); err != nil {
				return err
			}
		}
		if *thresholds != "" {
			if next.Thresholds, err = reminders.ParseThresholds(*thresholds); err != nil {
				return cmdline.Usagef("--thresholds %q: %s", *thresholds, errs.FieldsOf(err)["thresholds"])
			}
		}
		changed, err := a.reminders.Save(ctx, audit.CommandLine, meta.Version, next)
		if err != nil {
			return err
		}
		if !changed {
			fmt.Fprintln(io.Out, "nothing changed")
		}
		if st, _, err = a.reminders.Settings(ctx); err != nil {
			return err
		}
	}
	fmt.Fprintf(io.Out, "expiry reminders  %s\n", onOff(st.Enabled))
	fmt.Fprintf(io.Out, "thresholds        %s days before the password expires\n", reminders.FormatThresholds(st.Thresholds))
	if !*dry {
		return nil
	}
	due, err := a.reminders.Plan(ctx)
	if err != nil {
		return err
	}
	mailed := 0
	for _, d := range due {
		if d.Skip == "" {
			mailed++
		}
	}
	fmt.Fprintf(io.Out, "dry run: %d would be mailed now (nothing was sent)\n", mailed)
	for _, d := range due {
		to := selfservice.Mask(d.User.Email)
		if d.Skip != "" {
			to = "not mailed: " + d.Skip
		}
		fmt.Fprintf(io.Out, "  %-20s %-24s expires %s (%s left, %d-day reminder)  %s\n", d.User.Login, d.User.DisplayName,
			d.Expires.UTC().Format("2006-01-02 15:04 UTC"), reminders.LeftText(d.Left), d.Threshold, to)
	}
	return nil
}
