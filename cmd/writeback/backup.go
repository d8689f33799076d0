package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/writeback/writeback/cmd/internal/cmdline"
	"github.com/writeback/writeback/services/errs"
	"github.com/writeback/writeback/services/keyring"
	"github.com/writeback/writeback/store"
)

// cmdBackup makes a consistent online copy of the SQLite database while
// the server runs, checks it, and says to keep the key file with it.
func cmdBackup(ctx context.Context, args []string, getenv env, io stdio) error {
	fs := newFlags("backup", io)
	data := dataFlag(fs.StringVar, getenv)
	out := fs.String("out", "", "the backup file to write (must not exist)")
	if err := cmdline.Parse(fs, args); err != nil {
		return err
	}
	if *out == "" {
		return cmdline.Usagef("--out FILE is required")
	}
	if _, err := os.Lstat(*out); err == nil {
		return cmdline.Usagef("--out %s exists already: choose a new file name", *out)
	}
	if u, err := data.URL(); err != nil {
		return err
	} else if u != "" {
		return errs.E(errs.Invalid, "writeback backup copies the SQLite database; this data is in PostgreSQL: back it up with pg_dump", store.ErrBackupEngine)
	}
	a, err := openApp(ctx, *data, io.Err)
	if err != nil {
		return err
	}
	defer a.Close()
	if err := a.db.Backup(ctx, *out); err != nil {
		return err
	}
	info, err := store.CheckBackup(ctx, *out)
	if err != nil {
		os.Remove(*out)
		return fmt.Errorf("the backup did not check out, so it was removed: %w", err)
	}
	fmt.Fprintf(io.Out, "backed up to %s: %d audit events, chain intact\n", *out, info.Events)
	fmt.Fprintf(io.Out, "keep the key file with it (%s): without that key the backup's secrets and sessions cannot be read\n",
		filepath.Join(data.Dir, keyring.FileName))
	return nil
}

// cmdRestore puts a backup in place of the SQLite database, with the
// server stopped: it checks the backup first, refuses while the database is
// in use, and keeps the database it replaces beside it.
func cmdRestore(ctx context.Context, args []string, getenv env, io stdio) error {
	fs := newFlags("restore", io)
	data := dataFlag(fs.StringVar, getenv)
	from := fs.String("from", "", "the backup file that `writeback backup` wrote")
	if err := cmdline.Parse(fs, args); err != nil {
		return err
	}
	if *from == "" {
		return cmdline.Usagef("--from FILE is required")
	}
	if u, err := data.URL(); err != nil {
		return err
	} else if u != "" {
		return errs.E(errs.Invalid, "writeback restore puts back a SQLite backup; this data is in PostgreSQL: restore it with pg_restore", nil)
	}
	info, err := store.CheckBackup(ctx, *from)
	if err != nil {
		return fmt.Errorf("%s cannot be restored, nothing was changed: %w", *from, err)
	}
	if err := os.MkdirAll(data.Dir, 0o700); err != nil {
		return fmt.Errorf("create data folder %s: %w", data.Dir, err)
	}
	live := filepath.Join(data.Dir, store.FileName)
	release, err := store.LockExclusive(ctx, live)
	if errors.Is(err, store.ErrInUse) {
		return errs.E(errs.Invalid, "the database in "+data.Dir+" is in use: stop `writeback serve` (and every other writeback command) on this data folder first; nothing was changed", err)
	}
	if err != nil {
		return err
	}
	// The copy is written beside the database first, so that the database
	// is either the old one or the whole backup, never half of it.
	tmp := live + ".restoring"
	if err := copyFile(*from, tmp); err != nil {
		release()
		os.Remove(tmp)
		return fmt.Errorf("copy %s: %w", *from, err)
	}
	release() // the WAL is checkpointed into the file, and the lock let go
	kept := ""
	if _, err := os.Stat(live); err == nil {
		kept = live + ".before-restore-" + time.Now().UTC().Format("20060102T150405Z")
		if err := os.Rename(live, kept); err != nil {
			os.Remove(tmp)
			return fmt.Errorf("keep the current database: %w", err)
		}
	}
	for _, suffix := range []string{"-wal", "-shm"} {
		if err := os.Remove(live + suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove the current database's %s file: %w", suffix, err)
		}
	}
	if err := os.Rename(tmp, live); err != nil {
		return fmt.Errorf("put the backup in place: %w", err)
	}
	fmt.Fprintf(io.Out, "restored %s into %s: %d audit events, chain intact\n", *from, data.Dir, info.Events)
	if kept != "" {
		fmt.Fprintf(io.Out, "the database it replaced is kept as %s\n", kept)
	}
	fmt.Fprintf(io.Out, "start the portal with the key file that was in use when the backup was made\n")
	return nil
}

// copyFile copies src to a new file dst (0600) and syncs it.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
