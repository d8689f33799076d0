package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/writeback/writeback/cmd/internal/cmdline"
	"github.com/writeback/writeback/services/admins"
	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/keyring"
	"github.com/writeback/writeback/services/selfservice"
	"github.com/writeback/writeback/services/settings"
	"github.com/writeback/writeback/services/writeback"
	"github.com/writeback/writeback/store"
)

// app is everything a command needs that lives in the data folder.
type app struct {
	dataDir  string
	db       *store.DB
	keys     *keyring.Keyring
	log      *slog.Logger
	admins   *admins.Service
	settings *settings.Service
	wb       *writeback.Service
	ss       *selfservice.Service
	audit    *audit.Log
}

// dataFlag registers --data with its environment default.
func dataFlag(fsAdd func(p *string, name, value, usage string), getenv env) *string {
	var dir string
	fsAdd(&dir, "data", cmdline.EnvOr(getenv, "WRITEBACK_DATA", "./data"), "data folder holding the SQLite database and the key file (env WRITEBACK_DATA)")
	return &dir
}

// openApp opens (creating if needed) the data folder, its key file and its
// database, and applies pending migrations.
func openApp(ctx context.Context, dataDir string, logOut io.Writer) (*app, error) {
	return openAppLevel(ctx, dataDir, logOut, slog.LevelWarn)
}

// openAppLevel is openApp with a log level: the server logs requests at
// Info, one-shot commands only warnings.
func openAppLevel(ctx context.Context, dataDir string, logOut io.Writer, level slog.Level) (*app, error) {
	if dataDir == "" {
		return nil, cmdline.Usagef("--data must not be empty")
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data folder %s: %w", dataDir, err)
	}
	log := slog.New(slog.NewTextHandler(logOut, &slog.HandlerOptions{Level: level}))
	keys, created, err := keyring.LoadOrCreate(dataDir)
	if err != nil {
		return nil, err
	}
	if created {
		log.Warn("created a new key file; back it up with the database", "path", filepath.Join(dataDir, keyring.FileName))
	}
	db, err := store.Open(ctx, filepath.Join(dataDir, store.FileName))
	if err != nil {
		return nil, err
	}
	applied, err := db.Migrate(ctx)
	if err != nil {
		db.Close()
		return nil, err
	}
	for _, m := range applied {
		log.Info("applied migration", "name", m)
	}
	adm, err := admins.New(db, log, admins.DefaultHashParams)
	if err != nil {
		db.Close()
		return nil, err
	}
	set := settings.New(db)
	wb := writeback.New(db, set, keys, log)
	return &app{dataDir: dataDir, db: db, keys: keys, log: log, admins: adm, settings: set, wb: wb,
		ss: selfservice.New(db, wb, keys, log, ""), audit: audit.NewLog(db, log)}, nil
}

func (a *app) Close() error {
	a.ss.Wait()
	a.wb.Close()
	return a.db.Close()
}

// firstLine reads one line (without its line ending) from r: how passwords
// come in, from standard input or a file, so they never show in ps or
// shell history.
func firstLine(r io.Reader) string {
	line, _ := bufio.NewReader(r).ReadString('\n')
	return strings.TrimRight(line, "\r\n")
}

// secretFile reads the first line of the file a flag names.
func secretFile(flagName, path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", cmdline.Usagef("--%s %q: %v", flagName, path, err)
	}
	defer f.Close()
	s := firstLine(f)
	if s == "" {
		return "", cmdline.Usagef("--%s %q: the file is empty", flagName, path)
	}
	return s, nil
}

// openParsed parses a command's flags (one of them --data) and opens the
// data folder they name. Callers close the app.
func openParsed(ctx context.Context, fs *flag.FlagSet, args []string, data *string, io stdio) (*app, error) {
	if err := cmdline.Parse(fs, args); err != nil {
		return nil, err
	}
	return openApp(ctx, *data, io.Err)
}
