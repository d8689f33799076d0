package store

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// sessionCacheMax bounds the sessions held; past it the cache starts over.
const sessionCacheMax = 4096

// sessionCache keeps the rows SessionAdmin read, for the next signed-in
// request of the same session: one join of two tables and eleven columns
// per request was the largest cost of a signed-in page after its template.
//
// An entry is served only while the generation it was read under is
// current. The generation moves
//   - after every write of this DB to sessions or administrators (a
//     sign-in's touch, a sign-out, expiry, and in a transaction, once it
//     commits: a password change, a role change, an administrator disabled,
//     all sessions ended), so this process sees its own changes at once;
//   - when SQLite's data_version, asked on a connection of its own at most
//     once per recheck interval (DefaultConfigRecheck, as for settings
//     documents), says that any other connection committed anything: a
//     `writeback` command or another process on the same data folder (on
//     PostgreSQL: the version row its triggers move, see dataVersion). Its
//     changes are seen within the interval.
type sessionCache struct {
	gen     atomic.Int64
	entries sync.Map // id hash → sessionEntry
	n       atomic.Int64

	gate recheckGate // when to ask data_version (recheck.go)

	mu      sync.Mutex // the pinned connection, under gate.checking
	conn    *sql.Conn  // never used for anything but the pragma
	stmt    *sql.Stmt
	version int64 // data_version at the last check
	closed  bool

	reads atomic.Int64 // joins run (tests)
}

type sessionEntry struct {
	gen   int64
	sess  Session
	admin Admin
}

func (c *sessionCache) init() {
	c.gate.init(DefaultConfigRecheck)
}

// changed moves the generation: whatever the cache holds is read again.
func (c *sessionCache) changed() { c.gen.Add(1) }

// SetSessionRecheck sets how long cached sessions are trusted before the
// database is asked whether another connection or process committed
// anything (DefaultConfigRecheck; 0: at every read). Writes through this DB
// are seen at once whatever it is.
func (db *DB) SetSessionRecheck(d time.Duration) { db.sessions.gate.set(d) }

// recheckSessions asks SQLite's data_version, at most once per recheck
// interval and by one caller at a time, and moves the generation when it
// changed. When it cannot be asked the generation moves every time, so
// nothing stale is served.
func (db *DB) recheckSessions(ctx context.Context) {
	c := &db.sessions
	now, ok := c.gate.enter()
	if !ok {
		return
	}
	defer c.gate.leave()
	v, err := db.dataVersion(ctx)
	if err != nil {
		c.changed()
		c.gate.checked.Store(-1)
		return
	}
	c.mu.Lock()
	if v != c.version || c.gate.checked.Load() < 0 {
		c.version = v
		c.changed()
	}
	c.mu.Unlock()
	c.gate.checked.Store(now)
}

// dataVersion returns the database's data_version as the pinned
// connection sees it. PostgreSQL has no such thing: there it is the count
// its triggers keep of the statements that wrote administrators or their
// sessions (data_versions, migration 0001), which moves with every such
// commit by any replica.
func (db *DB) dataVersion(ctx context.Context) (int64, error) {
	if db.engine == enginePostgres {
		var v int64
		err := db.queryRow(ctx, `SELECT version FROM data_versions WHERE name = 'sessions'`).Scan(&v)
		return v, err
	}
	c := &db.sessions
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return 0, sql.ErrConnDone
	}
	if c.conn == nil {
		conn, err := db.sql.Conn(context.WithoutCancel(ctx))
		if err != nil {
			return 0, err
		}
		st, err := conn.PrepareContext(ctx, `PRAGMA data_version`)
		if err != nil {
			conn.Close()
			return 0, err
		}
		c.conn, c.stmt = conn, st
	}
	var v int64
	if err := c.stmt.QueryRowContext(ctx).Scan(&v); err != nil {
		return 0, err
	}
	return v, nil
}

// cachedSessionAdmin serves SessionAdmin from the cache or reads it.
func (db *DB) cachedSessionAdmin(ctx context.Context, idHash string) (Session, Admin, error) {
	c := &db.sessions
	db.recheckSessions(ctx)
	g := c.gen.Load()
	if e, hit := c.entries.Load(idHash); hit && e.(sessionEntry).gen == g {
		e := e.(sessionEntry)
		return e.sess, e.admin, nil
	}
	s, a, err := db.readSessionAdmin(ctx, idHash)
	c.reads.Add(1)
	if err != nil {
		// A session not found is not kept: a sign-in adds it.
		return s, a, err
	}
	if c.n.Add(1) > sessionCacheMax {
		c.entries.Clear()
		c.n.Store(1)
	}
	// Tagged with the generation from before the read: a change committed
	// meanwhile has moved it, and the entry is never served.
	c.entries.Store(idHash, sessionEntry{gen: g, sess: s, admin: a})
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
