package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/writeback/writeback/cmd/internal/cmdline"
	"github.com/writeback/writeback/cmd/internal/datadir"
	"github.com/writeback/writeback/cmd/internal/dircmd"
	"github.com/writeback/writeback/services/agentwire"
	"github.com/writeback/writeback/services/errs"
	"github.com/writeback/writeback/services/settings"
	"github.com/writeback/writeback/services/writeback"
	"github.com/writeback/writeback/store"
)

// The agent's files in its data folder, beside the portal's database and
// key file (store.FileName, keyring.FileName) that hold its directory
// connection.
const (
	configFile   = "agent.json"          // enrolment (portal, agent ID, name, CA) and the write limit
	identityFile = "agent-identity.json" // the private keys: mode 0600, never leaves the folder
	statusFile   = "agent-status.json"   // what the running `run` reports for `status`
)

// dataFlag registers --data with its environment default.
func dataFlag(fs *flag.FlagSet, getenv cmdline.Env) *string {
	return fs.String("data", cmdline.EnvOr(getenv, "WRITEBACK_AGENT_DATA", "./agent-data"),
		"data folder holding the agent's database, key file and identity (env WRITEBACK_AGENT_DATA)")
}

// agentConfig is agent.json.
type agentConfig struct {
	// Portal is the portal's public URL (https://…), as given to enroll.
	Portal string `json:"portal,omitempty"`
	// AgentID and Name are what the portal gave at enrolment.
	AgentID string `json:"agent_id,omitempty"`
	Name    string `json:"name,omitempty"`
	// CAPEM is the CA that verifies the portal, copied from --ca-file at
	// enrolment (empty: the system roots), so that the agent does not
	// depend on that file staying where it was.
	CAPEM string `json:"ca_pem,omitempty"`
	// PortalKey is the portal's public key from enrolment: the challenge,
	// jobs and admit results must carry its signature.
	PortalKey  []byte    `json:"portal_key,omitempty"`
	EnrolledAt time.Time `json:"enrolled_at,omitzero"`
	// WritesPerMinute is the agent's own limit on writes; 0 is the
	// default (defaultWritesPerMinute).
	WritesPerMinute int `json:"writes_per_minute,omitempty"`
}

// defaultWritesPerMinute is the contract's default write limit.
const defaultWritesPerMinute = 120

func (c agentConfig) enrolled() bool { return c.AgentID != "" }

func (c agentConfig) writesPerMinute() int {
	if c.WritesPerMinute > 0 {
		return c.WritesPerMinute
	}
	return defaultWritesPerMinute
}

// readConfig reads agent.json; a folder without one has the zero config.
func readConfig(dir string) (agentConfig, error) {
	var c agentConfig
	b, err := os.ReadFile(filepath.Join(dir, configFile))
	if errors.Is(err, fs.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return c, fmt.Errorf("read %s: %w", configFile, err)
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("%s in %s is damaged: %w", configFile, dir, err)
	}
	return c, nil
}

// readIdentity reads the agent's private keys.
func readIdentity(dir string) (*agentwire.Identity, error) {
	b, err := os.ReadFile(filepath.Join(dir, identityFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errs.E(errs.Unavailable, fmt.Sprintf("%s is missing from %s: enrol the agent again (writeback-agent enroll --force)", identityFile, dir), err)
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", identityFile, err)
	}
	id, err := agentwire.ParseIdentity(b)
	if err != nil {
		return nil, fmt.Errorf("%s in %s: %w", identityFile, dir, err)
	}
	return id, nil
}

// exists tells whether the data folder holds name.
func exists(dir, name string) bool {
	_, err := os.Lstat(filepath.Join(dir, name))
	return err == nil
}

// pending is a file written beside its final name, not yet in place: a
// command writes every file it changes first, then renames them, so a
// failure leaves the old files whole.
type pending struct{ tmp, path string }

// stage writes data to a temporary file (mode 0600) in dir, synced.
func stage(dir, name string, data []byte) (pending, error) {
	f, err := os.CreateTemp(dir, "."+name+"-*.tmp")
	if err != nil {
		return pending{}, fmt.Errorf("write %s: %w", name, err)
	}
	p := pending{tmp: f.Name(), path: filepath.Join(dir, name)}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(p.tmp)
		return pending{}, fmt.Errorf("write %s: %w", name, err)
	}
	return p, nil
}

func (p pending) commit() error {
	if err := os.Rename(p.tmp, p.path); err != nil {
		os.Remove(p.tmp)
		return fmt.Errorf("write %s: %w", filepath.Base(p.path), err)
	}
	return nil
}

func (p pending) discard() { os.Remove(p.tmp) }

// writeFile replaces name in dir in one step (mode 0600).
func writeFile(dir, name string, data []byte) error {
	p, err := stage(dir, name, data)
	if err != nil {
		return err
	}
	return p.commit()
}

func writeConfig(dir string, c agentConfig) error {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", configFile, err)
	}
	return writeFile(dir, configFile, append(b, '\n'))
}

// app is the agent's database and the services over it: the directory
// connection is stored, validated, sealed and tested by the portal's own
// code, with the agent's key file.
type app struct {
	dataDir  string
	db       *store.DB
	settings *settings.Service
	wb       *writeback.Service
	log      *slog.Logger
}

// openApp opens (creating if needed) the data folder, its key file and its
// database, and applies pending migrations.
func openApp(ctx context.Context, dataDir string, logOut io.Writer, level slog.Level) (*app, error) {
	log := slog.New(slog.NewTextHandler(logOut, &slog.HandlerOptions{Level: level}))
	keys, db, err := datadir.Open(ctx, dataDir, log)
	if err != nil {
		return nil, err
	}
	set := settings.New(db)
	return &app{dataDir: dataDir, db: db, settings: set, wb: writeback.New(db, set, keys, log), log: log}, nil
}

func (a *app) Close() error {
	a.wb.Close()
	return a.db.Close()
}

// directoryProgram is "writeback-agent directory set|show|test": the
// portal's commands (cmd/internal/dircmd) on the agent's own data folder.
func directoryProgram() dircmd.Program {
	return dircmd.Program{
		Name:     program,
		DataFlag: dataFlag,
		Open: func(ctx context.Context, dataDir string, logOut io.Writer) (dircmd.Connections, func() error, error) {
			a, err := openApp(ctx, dataDir, logOut, slog.LevelWarn)
			if err != nil {
				return nil, nil, err
			}
			return a.wb, a.Close, nil
		},
	}
}
