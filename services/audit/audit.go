// Package audit builds the events of the audit log: who did what to which
// target, from where, and whether it worked. Events are appended in the same
// transaction as the change they record.
package audit

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/writeback/writeback/store"
)

// Categories.
const (
	CategoryDirectoryManagement = "DirectoryManagement"
	CategoryUserManagement      = "UserManagement"
	CategoryPolicy              = "Policy"
	CategoryAuthentication      = "Authentication"
	CategoryRoleManagement      = "RoleManagement"
)

// Activities used across the portal. Their names are what administrators
// filter on; do not rename one once released.
const (
	ActivityEnableWriteback     = "Enable password writeback for directory"
	ActivityDisableWriteback    = "Disable password writeback for directory"
	ActivityUpdateSSPRPolicy    = "Update self-service password reset policy"
	ActivityAdminSignIn         = "Administrator sign-in"
	ActivityAdminSignOut        = "Administrator sign-out"
	ActivityAddAdmin            = "Add administrator"
	ActivityUpdateAdmin         = "Update administrator"
	ActivityDisableAdmin        = "Disable administrator"
	ActivityUpdateDirectory     = "Update directory connection"
	ActivityTestDirectory       = "Test directory connection"
	ActivityResetByAdmin        = "Reset password (by admin)"
	ActivityUnlockByAdmin       = "Unlock user account (by admin)"
	ActivityResetSelfService    = "Reset password (self-service)"
	ActivityUnlockSelfService   = "Unlock user account (self-service)"
	ActivityChangeSelfService   = "Change password (self-service)"
	ActivityRegisterSecurity    = "User registered security info"
	ActivityBlockedSelfService  = "Blocked from self-service password reset"
	ActivitySelfServiceProgress = "Self-service password reset flow activity progress"
)

// Results.
const (
	Success = "success"
	Failure = "failure"
)

// Actor is who acted, and from where.
type Actor struct {
	Type      string // admin, user, system, cli, anonymous
	ID        string
	Name      string
	ClientIP  string
	UserAgent string
}

// CommandLine is the actor for changes made with the writeback command.
var CommandLine = Actor{Type: "cli", ID: "cli", Name: "command line"}

// System is the actor for the portal's own background work.
var System = Actor{Type: "system", ID: "system", Name: "Writeback"}

// Target is what an event is about.
type Target struct {
	Type string // e.g. Directory, User, Administrator, Policy
	ID   string
	DN   string
	Name string
}

// Entry is an event before it is stored.
type Entry struct {
	Category      string
	Activity      string
	Actor         Actor
	Target        Target
	Result        string
	Reason        string
	CorrelationID string
	Details       map[string]any // never a password, code or answer
}

// Change is an old → new pair for Details.
type Change struct {
	Old any `json:"old"`
	New any `json:"new"`
}

// Record appends e to the audit log inside tx.
func Record(ctx context.Context, tx *store.Tx, e Entry) (store.AuditEvent, error) {
	details := "{}"
	if len(e.Details) > 0 {
		b, err := json.Marshal(e.Details)
		if err != nil {
			return store.AuditEvent{}, fmt.Errorf("audit: encode details: %w", err)
		}
		details = string(b)
	}
	if e.Result == "" {
		e.Result = Success
	}
	ev := store.AuditEvent{
		Category: e.Category, Activity: e.Activity,
		ActorType: e.Actor.Type, ActorID: e.Actor.ID, ActorName: e.Actor.Name,
		TargetType: e.Target.Type, TargetID: e.Target.ID, TargetDN: e.Target.DN, TargetName: e.Target.Name,
		Result: e.Result, Reason: e.Reason, ClientIP: e.Actor.ClientIP, UserAgent: e.Actor.UserAgent,
		CorrelationID: e.CorrelationID, Details: details,
	}
	if err := tx.AppendAudit(ctx, &ev); err != nil {
		return ev, err
	}
	return ev, nil
}
