// Package store keeps the portal's state in a SQLite file: administrators and
// their sessions, settings documents, and the hash-chained audit log.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"path/filepath"
	"sort"
	"time"

	_ "modernc.org/sqlite" // registers the pure-Go "sqlite" driver

	"github.com/writeback/writeback/migrations"
)

// ErrNotFound is returned when a row does not exist.
var ErrNotFound = errors.New("store: not found")

// ErrConflict is returned when a write was based on a stale version.
var ErrConflict = errors.New("store: version conflict")

// DB is the portal's database.
type DB struct {
	sql   *sql.DB
	slot  writeSlot // one write transaction at a time (writeslot.go)
	now   func() time.Time
	hooks auditHooks // OnAudit callbacks
	// afterChunk, when set (tests), runs between two chunks of a paced
	// verification.
	afterChunk func()
	docs       *docCache    // decoded settings documents (configcache.go)
	stmts      stmtCache    // prepared statements of the hottest reads (stmts.go)
	sessions   sessionCache // the last read of each signed-in session (sessioncache.go)
}

// FileName is the database file inside the data folder.
const FileName = "writeback.db"

// Open opens (creating if needed) the database at path. Pragmas go in the DSN
// so that every pooled connection gets them, not only the first one.
func Open(ctx context.Context, path string) (*DB, error) {
	q := url.Values{}
	for _, p := range []string{"foreign_keys(1)", "journal_mode(WAL)", "busy_timeout(10000)", "synchronous(NORMAL)"} {
		q.Add("_pragma", p)
	}
	q.Set("_txlock", "immediate")
	dsn := "file:" + filepath.ToSlash(path) + "?" + q.Encode()
	sdb, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	sdb.SetMaxOpenConns(8)
	// Keep them all when idle (database/sql keeps 2 by default): under load
	// every connection beyond those was closed after its query and opened
	// again, pragmas and prepared statements included, for the next one.
	sdb.SetMaxIdleConns(8)
	sdb.SetConnMaxIdleTime(5 * time.Minute)
	if err := sdb.PingContext(ctx); err != nil {
		sdb.Close()
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	db := &DB{sql: sdb, now: time.Now, docs: newDocCache()}
	db.sessions.init()
	return db, nil
}

// Close closes the database.
func (db *DB) Close() error {
	db.stmts.close()
	_ = db.sessions.close()
	return db.sql.Close()
}

// SQL exposes the underlying handle for read-only health checks and tests.
func (db *DB) SQL() *sql.DB { return db.sql }

// SetClock replaces the clock (tests).
func (db *DB) SetClock(now func() time.Time) { db.now = now }

func (db *DB) nowMS() int64 { return db.now().UTC().UnixMilli() }

// Tx is a write transaction. Methods that record a change and its audit event
// take a *Tx so both commit or neither does.
type Tx struct {
	tx       *sql.Tx
	db       *DB
	appended []AuditEvent     // passed to OnAudit callbacks once committed
	saved    map[string]int64 // settings documents saved, by version: the cache learns of them once committed
	sessions bool             // sessions or administrators written: cached sessions are read again once committed
}

// InTx runs fn in one immediate transaction, committing when fn returns nil.
// The transactions of one process take turns (see writeSlot); waiting for
// the turn ends with ctx.
func (db *DB) InTx(ctx context.Context, fn func(*Tx) error) error {
	if err := db.slot.acquire(ctx); err != nil {
		return fmt.Errorf("store: begin: %w", err)
	}
	defer db.slot.release()
	stx, err := db.sql.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: begin: %w", err)
	}
	// Should fn panic, the transaction must not stay open: it would keep
	// SQLite's write lock and every later write would fail. After a commit
	// this does nothing (sql.ErrTxDone).
	defer func() { _ = stx.Rollback() }()
	tx := &Tx{tx: stx, db: db}
	if err := fn(tx); err != nil {
		_ = stx.Rollback()
		return err
	}
	err = stx.Commit()
	if tx.sessions {
		// Also after a failed commit: whether it took is not known.
		db.sessions.changed()
	}
	if err != nil {
		return fmt.Errorf("store: commit: %w", err)
	}
	db.committed(tx.saved)
	db.hooks.fire(tx.appended)
	return nil
}

// Migrate applies every migration not yet recorded, each in its own
// transaction, and returns the names it applied.
func (db *DB) Migrate(ctx context.Context) ([]string, error) {
	// Every start but the first after an upgrade finds nothing to do: one
	// read says so, where the loop below takes a write transaction per
	// migration (a few milliseconds of every command's start).
	if pending, err := db.Pending(ctx); err == nil && len(pending) == 0 {
		return nil, nil
	}
	if _, err := db.sql.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		name TEXT PRIMARY KEY, applied_ms INTEGER NOT NULL) STRICT`); err != nil {
		return nil, fmt.Errorf("store: create schema_migrations: %w", err)
	}
	names, err := fs.Glob(migrations.FS, "*.sql")
	if err != nil {
		return nil, fmt.Errorf("store: list migrations: %w", err)
	}
	sort.Strings(names)
	var applied []string
	for _, name := range names {
		body, err := fs.ReadFile(migrations.FS, name)
		if err != nil {
			return applied, fmt.Errorf("store: read migration %s: %w", name, err)
		}
		did := false
		err = db.InTx(ctx, func(tx *Tx) error {
			var n int
			if err := tx.tx.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations WHERE name = ?`, name).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				return nil
			}
			// The driver runs every statement of a multi-statement string.
			if _, err := tx.tx.ExecContext(ctx, string(body)); err != nil {
				return err
			}
			_, err := tx.tx.ExecContext(ctx, `INSERT INTO schema_migrations (name, applied_ms) VALUES (?, ?)`, name, db.nowMS())
			did = err == nil
			return err
		})
		if err != nil {
			return applied, fmt.Errorf("store: apply migration %s: %w", name, err)
		}
		if did {
			applied = append(applied, name)
		}
	}
	return applied, nil
}

// Pending reports migrations that exist but are not applied yet.
func (db *DB) Pending(ctx context.Context) ([]string, error) {
	names, err := fs.Glob(migrations.FS, "*.sql")
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	done := map[string]bool{}
	rows, err := db.sql.QueryContext(ctx, `SELECT name FROM schema_migrations`)
	if err == nil {
		defer rows.Close()
		for rows.Next() {
			var n string
			if err := rows.Scan(&n); err != nil {
				return nil, err
			}
			done[n] = true
		}
	}
	var out []string
	for _, n := range names {
		if !done[n] {
			out = append(out, n)
		}
	}
	return out, nil
}
