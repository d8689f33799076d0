package store

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/writeback/writeback/testbed"
)

// Backend is one engine the store's tests run on, with a fresh, empty
// database of the test's own: a file in t.TempDir() for SQLite, a database
// of its own on the test bed's server for PostgreSQL.
type Backend struct {
	Name  string // "sqlite" or "postgres"
	Where string // the SQLite file's path, or the PostgreSQL database's URL
}

// ForEachBackend runs fn once per engine, as subtests named after it: the
// whole store suite runs on both from this one table. PostgreSQL comes
// from the test bed (testbed.NewPostgresDB): without one its subtest is
// skipped, or fails when CI is set.
func ForEachBackend(t *testing.T, fn func(t *testing.T, b Backend)) {
	t.Helper()
	for _, name := range []string{"sqlite", "postgres"} {
		t.Run(name, func(t *testing.T) { fn(t, Backend{Name: name}.Fresh(t)) })
	}
}

// Fresh returns another fresh, empty database on b's engine, for a test
// that needs several (one per subtest).
func (b Backend) Fresh(t testing.TB) Backend {
	t.Helper()
	if b.Name == "postgres" {
		return Backend{Name: b.Name, Where: testbed.NewPostgresDB(t)}
	}
	return Backend{Name: b.Name, Where: filepath.Join(t.TempDir(), FileName)}
}

// ForEachDB is ForEachBackend with one migrated handle on the database.
func ForEachDB(t *testing.T, fn func(t *testing.T, db *DB)) {
	t.Helper()
	ForEachBackend(t, func(t *testing.T, b Backend) { fn(t, b.Migrated(t)) })
}

// Open opens a new handle on the backend's database, as another process
// would, closed when the test ends.
func (b Backend) Open(t testing.TB) *DB {
	t.Helper()
	db, err := OpenTest(context.Background(), b.Where)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// Migrated is Open, then Migrate.
func (b Backend) Migrated(t testing.TB) *DB {
	t.Helper()
	db := b.Open(t)
	if _, err := db.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return db
}

// OpenTest opens where: a postgres:// URL or a SQLite file's path.
func OpenTest(ctx context.Context, where string) (*DB, error) {
	if strings.HasPrefix(where, "postgres://") || strings.HasPrefix(where, "postgresql://") {
		return OpenPostgres(ctx, where)
	}
	return Open(ctx, where)
}
