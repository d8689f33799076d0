// Package settings reads and saves the portal's settings documents with
// optimistic concurrency, and records every change in the audit log in the
// same transaction. Readers use Get, which serves a document from memory,
// decoded once per version and handed out as a copy (memory.go).
package settings

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/errs"
	"github.com/writeback/writeback/services/i18n"
	"github.com/writeback/writeback/store"
)

// Meta says which version of a document was read and who saved it last.
type Meta struct {
	Version   int64
	UpdatedAt time.Time // zero when never saved
	UpdatedBy string
}

// OnPrem is the "Password reset › On-premises integration" page.
type OnPrem struct {
	Writeback bool `json:"writeback"` // Write back passwords to your on-premises directory
	Unlock    bool `json:"unlock"`    // Allow users to unlock accounts without resetting their password
}

// Normalize applies the rule that unlock depends on writeback.
func (o OnPrem) Normalize() OnPrem {
	if !o.Writeback {
		o.Unlock = false
	}
	return o
}

const onPremName = "onprem"

// Service reads and writes settings.
type Service struct {
	db *store.DB
}

// New builds the settings service.
func New(db *store.DB) *Service { return &Service{db: db} }

// Load reads a JSON settings document into v (left as is when never saved)
// from the database, decoding it every time; Get serves it from memory.
func Load[T any](ctx context.Context, db *store.DB, name string, v *T) (Meta, error) {
	c, err := db.Config(ctx, name)
	if err != nil {
		return Meta{}, err
	}
	return Decode(c, v)
}

// Decode decodes a stored settings document into v.
func Decode[T any](c store.Config, v *T) (Meta, error) {
	m := Meta{Version: c.Version, UpdatedBy: c.UpdatedBy}
	if c.Version == 0 {
		return m, nil
	}
	m.UpdatedAt = time.UnixMilli(c.UpdatedMS).UTC()
	if err := json.Unmarshal([]byte(c.Value), v); err != nil {
		return m, fmt.Errorf("settings: decode %s: %w", c.Name, err)
	}
	return m, nil
}

// Update saves the settings document name, in one transaction with the
// audit events that describe the change, if it is still at expectVersion; a
// stale version is refused with a Conflict naming who saved last and when.
// change gets the stored value (def when never saved) and returns the next
// value and its events. No events means nothing changed: nothing is written
// then, except that a document never saved is stored so its version starts.
// Every event is recorded with actor.
func Update[T any](ctx context.Context, db *store.DB, name string, expectVersion int64, actor audit.Actor, def T,
	change func(old T) (T, []audit.Entry, error)) (changed bool, meta Meta, err error) {
	err = db.InTx(ctx, func(tx *store.Tx) error {
		cur, err := tx.Config(ctx, name)
		if err != nil {
			return err
		}
		old := def
		if meta, err = Decode(cur, &old); err != nil {
			return err
		}
		if cur.Version != expectVersion {
			return Conflict(cur)
		}
		next, events, err := change(old)
		if err != nil {
			return err
		}
		if len(events) == 0 && cur.Version != 0 {
			return nil
		}
		b, err := json.Marshal(next)
		if err != nil {
			return fmt.Errorf("settings: encode %s: %w", name, err)
		}
		ver, err := tx.PutConfig(ctx, name, expectVersion, string(b), actor.Name)
		if errors.Is(err, store.ErrConflict) {
			return Conflict(cur)
		}
		if err != nil {
			return err
		}
		meta = Meta{Version: ver, UpdatedBy: actor.Name, UpdatedAt: time.Now().UTC()}
		for _, e := range events {
			e.Actor = actor
			if _, err := audit.Record(ctx, tx, e); err != nil {
				return err
			}
		}
		changed = len(events) > 0
		return nil
	})
	if err != nil && errs.KindOf(err) == errs.Internal {
		err = fmt.Errorf("settings: save %s: %w", name, err)
	}
	return changed, meta, err
}

// Conflict is the error for a save based on a version older than cur.
func Conflict(cur store.Config) error {
	return errs.Ef(errs.Conflict, store.ErrConflict, "These settings were changed by %s at %s — review and save again.",
		cur.UpdatedBy, time.UnixMilli(cur.UpdatedMS).UTC().Format("2006-01-02 15:04:05 UTC"))
}

// OnPrem reads the On-premises integration settings, from memory.
func (s *Service) OnPrem(ctx context.Context) (OnPrem, Meta, error) {
	o, m, err := Get(ctx, s.db, onPremName, OnPrem{})
	return o.Normalize(), m, err
}

// SaveOnPrem saves the On-premises integration settings if they are still at
// expectVersion. It records "Enable/Disable password writeback for
// directory" when that switch flips and "Update self-service password reset
// policy" with old and new values when anything changed; an unchanged save
// writes nothing. changed reports whether anything changed.
func (s *Service) SaveOnPrem(ctx context.Context, actor audit.Actor, expectVersion int64, next OnPrem) (bool, Meta, error) {
	next = next.Normalize()
	return Update(ctx, s.db, onPremName, expectVersion, actor, OnPrem{}, func(old OnPrem) (OnPrem, []audit.Entry, error) {
		old = old.Normalize()
		if old == next {
			return next, nil, nil
		}
		var events []audit.Entry
		if old.Writeback != next.Writeback {
			act := audit.ActivityDisableWriteback
			if next.Writeback {
				act = audit.ActivityEnableWriteback
			}
			events = append(events, audit.Entry{Category: audit.CategoryDirectoryManagement, Activity: act,
				Target: audit.Target{Type: "Directory", ID: "on-premises", Name: "On-premises directory"}})
		}
		events = append(events, audit.Entry{Category: audit.CategoryPolicy, Activity: audit.ActivityUpdateSSPRPolicy,
			Target: audit.Target{Type: "Policy", ID: "on-premises-integration", Name: "On-premises integration"},
			Details: map[string]any{
				"writeback_passwords":           audit.Change{Old: yesNo(old.Writeback), New: yesNo(next.Writeback)},
				"unlock_without_password_reset": audit.Change{Old: yesNo(old.Unlock), New: yesNo(next.Unlock)},
			}})
		return next, events, nil
	})
}

func yesNo(b bool) string {
	if b {
		return "Yes"
	}
	return "No"
}

// ServiceState is the health of the on-premises writeback service.
type ServiceState string

// States of the writeback service panel.
const (
	StateNotConfigured ServiceState = "not-configured"
	StateConnected     ServiceState = "connected"
	StateError         ServiceState = "error"
)

// ServiceStatus is the last known state of the writeback service.
type ServiceStatus struct {
	State     ServiceState `json:"state"`
	Message   string       `json:"message"`
	CheckedAt time.Time    `json:"checked_at"`
	Details   []string     `json:"details,omitempty"`
}

// Clone copies the status without sharing its details.
func (s ServiceStatus) Clone() ServiceStatus {
	s.Details = slices.Clone(s.Details)
	return s
}

const statusName = "writeback_status"

// Status reads the last writeback service status.
func (s *Service) Status(ctx context.Context) (ServiceStatus, error) {
	st, _, err := Get(ctx, s.db, statusName, ServiceStatus{State: StateNotConfigured, Message: i18n.Key("No directory connection has been set up yet.")})
	return st, err
}

// SetStatus records the writeback service status (not audited: it is a
// health reading, not a change).
func (s *Service) SetStatus(ctx context.Context, st ServiceStatus) error {
	return PutReading(ctx, s.db, statusName, st)
}

// PutReading stores v as the document name without a version check or an
// audit row: for health readings (the writeback service status, the last
// mail delivery), which the portal writes itself and nobody edits.
func PutReading(ctx context.Context, db *store.DB, name string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return db.InTx(ctx, func(tx *store.Tx) error {
		cur, err := tx.Config(ctx, name)
		if err != nil {
			return err
		}
		_, err = tx.PutConfig(ctx, name, cur.Version, string(b), "system")
		return err
	})
}

// Retention is the audit log's retention setting.
type Retention struct {
	Days int `json:"days"`
}

// DefaultRetentionDays keeps a year of audit events.
const DefaultRetentionDays = 365

const retentionName = "audit"

// Retention reads the audit log retention.
func (s *Service) Retention(ctx context.Context) (Retention, Meta, error) {
	return Get(ctx, s.db, retentionName, Retention{Days: DefaultRetentionDays})
}

// RetentionDays is Retention for the pruning job.
func (s *Service) RetentionDays(ctx context.Context) (int, error) {
	r, _, err := s.Retention(ctx)
	return r.Days, err
}

// SaveRetention changes the retention period (1 to 3650 days), audited as
// "Update audit log retention".
func (s *Service) SaveRetention(ctx context.Context, actor audit.Actor, expectVersion int64, days int) (bool, error) {
	if days < 1 || days > 3650 {
		return false, errs.FieldErrors(map[string]string{"retention_days": "Enter 1 to 3650 days."})
	}
	changed, _, err := Update(ctx, s.db, retentionName, expectVersion, actor, Retention{Days: DefaultRetentionDays},
		func(old Retention) (Retention, []audit.Entry, error) {
			if old.Days == days {
				return old, nil, nil
			}
			return Retention{Days: days}, []audit.Entry{{Category: audit.CategoryAuditLog, Activity: audit.ActivityUpdateRetention,
				Target: audit.Target{Type: "AuditLog", ID: "audit-log"}, Details: map[string]any{"retention_days": audit.Change{Old: old.Days, New: days}}}}, nil
		})
	return changed, err
}
