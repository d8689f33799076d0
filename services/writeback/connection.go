// Package writeback joins the directory connection the administrators
// configure to the directory client: it stores the connection (with the
// service-account password encrypted), decides whether writeback is on
// (both the portal switch and the connector switch), keeps the
// "On-premises writeback service" status fresh, and performs the helpdesk
// reset and unlock with their audit rows. Every later flow goes through it.
package writeback

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/directory"
	"github.com/writeback/writeback/services/errs"
	"github.com/writeback/writeback/services/keyring"
	"github.com/writeback/writeback/services/settings"
	"github.com/writeback/writeback/store"
)

const connectionName = "directory"

// sealContext binds the sealed password to its place in the database.
const sealContext = "directory.bind_password"

// Connection is the stored directory connection. The service-account
// password is only ever held sealed.
type Connection struct {
	Type                   directory.Type `json:"type"`
	URLs                   []string       `json:"urls"`
	StartTLS               bool           `json:"start_tls"`
	CAPEM                  string         `json:"ca_pem"`
	BindDN                 string         `json:"bind_dn"`
	BindPasswordSealed     string         `json:"bind_password_sealed"`
	BaseDNs                []string       `json:"base_dns"`
	UserFilter             string         `json:"user_filter"`
	LoginAttributes        []string       `json:"login_attributes"`
	RecoveryEmailAttribute string         `json:"recovery_email_attribute"`
	ExcludedGroups         []string       `json:"excluded_groups"`
	// PasswordWriteback is the connector-side switch ("Optional features ›
	// Password writeback"): writeback happens only when it and the portal's
	// "Write back passwords to your on-premises directory" are both Yes.
	PasswordWriteback bool `json:"password_writeback"`
}

// Configured reports whether a connection has been saved.
func (c Connection) Configured() bool { return len(c.URLs) > 0 && c.BindDN != "" }

// HasPassword reports whether a service-account password is stored.
func (c Connection) HasPassword() bool { return c.BindPasswordSealed != "" }

// Input is a connection as an administrator submits it. An empty
// BindPassword keeps the stored one (the password is write-only).
type Input struct {
	Type                   directory.Type
	URLs                   []string
	StartTLS               bool
	CAPEM                  string
	BindDN                 string
	BindPassword           string
	BaseDNs                []string
	UserFilter             string
	LoginAttributes        []string
	RecoveryEmailAttribute string
	ExcludedGroups         []string
	PasswordWriteback      bool
}

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
}

// New builds the service.
func New(db *store.DB, set *settings.Service, keys *keyring.Keyring, log *slog.Logger) *Service {
	return &Service{db: db, settings: set, keys: keys, log: log, now: time.Now}
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

// Connection reads the stored connection.
func (s *Service) Connection(ctx context.Context) (Connection, settings.Meta, error) {
	var c Connection
	m, err := settings.Load(ctx, s.db, connectionName, &c)
	return c, m, err
}

// config turns a stored connection (and a plain password) into a client config.
func config(c Connection, password string) directory.Config {
	return directory.Config{
		Type: c.Type, URLs: c.URLs, StartTLS: c.StartTLS, CAPEM: c.CAPEM,
		BindDN: c.BindDN, BindPassword: password, BaseDNs: c.BaseDNs, UserFilter: c.UserFilter,
		LoginAttributes: c.LoginAttributes, RecoveryEmailAttribute: c.RecoveryEmailAttribute,
		ExcludedGroups: c.ExcludedGroups,
	}
}

// normalize trims the input and drops empty list entries.
func (in Input) normalize() Input {
	clean := func(xs []string) []string {
		var out []string
		for _, x := range xs {
			if x = strings.TrimSpace(x); x != "" {
				out = append(out, x)
			}
		}
		return out
	}
	in.URLs, in.BaseDNs, in.ExcludedGroups = clean(in.URLs), clean(in.BaseDNs), clean(in.ExcludedGroups)
	in.LoginAttributes = clean(in.LoginAttributes)
	in.BindDN, in.UserFilter = strings.TrimSpace(in.BindDN), strings.TrimSpace(in.UserFilter)
	in.RecoveryEmailAttribute = strings.TrimSpace(in.RecoveryEmailAttribute)
	in.CAPEM = strings.TrimSpace(in.CAPEM)
	return in
}

// SaveConnection validates and saves a connection if it is still at
// expectVersion, and records "Update directory connection" with old → new
// values (the password only as "changed"). The same validation serves the
// page and the command line.
func (s *Service) SaveConnection(ctx context.Context, actor audit.Actor, expectVersion int64, in Input) (bool, error) {
	in = in.normalize()
	changed, _, err := settings.Update(ctx, s.db, connectionName, expectVersion, actor, Connection{}, func(old Connection) (Connection, []audit.Entry, error) {
		if !old.Configured() && in.Type == directory.TypeAD && len(in.ExcludedGroups) == 0 && len(in.BaseDNs) > 0 {
			// First save: AD's privileged groups are excluded unless the administrator listed others.
			in.ExcludedGroups = directory.Defaults(directory.TypeAD, directory.DomainDN(in.BaseDNs[0])).ExcludedGroups
		}
		password, sealed := in.BindPassword, old.BindPasswordSealed
		if password == "" && sealed != "" {
			// Keep the stored password; it is needed only to validate completeness.
			pt, err := s.keys.Open(sealContext, sealed)
			if err != nil {
				return old, nil, errs.FieldErrors(map[string]string{"bind_password": "The stored password cannot be decrypted (was the key file replaced?). Enter the password again."})
			}
			password = string(pt)
		} else if password != "" {
			var err error
			if sealed, err = s.keys.Seal(sealContext, []byte(password)); err != nil {
				return old, nil, err
			}
		}
		next := Connection{Type: in.Type, URLs: in.URLs, StartTLS: in.StartTLS, CAPEM: in.CAPEM, BindDN: in.BindDN,
			BindPasswordSealed: sealed, BaseDNs: in.BaseDNs, UserFilter: in.UserFilter, LoginAttributes: in.LoginAttributes,
			RecoveryEmailAttribute: in.RecoveryEmailAttribute, ExcludedGroups: in.ExcludedGroups, PasswordWriteback: in.PasswordWriteback}
		if err := config(next, password).Validate(); err != nil {
			return old, nil, err
		}
		d := diff(old, next, in.BindPassword != "")
		if len(d) == 0 {
			return old, nil, nil
		}
		return next, []audit.Entry{{Category: audit.CategoryDirectoryManagement, Activity: audit.ActivityUpdateDirectory,
			Target: audit.Target{Type: "Directory", ID: "on-premises", Name: strings.Join(next.URLs, ", ")}, Details: d}}, nil
	})
	if changed {
		s.dropClient()
	}
	return changed, err
}

// diff lists what changed between two connections for the audit log.
func diff(old, next Connection, passwordChanged bool) audit.Changes {
	d := audit.Changes{}
	add := d.Add
	add("type", old.Type, next.Type)
	add("urls", old.URLs, next.URLs)
	add("start_tls", old.StartTLS, next.StartTLS)
	if old.CAPEM != next.CAPEM {
		d["trusted_ca_certificates"] = "changed"
	}
	add("bind_dn", old.BindDN, next.BindDN)
	if passwordChanged {
		d["bind_password"] = "changed"
	}
	add("base_dns", old.BaseDNs, next.BaseDNs)
	add("user_filter", old.UserFilter, next.UserFilter)
	add("login_attributes", old.LoginAttributes, next.LoginAttributes)
	add("recovery_email_attribute", old.RecoveryEmailAttribute, next.RecoveryEmailAttribute)
	add("excluded_groups", old.ExcludedGroups, next.ExcludedGroups)
	add("password_writeback", old.PasswordWriteback, next.PasswordWriteback)
	return d
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

// State says whether passwords and unlocks may be written, and why not.
type State struct {
	Configured bool
	Writeback  bool // both switches are Yes and a connection exists
	Unlock     bool // unlock without reset is allowed too
	Reason     string
}

// State reads both switches and the connection.
func (s *Service) State(ctx context.Context) (State, error) {
	o, _, err := s.settings.OnPrem(ctx)
	if err != nil {
		return State{}, err
	}
	c, _, err := s.Connection(ctx)
	if err != nil {
		return State{}, err
	}
	st := State{Configured: c.Configured()}
	switch {
	case !st.Configured:
		st.Reason = "No directory connection is configured yet."
	case !o.Writeback:
		st.Reason = "Password writeback is off: \"Write back passwords to your on-premises directory\" is No under Password reset › On-premises integration."
	case !c.PasswordWriteback:
		st.Reason = "Password writeback is off in the directory connection (Optional features › Password writeback)."
	default:
		st.Writeback = true
		st.Unlock = o.Unlock
		if !o.Unlock {
			st.Reason = "\"Allow users to unlock accounts without resetting their password\" is No."
		}
	}
	return st, nil
}

// Detect reads a server's rootDSE to tell AD from OpenLDAP.
func (s *Service) Detect(ctx context.Context, url string, startTLS bool, caPEM string) (directory.Type, error) {
	return directory.Detect(ctx, url, startTLS, caPEM)
}

// Test runs the connection checklist on the stored connection, records the
// result as the writeback service status, and audits that a test was run.
func (s *Service) Test(ctx context.Context, actor audit.Actor, login string) (directory.Checklist, error) {
	cl, _, err := s.Client(ctx)
	if err != nil {
		if errors.Is(err, ErrNotConfigured) {
			_ = s.settings.SetStatus(ctx, settings.ServiceStatus{State: settings.StateNotConfigured, Message: "No directory connection has been set up yet.", CheckedAt: s.now().UTC()})
		}
		return directory.Checklist{}, err
	}
	list := cl.Test(ctx, strings.TrimSpace(login))
	s.recordStatus(ctx, list)
	result, reason := audit.Success, ""
	if !list.OK {
		result, reason = audit.Failure, firstFailure(list)
	}
	err = s.db.InTx(ctx, func(tx *store.Tx) error {
		_, err := audit.Record(ctx, tx, audit.Entry{Category: audit.CategoryDirectoryManagement, Activity: audit.ActivityTestDirectory,
			Actor: actor, Target: audit.Target{Type: "Directory", ID: "on-premises"}, Result: result, Reason: reason,
			Details: map[string]any{"checks": checkLines(list)}})
		return err
	})
	return list, err
}

// RefreshStatus runs the checklist and records it as the service status,
// without an audit row (it is the background health reading).
func (s *Service) RefreshStatus(ctx context.Context) {
	cl, _, err := s.Client(ctx)
	if errors.Is(err, ErrNotConfigured) {
		_ = s.settings.SetStatus(ctx, settings.ServiceStatus{State: settings.StateNotConfigured, Message: "No directory connection has been set up yet.", CheckedAt: s.now().UTC()})
		return
	}
	if err != nil {
		_ = s.settings.SetStatus(ctx, settings.ServiceStatus{State: settings.StateError, Message: errs.MessageOf(err), CheckedAt: s.now().UTC()})
		return
	}
	s.recordStatus(ctx, cl.Test(ctx, ""))
}

// Monitor refreshes the status every interval until ctx ends.
func (s *Service) Monitor(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		s.RefreshStatus(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *Service) recordStatus(ctx context.Context, list directory.Checklist) {
	st := settings.ServiceStatus{State: settings.StateConnected, Message: "Every check passed.", CheckedAt: s.now().UTC(), Details: checkLines(list)}
	if !list.OK {
		st.State, st.Message = settings.StateError, firstFailure(list)
	}
	if err := s.settings.SetStatus(ctx, st); err != nil && ctx.Err() == nil {
		s.log.Error("record writeback service status", "err", err)
	}
}

func firstFailure(l directory.Checklist) string {
	i := slices.IndexFunc(l.Items, func(c directory.Check) bool { return !c.OK })
	if i < 0 {
		return "Checks did not complete."
	}
	return l.Items[i].Name + ": " + l.Items[i].Detail
}

func checkLines(l directory.Checklist) []string {
	out := make([]string, 0, len(l.Items))
	for _, c := range l.Items {
		mark := "OK"
		if !c.OK {
			mark = "FAILED"
		}
		out = append(out, fmt.Sprintf("[%s] %s: %s", mark, c.Name, c.Detail))
	}
	return out
}
