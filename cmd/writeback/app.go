package main

import (
	"context"
	"flag"
	"io"
	"log/slog"

	"github.com/writeback/writeback/cmd/internal/cmdline"
	"github.com/writeback/writeback/cmd/internal/datadir"
	"github.com/writeback/writeback/services/admins"
	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/banned"
	"github.com/writeback/writeback/services/campaign"
	"github.com/writeback/writeback/services/keyring"
	"github.com/writeback/writeback/services/reminders"
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
	banned   *banned.Service
	// reminders mails people whose password expires soon (leader work).
	reminders *reminders.Service
	// campaign mails the registration campaign (leader work).
	campaign *campaign.Service
	audit    *audit.Log
}

// useSelfService makes ss the app's self-service, with the banned-password
// rules (services/banned) in its resets and changes and in the helpdesk's
// resets, and the expiry reminders and the registration campaign that send
// through its mail server with links under baseURL.
func (a *app) useSelfService(ss *selfservice.Service, baseURL string) {
	a.ss = ss
	a.banned = banned.New(a.db)
	a.banned.SetOrgName(ss.OrgName)
	ss.UseBanned(a.banned)
	a.wb.UseBanned(a.banned)
	a.reminders = reminders.New(reminders.Config{DB: a.db, Mail: ss, Text: ss, Log: a.log, BaseURL: baseURL,
		Directory: reminders.DirectoryOf(a.wb), Scope: reminders.ScopeOf(ss)})
	a.campaign = campaign.New(campaign.Config{DB: a.db, Mail: ss, Log: a.log, BaseURL: baseURL,
		Directory: campaign.DirectoryOf(a.wb), Scope: campaign.ScopeOf(ss)})
}

// dataFlag registers --data, --database and --key-file with their
// environment defaults: every command that opens the data takes them.
func dataFlag(fsAdd func(p *string, name, value, usage string), getenv env) *datadir.Location {
	var loc datadir.Location
	fsAdd(&loc.Dir, "data", cmdline.EnvOr(getenv, "WRITEBACK_DATA", "./data"), "data folder holding the key file and the SQLite database (env WRITEBACK_DATA)")
	datadir.DatabaseFlag(fsAdd, getenv, &loc)
	datadir.KeyFileFlag(fsAdd, getenv, &loc)
	return &loc
}

// openApp opens (creating if needed) the data folder, its key file and its
// database, and applies pending migrations.
func openApp(ctx context.Context, loc datadir.Location, logOut io.Writer) (*app, error) {
	return openAppLevel(ctx, loc, logOut, slog.LevelWarn)
}

// openAppLevel is openApp with a log level: the server logs requests at
// Info, one-shot commands only warnings.
func openAppLevel(ctx context.Context, loc datadir.Location, logOut io.Writer, level slog.Level) (*app, error) {
	return openAppLog(ctx, loc, newLogger(logOut, level, logText))
}

// Log formats of --log-format.
const (
	logText = "text" // key=value lines (slog's text handler)
	logJSON = "json" // one JSON object per line, for log shippers
)

// newLogger is the operator log in format (logText or logJSON).
func newLogger(out io.Writer, level slog.Level, format string) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if format == logJSON {
		return slog.New(slog.NewJSONHandler(out, opts))
	}
	return slog.New(slog.NewTextHandler(out, opts))
}

// openAppLog is openApp with the logger the caller built.
func openAppLog(ctx context.Context, loc datadir.Location, log *slog.Logger) (*app, error) {
	dataDir := loc.Dir
	keys, db, err := datadir.OpenAt(ctx, loc, log)
	if err != nil {
		return nil, err
	}
	adm, err := admins.New(db, log, admins.DefaultHashParams, admins.WithKeyring(keys))
	if err != nil {
		db.Close()
		return nil, err
	}
	set := settings.New(db)
	wb := writeback.New(db, set, keys, log)
	a := &app{dataDir: dataDir, db: db, keys: keys, log: log, admins: adm, settings: set, wb: wb, audit: audit.NewLog(db, log)}
	a.useSelfService(selfservice.New(db, wb, keys, log, ""), "")
	return a, nil
}

func (a *app) Close() error {
	a.ss.Wait()
	a.wb.Close()
	return a.db.Close()
}

// openParsed parses a command's flags (one of them --data) and opens the
// data folder they name. Callers close the app.
func openParsed(ctx context.Context, fs *flag.FlagSet, args []string, data *datadir.Location, io stdio) (*app, error) {
	if err := cmdline.Parse(fs, args); err != nil {
		return nil, err
	}
	return openApp(ctx, *data, io.Err)
}
