// Package writeback joins the directory connection the administrators
// configure to the directory client: it stores the connection (with the
// service-account password encrypted), decides whether writeback is on
// (both the portal switch and the connector switch), keeps the
// "On-premises writeback service" status fresh, and performs the helpdesk
// reset and unlock with their audit rows. Every later flow goes through it.
//
// The files follow those seams: connection.go stores the connection,
// service.go holds the client built from it, state.go the two switches,
// health.go the status monitor, users.go the helpdesk actions and errors.go
// what directory errors leave in the audit log.
package writeback

import (
	"context"
	"log/slog"
	"sync"
	"time"

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

	health health
}

// New builds the service.
func New(db *store.DB, set *settings.Service, keys *keyring.Keyring, log *slog.Logger) *Service {
	return &Service{db: db, settings: set, keys: keys, log: log, now: time.Now, health: newHealth()}
}

// Close releases the directory connections.
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

// Client returns the directory client for the stored connection, building
// it anew when the connection changed.
func (s *Service) Client(ctx context.Context) (*directory.Client, Connection, error) {
	c, meta, err := s.Connection(ctx)
	if err != nil {
		return nil, c, err
	}
	if !c.Configured() {
		return nil, c, ErrNotConfigured
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.client != nil && s.clientVersion == meta.Version {
		return s.client, c, nil
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
	return cl, c, nil
}

func (s *Service) dropClient() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.client != nil {
		_ = s.client.Close()
		s.client = nil
	}
}
