// Package dircmd is the "directory set|show|test" commands, shared by the
// portal (writeback) and the agent (writeback-agent): the same flags, the
// same validation (writeback.Service.SaveConnection) and the same
// checklist, whichever program holds the directory connection.
package dircmd

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/writeback/writeback/cmd/internal/cmdline"
	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/directory"
	"github.com/writeback/writeback/services/settings"
	"github.com/writeback/writeback/services/writeback"
)

// Connections is what the commands need of the writeback service: the
// stored connection, its validated save, and its checklist
// (*writeback.Service).
type Connections interface {
	Connection(ctx context.Context) (writeback.Connection, settings.Meta, error)
	SaveConnection(ctx context.Context, actor audit.Actor, expectVersion int64, in writeback.Input) (bool, error)
	Test(ctx context.Context, actor audit.Actor, login string) (directory.Checklist, error)
}

// Program is how one program runs the commands.
type Program struct {
	// Name is the program as a person types it ("writeback",
	// "writeback-agent"), for usage lines and hints.
	Name string
	// DataFlag registers --data on fs with the program's default.
	DataFlag func(fs *flag.FlagSet, getenv cmdline.Env) *string
	// Open opens the data folder: its connections and how to close them.
	Open func(ctx context.Context, dataDir string, logOut io.Writer) (Connections, func() error, error)
	// Modes offers "set --mode direct|agents" and shows the mode: the
	// portal's choice between its own connection and its agents'. An agent
	// always connects to its directory itself.
	Modes bool
}

// hasServer tells whether a connection names a server to bind to: what a
// first save in direct mode must provide.
func hasServer(c writeback.Connection) bool { return len(c.URLs) > 0 && c.BindDN != "" }

// serverFlags are the flags that say how to reach and bind to the directory:
// in agents mode the portal holds none of them (the agents do).
var serverFlags = []string{"url", "start-tls", "ca-file", "bind-dn", "bind-password-file"}

// Set updates the stored connection: flags given replace stored values,
// others keep them. The first set needs --type, --url, --bind-dn,
// --bind-password-file and --base-dn (on the portal in agents mode none of
// the server's: the agents hold them).
func (p Program) Set(ctx context.Context, args []string, getenv cmdline.Env, io cmdline.IO) error {
	fs := cmdline.NewFlags(p.Name+" directory set", io.Out)
	data := p.DataFlag(fs, getenv)
	var mode *string
	if p.Modes {
		mode = fs.String("mode", "", "direct (the portal connects to the directory) or agents (through writeback agents: the portal holds no directory URL or credential)")
	}
	typ := fs.String("type", "", "ad or openldap")
	var urls, bases, groups cmdline.ListFlag
	fs.Var(&urls, "url", "server URL, ldaps://host or ldap://host (repeat in failover order)")
	startTLS := fs.Bool("start-tls", true, "use StartTLS on ldap:// URLs (false leaves them plain: nothing with a password is sent)")
	caFile := fs.String("ca-file", "", "PEM file with the trusted CA certificates (default: system roots)")
	bindDN := fs.String("bind-dn", "", "service account DN")
	pwFile := fs.String("bind-password-file", "", "file holding the service account password (first line)")
	fs.Var(&bases, "base-dn", "user search base (repeat for several)")
	filter := fs.String("user-filter", "", "LDAP filter selecting people (default per type)")
	loginAttrs := fs.String("login-attributes", "", "comma-separated attributes people may type (default per type)")
	mailAttr := fs.String("recovery-email-attribute", "", "attribute holding the recovery e-mail (default mail)")
	mobileAttr := fs.String("mobile-attribute", "", "attribute holding the mobile number for text message codes (default mobile)")
	fs.Var(&groups, "excluded-group", "DN of a group never served by self-service (repeat); \"none\" clears the list")
	wbFlag := fs.String("password-writeback", "", "on or off: the connector-side Password writeback switch")
	if err := cmdline.Parse(fs, args); err != nil {
		return err
	}
	set := cmdline.Given(fs)
	// Values that are wrong whatever is stored are refused before anything
	// is opened.
	if set["type"] {
		switch directory.Type(*typ) {
		case directory.TypeAD, directory.TypeOpenLDAP:
		default:
			return cmdline.Usagef("--type %q: want ad or openldap", *typ)
		}
	}
	if set["mode"] && *mode != writeback.ModeDirect && *mode != writeback.ModeAgents {
		return cmdline.Usagef("--mode %q: want direct or agents", *mode)
	}
	var writebackOn bool
	if set["password-writeback"] {
		var err error
		if writebackOn, err = cmdline.OnOff("password-writeback", *wbFlag); err != nil {
			return err
		}
	}

	conns, closeFn, err := p.Open(ctx, *data, io.Err)
	if err != nil {
		return err
	}
	defer closeFn()
	cur, meta, err := conns.Connection(ctx)
	if err != nil {
		return err
	}
	in := writeback.InputOf(cur)
	toAgents := p.Modes && cur.Agents()
	if set["mode"] {
		toAgents = *mode == writeback.ModeAgents
		in.Mode = *mode
	}
	if toAgents {
		for _, f := range append(serverFlags, "password-writeback") {
			if set[f] {
				return cmdline.Usagef("--%s: in agents mode the portal holds no directory server, credential or connector switch; "+
					"set them on each agent (writeback-agent directory set, writeback-agent set)", f)
			}
		}
	}
	if set["type"] {
		// The other fields follow the new type as on the page: SaveConnection
		// applies writeback.WithTypeDefaults.
		in.Type = directory.Type(*typ)
	}
	if !toAgents && !hasServer(cur) {
		// A first connection, or the portal's own after agents mode (which
		// kept the type and search bases): whatever is not stored yet.
		stored := map[string]bool{"type": cur.Type != "", "url": len(cur.URLs) > 0, "bind-dn": cur.BindDN != "",
			"bind-password-file": cur.HasPassword(), "base-dn": len(cur.BaseDNs) > 0}
		when := "when no connection is stored yet"
		if cur.Agents() {
			when = "to switch to direct mode (the portal's own connection to the directory)"
		}
		for _, req := range []string{"type", "url", "bind-dn", "bind-password-file", "base-dn"} {
			if !set[req] && !stored[req] {
				return cmdline.Usagef("--%s is required %s", req, when)
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
			return cmdline.Usagef("--ca-file %q: %v", *caFile, err)
		}
		in.CAPEM = string(b)
	}
	if set["bind-dn"] {
		in.BindDN = *bindDN
	}
	if set["bind-password-file"] {
		if in.BindPassword, err = cmdline.SecretFile("bind-password-file", *pwFile); err != nil {
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
	if set["mobile-attribute"] {
		in.MobileAttribute = *mobileAttr
	}
	if set["excluded-group"] {
		in.ExcludedGroups = groups
		if len(groups) == 1 && groups[0] == "none" {
			in.ExcludedGroups = nil
		}
	}
	if set["password-writeback"] {
		in.PasswordWriteback = writebackOn
	}
	changed, err := conns.SaveConnection(ctx, audit.CommandLine, meta.Version, in)
	if err != nil {
		return err
	}
	if changed {
		fmt.Fprintf(io.Out, "saved the directory connection; run \"%s directory test\" to check it\n", p.Name)
	} else {
		fmt.Fprintln(io.Out, "nothing changed")
	}
	return nil
}

// Show prints the stored connection; the password only as whether one is
// stored.
func (p Program) Show(ctx context.Context, args []string, getenv cmdline.Env, io cmdline.IO) error {
	fs := cmdline.NewFlags(p.Name+" directory show", io.Out)
	data := p.DataFlag(fs, getenv)
	if err := cmdline.Parse(fs, args); err != nil {
		return err
	}
	conns, closeFn, err := p.Open(ctx, *data, io.Err)
	if err != nil {
		return err
	}
	defer closeFn()
	c, meta, err := conns.Connection(ctx)
	if err != nil {
		return err
	}
	viaAgents := p.Modes && c.Agents()
	if !c.Configured() && !viaAgents {
		fmt.Fprintln(io.Out, "no directory connection is configured")
		return nil
	}
	tw := tabwriter.NewWriter(io.Out, 0, 4, 2, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(tw, "%s\t%s\n", k, v) }
	if p.Modes {
		if viaAgents {
			row("mode", "agents (the writeback agents hold the directory connection: writeback agent list)")
		} else {
			row("mode", writeback.ModeDirect)
		}
	}
	row("type", string(c.Type))
	if !viaAgents {
		pw := "not set"
		if c.HasPassword() {
			pw = "stored (encrypted)"
		}
		ca := "system roots"
		if c.CAPEM != "" {
			ca = fmt.Sprintf("%d certificate(s) pasted", strings.Count(c.CAPEM, "BEGIN CERTIFICATE"))
		}
		row("urls", strings.Join(c.URLs, " "))
		row("start-tls", fmt.Sprint(c.StartTLS))
		row("trusted CAs", ca)
		row("bind-dn", c.BindDN)
		row("bind-password", pw)
	}
	row("base-dns", strings.Join(c.BaseDNs, " | "))
	row("user-filter", c.UserFilter)
	row("login-attributes", strings.Join(c.LoginAttributes, ","))
	row("recovery-email-attribute", c.RecoveryEmailAttribute)
	row("mobile-attribute", orDefault(c.MobileAttribute, "mobile"))
	row("excluded-groups", strings.Join(c.ExcludedGroups, " | "))
	if !viaAgents {
		row("password-writeback", cmdline.OnOffWord(c.PasswordWriteback))
	}
	row("last changed", meta.UpdatedBy+" at "+meta.UpdatedAt.Format("2006-01-02 15:04:05 UTC"))
	return tw.Flush()
}

// Test runs the connection checklist and prints it; it fails when a check
// did.
func (p Program) Test(ctx context.Context, args []string, getenv cmdline.Env, io cmdline.IO) error {
	fs := cmdline.NewFlags(p.Name+" directory test", io.Out)
	data := p.DataFlag(fs, getenv)
	user := fs.String("user", "", "also check what the service account may do to this user")
	if err := cmdline.Parse(fs, args); err != nil {
		return err
	}
	conns, closeFn, err := p.Open(ctx, *data, io.Err)
	if err != nil {
		return err
	}
	defer closeFn()
	list, err := conns.Test(ctx, audit.CommandLine, *user)
	if err != nil {
		return err
	}
	for _, c := range list.Items {
		mark := "ok  "
		if !c.OK {
			mark = "FAIL"
		}
		fmt.Fprintf(io.Out, "[%s] %s: %s\n", mark, c.Name, c.Detail)
	}
	if !list.OK {
		return fmt.Errorf("some checks failed")
	}
	fmt.Fprintln(io.Out, "every check passed")
	return nil
}

// orDefault is v, or def when v is empty.
func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}
