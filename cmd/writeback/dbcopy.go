package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/writeback/writeback/cmd/internal/cmdline"
	"github.com/writeback/writeback/cmd/internal/datadir"
	"github.com/writeback/writeback/services/keyring"
	"github.com/writeback/writeback/store"
)

// dbCopy is `writeback db copy`: everything in a data folder's SQLite
// database into an empty PostgreSQL database, for moving from one machine
// to several replicas. The target is migrated first, refused when it holds
// anything, written in one transaction (all or nothing), and its audit
// chain verified at the end.
func dbCopy(ctx context.Context, args []string, getenv env, io stdio) error {
	fs := newFlags("db copy", io)
	dir := fs.String("data", cmdline.EnvOr(getenv, "WRITEBACK_DATA", "./data"), "data folder whose SQLite database is copied (env WRITEBACK_DATA)")
	var to datadir.Location
	datadir.DatabaseFlag(func(p *string, _, value, _ string) {
		fs.StringVar(p, "to", value, "the new, empty PostgreSQL database to copy into, postgres://user:password@host/db "+
			"(default: env "+datadir.EnvDatabaseURL+", or "+datadir.EnvDatabaseURLFile+" naming a file that holds it, as the replicas will use)")
	}, getenv, &to)
	if err := cmdline.Parse(fs, args); err != nil {
		return err
	}
	target, err := to.URL()
	if err != nil {
		return err
	}
	if target == "" {
		return cmdline.Usagef("db copy: name the PostgreSQL database to copy into with --to postgres://… (or %s)", datadir.EnvDatabaseURLFile)
	}
	path := filepath.Join(*dir, store.FileName)
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("db copy: no SQLite database to copy in %s (%s is missing)", *dir, store.FileName)
	}
	// The target first: a wrong URL or password stops the command before
	// anything happens to the data folder.
	dst, err := store.OpenPostgres(ctx, target)
	if err != nil {
		return err
	}
	defer dst.Close()
	src, err := store.Open(ctx, path)
	if err != nil {
		return err
	}
	defer src.Close()
	// Both at this binary's schema, so that their tables match.
	if _, err := src.Migrate(ctx); err != nil {
		return err
	}
	if _, err := dst.Migrate(ctx); err != nil {
		return err
	}
	var rows int64
	copied, err := src.CopyTo(ctx, dst, func(c store.CopiedTable) {
		rows += c.Rows
		fmt.Fprintf(io.Out, "copied %-24s %d rows\n", c.Name, c.Rows)
	})
	if ne, ok := errors.AsType[*store.NotEmptyError](err); ok {
		host := "the target database"
		if u, perr := url.Parse(target); perr == nil && u.Host != "" {
			host = "the database at " + u.Host
		}
		return fmt.Errorf("db copy: refusing to copy: %s is not empty, it already has rows in %s; copy into a new, empty database (nothing was changed)",
			host, strings.Join(ne.Tables, ", "))
	}
	if err != nil {
		return fmt.Errorf("db copy: %w (nothing was written to the target)", err)
	}
	res, err := dst.VerifyAudit(ctx)
	if err != nil {
		return fmt.Errorf("db copy: verify the audit log in the copy: %w", err)
	}
	if !res.OK {
		return fmt.Errorf("db copy: the audit log in the copy does not verify: %s", res.Problem)
	}
	fmt.Fprintf(io.Out, "copied %d tables, %d rows; audit log verified in the copy: %s, chain intact up to event %d\n",
		len(copied), rows, events(res.Checked), res.LastGoodID)
	fmt.Fprintf(io.Out, "start every replica with this database (--database) and this data folder's key file (%s)\n",
		filepath.Join(*dir, keyring.FileName))
	return nil
}
