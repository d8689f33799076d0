package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/writeback/writeback/cmd/internal/cmdline"
	"github.com/writeback/writeback/services/admins"
	"github.com/writeback/writeback/services/apitokens"
	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/errs"
)

// tokenCreate is `writeback token create --name N --role R --expires DAYS`:
// the token alone on the last line of the output, so that a script can
// take it with `tail -n 1`.
func tokenCreate(ctx context.Context, args []string, getenv env, io stdio) error {
	fs := newFlags("token create", io)
	data := dataFlag(fs.StringVar, getenv)
	name := fs.String("name", "", "the token's name, as the API tokens page and the audit log show it (1 to 64 letters, digits, spaces, - _ .)")
	role := fs.String("role", "", "the role it acts with: global-admin, helpdesk-admin or reports-reader")
	days := fs.Int("expires", apitokens.DefaultDays, fmt.Sprintf("days until it expires, 1 to %d", apitokens.MaxDays))
	if err := cmdline.Parse(fs, args); err != nil {
		return err
	}
	if strings.TrimSpace(*name) == "" {
		return cmdline.Usagef("--name is required")
	}
	r, err := apitokens.ParseRole(*role)
	if err != nil {
		return cmdline.Usagef("--role %q: want global-admin, helpdesk-admin or reports-reader", *role)
	}
	a, err := openApp(ctx, *data, io.Err)
	if err != nil {
		return err
	}
	defer a.Close()
	tok, err := apitokens.NewService(a.db, a.log).Create(ctx, audit.CommandLine, *name, r, *days)
	if errs.KindOf(err) == errs.Invalid {
		for _, f := range []string{"name", "role", "expires"} {
			if m := errs.FieldsOf(err)[f]; m != "" {
				return cmdline.Usagef("--%s: %s", f, m)
			}
		}
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(io.Out, "Created the API token %q, acting as a %s until %s.\n", tok.Name, tok.Role.Label(),
		tok.ExpiresAt.UTC().Format("2006-01-02 15:04:05 UTC"))
	fmt.Fprintln(io.Out, "It is not shown again. Send it as Authorization: Bearer TOKEN to /api/v1. The token:")
	fmt.Fprintln(io.Out, tok.Secret)
	return nil
}

// tokenRow is one object of `token list --json`.
type tokenRow struct {
	Name       string      `json:"name"`
	Role       admins.Role `json:"role"`
	State      string      `json:"state"`
	CreatedBy  string      `json:"created_by"`
	CreatedAt  time.Time   `json:"created_at"`
	ExpiresAt  time.Time   `json:"expires_at"`
	LastUsedAt *time.Time  `json:"last_used_at"`
	LastUsedIP string      `json:"last_used_ip"`
	RevokedAt  *time.Time  `json:"revoked_at"`
}

func tokenList(ctx context.Context, args []string, getenv env, io stdio) error {
	fs := newFlags("token list", io)
	data := dataFlag(fs.StringVar, getenv)
	asJSON := fs.Bool("json", false, "print a JSON array, one object per token, for scripts")
	a, err := openParsed(ctx, fs, args, data, io)
	if err != nil {
		return err
	}
	defer a.Close()
	list, err := apitokens.NewService(a.db, a.log).List(ctx)
	if err != nil {
		return err
	}
	now := time.Now()
	if *asJSON {
		rows := make([]tokenRow, 0, len(list))
		for _, t := range list {
			rows = append(rows, tokenRow{Name: t.Name, Role: t.Role, State: t.State(now), CreatedBy: t.CreatedBy,
				CreatedAt: t.CreatedAt.UTC(), ExpiresAt: t.ExpiresAt.UTC(), LastUsedAt: timePtr(t.LastUsedAt),
				LastUsedIP: t.LastUsedIP, RevokedAt: timePtr(t.RevokedAt)})
		}
		enc := json.NewEncoder(io.Out)
		enc.SetIndent("", "  ")
		return enc.Encode(rows)
	}
	if len(list) == 0 {
		fmt.Fprintln(io.Out, "No API token exists. Create one with: writeback token create --name NAME --role ROLE")
		return nil
	}
	tw := tabwriter.NewWriter(io.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tROLE\tSTATE\tCREATED\tEXPIRES\tLAST USED")
	for _, t := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", t.Name, t.Role, t.State(now), when(t.CreatedAt), when(t.ExpiresAt), when(t.LastUsedAt))
	}
	return tw.Flush()
}

// tokenRevoke is `writeback token revoke NAME`.
func tokenRevoke(ctx context.Context, args []string, getenv env, io stdio) error {
	fs := newFlags("token revoke", io)
	data := dataFlag(fs.StringVar, getenv)
	name, err := parseWithName(fs, args, "name the token to revoke: writeback token revoke NAME")
	if err != nil {
		return err
	}
	a, err := openApp(ctx, *data, io.Err)
	if err != nil {
		return err
	}
	defer a.Close()
	t, err := apitokens.NewService(a.db, a.log).Revoke(ctx, audit.CommandLine, 0, name)
	if err != nil {
		return err
	}
	fmt.Fprintf(io.Out, "revoked the API token %s; the portal refuses it from now on\n", t.Name)
	return nil
}
