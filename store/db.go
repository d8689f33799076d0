// Package store keeps the portal's state: administrators and their
// sessions, settings documents, self-service flows, and the hash-chained
// audit log. It keeps it in a SQLite file in the data folder by default, or
// in a PostgreSQL database that several replicas of the portal share
// (OpenDatabase); both engines serve the same methods with the same
// behaviour.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"time"

	_ "modernc.org/sqlite" // registers the pure-Go "sqlite" driver
)

// ErrNotFound is returned when a row does not exist.
var ErrNotFound = errors.New("store: not found")

// ErrConflict is returned when a write was based on a stale version.
var ErrConflict = errors.New("store: version conflict")

// DB is the portal's database.
type DB struct {
	sql    sqlDB // the handle, with the SQL bound for its engine (engine.go)
	engine engine
	slot   writeSlot // SQLite: one write transaction at a time (writeslot.go)
	group  txGroup   // PostgreSQL: write transactions in batches (groupcommit.go)
	now    func() time.Time
	hooks  auditHooks // OnAudit callbacks
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
	return newDB(sdb, engineSQLite), nil
}

func newDB(sdb *sql.DB, e engine) *DB {
	db := &DB{sql: sqlDB{DB: sdb, engine: e, onErr: &errorHook{}}, engine: e, now: time.Now, docs: newDocCache()}
	db.sessions.init()
	return db
}

// Close closes the database.
func (db *DB) Close() error {
	db.stmts.close()
	_ = db.sessions.close()
	return db.sql.Close()
}

// SQL exposes the underlying handle for read-only health checks and tests.
// Its SQL takes the engine's placeholders (see Rebind).
func (db *DB) SQL() *sql.DB { return db.sql.DB }

// SetClock replaces the clock (tests).
func (db *DB) SetClock(now func() time.Time) { db.now = now }

func (db *DB) nowMS() int64 { return db.now().UTC().UnixMilli() }

// Tx is a write transaction. Methods that record a change and its audit event
// take a *Tx so both commit or neither does.
type Tx struct {
	tx       sqlTx
	conn     *sql.Conn // PostgreSQL: the connection tx runs on
	db       *DB
	head     *chainHead       // PostgreSQL: the audit chain's head within the batch (groupcommit.go)
	appended []AuditEvent     // passed to OnAudit callbacks once committed
	saved    map[string]int64 // settings documents saved, by version: the cache learns of them once committed
	sessions bool             // sessions or administrators written: cached sessions are read again once committed
}

// InTx runs fn in one write transaction, committing when fn returns nil.
// Write transactions run one at a time on the whole database, as SQLite
// runs them (an immediate transaction takes its write lock when it begins):
// on PostgreSQL every one first takes one transaction-scoped advisory lock
// (writeLockKey), so a read-modify-write in fn (a version check, a count
// against a limit, the audit chain's head) is never interleaved with
// another's, whichever replica runs it. The transactions of one process
// also take turns before they reach the database (see writeSlot), so that
// waiting ones do not each hold a pooled connection; waiting for the turn
// ends with ctx. On PostgreSQL the ones that wait join one batch: one
// transaction, one lock and one commit for all of them, each fn in a
// savepoint of its own, so that a failing fn still changes nothing and
// returns its error to its caller alone (groupcommit.go). fn must therefore
// read what it depends on through tx (reads through the DB do not see the
// batch's earlier fns), and must not call InTx.
func (db *DB) InTx(ctx context.Context, fn func(*Tx) error) error {
	if db.engine == enginePostgres {
		return db.inTxGroup(ctx, fn)
	}
	if err := db.slot.acquire(ctx); err != nil {
		return fmt.Errorf("store: begin: %w", err)
	}
	defer db.slot.release()
	stx, err := db.sql.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: begin: %w", err)
	}
	// Should fn panic, the transaction must not stay open: it would keep
	// the write lock and every later write would fail. After a commit this
	// does nothing (sql.ErrTxDone).
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
