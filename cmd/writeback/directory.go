package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/directory"
	"github.com/writeback/writeback/services/writeback"
)

// listFlag collects a repeatable flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func onOff(flagName, v string) (bool, error) {
	switch strings.ToLower(v) {
	case "on", "yes", "true":
		return true, nil
	case "off", "no", "false":
		return false, nil
	}
	return false, usagef("--%s %q: want on or off", flagName, v)
}

// directorySet updates the stored connection: flags given replace stored
// values, others keep them. The first set needs --type, --url, --bind-dn,
// --bind-password-file and --base-dn.
func directorySet(ctx context.Context, args []string, getenv env, io stdio) error {
	fs := newFlags("directory set", io)
	data := dataFlag(fs.StringVar, getenv)
	typ := fs.String("type", "", "ad or openldap")
	var urls, bases, groups listFlag
	fs.Var(&urls, "url", "server URL, ldaps://host or ldap://host (repeat in failover order)")
	startTLS := fs.Bool("start-tls", true, "use StartTLS on ldap:// URLs (false leaves them plain: nothing with a password is sent)")
	caFile := fs.String("ca-file", "", "PEM file with the trusted CA certificates (default: system roots)")
	bindDN := fs.String("bind-dn", "", "service account DN")
	pwFile := fs.String("bind-password-file", "", "file holding the service account password (first line)")
	fs.Var(&bases, "base-dn", "user search base (repeat for several)")
	filter := fs.String("user-filter", "", "LDAP filter selecting people (default per type)")
	loginAttrs := fs.String("login-attributes", "", "comma-separated attributes people may type (default per type)")
	mailAttr := fs.String("recovery-email-attribute", "", "attribute holding the recovery e-mail (default mail)")
	fs.Var(&groups, "excluded-group", "DN of a group never served by self-service (repeat); \"none\" clears the list")
	wbFlag := fs.String("password-writeback", "", "on or off: the connector-side Password writeback switch")
	if err := parse(fs, args); err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })

	a, err := openApp(ctx, *data, io.err)
	if err != nil {
		return err
	}
	defer a.Close()
	cur, meta, err := a.wb.Connection(ctx)
	if err != nil {
		return err
	}
	in := writeback.InputOf(cur)
	first := !cur.Configured()
	if set["type"] {
		switch directory.Type(*typ) {
		case directory.TypeAD, directory.TypeOpenLDAP:
		default:
			return usagef("--type %q: want ad or openldap", *typ)
		}
		// The other fields follow the new type as on the page: SaveConnection
		// applies writeback.WithTypeDefaults.
		in.Type = directory.Type(*typ)
	}
	if first {
		for _, req := range []string{"type", "url", "bind-dn", "bind-password-file", "base-dn"} {
			if !set[req] {
				return usagef("--%s is required when no connection is stored yet", req)
			}
		}
	}
	if set["url"] {
		in.URLs = urls
	}
	if set["start-tls"] || set["url"] {
		in.StartTLS = *startTLS
	}
	if set["ca-file"] {
		b, err := os.ReadFile(*caFile)
		if err != nil {
			return usagef("--ca-file %q: %v", *caFile, err)
		}
		in.CAPEM = string(b)
	}
	if set["bind-dn"] {
		in.BindDN = *bindDN
	}
	if set["bind-password-file"] {
		if in.BindPassword, err = secretFile("bind-password-file", *pwFile); err != nil {
			return err
		}
	}
	if set["base-dn"] {
		in.BaseDNs = bases
	}
	if set["user-filter"] {
		in.UserFilter = *filter
	}
	if set["login-attributes"] {
		in.LoginAttributes = writeback.SplitList(*loginAttrs)
	}
	if set["recovery-email-attribute"] {
		in.RecoveryEmailAttribute = *mailAttr
	}
	if set["excluded-group"] {
		in.ExcludedGroups = groups
		if len(groups) == 1 && groups[0] == "none" {
			in.ExcludedGroups = nil
		}
	}
	if set["password-writeback"] {
		if in.PasswordWriteback, err = onOff("password-writeback", *wbFlag); err != nil {
			return err
		}
	}
	changed, err := a.wb.SaveConnection(ctx, audit.CommandLine, meta.Version, in)
	if err != nil {
		return err
	}
	if changed {
		fmt.Fprintln(io.out, "saved the directory connection; run \"writeback directory test\" to check it")
	} else {
		fmt.Fprintln(io.out, "nothing changed")
	}
	return nil
}

func directoryShow(ctx context.Context, args []string, getenv env, io stdio) error {
	fs := newFlags("directory show", io)
	data := dataFlag(fs.StringVar, getenv)
	a, err := openParsed(ctx, fs, args, data, io)
	if err != nil {
		return err
	}
	defer a.Close()
	c, meta, err := a.wb.Connection(ctx)
	if err != nil {
		return err
	}
	if !c.Configured() {
		fmt.Fprintln(io.out, "no directory connection is configured")
		return nil
	}
	pw := "not set"
	if c.HasPassword() {
		pw = "stored (encrypted)"
	}
	ca := "system roots"
	if c.CAPEM != "" {
		ca = fmt.Sprintf("%d certificate(s) pasted", strings.Count(c.CAPEM, "BEGIN CERTIFICATE"))
	}
	tw := tabwriter.NewWriter(io.out, 0, 4, 2, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(tw, "%s\t%s\n", k, v) }
	row("type", string(c.Type))
	row("urls", strings.Join(c.URLs, " "))
	row("start-tls", fmt.Sprint(c.StartTLS))
	row("trusted CAs", ca)
	row("bind-dn", c.BindDN)
	row("bind-password", pw)
	row("base-dns", strings.Join(c.BaseDNs, " | "))
	row("user-filter", c.UserFilter)
	row("login-attributes", strings.Join(c.LoginAttributes, ","))
	row("recovery-email-attribute", c.RecoveryEmailAttribute)
	row("excluded-groups", strings.Join(c.ExcludedGroups, " | "))
	row("password-writeback", onOffWord(c.PasswordWriteback))
	row("last changed", meta.UpdatedBy+" at "+meta.UpdatedAt.Format("2006-01-02 15:04:05 UTC"))
	return tw.Flush()
}

func onOffWord(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

func directoryTest(ctx context.Context, args []string, getenv env, io stdio) error {
	fs := newFlags("directory test", io)
	data := dataFlag(fs.StringVar, getenv)
	user := fs.String("user", "", "also check what the service account may do to this user")
	a, err := openParsed(ctx, fs, args, data, io)
	if err != nil {
		return err
	}
	defer a.Close()
	list, err := a.wb.Test(ctx, audit.CommandLine, *user)
	if err != nil {
		return err
	}
	for _, c := range list.Items {
		mark := "ok  "
		if !c.OK {
			mark = "FAIL"
		}
		fmt.Fprintf(io.out, "[%s] %s: %s\n", mark, c.Name, c.Detail)
	}
	if !list.OK {
		return fmt.Errorf("some checks failed")
	}
	fmt.Fprintln(io.out, "every check passed")
	return nil
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
	fmt.Fprintf(io.out, "Write back passwords to your on-premises directory: %s\n", yesNoWord(o.Writeback))
	fmt.Fprintf(io.out, "Allow users to unlock accounts without resetting their password: %s\n", yesNoWord(o.Unlock))
	if meta.UpdatedBy != "" {
		fmt.Fprintf(io.out, "Last changed by %s at %s\n", meta.UpdatedBy, meta.UpdatedAt.Format("2006-01-02 15:04:05 UTC"))
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
			return usagef("--unlock yes needs --writeback yes: unlocking writes to the directory")
		}
	}
	if *wbv == "" && *unlock == "" {
		return usagef("give --writeback and/or --unlock")
	}
	if o.Writeback {
		// The page's rule: with nothing to write to, Yes would change nothing.
		conn, _, err := a.wb.Connection(ctx)
		if err != nil {
			return err
		}
		if !conn.Configured() {
			return usagef("--writeback yes needs a directory connection first: run 'writeback directory set' (or open Directory connection)")
		}
	}
	changed, _, err := a.settings.SaveOnPrem(ctx, audit.CommandLine, meta.Version, o)
	if err != nil {
		return err
	}
	o = o.Normalize()
	if !changed {
		fmt.Fprintln(io.out, "nothing changed")
		return nil
	}
	fmt.Fprintf(io.out, "saved: writeback %s, unlock %s\n", yesNoWord(o.Writeback), yesNoWord(o.Unlock))
	return nil
}

func yesNoFlag(name, v string) (bool, error) {
	switch strings.ToLower(v) {
	case "yes":
		return true, nil
	case "no":
		return false, nil
	}
	return false, usagef("--%s %q: want yes or no", name, v)
}

func yesNoWord(b bool) string {
	if b {
		return "Yes"
	}
	return "No"
}
