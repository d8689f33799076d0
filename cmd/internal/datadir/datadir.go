// Package datadir opens a data folder the way both programs keep one: the
// folder (created 0700), its key file (created on first use) and its
// database with every pending migration applied: the SQLite file in the
// folder, or for the portal the PostgreSQL database that --database names.
package datadir

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

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

// The environment variables of --database.
const (
	EnvDatabaseURL     = "WRITEBACK_DATABASE_URL"
	EnvDatabaseURLFile = "WRITEBACK_DATABASE_URL_FILE"
)

// Location is where a program's state lives: the data folder (its key file,
// and the SQLite database unless a database URL names another) and the
// database URL from --database or the environment.
type Location struct {
	Dir string
	// DatabaseURL is --database as given: "" leaves it to the environment.
	DatabaseURL string

	envURL, envFile string // WRITEBACK_DATABASE_URL and WRITEBACK_DATABASE_URL_FILE
}

// DatabaseFlag registers --database on a command's flags, beside --data,
// into loc. Its environment defaults are read now but used only when the
// database is opened, and never become the flag's printed default: the URL
// carries a password, which -h would show.
func DatabaseFlag(fsAdd func(p *string, name, value, usage string), getenv cmdline.Env, loc *Location) {
	fsAdd(&loc.DatabaseURL, "database", "", "PostgreSQL database shared by several replicas, postgres://user:password@host/db "+
		"(env "+EnvDatabaseURL+", or "+EnvDatabaseURLFile+" naming a file that holds it; default: SQLite in the data folder)")
	loc.envURL, loc.envFile = getenv(EnvDatabaseURL), getenv(EnvDatabaseURLFile)
}

// URL returns the database URL to open: --database, else
// $WRITEBACK_DATABASE_URL, else the first line of the file
// $WRITEBACK_DATABASE_URL_FILE names; "" for SQLite in the data folder.
func (l Location) URL() (string, error) {
	switch {
	case l.DatabaseURL != "":
		return l.DatabaseURL, nil
	case l.envURL != "" && l.envFile != "":
		return "", cmdline.Usagef("%s and %s are both set: set one", EnvDatabaseURL, EnvDatabaseURLFile)
	case l.envURL != "":
		return l.envURL, nil
	case l.envFile != "":
		b, err := os.ReadFile(l.envFile)
		if err != nil {
			var pe *os.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			return "", fmt.Errorf("%s %s: %w", EnvDatabaseURLFile, l.envFile, err)
		}
		first, _, _ := strings.Cut(string(b), "\n")
		if u := strings.TrimSpace(first); u != "" {
			return u, nil
		}
		return "", fmt.Errorf("%s %s: the file is empty; it must hold the database URL on its first line", EnvDatabaseURLFile, l.envFile)
	}
	return "", nil
}

// Open is OpenAt for a data folder with its SQLite database.
func Open(ctx context.Context, dir string, log *slog.Logger) (*keyring.Keyring, *store.DB, error) {
	return OpenAt(ctx, Location{Dir: dir}, log)
}

// OpenAt makes the folder, loads or creates its key file (saying so, since
// it must be backed up with the database), opens the database and applies
// pending migrations. The caller closes the database. A database that
// cannot be opened is one line naming its host and the reason, never the
// password (store.OpenError).
func OpenAt(ctx context.Context, loc Location, log *slog.Logger) (*keyring.Keyring, *store.DB, error) {
	dir := loc.Dir
	dbURL, err := loc.URL()
	if err != nil {
		return nil, nil, err
	}
	if err := Make(dir); err != nil {
		return nil, nil, err
	}
	// The database first: a server that cannot be reached stops the
	// command before a new key file is made beside nothing.
	db, err := store.OpenDatabase(ctx, dbURL, dir)
	if err != nil {
		return nil, nil, err
	}
	applied, err := db.Migrate(ctx)
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	keys, created, err := keyring.LoadOrCreate(dir)
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	if created {
		log.Warn("created a new key file; back it up with the database", "path", filepath.Join(dir, keyring.FileName))
	}
	for _, m := range applied {
		log.Info("applied migration", "name", m)
	}
	return keys, db, nil
}
