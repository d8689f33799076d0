package store

import (
	"context"
	"database/sql"
	"errors"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// engine is the database behind a DB: SQLite (a file in the data folder) or
// PostgreSQL (a server several replicas share). The store's SQL is written
// once, with ? placeholders, in the subset both engines read alike; engine
// holds the few places where they differ, so that no method needs two
// copies of a query.
type engine int

const (
	engineSQLite engine = iota
	enginePostgres
)

func (e engine) String() string {
	if e == enginePostgres {
		return "postgres"
	}
	return "sqlite"
}

// bind turns the ? placeholders of query into PostgreSQL's $1, $2, … (a ?
// inside a quoted string or identifier is left alone); SQLite takes query
// as it is.
func (e engine) bind(query string) string {
	if e != enginePostgres || !strings.Contains(query, "?") {
		return query
	}
	var b strings.Builder
	b.Grow(len(query) + 16)
	n := 0
	var quote byte // the quote character of the literal or identifier being read, or 0
	for i := 0; i < len(query); i++ {
		c := query[i]
		switch {
		case quote != 0:
			if c == quote { // a doubled quote closes and reopens: the same
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '?':
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// like is the operator of AuditFilter's substring searches: SQLite's LIKE
// ignores the case of ASCII letters, PostgreSQL's needs ILIKE for that.
func (e engine) like() string {
	if e == enginePostgres {
		return "ILIKE"
	}
	return "LIKE"
}

// indexedBy is SQLite's "INDEXED BY name" (or "NOT INDEXED" for ""): the
// few queries whose plan SQLite picks wrongly by itself name their index.
// PostgreSQL has no such hints and plans them well.
func (e engine) indexedBy(name string) string {
	switch {
	case e == enginePostgres:
		return ""
	case name == "":
		return " NOT INDEXED"
	default:
		return " INDEXED BY " + name
	}
}

// planEach returns the arguments of a filtered audit query so that
// PostgreSQL plans it for its values each time (an unnamed statement):
// whether a search term is rare (a trigram index) or common (the time
// index, stopping at a page) decides the plan, and a prepared statement's
// generic plan, which PostgreSQL switches to after five runs, cannot know.
func (e engine) planEach(args []any) []any {
	if e != enginePostgres {
		return args
	}
	return append([]any{pgx.QueryExecModeExec}, args...)
}

// snapshot is how a read transaction sees one consistent state of the
// whole database: every SQLite read transaction does; PostgreSQL's default
// (read committed) takes a new snapshot per statement, repeatable read one
// for the whole transaction.
func (e engine) snapshot() *sql.TxOptions {
	if e == enginePostgres {
		return &sql.TxOptions{ReadOnly: true, Isolation: sql.LevelRepeatableRead}
	}
	return &sql.TxOptions{ReadOnly: true}
}

// isUnique reports whether err is a unique constraint violation.
func (e engine) isUnique(err error) bool {
	if err == nil {
		return false
	}
	if pe, ok := errors.AsType[*pgconn.PgError](err); ok {
		return pe.Code == "23505" // unique_violation
	}
	return strings.Contains(err.Error(), "UNIQUE constraint failed")
}

// sqlDB is the database handle with the store's SQL bound for its engine:
// the methods the store uses, under their database/sql names, so that the
// code reads as plain database/sql on one *sql.DB.
type sqlDB struct {
	*sql.DB
	engine engine
	onErr  *errorHook // OnError (errorhook.go)
}

func (d sqlDB) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	r, err := d.DB.ExecContext(ctx, d.engine.bind(query), args...)
	return r, d.onErr.note(err)
}

func (d sqlDB) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	r, err := d.DB.QueryContext(ctx, d.engine.bind(query), args...)
	return r, d.onErr.note(err)
}

func (d sqlDB) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	return d.onErr.noteRow(d.DB.QueryRowContext(ctx, d.engine.bind(query), args...))
}

// PrepareContext binds query once, when it is prepared (stmts.go keeps the
// statements of the hottest queries).
func (d sqlDB) PrepareContext(ctx context.Context, query string) (*sql.Stmt, error) {
	return d.DB.PrepareContext(ctx, d.engine.bind(query))
}

// Exec, Query and QueryRow are the same without a context (tests).
func (d sqlDB) Exec(query string, args ...any) (sql.Result, error) {
	return d.ExecContext(context.Background(), query, args...)
}

func (d sqlDB) Query(query string, args ...any) (*sql.Rows, error) {
	return d.QueryContext(context.Background(), query, args...)
}

func (d sqlDB) QueryRow(query string, args ...any) *sql.Row {
	return d.QueryRowContext(context.Background(), query, args...)
}

func (d sqlDB) BeginTx(ctx context.Context, opts *sql.TxOptions) (sqlTx, error) {
	tx, err := d.DB.BeginTx(ctx, opts)
	return sqlTx{Tx: tx, engine: d.engine, onErr: d.onErr}, d.onErr.note(err)
}

// sqlTx is a transaction with the store's SQL bound for its engine.
type sqlTx struct {
	*sql.Tx
	engine engine
	onErr  *errorHook
	state  *txState // a group commit's transaction (groupcommit.go); nil otherwise
}

func (t sqlTx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	r, err := t.Tx.ExecContext(t.state.prepare(ctx, t.Tx), t.engine.bind(query), args...)
	return r, t.onErr.note(err)
}

func (t sqlTx) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	r, err := t.Tx.QueryContext(t.state.prepare(ctx, t.Tx), t.engine.bind(query), args...)
	return r, t.onErr.note(err)
}

func (t sqlTx) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	return t.onErr.noteRow(t.Tx.QueryRowContext(t.state.prepare(ctx, t.Tx), t.engine.bind(query), args...))
}

// Commit commits; a failure counts as a database error (OnError).
func (t sqlTx) Commit() error { return t.onErr.note(t.Tx.Commit()) }

func (t sqlTx) PrepareContext(ctx context.Context, query string) (*sql.Stmt, error) {
	return t.Tx.PrepareContext(t.state.prepare(ctx, t.Tx), t.engine.bind(query))
}

// StmtContext is the transaction's copy of a statement prepared on the
// database; its statements run as the transaction's own do.
func (t sqlTx) StmtContext(ctx context.Context, st *sql.Stmt) *sql.Stmt {
	return t.Tx.StmtContext(t.state.prepare(ctx, t.Tx), st)
}

// Rebind returns query with its ? placeholders written for the database's
// engine, for tests and tools that run SQL of their own through SQL().
func (db *DB) Rebind(query string) string { return db.engine.bind(query) }

// Engine names the database's engine: "sqlite" or "postgres".
func (db *DB) Engine() string { return db.engine.String() }
