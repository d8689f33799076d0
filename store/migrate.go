package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"

	"github.com/writeback/writeback/migrations"
)

// ErrSchemaNewer is returned by Migrate when the database records a
// migration this binary does not have: a newer version of the portal
// migrated it, and this one would misread what it wrote.
var ErrSchemaNewer = errors.New("store: the database schema is newer than this binary")

// Advisory lock keys (PostgreSQL): any 64-bit numbers no other program on
// the same database uses; these spell "wbmigrat" and "wbwrite\x00".
const (
	migrateLockKey int64 = 0x77626d6967726174
	writeLockKey   int64 = 0x7762777269746500
)

type migration struct {
	name string // NNNN_name.sql, as the migrations table records it
	body string
}

// migrations returns the engine's migrations in the order they apply.
func (db *DB) migrations() ([]migration, error) {
	dir := db.engine.String()
	names, err := fs.Glob(migrations.FS, dir+"/*.sql")
	if err != nil {
		return nil, fmt.Errorf("store: list migrations: %w", err)
	}
	sort.Strings(names)
	out := make([]migration, 0, len(names))
	for _, n := range names {
		body, err := fs.ReadFile(migrations.FS, n)
		if err != nil {
			return nil, fmt.Errorf("store: read migration %s: %w", n, err)
		}
		out = append(out, migration{name: path.Base(n), body: string(body)})
	}
	return out, nil
}

// applied returns the names of the migrations the database records; none
// (and no error) when it has no migrations table yet.
func (db *DB) applied(ctx context.Context, q interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}) (map[string]bool, error) {
	done := map[string]bool{}
	var exists bool
	check := `SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'`
	if db.engine == enginePostgres {
		check = `SELECT to_regclass('schema_migrations') IS NOT NULL`
	}
	rows, err := q.QueryContext(ctx, check)
	if err != nil {
		return nil, fmt.Errorf("store: read migrations: %w", err)
	}
	for rows.Next() {
		if err := rows.Scan(&exists); err != nil {
			rows.Close()
			return nil, fmt.Errorf("store: read migrations: %w", err)
		}
	}
	rows.Close()
	if !exists {
		return done, nil
	}
	rows, err = q.QueryContext(ctx, `SELECT name FROM schema_migrations`)
	if err != nil {
		return nil, fmt.Errorf("store: read migrations: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, fmt.Errorf("store: read migrations: %w", err)
		}
		done[n] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: read migrations: %w", err)
	}
	return done, nil
}

// unknown refuses a database that records a migration list does not have.
func unknown(done map[string]bool, list []migration) error {
	known := map[string]bool{}
	for _, m := range list {
		known[m.name] = true
	}
	var extra []string
	for n := range done {
		if !known[n] {
			extra = append(extra, n)
		}
	}
	if len(extra) == 0 {
		return nil
	}
	sort.Strings(extra)
	return fmt.Errorf("%w: it has migration %s, which this version of writeback does not know; "+
		"a newer version upgraded it, so run that version (or a later one) instead", ErrSchemaNewer, extra[len(extra)-1])
}

// Migrate applies every migration not yet recorded, each in its own
// transaction, and returns the names it applied. It refuses (ErrSchemaNewer)
// a database that records a migration this binary does not have. On
// PostgreSQL the whole run holds an advisory lock, so replicas starting at
// once apply each migration exactly once: the others wait, then find it
// recorded.
func (db *DB) Migrate(ctx context.Context) ([]string, error) {
	list, err := db.migrations()
	if err != nil {
		return nil, err
	}
	// Every start but the first after an upgrade finds nothing to do: one
	// read says so, where the loop below takes a write transaction per
	// migration (a few milliseconds of every command's start).
	if done, err := db.applied(ctx, db.sql); err == nil {
		if err := unknown(done, list); err != nil {
			return nil, err
		}
		if len(pending(done, list)) == 0 {
			return nil, nil
		}
	}
	if db.engine == enginePostgres {
		return db.migratePostgres(ctx, list)
	}
	if _, err := db.sql.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		name TEXT PRIMARY KEY, applied_ms INTEGER NOT NULL) STRICT`); err != nil {
		return nil, fmt.Errorf("store: create schema_migrations: %w", err)
	}
	var applied []string
	for _, m := range list {
		did := false
		err := db.InTx(ctx, func(tx *Tx) error {
			var err error
			did, err = db.apply(ctx, tx.tx, m)
			return err
		})
		if err != nil {
			return applied, fmt.Errorf("store: apply migration %s: %w", m.name, err)
		}
		if did {
			applied = append(applied, m.name)
		}
	}
	return applied, nil
}

// apply runs one migration in tx unless it is recorded already.
func (db *DB) apply(ctx context.Context, tx sqlTx, m migration) (bool, error) {
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations WHERE name = ?`, m.name).Scan(&n); err != nil {
		return false, err
	}
	if n > 0 {
		return false, nil
	}
	// Both drivers run every statement of a multi-statement string given
	// without arguments.
	if _, err := tx.ExecContext(ctx, m.body); err != nil {
		return false, err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (name, applied_ms) VALUES (?, ?)`, m.name, db.nowMS()); err != nil {
		return false, err
	}
	return true, nil
}

// migratePostgres applies list on one connection that holds the migration
// lock from the first look at the migrations table to the last commit.
func (db *DB) migratePostgres(ctx context.Context, list []migration) (applied []string, err error) {
	conn, err := db.sql.DB.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("store: migrate: %w", err)
	}
	locked := false
	defer func() {
		if locked {
			_, uerr := conn.ExecContext(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, migrateLockKey)
			if uerr != nil {
				// A session lock lives as long as its connection: never hand
				// this one back to the pool.
				_ = conn.Raw(func(any) error { return driver.ErrBadConn })
			}
		}
		conn.Close()
	}()
	if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock($1)`, migrateLockKey); err != nil {
		return nil, fmt.Errorf("store: migrate: wait for the migration lock: %w", err)
	}
	locked = true
	if _, err := conn.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		name TEXT COLLATE "C" PRIMARY KEY, applied_ms BIGINT NOT NULL)`); err != nil {
		return nil, fmt.Errorf("store: create schema_migrations: %w", err)
	}
	// Another replica may have migrated while this one waited, with a
	// newer binary.
	done, err := db.applied(ctx, conn)
	if err != nil {
		return nil, err
	}
	if err := unknown(done, list); err != nil {
		return nil, err
	}
	for _, m := range pending(done, list) {
		stx, err := conn.BeginTx(ctx, nil)
		if err != nil {
			return applied, fmt.Errorf("store: apply migration %s: %w", m.name, err)
		}
		did, err := db.apply(ctx, sqlTx{Tx: stx, engine: db.engine, onErr: db.sql.onErr}, m)
		if err == nil {
			err = stx.Commit()
		}
		if err != nil {
			_ = stx.Rollback()
			return applied, fmt.Errorf("store: apply migration %s: %w", m.name, err)
		}
		if did {
			applied = append(applied, m.name)
		}
	}
	return applied, nil
}

func pending(done map[string]bool, list []migration) []migration {
	var out []migration
	for _, m := range list {
		if !done[m.name] {
			out = append(out, m)
		}
	}
	return out
}

// Pending reports migrations that exist but are not applied yet.
func (db *DB) Pending(ctx context.Context) ([]string, error) {
	list, err := db.migrations()
	if err != nil {
		return nil, err
	}
	done, err := db.applied(ctx, db.sql)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, m := range pending(done, list) {
		out = append(out, m.name)
	}
	return out, nil
}
