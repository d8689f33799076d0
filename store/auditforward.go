package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"hash/fnv"
	"sync"
)

// Audit forwarding (services/audit's forwarders) reads the audit log after a
// cursor kept in the database, instead of events handed over in memory, so
// that what a process did not send before it stopped is sent by the next
// one, and what another replica or a command appended is sent too.
//
// Why reading after a cursor sees every event, in order: IDs are given out
// one after the other by write transactions that run one at a time (SQLite's
// write lock; on PostgreSQL the write lock every InTx takes, writeLockKey),
// and an event's ID is chosen only after the transaction before it
// committed. So no event with a smaller ID can become visible after one with
// a larger ID, and a read of "id > cursor" never skips one that commits later.

// ErrForwardHeld is returned by AcquireForward when another process (on
// PostgreSQL, another replica) forwards to that destination.
var ErrForwardHeld = errors.New("store: another replica forwards the audit log to this destination")

// ErrCursorMoved is returned by ForwardLease.Advance when the cursor is no
// longer where this lease left it: another forwarder moved it (one that
// took over after this one's lock was lost with its connection).
var ErrCursorMoved = errors.New("store: the audit forward cursor was moved by another forwarder")

// forwardHeld is the SQLite side of the forwarder lock: one process owns
// the file, so a set of the names held in this process is enough.
var forwardHeld = struct {
	sync.Mutex
	names map[*DB]map[string]bool
}{names: map[*DB]map[string]bool{}}

// forwardLockKey is the PostgreSQL advisory lock of one destination: a
// 64-bit hash of its name, apart from the store's other keys.
func forwardLockKey(name string) int64 {
	h := fnv.New64a()
	h.Write([]byte("writeback audit forward\x00" + name))
	return int64(h.Sum64())
}

// EnsureForwardCursor creates the cursor of destination name when it does
// not exist yet, at the newest event: a destination starts with the events
// recorded after it was first set up (the history is there to export). It
// returns the cursor. Any replica may call it; the first one's row stays.
func (db *DB) EnsureForwardCursor(ctx context.Context, name string) (int64, error) {
	_, err := db.sql.ExecContext(ctx, `INSERT INTO audit_forward_cursors (name, last_id, updated_ms)
		VALUES (?, COALESCE((SELECT max(id) FROM audit_events), (SELECT max(id) FROM audit_anchor), 0), ?)
		ON CONFLICT (name) DO NOTHING`, name, db.nowMS())
	if err != nil {
		return 0, fmt.Errorf("store: create audit forward cursor %s: %w", name, err)
	}
	var last int64
	if err := db.sql.QueryRowContext(ctx, `SELECT last_id FROM audit_forward_cursors WHERE name = ?`, name).Scan(&last); err != nil {
		return 0, fmt.Errorf("store: read audit forward cursor %s: %w", name, err)
	}
	return last, nil
}

// ForwardCursor returns where the forwarder of name has got to, and the
// newest event's ID (what is left to send is the difference).
func (db *DB) ForwardCursor(ctx context.Context, name string) (cursor, head int64, err error) {
	err = db.sql.QueryRowContext(ctx, `SELECT (SELECT last_id FROM audit_forward_cursors WHERE name = ?),
		COALESCE((SELECT max(id) FROM audit_events), 0)`, name).Scan(&cursor, &head)
	if err != nil {
		return 0, 0, fmt.Errorf("store: read audit forward cursor %s: %w", name, err)
	}
	return cursor, max(head, cursor), nil
}

// ForwardLease is the right to forward the audit log to one destination:
// held by one process at a time. On PostgreSQL it is a session advisory lock
// on a connection of its own, which every read and cursor update of the
// lease goes through: should the connection break, the lock goes with it
// (and another replica may take over), and this lease's next call fails
// instead of going on beside the new holder. Release it when done.
type ForwardLease struct {
	db     *DB
	conn   *sql.Conn
	name   string
	cursor int64
}

// AcquireForward takes the lease of destination name (creating its cursor
// as EnsureForwardCursor does), or returns ErrForwardHeld when another
// process holds it.
func (db *DB) AcquireForward(ctx context.Context, name string) (*ForwardLease, error) {
	if _, err := db.EnsureForwardCursor(ctx, name); err != nil {
		return nil, err
	}
	conn, err := db.sql.DB.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("store: audit forward lease: %w", err)
	}
	l := &ForwardLease{db: db, conn: conn, name: name}
	if db.engine == enginePostgres {
		var got bool
		if err := conn.QueryRowContext(ctx, `SELECT pg_try_advisory_lock($1)`, forwardLockKey(name)).Scan(&got); err != nil {
			conn.Close()
			return nil, fmt.Errorf("store: audit forward lease: %w", err)
		}
		if !got {
			conn.Close()
			return nil, ErrForwardHeld
		}
		// The cursor moves after every event sent: its commit need not
		// wait for the disk. A replica that dies loses nothing by it (the
		// server has the update); only a crash of the server itself can
		// take back the last few hundred milliseconds of moves, and those
		// events are then sent again (see services/audit).
		if _, err := conn.ExecContext(ctx, `SET synchronous_commit = off`); err != nil {
			l.Release()
			return nil, fmt.Errorf("store: audit forward lease: %w", err)
		}
	} else {
		forwardHeld.Lock()
		held := forwardHeld.names[db]
		if held == nil {
			held = map[string]bool{}
			forwardHeld.names[db] = held
		}
		if held[name] {
			forwardHeld.Unlock()
			conn.Close()
			return nil, ErrForwardHeld
		}
		held[name] = true
		forwardHeld.Unlock()
	}
	if err := conn.QueryRowContext(ctx, db.engine.bind(`SELECT last_id FROM audit_forward_cursors WHERE name = ?`), name).Scan(&l.cursor); err != nil {
		l.Release()
		return nil, fmt.Errorf("store: read audit forward cursor %s: %w", name, err)
	}
	return l, nil
}

// Cursor is the ID of the newest event sent to the destination.
func (l *ForwardLease) Cursor() int64 { return l.cursor }

// Next returns up to limit events after the cursor, oldest first. The first
// one's ID is Cursor()+1 unless events were pruned before they were sent.
func (l *ForwardLease) Next(ctx context.Context, limit int) ([]AuditEvent, error) {
	rows, err := l.conn.QueryContext(ctx, l.db.engine.bind(`SELECT `+auditCols+` FROM audit_events WHERE id > ? ORDER BY id LIMIT ?`), l.cursor, limit)
	if err != nil {
		return nil, fmt.Errorf("store: read audit events to forward: %w", err)
	}
	defer rows.Close()
	var out []AuditEvent
	for rows.Next() {
		e, err := scanAudit(rows)
		if err != nil {
			return nil, fmt.Errorf("store: read audit events to forward: %w", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: read audit events to forward: %w", err)
	}
	return out, nil
}

// Advance records that the events up to id were sent. It fails with
// ErrCursorMoved when the cursor is not where this lease left it.
func (l *ForwardLease) Advance(ctx context.Context, id int64) error {
	res, err := l.conn.ExecContext(ctx, l.db.engine.bind(`UPDATE audit_forward_cursors SET last_id = ?, updated_ms = ?
		WHERE name = ? AND last_id = ?`), id, l.db.nowMS(), l.name, l.cursor)
	if err != nil {
		return fmt.Errorf("store: move audit forward cursor %s: %w", l.name, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("store: move audit forward cursor %s: %w", l.name, err)
	} else if n != 1 {
		return ErrCursorMoved
	}
	l.cursor = id
	return nil
}

// Release gives the lease up. On PostgreSQL a lock that cannot be released
// (the connection broke) ends with its connection, which is not pooled again.
func (l *ForwardLease) Release() {
	if l.db.engine == enginePostgres {
		ctx := context.Background()
		if _, err := l.conn.ExecContext(ctx, `SELECT pg_advisory_unlock($1)`, forwardLockKey(l.name)); err != nil {
			_ = l.conn.Raw(func(any) error { return driver.ErrBadConn })
		} else {
			_, _ = l.conn.ExecContext(ctx, `SET synchronous_commit = DEFAULT`)
		}
	} else {
		forwardHeld.Lock()
		delete(forwardHeld.names[l.db], l.name)
		if len(forwardHeld.names[l.db]) == 0 {
			delete(forwardHeld.names, l.db)
		}
		forwardHeld.Unlock()
	}
	l.conn.Close()
}
