package store

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultConfigRecheck is how long the settings-document cache trusts what it
// holds before it asks the database again whether a document changed. A save
// through this DB is seen at once (the cache learns of it when the saving
// transaction commits); the recheck is for saves by another process on the
// same database (a `writeback` command while the server runs, later another
// replica). One recheck is one small aggregate query, so it is cheap enough
// to make often.
const DefaultConfigRecheck = 2 * time.Millisecond

// docCache keeps values decoded from settings documents, each with the
// version of the row it came from. A value is served only while its version
// is at least the floor of its name: the highest version known to be
// committed, raised when a transaction of this DB that saved the document
// commits (never before, never on a rollback), when a recheck finds a newer
// row, and by NoteConfigVersion. Its zero value is not ready: see newDocCache.
type docCache struct {
	mu      sync.RWMutex
	entries map[string]docEntry
	floor   map[string]int64

	gate recheckGate // when to recheck (recheck.go)
	gen  int64       // the generation the last recheck saw (under gate.checking)

	reads atomic.Int64 // documents read from the database
}

type docEntry struct {
	cfg   Config
	value any
}

func newDocCache() *docCache {
	c := &docCache{entries: map[string]docEntry{}, floor: map[string]int64{}, gen: -1}
	c.gate.init(DefaultConfigRecheck)
	return c
}

// CachedConfig returns the value decode made of the settings document name
// and the row it came from, decoding only when the document has a version
// the cache does not hold yet. Every caller of one version gets the same
// value: callers must treat it as read-only (services/settings hands out
// copies). A decode error is returned and nothing is cached.
//
// The value is current as of the last save through this DB, and at most
// the recheck interval (SetConfigRecheck) behind a save made through
// another DB (another process) on the same database.
func (db *DB) CachedConfig(ctx context.Context, name string, decode func(Config) (any, error)) (any, Config, error) {
	dc := db.docs
	if err := db.recheckConfig(ctx); err != nil {
		return nil, Config{}, err
	}
	dc.mu.RLock()
	e, ok := dc.entries[name]
	fresh := ok && e.cfg.Version >= dc.floor[name]
	dc.mu.RUnlock()
	if fresh {
		return e.value, e.cfg, nil
	}
	c, err := readConfig(ctx, db, name)
	dc.reads.Add(1)
	if err != nil {
		return nil, c, err
	}
	v, err := decode(c)
	if err != nil {
		return nil, c, err
	}
	dc.mu.Lock()
	// A row read before a commit that raised the floor meanwhile is served
	// to this caller only; never keep it, and never replace a newer one.
	if cur, ok := dc.entries[name]; c.Version >= dc.floor[name] && (!ok || cur.cfg.Version <= c.Version) {
		dc.entries[name] = docEntry{cfg: c, value: v}
	}
	dc.mu.Unlock()
	return v, c, nil
}

// NoteConfigVersion tells the cache that version of the document name is
// committed, so that a value decoded from an older row is not served again:
// the hook for a replica that learns of another replica's save (a
// notification) before its next recheck. A commit through this DB does it
// by itself.
func (db *DB) NoteConfigVersion(name string, version int64) {
	dc := db.docs
	dc.mu.Lock()
	defer dc.mu.Unlock()
	if version > dc.floor[name] {
		dc.floor[name] = version
	}
	if e, ok := dc.entries[name]; ok && e.cfg.Version < version {
		delete(dc.entries, name)
	}
}

// SetConfigRecheck sets how long the cache trusts what it holds before it
// checks the documents' versions again (DefaultConfigRecheck; 0: at every
// read). Saves through this DB are seen at once whatever it is.
func (db *DB) SetConfigRecheck(d time.Duration) { db.docs.gate.set(d) }

// ConfigReads is how many times a settings document was read from the
// database outside a transaction (by Config, or by CachedConfig when it did
// not hold the document): for tests and diagnostics.
func (db *DB) ConfigReads() int64 { return db.docs.reads.Load() }

// ConfigVersions returns the version of every saved settings document.
func (db *DB) ConfigVersions(ctx context.Context) (map[string]int64, error) {
	rows, err := db.sql.QueryContext(ctx, `SELECT name, version FROM config`)
	if err != nil {
		return nil, fmt.Errorf("store: config versions: %w", err)
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var n string
		var v int64
		if err := rows.Scan(&n, &v); err != nil {
			return nil, fmt.Errorf("store: config versions: %w", err)
		}
		out[n] = v
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: config versions: %w", err)
	}
	return out, nil
}

// recheckConfig asks the database, at most once per recheck interval,
// whether any document changed since the last time, and raises the floors of
// those that did. The question is the documents' generation, the sum of their
// versions: every save adds one and no row is ever deleted, so it changes
// exactly when some document was saved. Only one caller asks at a time; the
// others serve what the cache holds meanwhile.
func (db *DB) recheckConfig(ctx context.Context) error {
	dc := db.docs
	now, ok := dc.gate.enter()
	if !ok {
		return nil
	}
	defer dc.gate.leave()
	var gen int64
	if err := db.queryRow(ctx, `SELECT coalesce(sum(version), 0) FROM config`).Scan(&gen); err != nil {
		return fmt.Errorf("store: config generation: %w", err)
	}
	if gen != dc.gen {
		vs, err := db.ConfigVersions(ctx)
		if err != nil {
			return err
		}
		for name, v := range vs {
			db.NoteConfigVersion(name, v)
		}
		dc.gen = gen
	}
	dc.gate.checked.Store(now)
	return nil
}

// committed raises the floors of the documents a committed transaction
// saved.
func (db *DB) committed(saved map[string]int64) {
	for name, v := range saved {
		db.NoteConfigVersion(name, v)
	}
}
