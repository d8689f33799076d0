package directory

import (
	"context"
	"time"
)

// Directory is every operation the portal performs on the on-premises
// directory. *Client does them over LDAP (a direct connection); the portal's
// agent hub does them through a connected writeback agent, which runs them
// on a *Client of its own. The writeback service hands one or the other to
// the self-service, helpdesk and checklist code, so those depend on this
// and never on how the directory is reached.
type Directory interface {
	// Find looks a user up by what a person typed.
	Find(ctx context.Context, login string) (User, Result, error)
	// Get re-reads a user by DN.
	Get(ctx context.Context, dn string) (User, Result, error)
	// Search lists users for the helpdesk's search box.
	Search(ctx context.Context, q string, limit int) ([]User, error)
	// Expiring lists the accounts in scope whose password expires before
	// until (see Client.Expiring), for the expiry reminders.
	Expiring(ctx context.Context, groupDN string, until time.Time) ([]User, error)
	// InScope calls f with every account in scope (see Client.InScope),
	// for the registration campaign.
	InScope(ctx context.Context, groupDN string, f func(User) error) error
	// MemberOf tells whether u is in the group, nested membership included.
	MemberOf(ctx context.Context, u User, groupDN string) (bool, error)
	// Policy reads the password policy that applies to u.
	Policy(ctx context.Context, u User) (Policy, error)
	// ResetUser writes a new password for u after reading it again on the
	// server it writes (see Client.ResetUser).
	ResetUser(ctx context.Context, u User, newPassword string, opt ResetOptions) (User, Result, error)
	// ResetLogin finds login and resets its password in one session.
	ResetLogin(ctx context.Context, login, newPassword string, opt ResetOptions) (User, Result, error)
	// Unlock ends a lockout of u.
	Unlock(ctx context.Context, u User) (Result, error)
	// UnlockLogin finds login and unlocks it in one session.
	UnlockLogin(ctx context.Context, login string) (User, Result, error)
	// ChangeLogin resolves login, lets admit count the attempt, and changes
	// the password with the current one.
	ChangeLogin(ctx context.Context, login, oldPassword, newPassword string, admit Admit) (Candidate, Result, error)
	// AuthenticateLogin resolves login, lets admit count the attempt, and
	// checks the person's own password.
	AuthenticateLogin(ctx context.Context, login, password string, admit Admit) (Candidate, Result, error)
	// Test runs the connection checklist, with login as the test account
	// when it is not empty.
	Test(ctx context.Context, login string) Checklist
	// OnOutage makes the directory call f when a real operation finds it
	// unusable.
	OnOutage(f func(error))
	// Close releases its connections.
	Close() error
}

var _ Directory = (*Client)(nil)
