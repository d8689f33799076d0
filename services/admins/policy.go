package admins

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/errs"
	"github.com/writeback/writeback/services/settings"
	"github.com/writeback/writeback/store"
)

// Policy says which roles must sign in with a second factor.
type Policy struct {
	GlobalAdmin   bool `json:"global_admin"`
	HelpdeskAdmin bool `json:"helpdesk_admin"`
	ReportsReader bool `json:"reports_reader"`
}

// DefaultPolicy requires a second factor of Global Administrators only. It
// applies to a portal that never saved the policy, existing ones included:
// their Global Administrators enrol at their next sign-in.
var DefaultPolicy = Policy{GlobalAdmin: true}

const policyName = "admin_signin"

// Requires reports whether role must sign in with a second factor.
func (p Policy) Requires(role Role) bool {
	switch role {
	case GlobalAdmin:
		return p.GlobalAdmin
	case HelpdeskAdmin:
		return p.HelpdeskAdmin
	case ReportsReader:
		return p.ReportsReader
	}
	return true
}

// Policy reads the second-factor policy.
func (s *Service) Policy(ctx context.Context) (Policy, settings.Meta, error) {
	return settings.Get(ctx, s.db, policyName, DefaultPolicy)
}

func requiredWord(b bool) string {
	if b {
		return "Required"
	}
	return "Optional"
}

// SavePolicy saves the second-factor policy if it is still at
// expectVersion, recording "Update administrator sign-in policy" with the
// old and new values. changed reports whether anything changed.
func (s *Service) SavePolicy(ctx context.Context, actor audit.Actor, expectVersion int64, next Policy) (bool, error) {
	changed, _, err := settings.Update(ctx, s.db, policyName, expectVersion, actor, DefaultPolicy, func(old Policy) (Policy, []audit.Entry, error) {
		if old == next {
			return next, nil, nil
		}
		return next, []audit.Entry{{Category: audit.CategoryPolicy, Activity: audit.ActivityUpdateAdminPolicy,
			Target: audit.Target{Type: "Policy", ID: "administrator-sign-in", Name: "Administrator sign-in"},
			Details: map[string]any{
				"global_admin":   audit.Change{Old: requiredWord(old.GlobalAdmin), New: requiredWord(next.GlobalAdmin)},
				"helpdesk_admin": audit.Change{Old: requiredWord(old.HelpdeskAdmin), New: requiredWord(next.HelpdeskAdmin)},
				"reports_reader": audit.Change{Old: requiredWord(old.ReportsReader), New: requiredWord(next.ReportsReader)},
			}}}, nil
	})
	return changed, err
}

// ResetSignIn removes every second factor and recovery code of the
// administrator id, makes their password unusable, ends their sessions and
// returns a one-time token (valid ResetTokenTTL) with which they choose a
// new password. Someone who had a second factor must enrol one again at the
// next sign-in, whatever the policy. A Global Administrator cannot reset
// themselves from the pages (self is their ID; 0 on the command line).
func (s *Service) ResetSignIn(ctx context.Context, actor audit.Actor, self, id int64) (string, error) {
	if self != 0 && self == id {
		return "", ErrCannotResetSelf
	}
	unusable, err := HashPassword(randomToken(), s.params)
	if err != nil {
		return "", err
	}
	tok := randomToken()
	now := s.now()
	err = s.db.InTx(ctx, func(tx *store.Tx) error {
		a, err := tx.AdminByID(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			return errs.E(errs.NotFound, "That administrator does not exist.", err)
		}
		if err != nil {
			return err
		}
		had, err := tx.DeleteAdminFactors(ctx, a.ID)
		if err != nil {
			return err
		}
		if had > 0 {
			if err := tx.SetEnrolRequired(ctx, a.ID, true, now.UnixMilli()); err != nil {
				return err
			}
		}
		a.PasswordHash = unusable
		if err := tx.UpdateAdmin(ctx, a); err != nil {
			return err
		}
		if err := tx.DeleteSessionsOf(ctx, a.ID); err != nil {
			return err
		}
		if err := tx.DeleteAdminSignInsOf(ctx, a.ID); err != nil {
			return err
		}
		if err := tx.InsertAdminResetToken(ctx, hashToken(tok), a.ID, now.UnixMilli(), now.Add(ResetTokenTTL).UnixMilli()); err != nil {
			return err
		}
		_, err = audit.Record(ctx, tx, audit.Entry{Category: audit.CategoryRoleManagement, Activity: audit.ActivityResetAdminSignIn,
			Actor: actor, Target: adminTarget(a), Details: map[string]any{"factors_removed": had, "must_enrol_again": had > 0,
				"link_valid_hours": int(ResetTokenTTL.Hours())}})
		return err
	})
	if err != nil {
		if errs.KindOf(err) != errs.Internal {
			return "", err
		}
		return "", fmt.Errorf("admins: reset sign-in: %w", err)
	}
	return tok, nil
}

// ResetTarget returns the administrator a valid reset token is for.
func (s *Service) ResetTarget(ctx context.Context, token string) (store.Admin, error) {
	if token == "" {
		return store.Admin{}, ErrResetLinkBad
	}
	id, err := s.db.AdminResetToken(ctx, hashToken(token), s.now().UnixMilli())
	if errors.Is(err, store.ErrNotFound) {
		return store.Admin{}, ErrResetLinkBad
	}
	if err != nil {
		return store.Admin{}, err
	}
	return s.db.AdminByID(ctx, id)
}

// SetPasswordWithToken sets a new password with a one-time reset token and
// uses the token up.
func (s *Service) SetPasswordWithToken(ctx context.Context, token, password string, from audit.Actor) (store.Admin, error) {
	n := NewAdmin{Email: "x@example.com", Name: "x", Role: GlobalAdmin, Password: password}
	if err := n.validate(); err != nil {
		return store.Admin{}, errs.FieldErrors(map[string]string{"password": errs.FieldsOf(err)["password"]})
	}
	hash, err := HashPassword(password, s.params)
	if err != nil {
		return store.Admin{}, err
	}
	var out store.Admin
	err = s.db.InTx(ctx, func(tx *store.Tx) error {
		id, err := tx.UseAdminResetToken(ctx, hashToken(token), s.now().UnixMilli())
		if errors.Is(err, store.ErrNotFound) {
			return ErrResetLinkBad
		}
		if err != nil {
			return err
		}
		a, err := tx.AdminByID(ctx, id)
		if err != nil {
			return err
		}
		a.PasswordHash = hash
		if err := tx.UpdateAdmin(ctx, a); err != nil {
			return err
		}
		actor := from
		actor.Type, actor.ID, actor.Name = "admin", strconv.FormatInt(a.ID, 10), a.Name+" <"+a.Email+">"
		_, err = audit.Record(ctx, tx, audit.Entry{Category: audit.CategoryAuthentication, Activity: audit.ActivityAdminSetPassword,
			Actor: actor, Target: adminTarget(a)})
		out = a
		return err
	})
	if err != nil {
		if errs.KindOf(err) != errs.Internal {
			return store.Admin{}, err
		}
		return store.Admin{}, fmt.Errorf("admins: set password: %w", err)
	}
	return out, nil
}
