package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/writeback/writeback/migrations"
)

// ErrTargetNotEmpty is returned by CopyTo when the PostgreSQL database
// already holds data: copying into it would mix two portals' state.
var ErrTargetNotEmpty = errors.New("store: the target database is not empty")

// NotEmptyError is the ErrTargetNotEmpty of CopyTo: the tables that hold rows.
type NotEmptyError struct{ Tables []string }

func (e *NotEmptyError) Error() string {
	return ErrTargetNotEmpty.Error() + ": it already has rows in " + strings.Join(e.Tables, ", ")
}

// Is makes errors.Is(err, ErrTargetNotEmpty) hold.
func (e *NotEmptyError) Is(target error) bool { return target == ErrTargetNotEmpty }

// pgOnlyTables are the tables the PostgreSQL migrations create that SQLite
// has no counterpart of, because they hold nothing to copy: data_versions
// counts changes (SQLite's data_version pragma does that for free) and is
// seeded by its migration.
var pgOnlyTables = []string{"data_versions"}

// CopiedTable is one table CopyTo copied, with its rows.
type CopiedTable struct {
	Name string
	Rows int64
}

// CopyTo copies everything in db, a SQLite database, into dst, an empty
// PostgreSQL database both migrated to the same schema: every table the
// migrations create, row for row, keeping IDs (the audit chain hashes them),
// in an order that puts the rows a foreign key refers to first. The tables
// are found in the schemas themselves, not in a list here, so a table a new
// migration adds is copied without a change to this function; a table
// found on one side only stops the copy.
//
// It reads db in one snapshot and writes dst in one transaction that holds
// the store's write lock: the copy is all or nothing, and dst stays empty
// when it fails. A dst that holds any row in any of the tables (beyond the
// rows a migration inserts, which the copy replaces) is refused with
// ErrTargetNotEmpty. Identity sequences are moved past the copied IDs,
// so the next row PostgreSQL numbers does not collide. progress, when not
// nil, hears of each table as it is done.
func (db *DB) CopyTo(ctx context.Context, dst *DB, progress func(CopiedTable)) ([]CopiedTable, error) {
	if db.engine != engineSQLite || dst.engine != enginePostgres {
		return nil, errors.New("store: copy goes from a SQLite database to a PostgreSQL one")
	}
	src, err := db.sql.BeginTx(ctx, db.engine.snapshot())
	if err != nil {
		return nil, fmt.Errorf("store: copy: read the SQLite database: %w", err)
	}
	defer src.Rollback()
	tables, err := copyPlan(ctx, src, dst)
	if err != nil {
		return nil, err
	}
	conn, err := dst.sql.DB.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("store: copy: %w", err)
	}
	defer conn.Close()
	var copied []CopiedTable
	err = conn.Raw(func(dc any) error {
		pc := dc.(*stdlib.Conn).Conn()
		tx, err := pc.Begin(ctx)
		if err != nil {
			return err
		}
		defer tx.Rollback(context.WithoutCancel(ctx))
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, writeLockKey); err != nil {
			return fmt.Errorf("take the write lock: %w", err)
		}
		seeded, err := seededTables()
		if err != nil {
			return err
		}
		var full []string
		for _, t := range tables {
			if seeded[t.name] {
				// Its migration put rows in it: the copy replaces them.
				continue
			}
			var has bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM `+t.ident()+`)`).Scan(&has); err != nil {
				return fmt.Errorf("look into %s: %w", t.name, err)
			}
			if has {
				full = append(full, t.name)
			}
		}
		if len(full) > 0 {
			return &NotEmptyError{Tables: full}
		}
		for _, t := range tables {
			if seeded[t.name] {
				if _, err := tx.Exec(ctx, `DELETE FROM `+t.ident()); err != nil {
					return fmt.Errorf("empty %s: %w", t.name, err)
				}
			}
			n, err := t.copy(ctx, src, tx)
			if err != nil {
				return err
			}
			ct := CopiedTable{Name: t.name, Rows: n}
			copied = append(copied, ct)
			if progress != nil {
				progress(ct)
			}
		}
		return tx.Commit(ctx)
	})
	if err != nil {
		if errors.Is(err, ErrTargetNotEmpty) {
			return nil, err
		}
		return nil, fmt.Errorf("store: copy: %w", err)
	}
	// Read back: every table holds what was copied.
	for _, c := range copied {
		var n int64
		if err := dst.sql.QueryRowContext(ctx, `SELECT count(*) FROM `+pgx.Identifier{c.Name}.Sanitize()).Scan(&n); err != nil {
			return copied, fmt.Errorf("store: copy: count %s: %w", c.Name, err)
		}
		if n != c.Rows {
			return copied, fmt.Errorf("store: copy: %s has %d rows in PostgreSQL after copying %d", c.Name, n, c.Rows)
		}
	}
	return copied, nil
}

// seededTables are the tables a PostgreSQL migration inserts rows into
// (INSERT INTO name): rows there do not make a database "not empty".
func seededTables() (map[string]bool, error) {
	names, err := fs.Glob(migrations.FS, "postgres/*.sql")
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, n := range names {
		b, err := fs.ReadFile(migrations.FS, n)
		if err != nil {
			return nil, err
		}
		for _, m := range insertInto.FindAllStringSubmatch(string(b), -1) {
			out[strings.ToLower(m[1])] = true
		}
	}
	return out, nil
}

var insertInto = regexp.MustCompile(`(?i)\bINSERT\s+INTO\s+"?([a-z_][a-z0-9_]*)`)

// copyTable is one table to copy: its columns as PostgreSQL has them.
type copyTable struct {
	name     string
	cols     []string
	types    []string // PostgreSQL's data_type of each column
	identity []string // columns PostgreSQL numbers itself
	deps     []string // tables its foreign keys refer to
}

func (t copyTable) ident() string { return pgx.Identifier{t.name}.Sanitize() }

// copyPlan lists the tables of both schemas, checks they match, and
// orders them so that a table comes after those its foreign keys refer to.
func copyPlan(ctx context.Context, src sqlTx, dst *DB) ([]copyTable, error) {
	liteTables, err := queryStrings(ctx, src, `SELECT name FROM sqlite_master WHERE type = 'table'
		AND name NOT LIKE 'sqlite\_%' ESCAPE '\' AND name <> 'schema_migrations' ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("store: copy: list the SQLite tables: %w", err)
	}
	pgTables, err := queryStrings(ctx, dst.sql, `SELECT table_name FROM information_schema.tables
		WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' AND table_name <> 'schema_migrations' ORDER BY table_name`)
	if err != nil {
		return nil, fmt.Errorf("store: copy: list the PostgreSQL tables: %w", err)
	}
	for _, t := range pgTables {
		if !slices.Contains(liteTables, t) && !slices.Contains(pgOnlyTables, t) {
			return nil, fmt.Errorf("store: copy: table %s is in PostgreSQL but not in SQLite: the two schemas differ", t)
		}
	}
	byName := map[string]*copyTable{}
	var order []string
	for _, name := range liteTables {
		if !slices.Contains(pgTables, name) {
			return nil, fmt.Errorf("store: copy: table %s is in SQLite but not in PostgreSQL: the two schemas differ", name)
		}
		t := &copyTable{name: name}
		rows, err := dst.sql.QueryContext(ctx, `SELECT column_name, data_type, is_identity FROM information_schema.columns
			WHERE table_schema = current_schema() AND table_name = ? ORDER BY ordinal_position`, name)
		if err != nil {
			return nil, fmt.Errorf("store: copy: columns of %s: %w", name, err)
		}
		for rows.Next() {
			var c, typ, ident string
			if err := rows.Scan(&c, &typ, &ident); err != nil {
				rows.Close()
				return nil, fmt.Errorf("store: copy: columns of %s: %w", name, err)
			}
			t.cols, t.types = append(t.cols, c), append(t.types, typ)
			if ident == "YES" {
				t.identity = append(t.identity, c)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("store: copy: columns of %s: %w", name, err)
		}
		liteCols, err := queryStrings(ctx, src, `SELECT name FROM pragma_table_info(?)`, name)
		if err != nil {
			return nil, fmt.Errorf("store: copy: columns of %s: %w", name, err)
		}
		for _, c := range liteCols {
			if !slices.Contains(t.cols, c) {
				return nil, fmt.Errorf("store: copy: column %s.%s is in SQLite but not in PostgreSQL", name, c)
			}
		}
		for _, c := range t.cols {
			// rowid: SQLite's implicit one, a column of that name in PostgreSQL.
			if !slices.Contains(liteCols, c) && c != "rowid" {
				return nil, fmt.Errorf("store: copy: column %s.%s is in PostgreSQL but not in SQLite", name, c)
			}
		}
		if t.deps, err = queryStrings(ctx, src, `SELECT DISTINCT "table" FROM pragma_foreign_key_list(?)`, name); err != nil {
			return nil, fmt.Errorf("store: copy: foreign keys of %s: %w", name, err)
		}
		byName[name] = t
		order = append(order, name)
	}
	// Depth-first: each table after what it refers to.
	var out []copyTable
	state := map[string]int{} // 1 visiting, 2 done
	var visit func(string) error
	visit = func(n string) error {
		switch state[n] {
		case 2:
			return nil
		case 1:
			return fmt.Errorf("store: copy: foreign keys go round in a circle through %s", n)
		}
		state[n] = 1
		t := byName[n]
		sort.Strings(t.deps)
		for _, d := range t.deps {
			if d == n {
				continue
			}
			if byName[d] == nil {
				return fmt.Errorf("store: copy: %s refers to %s, which is not copied", n, d)
			}
			if err := visit(d); err != nil {
				return err
			}
		}
		state[n] = 2
		out = append(out, *t)
		return nil
	}
	for _, n := range order {
		if err := visit(n); err != nil {
			return nil, err
		}
	}
	return out, nil
}

type rowsQuerier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func queryStrings(ctx context.Context, q rowsQuerier, query string, args ...any) ([]string, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// copy streams the table's rows from src into tx (COPY, PostgreSQL's bulk
// load) and moves its identity sequences past the copied IDs.
func (t copyTable) copy(ctx context.Context, src sqlTx, tx pgx.Tx) (int64, error) {
	cols := make([]string, len(t.cols))
	for i, c := range t.cols {
		cols[i] = `"` + c + `"`
	}
	rows, err := src.QueryContext(ctx, `SELECT `+strings.Join(cols, ", ")+` FROM "`+t.name+`"`)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", t.name, err)
	}
	defer rows.Close()
	vals := make([]any, len(t.cols))
	ptrs := make([]any, len(t.cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	var row int64
	n, err := tx.CopyFrom(ctx, pgx.Identifier{t.name}, t.cols, pgx.CopyFromFunc(func() ([]any, error) {
		if !rows.Next() {
			return nil, rows.Err()
		}
		row++
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		for i, v := range vals {
			switch x := v.(type) {
			case string:
				if t.types[i] == "bytea" {
					vals[i] = []byte(x)
				}
			case []byte:
				if t.types[i] == "text" {
					vals[i] = string(x)
				}
			}
		}
		return vals, nil
	}))
	if err != nil {
		// Text PostgreSQL cannot hold (a NUL, invalid UTF-8) is the likely
		// cause; the row's place helps find it.
		return n, fmt.Errorf("copy %s (near row %d): %w", t.name, row, err)
	}
	for _, c := range t.identity {
		q := fmt.Sprintf(`SELECT setval(pg_get_serial_sequence($1, $2), COALESCE(max(%s), 0) + 1, false) FROM %s`,
			pgx.Identifier{c}.Sanitize(), t.ident())
		if _, err := tx.Exec(ctx, q, t.ident(), c); err != nil {
			return n, fmt.Errorf("reset the numbering of %s.%s: %w", t.name, c, err)
		}
	}
	return n, nil
}
