package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/writeback/writeback/cmd/internal/cmdline"
	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/banned"
	"github.com/writeback/writeback/services/errs"
)

// ssprBanned is `writeback sspr banned add|remove|list|breached`: the
// organisation's banned terms (the Password protection page's list), and
// the offline breached-password list (breached PATH, or breached off).
func ssprBanned(ctx context.Context, args []string, getenv env, io stdio) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		// sspr banned --help (or a flag where the verb belongs).
		fs := newFlags("sspr banned", io)
		dataFlag(fs.StringVar, getenv)
		if err := cmdline.ParseFlags(fs, args); err != nil {
			return err
		}
		return cmdline.Usagef("sspr banned: want add TERM…, remove TERM…, list, or breached PATH|off")
	}
	verb, args := args[0], args[1:]
	switch verb {
	case "add", "remove", "list", "breached":
	default:
		return cmdline.Usagef("sspr banned %s: want add TERM…, remove TERM…, list, or breached PATH|off", verb)
	}
	fs := newFlags("sspr banned "+verb, io)
	data := dataFlag(fs.StringVar, getenv)
	var terms []string
	// Terms may come before or after the flags.
	for len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		terms, args = append(terms, args[0]), args[1:]
	}
	if err := cmdline.ParseFlags(fs, args); err != nil {
		return err
	}
	terms = append(terms, fs.Args()...)
	switch {
	case verb == "list" && len(terms) > 0:
		return cmdline.Usagef("sspr banned list takes no terms")
	case verb == "breached" && len(terms) != 1:
		return cmdline.Usagef("sspr banned breached: give the full path of the breached-password list, or off")
	case verb != "list" && len(terms) == 0:
		return cmdline.Usagef("sspr banned %s: name at least one term", verb)
	}
	a, err := openApp(ctx, *data, io.Err)
	if err != nil {
		return err
	}
	defer a.Close()
	if verb == "breached" {
		path := terms[0]
		if path == "off" {
			path = ""
		}
		changed, err := a.banned.SetBreachedFile(ctx, audit.CommandLine, path)
		if err != nil {
			if m := errs.FieldsOf(err)["breached_file"]; m != "" {
				return cmdline.Usagef("sspr banned breached %s: %s", terms[0], m)
			}
			return err
		}
		if !changed {
			fmt.Fprintln(io.Out, "nothing changed: the list already says so")
		}
	} else if verb != "list" {
		var add, remove []string
		if verb == "add" {
			add = terms
		} else {
			remove = terms
		}
		changed, err := a.banned.Edit(ctx, audit.CommandLine, add, remove)
		if err != nil {
			return err
		}
		if !changed {
			fmt.Fprintln(io.Out, "nothing changed: the list already says so")
			return nil
		}
	}
	st, meta, err := a.banned.Settings(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(io.Out, "common passwords  %s (%d in the bundled list)\n", onOff(st.Common), banned.Common().Len())
	fmt.Fprintf(io.Out, "personal terms    %s (names, user name, e-mail, organisation name)\n", onOff(st.Personal))
	switch l, err := a.banned.Breached(ctx); {
	case st.BreachedFile == "":
		fmt.Fprintln(io.Out, "breached list     off")
	case err != nil:
		fmt.Fprintf(io.Out, "breached list     %s: CANNOT BE USED, new passwords are refused: %v\n", st.BreachedFile, err)
	default:
		fmt.Fprintf(io.Out, "breached list     %s (%s, %d bytes)\n", l.Path, l.Kind, l.Size)
	}
	fmt.Fprintf(io.Out, "banned terms      %d\n", len(st.Custom))
	for _, t := range st.Custom {
		fmt.Fprintf(io.Out, "  %s\n", t)
	}
	if meta.UpdatedBy != "" {
		fmt.Fprintf(io.Out, "last changed      by %s at %s\n", meta.UpdatedBy, meta.UpdatedAt.Format("2006-01-02 15:04:05 UTC"))
	}
	return nil
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}
