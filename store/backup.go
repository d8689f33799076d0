package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
)

// ErrBackupEngine: Backup and the restore checks are for the SQLite file;
// PostgreSQL has its own tools (pg_dump, pg_restore).
var ErrBackupEngine = errors.New("store: backup and restore are for the SQLite database; for PostgreSQL use pg_dump and pg_restore")

// ErrInUse: another process has the SQLite database open (a running
// `writeback serve`), so it cannot be replaced.
var ErrInUse = errors.New("store: the database is in use by another process (is `writeback serve` running on this data folder? stop it first)")

// Backup writes a consistent copy of the database to path while other
// connections and processes go on reading and writing (SQLite's VACUUM
// INTO: one read transaction, so the copy is the database as of one
// moment). path must not exist; the copy is made 0600.
func (db *DB) Backup(ctx context.Context, path string) error {
	if db.engine == enginePostgres {
		return ErrBackupEngine
	}
	if _, err := os.Lstat(path); err == nil {
		return fmt.Errorf("store: backup: %s exists already; choose a new file name", path)
	}
	// VACUUM INTO creates the file with the process's umask: make it first
	// with 0600 (VACUUM INTO refuses a file that exists and is not empty,
	// and fills an empty one).
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("store: backup: %w", err)
	}
	f.Close()
	if _, err := db.sql.ExecContext(ctx, `VACUUM INTO ?`, path); err != nil {
		os.Remove(path)
		return fmt.Errorf("store: backup to %s: %w", path, err)
	}
	return nil
}

// BackupInfo is what CheckBackup found in a backup file.
type BackupInfo struct {
	Migrations int   // migrations the backup records
	Events     int64 // audit events it holds
}

// CheckBackup opens the SQLite file at path read-only and checks that it is
// a writeback database this binary can use: SQLite's integrity check, no
// migration newer than this binary, and an intact audit chain. It changes
// nothing.
func CheckBackup(ctx context.Context, path string) (BackupInfo, error) {
	var info BackupInfo
	if _, err := os.Stat(path); err != nil {
		return info, fmt.Errorf("store: backup: %w", err)
	}
	q := url.Values{}
	q.Set("mode", "ro")
	q.Add("_pragma", "busy_timeout(5000)")
	sdb, err := sql.Open("sqlite", "file:"+filepath.ToSlash(path)+"?"+q.Encode())
	if err != nil {
		return info, fmt.Errorf("store: open backup %s: %w", path, err)
	}
	db := newDB(sdb, engineSQLite)
	defer db.Close()
	var ok string
	if err := sdb.QueryRowContext(ctx, `PRAGMA integrity_check`).Scan(&ok); err != nil {
		return info, fmt.Errorf("store: %s is not a SQLite database: %w", path, err)
	}
	if ok != "ok" {
		return info, fmt.Errorf("store: %s is damaged: %s", path, ok)
	}
	done, err := db.applied(ctx, db.sql.DB)
	if err != nil || len(done) == 0 {
		return info, fmt.Errorf("store: %s is not a writeback database (no migrations recorded)", path)
	}
	list, err := db.migrations()
	if err != nil {
		return info, err
	}
	if err := unknown(done, list); err != nil {
		return info, err
	}
	info.Migrations = len(done)
	// The walk alone: the full check would also save its checkpoint, and
	// the backup is opened read-only.
	res, err := db.walkFull(ctx, Pace{})
	if err != nil {
		return info, fmt.Errorf("store: verify the backup's audit chain: %w", err)
	}
	if !res.OK {
		return info, fmt.Errorf("store: the backup's audit chain is broken: %s", res.Problem)
	}
	info.Events = res.Checked
	return info, nil
}

// LockExclusive takes SQLite's exclusive lock on the database file at path
// and returns a function that releases it: ErrInUse while any other
// connection has the file open (a running server keeps its connections
// open). A missing file is not in use.
func LockExclusive(ctx context.Context, path string) (release func(), err error) {
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return func() {}, nil
	}
	q := url.Values{}
	for _, p := range []string{"busy_timeout(200)", "locking_mode(EXCLUSIVE)"} {
		q.Add("_pragma", p)
	}
	sdb, err := sql.Open("sqlite", "file:"+filepath.ToSlash(path)+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	sdb.SetMaxOpenConns(1)
	// The write transaction takes the exclusive lock, which locking_mode
	// keeps after the commit; the checkpoint moves the WAL into the file.
	if _, err := sdb.ExecContext(ctx, `BEGIN EXCLUSIVE; COMMIT; PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		sdb.Close()
		if strings.Contains(err.Error(), "SQLITE_BUSY") || strings.Contains(err.Error(), "database is locked") {
			return nil, ErrInUse
		}
		return nil, fmt.Errorf("store: lock %s: %w", path, err)
	}
	return func() { sdb.Close() }, nil
}
