package selfservice

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/store"
)

// confirmedAt is when userID last confirmed what they registered: the
// oldest confirmation among their methods and registered number (zero when
// nothing is registered).
func (s *Service) confirmedAt(ctx context.Context, userID string) (time.Time, error) {
	regs, err := s.db.Methods(ctx, userID)
	if err != nil {
		return time.Time{}, err
	}
	oldest := int64(0)
	for _, m := range regs {
		if oldest == 0 || m.ConfirmedMS < oldest {
			oldest = m.ConfirmedMS
		}
	}
	ph, err := s.db.Phone(ctx, userID)
	switch {
	case err == nil:
		if oldest == 0 || ph.ConfirmedMS < oldest {
			oldest = ph.ConfirmedMS
		}
	case !errors.Is(err, store.ErrNotFound):
		return time.Time{}, err
	}
	if oldest == 0 {
		return time.Time{}, nil
	}
	return time.UnixMilli(oldest).UTC(), nil
}

// reconfirmDue reports whether userID registered something and confirmed
// it longer ago than the policy's re-confirmation period.
func (s *Service) reconfirmDue(ctx context.Context, userID string) (bool, error) {
	if userID == "" {
		return false, nil
	}
	p, _, err := s.Policy(ctx)
	if err != nil || p.ReconfirmDays <= 0 {
		return false, err
	}
	at, err := s.confirmedAt(ctx, userID)
	if err != nil || at.IsZero() {
		return false, err
	}
	return s.now().Sub(at) > time.Duration(p.ReconfirmDays)*24*time.Hour, nil
}

// ConfirmMethods records, in a registration flow, that the person checked
// what they registered and it is still right: the re-confirmation period
// starts again. Audited as registering security info.
func (s *Service) ConfirmMethods(ctx context.Context, id, browser string, from audit.Actor) error {
	fl, err := s.registerFlow(ctx, id, browser)
	if err != nil {
		return err
	}
	now := s.now().UnixMilli()
	err = s.db.InTx(ctx, func(tx *store.Tx) error {
		n, err := tx.ConfirmRegistrations(ctx, fl.UserID, now)
		if err != nil || n == 0 {
			return err
		}
		e := entry(audit.ActivityRegisterSecurity, from, fl.Flow, map[string]any{"step": "confirm registered methods", "methods": n})
		_, err = audit.Record(ctx, tx, e)
		return err
	})
	if err != nil {
		return fmt.Errorf("selfservice: confirm methods: %w", err)
	}
	return nil
}
