package store

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"sync/atomic"
)

// sessionCacheMax bounds the sessions held; past it the cache starts over.
const sessionCacheMax = 4096

// sessionCache keeps the rows SessionAdmin read, for the next signed-in
// request of the same session, as long as the database did not change at
// all since: each entry carries SQLite's data_version at the time of its
// read, and an entry is served only while a fresh PRAGMA data_version on a
// connection of its own still returns that value. data_version changes with
// every commit made by any other connection, of this process's pool or of
// another process on the same file, so a sign-out, a password change, an
// administrator disabled or removed (or any other write) is seen by the
// next read exactly as a read of the rows would see it. The check is one
// prepared pragma instead of a join of two tables and eleven columns.
type sessionCache struct {
	mu      sync.Mutex // serialises the pinned connection
	conn    *sql.Conn  // never used for anything but the pragma
	stmt    *sql.Stmt
	broken  bool // opening failed: read through without the cache
	closed  bool
	entries sync.Map // id hash → sessionEntry
	n       atomic.Int64

	reads atomic.Int64 // joins run (tests)
}

type sessionEntry struct {
	version int64
	sess    Session
	admin   Admin
}

// dataVersion returns the database's data_version as the pinned
// connection sees it, and false when it cannot be had (then nothing is
// served from the cache).
func (db *DB) dataVersion(ctx context.Context) (int64, bool) {
	c := &db.sessions
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.broken || c.closed {
		return 0, false
	}
	if c.conn == nil {
		conn, err := db.sql.Conn(context.WithoutCancel(ctx))
		if err != nil {
			return 0, false
		}
		st, err := conn.PrepareContext(ctx, `PRAGMA data_version`)
		if err != nil {
			conn.Close()
			c.broken = true
			return 0, false
		}
		c.conn, c.stmt = conn, st
	}
	var v int64
	if err := c.stmt.QueryRowContext(ctx).Scan(&v); err != nil {
		return 0, false
	}
	return v, true
}

// cachedSessionAdmin serves SessionAdmin from the cache or reads it.
func (db *DB) cachedSessionAdmin(ctx context.Context, idHash string) (Session, Admin, error) {
	c := &db.sessions
	v, ok := db.dataVersion(ctx)
	if ok {
		if e, hit := c.entries.Load(idHash); hit && e.(sessionEntry).version == v {
			e := e.(sessionEntry)
			return e.sess, e.admin, nil
		}
	}
	s, a, err := db.readSessionAdmin(ctx, idHash)
	c.reads.Add(1)
	if err != nil || !ok {
		// A session not found is not kept: a sign-in adds it.
		return s, a, err
	}
	if c.n.Add(1) > sessionCacheMax {
		c.entries.Clear()
		c.n.Store(1)
	}
	// Read after the version: a commit in between makes the entry newer
	// than its version says, and the next check misses it. Never older.
	c.entries.Store(idHash, sessionEntry{version: v, sess: s, admin: a})
	return s, a, nil
}

// SessionReads is how many times SessionAdmin read the database (tests).
func (db *DB) SessionReads() int64 { return db.sessions.reads.Load() }

func (c *sessionCache) close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	if c.conn == nil {
		return nil
	}
	c.stmt.Close()
	if err := c.conn.Close(); err != nil {
		return fmt.Errorf("store: close session check: %w", err)
	}
	return nil
}
