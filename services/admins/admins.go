// Package admins manages the portal's administrators: their roles, argon2id
// password hashes, sign-in with throttling, server-side sessions, and the
// one-time link that creates the first Global Administrator.
package admins

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/mail"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/errs"
	"github.com/writeback/writeback/services/i18n"
	"github.com/writeback/writeback/services/keyring"
	"github.com/writeback/writeback/services/passkeys"
	"github.com/writeback/writeback/services/ratelimit"
	"github.com/writeback/writeback/store"
)

// Role is an administrator role.
type Role string

// The roles.
const (
	GlobalAdmin   Role = "global-admin"
	HelpdeskAdmin Role = "helpdesk-admin"
	ReportsReader Role = "reports-reader"
)

// Roles lists every role, most powerful first.
var Roles = []Role{GlobalAdmin, HelpdeskAdmin, ReportsReader}

// Label is the role's name as administrators know it.
func (r Role) Label() string {
	switch r {
	case GlobalAdmin:
		return i18n.Key("Global Administrator")
	case HelpdeskAdmin:
		return i18n.Key("Helpdesk Administrator")
	case ReportsReader:
		return i18n.Key("Reports Reader")
	}
	return string(r)
}

// ParseRole validates a role name.
func ParseRole(s string) (Role, error) {
	for _, r := range Roles {
		if string(r) == s {
			return r, nil
		}
	}
	return "", errs.Invalidf("unknown role %q: use global-admin, helpdesk-admin or reports-reader", s)
}

// Session lifetimes.
const (
	IdleTimeout     = 30 * time.Minute
	AbsoluteTimeout = 12 * time.Hour
	SetupTokenTTL   = time.Hour
	MinPasswordLen  = 12
)

// ErrBadCredentials is the one answer to a failed sign-in, whatever failed.
var ErrBadCredentials = errs.E(errs.Unauthorized, "That e-mail address and password don't match an active administrator.", nil)

// ErrThrottled is returned while sign-in is throttled for an account or address.
var ErrThrottled = errs.E(errs.TooMany, "Too many sign-in attempts. Wait 15 minutes and try again.", nil)

// Sign-in limits: wrong passwords per administrator (or per unknown e-mail
// address) and per client address within AttemptWindow. They are counted
// in the database, so every portal process shares them.
const (
	AccountAttempts = 5
	AddressAttempts = 20
	AttemptWindow   = 15 * time.Minute
)

// ErrNoSession means the session cookie names no live session.
var ErrNoSession = errors.New("admins: no live session")

// Service is the administrators service.
type Service struct {
	db     *store.DB
	log    *slog.Logger
	now    func() time.Time
	params HashParams
	// dummyHash is a hash nothing matches, with the cost of real ones:
	// checked for unknown e-mail addresses. Making it hashes nothing.
	dummyHash string
	keys      *keyring.Keyring  // seals second-factor secrets (WithKeyring)
	passkeys  *passkeys.Service // WebAuthn relying party (WithPasskeys)
}

// New builds the service. params sets the argon2id cost.
func New(db *store.DB, log *slog.Logger, params HashParams, opts ...Option) (*Service, error) {
	s := &Service{db: db, log: log, now: time.Now, params: params, dummyHash: DummyHash(params)}
	for _, o := range opts {
		o(s)
	}
	return s, nil
}

// SetClock replaces the clock (tests).
func (s *Service) SetClock(now func() time.Time) { s.now = now }

// NewAdmin is what it takes to add an administrator.
type NewAdmin struct {
	Email    string
	Name     string
	Role     Role
	Password string
}

func (n *NewAdmin) validate() error {
	n.Email = strings.TrimSpace(n.Email)
	n.Name = strings.TrimSpace(n.Name)
	f := map[string]errs.Text{}
	if a, err := mail.ParseAddress(n.Email); err != nil || a.Address != n.Email || len(n.Email) > 254 {
		f["email"] = errs.Textf("Enter an e-mail address like name@example.com.")
	}
	if n.Name == "" || utf8.RuneCountInString(n.Name) > 200 {
		f["name"] = errs.Textf("Enter a name of 1 to 200 characters.")
	}
	if _, err := ParseRole(string(n.Role)); err != nil {
		f["role"] = errs.Textf("Choose a role.")
	}
	if utf8.RuneCountInString(n.Password) < MinPasswordLen {
		f["password"] = errs.Textf("Use at least %d characters.", MinPasswordLen)
	} else if len(n.Password) > 1024 {
		f["password"] = errs.Textf("Use at most 1024 characters.")
	}
	if len(f) > 0 {
		return errs.FieldTexts(f)
	}
	return nil
}

// Create adds an administrator and records it in the audit log.
func (s *Service) Create(ctx context.Context, actor audit.Actor, n NewAdmin) (store.Admin, error) {
	if err := n.validate(); err != nil {
		return store.Admin{}, err
	}
	hash, err := HashPassword(n.Password, s.params)
	if err != nil {
		return store.Admin{}, err
	}
	a := store.Admin{Email: n.Email, Name: n.Name, Role: string(n.Role), PasswordHash: hash}
	err = s.db.InTx(ctx, func(tx *store.Tx) error {
		id, err := tx.InsertAdmin(ctx, a)
		if err != nil {
			return err
		}
		a.ID = id
		_, err = audit.Record(ctx, tx, audit.Entry{
			Category: audit.CategoryRoleManagement, Activity: audit.ActivityAddAdmin, Actor: actor,
			Target:  adminTarget(a),
			Details: map[string]any{"role": n.Role.Label(), "email": a.Email},
		})
		return err
	})
	if errors.Is(err, store.ErrDuplicate) {
		return store.Admin{}, errs.FieldErrors(map[string]string{"email": "An administrator with this e-mail address already exists."})
	}
	if err != nil {
		return store.Admin{}, fmt.Errorf("admins: create: %w", err)
	}
	return a, nil
}

// CreateFirst creates the first Global Administrator with a one-time setup
// token. It fails once any administrator exists or the token is not valid.
func (s *Service) CreateFirst(ctx context.Context, token string, actor audit.Actor, n NewAdmin) (store.Admin, error) {
	n.Role = GlobalAdmin
	if err := n.validate(); err != nil {
		return store.Admin{}, err
	}
	hash, err := HashPassword(n.Password, s.params)
	if err != nil {
		return store.Admin{}, err
	}
	a := store.Admin{Email: n.Email, Name: n.Name, Role: string(GlobalAdmin), PasswordHash: hash}
	err = s.db.InTx(ctx, func(tx *store.Tx) error {
		count, err := tx.CountAdmins(ctx)
		if err != nil {
			return err
		}
		ok, err := tx.UseSetupToken(ctx, hashToken(token), s.now().UnixMilli())
		if err != nil {
			return err
		}
		if !ok || count > 0 {
			return ErrSetupLinkInvalid
		}
		if a.ID, err = tx.InsertAdmin(ctx, a); err != nil {
			return err
		}
		actor.ID, actor.Name, actor.Type = strconv.FormatInt(a.ID, 10), a.Name, "admin"
		_, err = audit.Record(ctx, tx, audit.Entry{
			Category: audit.CategoryRoleManagement, Activity: audit.ActivityAddAdmin, Actor: actor,
			Target: adminTarget(a), Details: map[string]any{"role": GlobalAdmin.Label(), "email": a.Email, "via": "setup link"},
		})
		return err
	})
	if err != nil {
		if errs.KindOf(err) != errs.Internal {
			return store.Admin{}, err
		}
		return store.Admin{}, fmt.Errorf("admins: create first: %w", err)
	}
	return a, nil
}

// ErrSetupLinkInvalid is returned for an unknown, used or expired setup link.
var ErrSetupLinkInvalid = errs.E(errs.NotFound, "This setup link is not valid: it has been used, has expired, or an administrator already exists. Restart the server to get a new link, or sign in.", nil)

// NewSetupToken returns a fresh one-time setup token while no administrator
// exists, and "" otherwise.
func (s *Service) NewSetupToken(ctx context.Context) (string, error) {
	n, err := s.db.CountAdmins(ctx)
	if err != nil || n > 0 {
		return "", err
	}
	tok := randomToken()
	now := s.now()
	if err := s.db.InsertSetupToken(ctx, hashToken(tok), now.UnixMilli(), now.Add(SetupTokenTTL).UnixMilli()); err != nil {
		return "", err
	}
	return tok, nil
}

// SetupTokenValid reports whether a setup link can still be used.
func (s *Service) SetupTokenValid(ctx context.Context, token string) (bool, error) {
	if token == "" {
		return false, nil
	}
	n, err := s.db.CountAdmins(ctx)
	if err != nil || n > 0 {
		return false, err
	}
	return s.db.SetupTokenValid(ctx, hashToken(token), s.now().UnixMilli())
}

// Authenticate checks an e-mail and password. Every failure returns
// ErrBadCredentials (or ErrThrottled, or ErrBusy) after the same amount of
// work, and is recorded in the audit log.
//
// The attempt reserves its slot in the database before the argon2id hash
// runs, keyed on the administrator the address belongs to (or the typed
// address when it belongs to none) and on the client address, so concurrent
// wrong passwords never get more than AccountAttempts hashes evaluated.
func (s *Service) Authenticate(ctx context.Context, email, password string, from audit.Actor) (store.Admin, error) {
	email = strings.ToLower(strings.TrimSpace(email))
	a, err := s.db.AdminByEmail(ctx, email)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return store.Admin{}, err
	}
	found := err == nil
	acct := ratelimit.Limit{Bucket: store.BucketAdminName, Key: ratelimit.Key(email), Max: AccountAttempts, Window: AttemptWindow, Outside: -1}
	if found {
		acct.Bucket, acct.Key = store.BucketAdminAccount, keyOf(a.ID)
	}
	addr := ratelimit.Limit{Bucket: store.BucketAdminAddress, Key: ratelimit.Key(from.ClientIP), Max: AddressAttempts, Window: AttemptWindow, Outside: -1}
	att, refused, err := ratelimit.Reserve(ctx, s.db, s.now(), addr, acct)
	if err != nil {
		return store.Admin{}, err
	}
	if refused != nil {
		why := "throttled: too many attempts for this account"
		if refused.Limit.Bucket == store.BucketAdminAddress {
			why = "throttled: too many attempts from this address"
		}
		s.recordSignIn(ctx, from, email, a, audit.Failure, why)
		return store.Admin{}, ErrThrottled
	}
	hash := a.PasswordHash
	if !found {
		hash = s.dummyHash
	}
	ok, verr := VerifyPassword(hash, password)
	if errors.Is(verr, ErrBusy) {
		// Not a wrong password: the hash never ran.
		_ = att.Release(ctx)
		s.recordSignIn(ctx, from, email, a, audit.Failure, "busy: too many password checks running")
		return store.Admin{}, ErrBusy
	}
	reason := ""
	switch {
	case !found:
		reason = "unknown e-mail address"
	case verr != nil || !ok:
		reason = "wrong password"
	case a.Disabled:
		reason = "administrator is disabled"
	case password == "":
		reason = "empty password"
	}
	if reason != "" {
		if err := att.Fail(ctx); err != nil {
			s.log.ErrorContext(ctx, "count failed sign-in", "err", err)
		}
		s.recordSignIn(ctx, from, email, a, audit.Failure, reason)
		return store.Admin{}, ErrBadCredentials
	}
	// The right password: this attempt does not count, and the account's
	// earlier failures are forgotten (only its own password can do that;
	// the address's count stays).
	if err := att.Release(ctx); err != nil {
		s.log.ErrorContext(ctx, "release sign-in attempt", "err", err)
	}
	if err := s.db.ClearAttempts(ctx, acct.Bucket, acct.Key); err != nil {
		s.log.ErrorContext(ctx, "clear failed sign-ins", "err", err)
	}
	s.recordSignIn(ctx, from, email, a, audit.Success, "")
	return a, nil
}

// keyOf is the budget key of the administrator with ID id.
func keyOf(id int64) string { return ratelimit.Key(strconv.FormatInt(id, 10)) }

func (s *Service) recordSignIn(ctx context.Context, from audit.Actor, email string, a store.Admin, result, reason string) {
	actor := from
	actor.Type, actor.Name = "anonymous", email
	target := audit.Target{Type: "Administrator", Name: email}
	if a.ID != 0 {
		actor.Type, actor.ID, actor.Name = "admin", strconv.FormatInt(a.ID, 10), a.Name
		target = adminTarget(a)
	}
	// The password step: a second factor may follow, recorded as
	// "Administrator sign-in (second factor)".
	var details map[string]any
	if result == audit.Success {
		details = map[string]any{"step": "password"}
	}
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		_, err := audit.Record(ctx, tx, audit.Entry{
			Category: audit.CategoryAuthentication, Activity: audit.ActivityAdminSignIn,
			Actor: actor, Target: target, Result: result, Reason: reason, Details: details,
		})
		return err
	})
	if err != nil {
		s.log.ErrorContext(ctx, "record sign-in", "err", err)
	}
}

// StartSession creates a session for an administrator and returns the raw
// session ID for the cookie; only its hash is stored.
func (s *Service) StartSession(ctx context.Context, a store.Admin, from audit.Actor) (string, error) {
	raw := randomToken()
	now := s.now().UnixMilli()
	ua := from.UserAgent
	if len(ua) > 300 {
		ua = ua[:300]
	}
	err := s.db.InsertSession(ctx, store.Session{IDHash: hashToken(raw), AdminID: a.ID, CreatedMS: now, LastSeenMS: now,
		ClientIP: from.ClientIP, UserAgent: ua})
	return raw, err
}

// Resolve returns the administrator of a live session and refreshes its idle
// timer. Expired sessions are deleted.
func (s *Service) Resolve(ctx context.Context, rawID string) (store.Admin, error) {
	if rawID == "" {
		return store.Admin{}, ErrNoSession
	}
	h := hashToken(rawID)
	// One query for the session and its administrator: every signed-in
	// request makes it.
	sess, a, err := s.db.SessionAdmin(ctx, h)
	if errors.Is(err, store.ErrNotFound) {
		return store.Admin{}, ErrNoSession
	}
	if err != nil {
		return store.Admin{}, err
	}
	now := s.now()
	if now.Sub(time.UnixMilli(sess.LastSeenMS)) >= IdleTimeout || now.Sub(time.UnixMilli(sess.CreatedMS)) >= AbsoluteTimeout || a.Disabled {
		_ = s.db.DeleteSession(ctx, h)
		return store.Admin{}, ErrNoSession
	}
	// Touch at most once a minute to keep reads cheap.
	if now.Sub(time.UnixMilli(sess.LastSeenMS)) > time.Minute {
		if err := s.db.TouchSession(ctx, h, now.UnixMilli()); err != nil {
			return store.Admin{}, err
		}
	}
	return a, nil
}

// EndSession signs a session out.
func (s *Service) EndSession(ctx context.Context, rawID string, actor audit.Actor) error {
	if rawID == "" {
		return nil
	}
	if err := s.db.DeleteSession(ctx, hashToken(rawID)); err != nil {
		return err
	}
	return s.db.InTx(ctx, func(tx *store.Tx) error {
		_, err := audit.Record(ctx, tx, audit.Entry{Category: audit.CategoryAuthentication, Activity: audit.ActivityAdminSignOut,
			Actor: actor, Target: audit.Target{Type: "Administrator", ID: actor.ID, Name: actor.Name}})
		return err
	})
}

// PurgeExpiredSessions deletes sessions past either timeout, and
// half-signed-in states past theirs.
func (s *Service) PurgeExpiredSessions(ctx context.Context) (int64, error) {
	now := s.now()
	if _, err := s.db.DeleteExpiredAdminSignIns(ctx, now.UnixMilli()); err != nil {
		return 0, err
	}
	return s.db.DeleteExpiredSessions(ctx, now.Add(-IdleTimeout).UnixMilli(), now.Add(-AbsoluteTimeout).UnixMilli())
}

// List lists administrators.
func (s *Service) List(ctx context.Context) ([]store.Admin, error) { return s.db.ListAdmins(ctx) }

// Get returns one administrator.
func (s *Service) Get(ctx context.Context, id int64) (store.Admin, error) {
	a, err := s.db.AdminByID(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return a, errs.E(errs.NotFound, "That administrator does not exist.", err)
	}
	return a, err
}

// ByEmail returns one administrator by e-mail.
func (s *Service) ByEmail(ctx context.Context, email string) (store.Admin, error) {
	a, err := s.db.AdminByEmail(ctx, email)
	if errors.Is(err, store.ErrNotFound) {
		return a, errs.Ef(errs.NotFound, err, "No administrator has the e-mail address %s.", email)
	}
	return a, err
}

// ErrLastGlobalAdmin protects the last active Global Administrator.
var ErrLastGlobalAdmin = errs.E(errs.Conflict, "This is the last active Global Administrator. Make another administrator a Global Administrator first.", nil)

// Update changes an administrator's role and/or disables or re-enables them.
// Either change ends all of that administrator's sessions at once.
func (s *Service) Update(ctx context.Context, actor audit.Actor, id int64, role Role, disabled bool) (store.Admin, error) {
	if _, err := ParseRole(string(role)); err != nil {
		return store.Admin{}, err
	}
	var out store.Admin
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		a, err := tx.AdminByID(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			return errs.E(errs.NotFound, "That administrator does not exist.", err)
		}
		if err != nil {
			return err
		}
		if a.Role == string(role) && a.Disabled == disabled {
			out = a
			return nil
		}
		wasGlobal := a.Role == string(GlobalAdmin) && !a.Disabled
		staysGlobal := role == GlobalAdmin && !disabled
		if wasGlobal && !staysGlobal {
			n, err := tx.CountActiveGlobalAdmins(ctx)
			if err != nil {
				return err
			}
			if n <= 1 {
				return ErrLastGlobalAdmin
			}
		}
		old := a
		a.Role, a.Disabled = string(role), disabled
		if err := tx.UpdateAdmin(ctx, a); err != nil {
			return err
		}
		if err := tx.DeleteSessionsOf(ctx, a.ID); err != nil {
			return err
		}
		if err := tx.DeleteAdminSignInsOf(ctx, a.ID); err != nil {
			return err
		}
		activity := audit.ActivityUpdateAdmin
		switch {
		case disabled && !old.Disabled:
			activity = audit.ActivityDisableAdmin
		case !disabled && old.Disabled:
			activity = audit.ActivityEnableAdmin
		}
		details := map[string]any{}
		if old.Role != a.Role {
			details["role"] = audit.Change{Old: Role(old.Role).Label(), New: role.Label()}
		}
		if old.Disabled != a.Disabled {
			details["disabled"] = audit.Change{Old: old.Disabled, New: a.Disabled}
		}
		_, err = audit.Record(ctx, tx, audit.Entry{Category: audit.CategoryRoleManagement, Activity: activity,
			Actor: actor, Target: adminTarget(a), Details: details})
		out = a
		return err
	})
	if err != nil {
		if errs.KindOf(err) != errs.Internal {
			return store.Admin{}, err
		}
		return store.Admin{}, fmt.Errorf("admins: update: %w", err)
	}
	return out, nil
}

// ActorFor builds the audit actor for a signed-in administrator.
func ActorFor(a store.Admin, clientIP, userAgent string) audit.Actor {
	return audit.Actor{Type: "admin", ID: strconv.FormatInt(a.ID, 10), Name: a.Name + " <" + a.Email + ">", ClientIP: clientIP, UserAgent: userAgent}
}

func adminTarget(a store.Admin) audit.Target {
	return audit.Target{Type: "Administrator", ID: strconv.FormatInt(a.ID, 10), Name: a.Name + " <" + a.Email + ">"}
}

func randomToken() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic("admins: crypto/rand failed: " + err.Error())
	}
	return hex.EncodeToString(b)
}

// HashID is the hash a session or half-signed-in state is stored under;
// ceremony state is bound to it.
func HashID(raw string) string { return hashToken(raw) }

func hashToken(tok string) string {
	h := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(h[:])
}
