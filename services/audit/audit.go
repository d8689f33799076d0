// Package audit builds the events of the audit log: who did what to which
// target, from where, and whether it worked. Events are appended in the same
// transaction as the change they record.
package audit

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/writeback/writeback/store"
)

// Categories.
const (
	CategoryDirectoryManagement = "DirectoryManagement"
	CategoryUserManagement      = "UserManagement"
	CategoryPolicy              = "Policy"
	CategoryAuthentication      = "Authentication"
	CategoryRoleManagement      = "RoleManagement"
	CategoryAuditLog            = store.AuditLogCategory // the audit log's own upkeep: export, prune
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
	ActivityExportAudit         = "Export audit log"
	ActivityPruneAudit          = store.PruneActivity // "Prune audit log", appended by store.PruneAudit
	// An administrator's second factor (services/admins).
	ActivityAdminSecondFactor = "Administrator sign-in (second factor)"
	ActivityAddAdminFactor    = "Add administrator sign-in method"
	ActivityRemoveAdminFactor = "Remove administrator sign-in method"
	ActivityRecoveryCodes     = "Create administrator recovery codes"
	ActivityResetAdminSignIn  = "Reset administrator sign-in"
	ActivityAdminSetPassword  = "Set administrator password (reset link)"
	ActivityEnableAdmin       = "Enable administrator"
	ActivityUpdateAdminPolicy = "Update administrator sign-in policy"
	// Banned passwords (services/banned).
	ActivityUpdatePasswordProtection = "Update password protection"
	// ActivitySendAlert: the Global Administrators were mailed that an
	// incident began or ended (services/alerts).
	ActivitySendAlert = "Send alert e-mail"
	// Password-expiry reminders (services/reminders): the settings, and
	// each reminder mailed to a person whose password expires soon.
	ActivityUpdateExpiryReminders = "Update password expiry reminders"
	ActivitySendExpiryReminder    = "Send password expiry reminder"
	// Registration campaign (services/campaign): the settings, and each
	// run started, stopped or finished, with its counts (not who).
	ActivityUpdateRegistrationCampaign = "Update registration campaign"
	ActivityStartRegistrationCampaign  = "Start registration campaign"
	ActivityStopRegistrationCampaign   = "Stop registration campaign"
	ActivityFinishRegistrationCampaign = "Finish registration campaign"
)

// Activities lists the activities above, for filters, in alphabetical order.
var Activities = []string{
	ActivityAddAdmin, ActivityAdminSignIn, ActivityAdminSignOut, ActivityBlockedSelfService, ActivityChangeSelfService,
	ActivityDisableAdmin, ActivityDisableWriteback, ActivityEnableWriteback, ActivityExportAudit, ActivityPruneAudit,
	ActivityResetByAdmin, ActivityResetSelfService, ActivitySelfServiceProgress, ActivityTestDirectory, ActivityUnlockByAdmin,
	ActivityUnlockSelfService, ActivityUpdateAdmin, ActivityUpdateRetention, ActivityUpdateDirectory, ActivityUpdateSSPRPolicy,
	ActivityRegisterSecurity,
	ActivityAdminSecondFactor, ActivityAddAdminFactor, ActivityRemoveAdminFactor, ActivityRecoveryCodes,
	ActivityResetAdminSignIn, ActivityAdminSetPassword, ActivityEnableAdmin, ActivityUpdateAdminPolicy,
	ActivityUpdatePasswordProtection,
	ActivitySendAlert,
	ActivityUpdateExpiryReminders, ActivitySendExpiryReminder,
	ActivityUpdateRegistrationCampaign, ActivityStartRegistrationCampaign, ActivityStopRegistrationCampaign,
	ActivityFinishRegistrationCampaign,
}

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
		// Without HTML escaping "&" and "<" stay as typed, so the free-text
		// filter finds them.
		var b bytes.Buffer
		if err := newJSONEncoder(&b).Encode(e.Details); err != nil {
			return store.AuditEvent{}, fmt.Errorf("audit: encode details: %w", err)
		}
		details = strings.TrimSuffix(b.String(), "\n")
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

// Prune removes the events recorded before cutoff, keeping the chain
// verifiable, and records a "Prune audit log" event by actor; see
// store.DB.PruneAudit.
func Prune(ctx context.Context, db *store.DB, cutoff time.Time, actor Actor) (int64, error) {
	return db.PruneAudit(ctx, cutoff.UnixMilli(), store.AuditActor{
		Type: actor.Type, ID: actor.ID, Name: actor.Name, ClientIP: actor.ClientIP, UserAgent: actor.UserAgent,
	})
}

// FilterDetails describes a filter for the Details of an event such as
// ActivityExportAudit, keeping only the fields that are set.
func FilterDetails(f store.AuditFilter) map[string]any {
	d := map[string]any{}
	ms := func(key string, v int64) {
		if v > 0 {
			d[key] = time.UnixMilli(v).UTC().Format(TimeFormat)
		}
	}
	ms("since", f.SinceMS)
	ms("until", f.UntilMS)
	for k, v := range map[string][]string{"categories": f.Categories, "activities": f.Activities} {
		if len(v) > 0 {
			d[k] = v
		}
	}
	for k, v := range map[string]string{
		"result": f.Result, "actor": f.Actor, "target": f.Target, "actor_id": f.ActorID,
		"target_id": f.TargetID, "text": f.Text, "correlation_id": f.CorrelationID,
	} {
		if v != "" {
			d[k] = v
		}
	}
	return d
}

// Changes collects old → new values for an event's Details.
type Changes map[string]any

// Add records name when its old and new values differ.
func (c Changes) Add(name string, old, new any) {
	if fmt.Sprint(old) != fmt.Sprint(new) {
		c[name] = Change{Old: old, New: new}
	}
}
