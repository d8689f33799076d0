package selfservice

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/directory"
	"github.com/writeback/writeback/services/errs"
	"github.com/writeback/writeback/services/mail"
	"github.com/writeback/writeback/store"
)

// Audit activities of the helpdesk's tools on a person's self-service.
const (
	ActivityRemoveMethods = "Remove security info (by admin)"
	ActivityLiftBlock     = "Lift self-service block (by admin)"
)

// RegisteredMethod is one method a person registered, as the helpdesk sees
// it: what it is, where codes go (masked), when it was registered; never a
// secret.
type RegisteredMethod struct {
	Method     string
	Label      string
	Detail     string // a masked address or number, or how many questions
	Registered time.Time
}

// UserMethods lists what u registered, and until when u is blocked from
// self-service (zero when not).
func (s *Service) UserMethods(ctx context.Context, u directory.User) ([]RegisteredMethod, time.Time, error) {
	regs, err := s.db.Methods(ctx, u.ID)
	if err != nil {
		return nil, time.Time{}, err
	}
	var out []RegisteredMethod
	for _, m := range regs {
		rm := RegisteredMethod{Method: m.Method, Label: MethodLabel(m.Method), Registered: time.UnixMilli(m.ConfirmedMS).UTC()}
		switch m.Method {
		case MethodEmail:
			if pt, err := s.keys.Open(methodContext(u.ID, MethodEmail), m.Secret); err == nil {
				rm.Detail = Mask(string(pt))
			}
		case MethodQuestions:
			if pt, err := s.keys.Open(methodContext(u.ID, MethodQuestions), m.Secret); err == nil {
				var qs map[string]json.RawMessage // question → answer's hash
				if json.Unmarshal(pt, &qs) == nil && len(qs) > 0 {
					rm.Detail = strconv.Itoa(len(qs)) + " questions"
				}
			}
		}
		out = append(out, rm)
	}
	ph, err := s.db.Phone(ctx, u.ID)
	switch {
	case err == nil:
		rm := RegisteredMethod{Method: MethodSMS, Label: MethodLabel(MethodSMS), Registered: time.UnixMilli(ph.ConfirmedMS).UTC()}
		if pt, err := s.keys.Open(phoneContext(u.ID), ph.Number); err == nil {
			rm.Detail = smsMask(string(pt))
		}
		out = append(out, rm)
	case !errors.Is(err, store.ErrNotFound):
		return nil, time.Time{}, err
	}
	until, err := s.db.BlockedUntil(ctx, u.ID)
	if err != nil || until <= s.now().UnixMilli() {
		return out, time.Time{}, err
	}
	return out, time.UnixMilli(until).UTC(), nil
}

// RemoveMethods removes what u registered: one method, or all of them when
// method is "". The person is told by e-mail (at the directory address and
// a registered one, read before they are removed); the removal is audited.
// It reports how many were removed; removing what is not there is an
// errs.NotFound.
func (s *Service) RemoveMethods(ctx context.Context, actor audit.Actor, u directory.User, method string) (int, error) {
	regs, _, err := s.UserMethods(ctx, u)
	if err != nil {
		return 0, err
	}
	var gone []RegisteredMethod
	for _, m := range regs {
		if method == "" || m.Method == method {
			gone = append(gone, m)
		}
	}
	if len(gone) == 0 {
		return 0, errs.E(errs.NotFound, "Nothing of that is registered (any more): reload the page.", nil)
	}
	dests, err := s.addresses(ctx, u) // before the alternate address goes
	if err != nil {
		return 0, err
	}
	names := make([]string, len(gone))
	for i, m := range gone {
		names[i] = m.Label
	}
	err = s.db.InTx(ctx, func(tx *store.Tx) error {
		for _, m := range gone {
			var err error
			if m.Method == MethodSMS {
				err = tx.DeletePhone(ctx, u.ID)
			} else {
				err = tx.DeleteMethod(ctx, u.ID, m.Method)
			}
			if err != nil {
				return err
			}
		}
		_, err := audit.Record(ctx, tx, audit.Entry{Category: audit.CategoryUserManagement, Activity: ActivityRemoveMethods, Actor: actor,
			Target: audit.Target{Type: "User", ID: u.ID, DN: u.DN, Name: displayName(u)}, Details: map[string]any{"methods": names}})
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("selfservice: remove methods: %w", err)
	}
	if len(dests) > 0 {
		p, _, perr := s.Policy(ctx)
		if perr == nil {
			when := s.now()
			f := store.Flow{UserID: u.ID, UserDN: u.DN, Login: u.Login}
			s.sendAsync(f, actor, dests, func(to string) mail.Message {
				return mail.MethodsRemoved(orgLanguage(p), to, orgName(p), u.DisplayName, names, when, s.baseURL)
			})
		}
	}
	return len(gone), nil
}

// LiftBlock ends u's block from self-service and forgets the failed
// verifications that led to it (else the next one would block again). It
// reports false when u was not blocked; a lift is audited.
func (s *Service) LiftBlock(ctx context.Context, actor audit.Actor, u directory.User) (bool, error) {
	lifted := false
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		until, err := tx.BlockedUntil(ctx, u.ID)
		if err != nil || until <= s.now().UnixMilli() {
			return err
		}
		if err := tx.Unblock(ctx, u.ID); err != nil {
			return err
		}
		lifted = true
		_, err = audit.Record(ctx, tx, audit.Entry{Category: audit.CategoryUserManagement, Activity: ActivityLiftBlock, Actor: actor,
			Target:  audit.Target{Type: "User", ID: u.ID, DN: u.DN, Name: displayName(u)},
			Details: map[string]any{"blocked_until": time.UnixMilli(until).UTC().Format(time.RFC3339)}})
		return err
	})
	if err != nil {
		return false, fmt.Errorf("selfservice: lift block: %w", err)
	}
	return lifted, nil
}
