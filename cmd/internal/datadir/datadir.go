// Package datadir opens a data folder the way both programs keep one: the
// folder (created 0700), its key file (created on first use) and its SQLite
// database with every pending migration applied.
package datadir

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/writeback/writeback/cmd/internal/cmdline"
	"github.com/writeback/writeback/services/keyring"
	"github.com/writeback/writeback/store"
)

// Make creates the folder (0700) when it does not exist.
func Make(dir string) error {
	if dir == "" {
		return cmdline.Usagef("--data must not be empty")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create data folder %s: %w", dir, err)
	}
	return nil
}

// Open makes the folder, loads or creates its key file (saying so, since it
// must be backed up with the database), opens the database and applies
// pending migrations. The caller closes the database.
func Open(ctx context.Context, dir string, log *slog.Logger) (*keyring.Keyring, *store.DB, error) {
	if err := Make(dir); err != nil {
		return nil, nil, err
	}
	keys, created, err := keyring.LoadOrCreate(dir)
	if err != nil {
		return nil, nil, err
	}
	if created {
		log.Warn("created a new key file; back it up with the database", "path", filepath.Join(dir, keyring.FileName))
	}
	db, err := store.Open(ctx, filepath.Join(dir, store.FileName))
	if err != nil {
		return nil, nil, err
	}
	applied, err := db.Migrate(ctx)
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	for _, m := range applied {
		log.Info("applied migration", "name", m)
	}
	return keys, db, nil
}
