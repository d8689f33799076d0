package store

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// RateCounts keeps the request counts of the per-address rate limits in
// the database, so that replicas limit an address together
// (handlers.RateCounter). Make one with DB.RateCounts.
type RateCounts struct {
	db     *DB
	window time.Duration

	mu     sync.Mutex
	pruned time.Time // the window whose predecessors were last pruned
}

// RateCounts returns the database's counter for windows of the given
// length.
func (db *DB) RateCounts(window time.Duration) *RateCounts {
	return &RateCounts{db: db, window: window}
}

// Add adds n to key's count in the window that starts at start and returns
// the count after the addition (cur) and key's count in the window before
// it (prev). It is one statement (an upsert that returns both counts)
// outside the write lock: concurrent Adds on any number of replicas never
// return the same cur. The first Add of a window on this process also
// removes the windows before the previous one.
func (c *RateCounts) Add(ctx context.Context, key string, start time.Time, n int) (cur, prev int, err error) {
	startMS, prevMS := start.UnixMilli(), start.Add(-c.window).UnixMilli()
	err = c.db.sql.QueryRowContext(ctx, `INSERT INTO rate_counts (key, window_ms, count) VALUES (?, ?, ?)
		ON CONFLICT (key, window_ms) DO UPDATE SET count = rate_counts.count + excluded.count
		RETURNING count, COALESCE((SELECT p.count FROM rate_counts p WHERE p.key = ? AND p.window_ms = ?), 0)`,
		key, startMS, n, key, prevMS).Scan(&cur, &prev)
	if err != nil {
		return 0, 0, fmt.Errorf("store: count request: %w", err)
	}
	c.mu.Lock()
	due := start.After(c.pruned)
	if due {
		c.pruned = start
	}
	c.mu.Unlock()
	if due {
		if _, err := c.db.sql.ExecContext(ctx, `DELETE FROM rate_counts WHERE window_ms < ?`, prevMS); err != nil {
			return cur, prev, fmt.Errorf("store: prune request counts: %w", err)
		}
	}
	return cur, prev, nil
}
