// Package apitokens manages the bearer tokens of the REST API: a Global
// Administrator creates one with a name, an administrator role and an
// expiry; it is shown once and stored only as its SHA-256; it can be
// revoked; and every API request is authenticated by it and recorded in the
// audit log with the token's name as the actor.
package apitokens

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/writeback/writeback/services/admins"
	"github.com/writeback/writeback/services/agents"
	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/errs"
	"github.com/writeback/writeback/services/i18n"
	"github.com/writeback/writeback/store"
)

// Audit activities of this package. Their names are what administrators
// filter on; do not rename one once released.
const (
	ActivityCreate = "Create API token"
	ActivityRevoke = "Revoke API token"
	ActivityCall   = "API request"
)

// Activities lists the activities above, for the audit log's filter.
var Activities = []string{ActivityCall, ActivityCreate, ActivityRevoke}

// TargetType is the audit target type of a token, and ActorType the audit
// actor type of what a token does.
const (
	TargetType = "API token"
	ActorType  = "api-token"
)

// Tokens are "wbt_" and 32 random bytes, base64url: the prefix lets secret
// scanners recognise one that leaked.
const (
	Prefix = "wbt_"
	// MaxDays is the longest life a token can be given; DefaultDays is the
	// life the page and the command line suggest.
	MaxDays     = 365
	DefaultDays = 90
	// touchEvery is how often a token's last use is written at most.
	touchEvery = time.Minute
	maxToken   = 200
)

// ErrInvalid is the one answer to a request whose token is missing,
// unknown, revoked or expired: the same words for each, so that nobody can
// tell which.
var ErrInvalid = errs.E(errs.Unauthorized,
	"This API token is not valid (it may be mistyped, revoked or expired). Send a valid token as Authorization: Bearer TOKEN.", nil)

// Token is a token as the API tokens page and `writeback token list` show
// it (never its secret).
type Token struct {
	ID         int64       `json:"id"`
	Name       string      `json:"name"`
	Role       admins.Role `json:"role"`
	CreatedBy  string      `json:"created_by"`
	CreatedAt  time.Time   `json:"created_at"`
	ExpiresAt  time.Time   `json:"expires_at"`
	LastUsedAt time.Time   `json:"last_used_at,omitzero"`
	LastUsedIP string      `json:"last_used_ip,omitempty"`
	RevokedAt  time.Time   `json:"revoked_at,omitzero"`
	RevokedBy  string      `json:"revoked_by,omitempty"`
	// lastUsedMS is the stored last use, to decide whether to write it again.
	lastUsedMS int64
}

// State tells whether the token works at now: "active", "expired" or
// "revoked".
func (t Token) State(now time.Time) string {
	switch {
	case !t.RevokedAt.IsZero():
		return "revoked"
	case !now.Before(t.ExpiresAt):
		return "expired"
	}
	return "active"
}

// Actor is the audit actor of what the token does, from ip with user agent ua.
func (t Token) Actor(ip, ua string) audit.Actor {
	return audit.Actor{Type: ActorType, ID: "api-token:" + strconv.FormatInt(t.ID, 10), Name: t.Name, ClientIP: ip, UserAgent: ua}
}

// New is a token just created: Secret is shown once and never stored.
type New struct {
	Token
	Secret string
}

// Service is the API tokens service.
type Service struct {
	db  *store.DB
	log *slog.Logger
	now func() time.Time
}

// NewService builds the service.
func NewService(db *store.DB, log *slog.Logger) *Service {
	return &Service{db: db, log: log, now: time.Now}
}

// SetClock replaces the clock (tests).
func (s *Service) SetClock(now func() time.Time) { s.now = now }

// Hash is how a token's secret is stored: SHA-256, hex. The secret has 256
// random bits, so a fast hash is enough (nobody can guess one to test).
func Hash(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

func ms(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v).UTC()
}

func info(t store.APIToken) Token {
	return Token{ID: t.ID, Name: t.Name, Role: admins.Role(t.Role), CreatedBy: t.CreatedBy, CreatedAt: ms(t.CreatedMS),
		ExpiresAt: ms(t.ExpiresMS), LastUsedAt: ms(t.LastUsedMS), LastUsedIP: t.LastUsedIP, RevokedAt: ms(t.RevokedMS),
		RevokedBy: t.RevokedBy, lastUsedMS: t.LastUsedMS}
}

func target(t Token) audit.Target {
	return audit.Target{Type: TargetType, ID: "api-token:" + strconv.FormatInt(t.ID, 10), Name: t.Name}
}

// msgChooseRole refuses a role that is none of the administrator roles.
var msgChooseRole = i18n.Key("Choose a role: Global Administrator, Helpdesk Administrator or Reports Reader.")

// ParseRole reads a role as the page and the command line name it.
func ParseRole(s string) (admins.Role, error) {
	for _, r := range admins.Roles {
		if string(r) == s {
			return r, nil
		}
	}
	return "", errs.FieldErrors(map[string]string{"role": msgChooseRole})
}

// Create makes a token called name with role, valid for days days. The
// secret is returned once; only its hash is stored.
func (s *Service) Create(ctx context.Context, actor audit.Actor, name string, role admins.Role, days int) (New, error) {
	fields := map[string]errs.Text{}
	name, problem, ok := agents.CheckName(name)
	if !ok {
		fields["name"] = problem
	}
	if _, err := ParseRole(string(role)); err != nil {
		fields["role"] = errs.Textf(msgChooseRole)
	}
	if days < 1 || days > MaxDays {
		fields["expires"] = errs.Textf("Enter a number of days from 1 to %d.", MaxDays)
	}
	if len(fields) > 0 {
		return New{}, errs.FieldTexts(fields)
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return New{}, fmt.Errorf("apitokens: create: %w", err)
	}
	secret := Prefix + base64.RawURLEncoding.EncodeToString(b)
	now := s.now().UTC()
	st := store.APIToken{Hash: Hash(secret), Name: name, Role: string(role), CreatedBy: actor.Name,
		CreatedMS: now.UnixMilli(), ExpiresMS: now.AddDate(0, 0, days).UnixMilli()}
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		id, err := tx.InsertAPIToken(ctx, st)
		if err != nil {
			return err
		}
		st.ID = id
		_, err = audit.Record(ctx, tx, audit.Entry{Category: audit.CategoryRoleManagement, Activity: ActivityCreate,
			Actor: actor, Target: target(info(st)),
			Details: map[string]any{"role": role.Label(), "expires": ms(st.ExpiresMS).Format(audit.TimeFormat)}})
		return err
	})
	if errors.Is(err, store.ErrDuplicate) {
		return New{}, errs.FieldTexts(map[string]errs.Text{"name": errs.Textf(
			"A token called %s exists already. Choose another name, or revoke that token first.", name)})
	}
	if err != nil {
		return New{}, fmt.Errorf("apitokens: create %s: %w", name, err)
	}
	s.log.InfoContext(ctx, "api token created", "token", name, "token_id", st.ID, "role", string(role))
	return New{Token: info(st), Secret: secret}, nil
}

// List returns every token: those not revoked first, newest first.
func (s *Service) List(ctx context.Context) ([]Token, error) {
	list, err := s.db.ListAPITokens(ctx)
	if err != nil {
		return nil, fmt.Errorf("apitokens: list: %w", err)
	}
	out := make([]Token, 0, len(list))
	for _, t := range list {
		out = append(out, info(t))
	}
	return out, nil
}

// Revoke revokes the token not revoked with this ID or, when id is 0, with
// this name: refused from now on.
func (s *Service) Revoke(ctx context.Context, actor audit.Actor, id int64, name string) (Token, error) {
	now := s.now().UTC()
	var t Token
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		st, err := tx.ActiveAPIToken(ctx, id, strings.TrimSpace(name))
		if err != nil {
			return err
		}
		if err := tx.RevokeAPIToken(ctx, st.ID, actor.Name, now.UnixMilli()); err != nil {
			return err
		}
		st.RevokedMS, st.RevokedBy = now.UnixMilli(), actor.Name
		t = info(st)
		_, err = audit.Record(ctx, tx, audit.Entry{Category: audit.CategoryRoleManagement, Activity: ActivityRevoke,
			Actor: actor, Target: target(t), Details: map[string]any{"role": t.Role.Label()}})
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return Token{}, errs.E(errs.NotFound, "There is no API token of that name or number that is not revoked.", nil)
	}
	if err != nil {
		return Token{}, fmt.Errorf("apitokens: revoke: %w", err)
	}
	s.log.InfoContext(ctx, "api token revoked", "token", t.Name, "token_id", t.ID)
	return t, nil
}

// Authenticate finds the token whose secret this is, if it works now:
// ErrInvalid for one that is malformed, unknown, revoked or expired.
func (s *Service) Authenticate(ctx context.Context, secret string) (Token, error) {
	if !strings.HasPrefix(secret, Prefix) || len(secret) > maxToken {
		return Token{}, ErrInvalid
	}
	st, err := s.db.APITokenByHash(ctx, Hash(secret))
	if errors.Is(err, store.ErrNotFound) {
		return Token{}, ErrInvalid
	}
	if err != nil {
		return Token{}, fmt.Errorf("apitokens: authenticate: %w", err)
	}
	t := info(st)
	if t.State(s.now()) != "active" {
		return Token{}, ErrInvalid
	}
	return t, nil
}

// Recorded is one API request for the audit log: the operation, its HTTP
// method and status.
type Recorded struct {
	Operation string
	Method    string
	Status    int
}

// Record writes one API request to the audit log with the token as actor,
// and the token's last use (at most once a minute), in one transaction.
func (s *Service) Record(ctx context.Context, t Token, actor audit.Actor, call Recorded) error {
	now := s.now().UTC()
	result, reason := audit.Success, ""
	if call.Status >= 400 {
		result, reason = audit.Failure, strconv.Itoa(call.Status)
	}
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		if now.UnixMilli()-t.lastUsedMS >= touchEvery.Milliseconds() {
			if err := tx.TouchAPIToken(ctx, t.ID, actor.ClientIP, now.UnixMilli()); err != nil {
				return err
			}
		}
		_, err := audit.Record(ctx, tx, audit.Entry{Category: audit.CategoryAuthentication, Activity: ActivityCall,
			Actor: actor, Target: target(t), Result: result, Reason: reason,
			Details: map[string]any{"operation": call.Operation, "method": call.Method, "status": call.Status}})
		return err
	})
	if err != nil {
		return fmt.Errorf("apitokens: record request: %w", err)
	}
	return nil
}
