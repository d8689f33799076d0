package selfservice

import (
	"context"
	"strings"

	"github.com/writeback/writeback/services/directory"
	"github.com/writeback/writeback/services/writeback"
)

// Directory is what self-service needs of the on-premises directory and its
// switches: every step of the reset, unlock and registration flows, and the
// switches /change and /register check. The sign-in with a person's own
// directory password (/change, /register: ChangeLogin or AuthenticateLogin,
// which resolve the login, let admit count the attempt, then bind or
// change) is not part of it: beginSignIn takes the writeback service's
// directory.Directory for it (the LDAP client, or the writeback agents;
// tests give the service a fake of the agents). The writeback service
// provides Directory (writebackDirectory); tests give a fake, so the flows'
// rules get fast tests beside the ones against real directories.
type Directory interface {
	// State reads both writeback switches and whether a connection exists.
	State(ctx context.Context) (writeback.State, error)
	// Lookup finds one user by what a person typed.
	Lookup(ctx context.Context, login string) (directory.User, error)
	// Get re-reads a user by DN.
	Get(ctx context.Context, dn string) (directory.User, error)
	// MemberOf tells whether u is in the group, nested membership included.
	MemberOf(ctx context.Context, u directory.User, groupDN string) (bool, error)
	// Policy reads the password policy that applies to u.
	Policy(ctx context.Context, u directory.User) (directory.Policy, error)
	// Reset writes a new password for u (its DN and ID are enough): it
	// reads the account on the server it writes, refuses it when its ID is
	// no longer u.ID (CodeNotFound) or it is protected or disabled, and
	// returns it as read (a zero User when it could not be read).
	Reset(ctx context.Context, u directory.User, password string, opt directory.ResetOptions) (directory.User, directory.Result, error)
	// Unlock ends a lockout of u.
	Unlock(ctx context.Context, u directory.User) (directory.Result, error)
}

// writebackDirectory is the Directory of a running portal: the writeback
// service's switches and its directory for the stored connection.
type writebackDirectory struct{ wb *writeback.Service }

// key names the stored connection's directory for the Pacer: its type and
// servers, or the agents (which answer in their own time), so that saving
// other settings keeps what was learned.
func (d writebackDirectory) key(ctx context.Context) string {
	c, _, err := d.wb.Connection(ctx)
	if err != nil {
		return ""
	}
	if c.Agents() {
		return writeback.ModeAgents
	}
	return string(c.Type) + " " + strings.Join(c.URLs, " ")
}

func (d writebackDirectory) State(ctx context.Context) (writeback.State, error) {
	return d.wb.State(ctx)
}

func (d writebackDirectory) Lookup(ctx context.Context, login string) (directory.User, error) {
	return d.wb.Lookup(ctx, login)
}

func (d writebackDirectory) Get(ctx context.Context, dn string) (directory.User, error) {
	cl, _, err := d.wb.Client(ctx)
	if err != nil {
		return directory.User{}, err
	}
	u, _, err := cl.Get(ctx, dn)
	return u, err
}

func (d writebackDirectory) MemberOf(ctx context.Context, u directory.User, groupDN string) (bool, error) {
	cl, _, err := d.wb.Client(ctx)
	if err != nil {
		return false, err
	}
	return cl.MemberOf(ctx, u, groupDN)
}

func (d writebackDirectory) Policy(ctx context.Context, u directory.User) (directory.Policy, error) {
	return d.wb.Policy(ctx, u)
}

func (d writebackDirectory) Reset(ctx context.Context, u directory.User, password string, opt directory.ResetOptions) (directory.User, directory.Result, error) {
	cl, _, err := d.wb.Client(ctx)
	if err != nil {
		return directory.User{}, directory.Result{}, err
	}
	return cl.ResetUser(ctx, u, password, opt)
}

func (d writebackDirectory) Unlock(ctx context.Context, u directory.User) (directory.Result, error) {
	cl, _, err := d.wb.Client(ctx)
	if err != nil {
		return directory.Result{}, err
	}
	return cl.Unlock(ctx, u)
}
