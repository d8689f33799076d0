package store

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// clockMS is the database's clock in Unix milliseconds, as SQL: replicas
// and leases are timed by it, so that replicas whose hosts' clocks differ
// agree on who is alive and whose lease has expired.
func (e engine) clockMS() string {
	if e == enginePostgres {
		return `CAST(EXTRACT(EPOCH FROM now()) * 1000 AS BIGINT)`
	}
	return `CAST(unixepoch('subsec') * 1000 AS INTEGER)`
}

// now writes the engine's clock into query in place of every NOW.
func (e engine) now(query string) string { return strings.ReplaceAll(query, "NOW", e.clockMS()) }

// Replica is a portal process running on the database.
type Replica struct {
	ID        string
	Host      string
	StartedMS int64
	SeenMS    int64
	Live      bool // seen within the deadAfter of the read
}

// replicasKeep is how long the row of a replica that stopped sending
// heartbeats is kept (for the operator) before Heartbeat removes it.
const replicasKeep = time.Hour

// Heartbeat records that the replica id (on host) runs, registering it on
// its first call, and returns how many replicas were seen within deadAfter,
// this one included. It also removes replicas gone for an hour. Its writes
// are single statements outside the write lock (InTx): they touch only
// the replicas table, which nothing else reads in a transaction.
func (db *DB) Heartbeat(ctx context.Context, id, host string, deadAfter time.Duration) (live int, err error) {
	e := db.engine
	if _, err := db.sql.ExecContext(ctx, e.now(`INSERT INTO replicas (id, host, started_ms, seen_ms) VALUES (?, ?, NOW, NOW)
		ON CONFLICT (id) DO UPDATE SET host = excluded.host, seen_ms = excluded.seen_ms`), id, host); err != nil {
		return 0, fmt.Errorf("store: replica heartbeat: %w", err)
	}
	if _, err := db.sql.ExecContext(ctx, e.now(`DELETE FROM replicas WHERE seen_ms < NOW - ?`), replicasKeep.Milliseconds()); err != nil {
		return 0, fmt.Errorf("store: remove stopped replicas: %w", err)
	}
	if err := db.sql.QueryRowContext(ctx, e.now(`SELECT count(*) FROM replicas WHERE seen_ms >= NOW - ?`), deadAfter.Milliseconds()).Scan(&live); err != nil {
		return 0, fmt.Errorf("store: count replicas: %w", err)
	}
	return live, nil
}

// Deregister removes the replica id (a clean stop): the others stop
// counting it at their next heartbeat instead of after deadAfter.
func (db *DB) Deregister(ctx context.Context, id string) error {
	if _, err := db.sql.ExecContext(ctx, `DELETE FROM replicas WHERE id = ?`, id); err != nil {
		return fmt.Errorf("store: deregister replica: %w", err)
	}
	return nil
}

// Replicas lists the registered replicas, oldest first; Live tells those
// seen within deadAfter.
func (db *DB) Replicas(ctx context.Context, deadAfter time.Duration) ([]Replica, error) {
	rows, err := db.sql.QueryContext(ctx, db.engine.now(`SELECT id, host, started_ms, seen_ms, seen_ms >= NOW - ? FROM replicas ORDER BY started_ms, id`),
		deadAfter.Milliseconds())
	if err != nil {
		return nil, fmt.Errorf("store: list replicas: %w", err)
	}
	defer rows.Close()
	var out []Replica
	for rows.Next() {
		var r Replica
		if err := rows.Scan(&r.ID, &r.Host, &r.StartedMS, &r.SeenMS, &r.Live); err != nil {
			return nil, fmt.Errorf("store: list replicas: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: list replicas: %w", err)
	}
	return out, nil
}

// AcquireLease takes the lease name for holder for ttl, or renews it when
// holder has it already, and reports whether holder has it now: false while
// another holder's lease has not expired. One statement, so of replicas
// asking at once exactly one gets it.
func (db *DB) AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error) {
	if ttl < time.Millisecond {
		return false, fmt.Errorf("store: lease of %s: want at least a millisecond", ttl)
	}
	rows, err := db.sql.QueryContext(ctx, db.engine.now(`INSERT INTO leases (name, holder, acquired_ms, expires_ms) VALUES (?, ?, NOW, NOW + ?)
		ON CONFLICT (name) DO UPDATE SET
			acquired_ms = CASE WHEN leases.holder = excluded.holder THEN leases.acquired_ms ELSE excluded.acquired_ms END,
			holder = excluded.holder, expires_ms = excluded.expires_ms
		WHERE leases.holder = excluded.holder OR leases.expires_ms <= excluded.acquired_ms
		RETURNING holder`), name, holder, ttl.Milliseconds())
	if err != nil {
		return false, fmt.Errorf("store: acquire lease %s: %w", name, err)
	}
	defer rows.Close()
	got := rows.Next()
	if err := rows.Err(); err != nil {
		return false, fmt.Errorf("store: acquire lease %s: %w", name, err)
	}
	return got, nil
}

// ReleaseLease gives up holder's lease name (a clean stop), so that another
// replica takes it at its next try instead of when it expires.
func (db *DB) ReleaseLease(ctx context.Context, name, holder string) error {
	if _, err := db.sql.ExecContext(ctx, `DELETE FROM leases WHERE name = ? AND holder = ?`, name, holder); err != nil {
		return fmt.Errorf("store: release lease %s: %w", name, err)
	}
	return nil
}

// LeaseHolder returns who holds the lease name now: "" when nobody does or
// the last holder's lease has expired.
func (db *DB) LeaseHolder(ctx context.Context, name string) (string, error) {
	rows, err := db.sql.QueryContext(ctx, db.engine.now(`SELECT holder FROM leases WHERE name = ? AND expires_ms > NOW`), name)
	if err != nil {
		return "", fmt.Errorf("store: read lease %s: %w", name, err)
	}
	defer rows.Close()
	var h string
	if rows.Next() {
		if err := rows.Scan(&h); err != nil {
			return "", fmt.Errorf("store: read lease %s: %w", name, err)
		}
	}
	return h, rows.Err()
}
