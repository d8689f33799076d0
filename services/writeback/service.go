// Package writeback joins the directory connection the administrators
// configure to the directory the portal uses: it stores the connection
// (with the service-account password encrypted), hands out the
// directory.Directory for it (an LDAP client in direct mode, the injected
// writeback agents in agents mode), decides whether writeback is on (the
// portal switch and the connector switch, or the agents' switches), keeps
// the "On-premises writeback service" status fresh, and performs the
// helpdesk reset and unlock with their audit rows. Every later flow goes
// through it.
//
// The files follow those seams: connection.go stores the connection,
// service.go holds the directory built from it, state.go the switches,
// health.go the status monitor, users.go the helpdesk actions and errors.go
// what directory errors leave in the audit log.
package writeback

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/writeback/writeback/services/banned"
	"github.com/writeback/writeback/services/directory"
	"github.com/writeback/writeback/services/errs"
	"github.com/writeback/writeback/services/keyring"
	"github.com/writeback/writeback/services/settings"
	"github.com/writeback/writeback/store"
)

// Service is the writeback service.
type Service struct {
	db       *store.DB
	settings *settings.Service
	keys     *keyring.Keyring
	log      *slog.Logger
	now      func() time.Time

	mu            sync.Mutex
	client        *directory.Client
	clientVersion int64
	banned        PasswordCheck
	agents        Agents                        // set by UseAgents; used in agents mode
	rec           Recorder                      // set by UseRecorder (observe.go)
	onHealth      func(context.Context, Health) // set by OnHealth

	health health
}

// PasswordCheck refuses weak new passwords (banned.Service.Check).
type PasswordCheck interface {
	Check(ctx context.Context, password string, personal []string) (banned.Refusal, bool, error)
}

// UseBanned makes helpdesk resets refuse the passwords the banned rules
// refuse, unless the person must change the password at next sign-in.
func (s *Service) UseBanned(c PasswordCheck) { s.banned = c }

// New builds the service.
func New(db *store.DB, set *settings.Service, keys *keyring.Keyring, log *slog.Logger) *Service {
	return &Service{db: db, settings: set, keys: keys, log: log, now: time.Now, health: newHealth()}
}

// Agents is the portal's writeback agents as the service uses them: the
// directory operations, each run by one connected agent, and how many agents
// are connected and how many of those have password writeback on. The
// portal's agent hub implements it.
type Agents interface {
	directory.Directory
	Connected() (connected, writeback int)
	// OnConnect makes the agents call f each time one connects.
	OnConnect(f func())
}

// UseAgents gives the service the writeback agents that serve a connection
// in agents mode. The service does not close them (their owner does); a
// process that never calls it (a command) finds agents mode unavailable.
func (s *Service) UseAgents(a Agents) {
	s.mu.Lock()
	s.agents = a
	s.mu.Unlock()
	if a != nil {
		a.OnOutage(s.noteOutage)
		// An agent that connects may end an outage, or be the first: the
		// status panel checks again at once.
		a.OnConnect(s.kickMonitor)
	}
}

// usedAgents returns the injected agents, nil when there are none.
func (s *Service) usedAgents() Agents {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.agents
}

// Close releases the direct connection's LDAP connections (not the agents:
// see UseAgents).
func (s *Service) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.client != nil {
		err := s.client.Close()
		s.client = nil
		return err
	}
	return nil
}

// ErrNotConfigured means no directory connection has been saved.
var ErrNotConfigured = errs.E(errs.Unavailable, "No directory connection is configured yet. A Global Administrator sets it up under Directory connection.", nil)

// ErrNoAgents is Client's answer in agents mode when the process has no
// writeback agents to use (UseAgents was not called).
var ErrNoAgents = errs.E(errs.Unavailable, "The directory connection goes through writeback agents, and this process has none: "+
	"only the running portal reaches the directory through its agents.", nil)

// Client returns the directory for the stored connection: in direct mode
// the LDAP client, built anew when the connection changed; in agents mode
// the writeback agents given to UseAgents (ErrNoAgents without them).
func (s *Service) Client(ctx context.Context) (directory.Directory, Connection, error) {
	c, meta, err := s.Connection(ctx)
	if err != nil {
		return nil, c, err
	}
	if !c.Configured() {
		return nil, c, ErrNotConfigured
	}
	if c.Agents() {
		a := s.usedAgents()
		if a == nil {
			return nil, c, ErrNoAgents
		}
		return s.timed(a, ModeAgents), c, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.client != nil && s.clientVersion == meta.Version {
		return s.timedLocked(s.client, ModeDirect), c, nil
	}
	pw, err := s.keys.Open(sealContext, c.BindPasswordSealed)
	if err != nil {
		return nil, c, errs.E(errs.Unavailable, "The directory service-account password cannot be decrypted (was the key file replaced?). A Global Administrator must enter it again under Directory connection.", err)
	}
	cl, err := directory.New(config(c, string(pw)), s.log)
	if err != nil {
		return nil, c, err
	}
	cl.OnOutage(s.noteOutage)
	if s.client != nil {
		_ = s.client.Close()
	}
	s.client, s.clientVersion = cl, meta.Version
	return s.timedLocked(cl, ModeDirect), c, nil
}

// timed is d with its writes timed for the recorder, when there is one.
func (s *Service) timed(d directory.Directory, mode string) directory.Directory {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.timedLocked(d, mode)
}

// timedLocked is timed with s.mu held.
func (s *Service) timedLocked(d directory.Directory, mode string) directory.Directory {
	if s.rec == nil {
		return d
	}
	return timedWrites{Directory: d, rec: s.rec, mode: mode}
}

func (s *Service) dropClient() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.client != nil {
		_ = s.client.Close()
		s.client = nil
	}
}
