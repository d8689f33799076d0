// Package datadir opens a data folder the way both programs keep one: the
// folder (created 0700), its key file (created on first use) and its
// database with every pending migration applied: the SQLite file in the
// folder, or for the portal the PostgreSQL database that --database names.
package datadir

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
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

// The environment variables of --database and --key-file.
const (
	EnvDatabaseURL     = "WRITEBACK_DATABASE_URL"
	EnvDatabaseURLFile = "WRITEBACK_DATABASE_URL_FILE"
	EnvKeyFile         = "WRITEBACK_KEY_FILE"
)

// Location is where a program's state lives: the data folder (its key file,
// and the SQLite database unless a database URL names another) and the
// database URL from --database or the environment.
type Location struct {
	Dir string
	// DatabaseURL is --database as given: "" leaves it to the environment.
	DatabaseURL string
	// KeyFile is the key file to use instead of the data folder's own (one
	// that several replicas share); "" is keyring.FileName in Dir, created
	// on first use.
	KeyFile string

	envURL, envFile string // WRITEBACK_DATABASE_URL and WRITEBACK_DATABASE_URL_FILE
	keyFlag         bool   // the command takes --key-file (KeyFileFlag)
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

// KeyFileFlag registers --key-file on a command's flags, beside --data,
// into loc, with $WRITEBACK_KEY_FILE as its default (a path, not a secret).
func KeyFileFlag(fsAdd func(p *string, name, value, usage string), getenv cmdline.Env, loc *Location) {
	loc.keyFlag = true
	fsAdd(&loc.KeyFile, "key-file", getenv(EnvKeyFile), "key file shared by every replica, e.g. a mounted secret, in the format of the data folder's "+
		keyring.FileName+" (env "+EnvKeyFile+"; default: "+keyring.FileName+" in the data folder, created on first use)")
}

// keyPath is the key file loc names.
func (l Location) keyPath() string {
	if l.KeyFile != "" {
		return l.KeyFile
	}
	return filepath.Join(l.Dir, keyring.FileName)
}

// KeyMismatchError is why a command stops on a database first used with
// another key file: it names the key file it was started with. It wraps
// store.ErrKeyMismatch.
type KeyMismatchError struct {
	KeyFile string
	Created bool // the key file was made by this start (and removed again)
	Flag    bool // the command takes --key-file: say so
}

func (e *KeyMismatchError) Error() string {
	if e.Created {
		msg := "this database was set up with another key file: " + e.KeyFile + " did not exist; put the key file it was first used with there"
		if e.Flag {
			msg += ", or name that one with --key-file (env " + EnvKeyFile + ")"
		}
		return msg
	}
	msg := "this database was set up with another key file: " + e.KeyFile + " is not the one it was first used with; "
	if e.Flag {
		return msg + "start with that one (--key-file, env " + EnvKeyFile + ")"
	}
	return msg + "put that one back (from the backup of this folder)"
}

// Unwrap returns store.ErrKeyMismatch.
func (e *KeyMismatchError) Unwrap() error { return store.ErrKeyMismatch }

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

// OpenAt makes the folder, loads the key file (--key-file's, which must
// exist, or the folder's own, created on first use and saying so, since it
// must be backed up with the database), opens the database, applies
// pending migrations and checks that the database was set up with this key
// file (recording its check value on first use): another key is a
// *KeyMismatchError, returned before anything reads a session or a
// secret. The caller closes the database. A database that cannot be
// opened is one line naming its host and the reason, never the password
// (store.OpenError).
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
	keys, created, err := loadKey(loc)
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	if _, err := db.CheckKey(ctx, keys.Check()); err != nil {
		db.Close()
		if errors.Is(err, store.ErrKeyMismatch) {
			if created {
				// Made by this start for a database that has a key already:
				// of no use, and the next start would take it for the key.
				_ = os.Remove(loc.keyPath())
			}
			return nil, nil, &KeyMismatchError{KeyFile: loc.keyPath(), Created: created, Flag: loc.keyFlag}
		}
		return nil, nil, err
	}
	if created {
		log.Warn("created a new key file; back it up with the database", "path", loc.keyPath())
	}
	for _, m := range applied {
		log.Info("applied migration", "name", m)
	}
	return keys, db, nil
}

// loadKey loads loc's key file: --key-file's as it is (never created: a key
// that replicas share is made once, by whoever sets them up), or the data
// folder's own, created on first use.
func loadKey(loc Location) (k *keyring.Keyring, created bool, err error) {
	if loc.KeyFile == "" {
		return keyring.LoadOrCreate(loc.Dir)
	}
	k, err = keyring.LoadFile(loc.KeyFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, fmt.Errorf("--key-file %s: no such file (make one with: openssl rand -hex 32 > %s, or copy a data folder's %s)",
			loc.KeyFile, loc.KeyFile, keyring.FileName)
	}
	if err != nil {
		return nil, false, fmt.Errorf("--key-file: %w", err)
	}
	return k, false, nil
}
