package store

import (
	"context"
	"database/sql"
	"sync"
)

// stmtCache holds prepared statements for the reads every request makes
// (the signed-in session, its administrator) and for AppendAudit's two
// statements (audit.go): SQLite would otherwise parse
// the same SQL again each time, which was most of such a read's cost.
// database/sql prepares a statement on each pooled connection the first
// time it runs there.
type stmtCache struct {
	m sync.Map // query → *sql.Stmt
	// mu serialises preparing and closing, so that Close closes everything
	// prepared.
	mu     sync.Mutex
	closed bool
}

// queryRow is QueryRowContext through a prepared statement for query.
func (db *DB) queryRow(ctx context.Context, query string, args ...any) *sql.Row {
	if st, ok := db.stmts.m.Load(query); ok {
		return db.sql.onErr.noteRow(st.(*sql.Stmt).QueryRowContext(ctx, args...))
	}
	st, err := db.prepare(ctx, query)
	if err != nil {
		// The same query unprepared returns the same error in its Row.
		return db.sql.QueryRowContext(ctx, query, args...)
	}
	return db.sql.onErr.noteRow(st.QueryRowContext(ctx, args...))
}

func (db *DB) prepare(ctx context.Context, query string) (*sql.Stmt, error) {
	c := &db.stmts
	c.mu.Lock()
	defer c.mu.Unlock()
	if st, ok := c.m.Load(query); ok {
		return st.(*sql.Stmt), nil
	}
	if c.closed {
		return nil, sql.ErrConnDone
	}
	st, err := db.sql.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	c.m.Store(query, st)
	return st, nil
}

func (c *stmtCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	c.m.Range(func(k, v any) bool {
		v.(*sql.Stmt).Close()
		c.m.Delete(k)
		return true
	})
}
