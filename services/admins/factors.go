package admins

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/authenticator"
	"github.com/writeback/writeback/services/errs"
	"github.com/writeback/writeback/services/i18n"
	"github.com/writeback/writeback/services/keyring"
	"github.com/writeback/writeback/services/passkeys"
	"github.com/writeback/writeback/services/ratelimit"
	"github.com/writeback/writeback/store"
)

// Option configures the service.
type Option func(*Service)

// WithKeyring sets the keyring that seals second-factor secrets and keys
// the recovery-code hashes. Without one, second factors cannot be used.
func WithKeyring(k *keyring.Keyring) Option { return func(s *Service) { s.keys = k } }

// WithPasskeys sets the WebAuthn relying party; without it passkeys are not
// offered (the command line has no base URL, and needs none).
func WithPasskeys(p *passkeys.Service) Option { return func(s *Service) { s.passkeys = p } }

// Lifetimes of the half-signed-in state: the second factor is asked for
// within PendingTTL of the password; enrolling one (scanning a code, finding
// a security key) may take EnrolTTL.
const (
	PendingTTL    = 5 * time.Minute
	EnrolTTL      = 15 * time.Minute
	ResetTokenTTL = 24 * time.Hour
)

// Second-factor limits: wrong codes or refused passkeys per administrator
// within AttemptWindow (the client address shares the password budget).
const FactorAttempts = 5

// RecoveryCodeCount is how many recovery codes an administrator gets.
const RecoveryCodeCount = 10

// Errors of the second step.
var (
	ErrWrongCode       = errs.E(errs.Unauthorized, "That code is not right. Enter the 6-digit code your authenticator app shows now.", nil)
	ErrCodeUsed        = errs.E(errs.Unauthorized, "That code was used already. Wait for the app to show the next one and enter it.", nil)
	ErrWrongRecovery   = errs.E(errs.Unauthorized, "That recovery code is not right, or it was used already. Each code works once.", nil)
	ErrFactorThrottled = errs.E(errs.TooMany, "Too many wrong codes. Wait 15 minutes and sign in again.", nil)
	ErrSignInExpired   = errs.E(errs.Unauthorized, "Your sign-in has timed out. Sign in again with your password.", nil)
	ErrNoFactors       = errs.E(errs.Internal, "Second factors are not available: the portal has no keyring.", nil)
	ErrPasskeysOff     = errs.E(errs.Unavailable, "Passkeys are not available on this portal.", nil)
	ErrLastFactor      = errs.E(errs.Conflict, "This is your last second factor and your role requires one. Add another way to sign in first, then remove this one.", nil)
	ErrResetLinkBad    = errs.E(errs.NotFound, "This link is not valid: it has been used, has expired, or a newer one was made. Ask a Global Administrator for a new one.", nil)
	ErrCannotResetSelf = errs.E(errs.Conflict, "You cannot reset your own sign-in here. Manage your own sign-in methods on the Your sign-in methods page.", nil)
)

// FactorKindLabel names a kind of factor as people know it.
func FactorKindLabel(kind string) string {
	switch kind {
	case store.FactorTOTP:
		return i18n.Key("Authenticator app")
	case store.FactorPasskey:
		return i18n.Key("Passkey or security key")
	}
	return kind
}

// Factor is a second factor as the pages show it (never its secret).
type Factor struct {
	ID       int64
	Kind     string
	Name     string
	Created  time.Time
	LastUsed time.Time // zero when never used
}

// Factors lists an administrator's second factors and how many unused
// recovery codes they have.
func (s *Service) Factors(ctx context.Context, adminID int64) ([]Factor, int, error) {
	fs, err := s.db.AdminFactors(ctx, adminID)
	if err != nil {
		return nil, 0, err
	}
	out := make([]Factor, 0, len(fs))
	for _, f := range fs {
		v := Factor{ID: f.ID, Kind: f.Kind, Name: f.Name, Created: time.UnixMilli(f.CreatedMS).UTC()}
		if f.LastUsedMS > 0 {
			v.LastUsed = time.UnixMilli(f.LastUsedMS).UTC()
		}
		out = append(out, v)
	}
	left, err := s.db.RecoveryCodesLeft(ctx, adminID)
	return out, left, err
}

// PasskeysAvailable reports whether passkeys can be registered and used.
func (s *Service) PasskeysAvailable() bool { return s.passkeys != nil }

// Next is what follows a right password.
type Next int

// What follows a right password.
const (
	NextSession Next = iota // signed in: no second factor to ask for
	NextFactor              // the second factor is asked for
	NextEnrol               // a second factor must be enrolled first
)

// Pending is a half-signed-in administrator.
type Pending struct {
	Admin   store.Admin
	Stage   string // store.StageFactor or store.StageEnrol
	IDHash  string
	Expires time.Time
}

// BeginSignIn decides what follows a right password for a: a session at
// once (the raw session ID), or a half-signed-in state (its raw ID) in which
// the second factor is asked for, or one must be enrolled (the role's
// policy requires one, or a Global Administrator reset this person's
// sign-in).
func (s *Service) BeginSignIn(ctx context.Context, a store.Admin, from audit.Actor) (Next, string, error) {
	factors, err := s.db.AdminFactors(ctx, a.ID)
	if err != nil {
		return 0, "", err
	}
	stage := store.StageFactor
	ttl := PendingTTL
	if len(factors) == 0 {
		must, err := s.mustEnrol(ctx, a)
		if err != nil {
			return 0, "", err
		}
		if !must {
			raw, err := s.StartSession(ctx, a, from)
			return NextSession, raw, err
		}
		stage, ttl = store.StageEnrol, EnrolTTL
	}
	if s.keys == nil {
		return 0, "", ErrNoFactors
	}
	raw := randomToken()
	now := s.now()
	if err := s.db.InsertAdminSignIn(ctx, store.AdminSignIn{IDHash: hashToken(raw), AdminID: a.ID, Stage: stage,
		CreatedMS: now.UnixMilli(), ExpiresMS: now.Add(ttl).UnixMilli()}); err != nil {
		return 0, "", err
	}
	if stage == store.StageEnrol {
		return NextEnrol, raw, nil
	}
	return NextFactor, raw, nil
}

// mustEnrol reports whether a, having no factor, must enrol one.
func (s *Service) mustEnrol(ctx context.Context, a store.Admin) (bool, error) {
	p, _, err := s.Policy(ctx)
	if err != nil {
		return false, err
	}
	if p.Requires(Role(a.Role)) {
		return true, nil
	}
	return s.db.EnrolRequired(ctx, a.ID)
}

// ResolvePending returns the half-signed-in state of a raw ID; expired
// states and disabled administrators are ErrSignInExpired.
func (s *Service) ResolvePending(ctx context.Context, raw string) (Pending, error) {
	if raw == "" {
		return Pending{}, ErrSignInExpired
	}
	h := hashToken(raw)
	si, a, err := s.db.AdminSignInByHash(ctx, h)
	if errors.Is(err, store.ErrNotFound) {
		return Pending{}, ErrSignInExpired
	}
	if err != nil {
		return Pending{}, err
	}
	exp := time.UnixMilli(si.ExpiresMS)
	if !s.now().Before(exp) || a.Disabled {
		_ = s.db.DeleteAdminSignIn(ctx, h)
		return Pending{}, ErrSignInExpired
	}
	return Pending{Admin: a, Stage: si.Stage, IDHash: h, Expires: exp}, nil
}

// CancelPending ends a half-signed-in state (sign out before the second step).
func (s *Service) CancelPending(ctx context.Context, raw string) error {
	if raw == "" {
		return nil
	}
	return s.db.DeleteAdminSignIn(ctx, hashToken(raw))
}

// reserveFactor counts one second-factor attempt of a (and of the client
// address, in the password budget) before it is checked.
func (s *Service) reserveFactor(ctx context.Context, a store.Admin, from audit.Actor) (*ratelimit.Attempt, ratelimit.Limit, error) {
	acct := ratelimit.Limit{Bucket: store.BucketAdminFactor, Key: keyOf(a.ID), Max: FactorAttempts, Window: AttemptWindow, Outside: -1}
	addr := ratelimit.Limit{Bucket: store.BucketAdminAddress, Key: ratelimit.Key(from.ClientIP), Max: AddressAttempts, Window: AttemptWindow, Outside: -1}
	att, refused, err := ratelimit.Reserve(ctx, s.db, s.now(), addr, acct)
	if err != nil {
		return nil, acct, err
	}
	if refused != nil {
		return nil, acct, ErrFactorThrottled
	}
	return att, acct, nil
}

// factorFailed keeps a wrong second factor counted and records it.
func (s *Service) factorFailed(ctx context.Context, att *ratelimit.Attempt, p Pending, from audit.Actor, kind, reason string) {
	if att != nil {
		if err := att.Fail(ctx); err != nil {
			s.log.ErrorContext(ctx, "count failed second factor", "err", err)
		}
	}
	s.recordFactor(ctx, p.Admin, from, audit.Failure, reason, map[string]any{"factor": kind})
}

func (s *Service) recordFactor(ctx context.Context, a store.Admin, from audit.Actor, result, reason string, details map[string]any) {
	actor := from
	actor.Type, actor.ID, actor.Name = "admin", strconv.FormatInt(a.ID, 10), a.Name+" <"+a.Email+">"
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		_, err := audit.Record(ctx, tx, audit.Entry{Category: audit.CategoryAuthentication, Activity: audit.ActivityAdminSecondFactor,
			Actor: actor, Target: adminTarget(a), Result: result, Reason: reason, Details: details})
		return err
	})
	if err != nil {
		s.log.ErrorContext(ctx, "record second factor", "err", err)
	}
}

// finishSignIn turns a half-signed-in state into a session, in one
// transaction with the audit event; of two concurrent second steps only one
// gets a session.
func (s *Service) finishSignIn(ctx context.Context, p Pending, from audit.Actor, details map[string]any) (string, error) {
	raw := randomToken()
	now := s.now().UnixMilli()
	ua := from.UserAgent
	if len(ua) > 300 {
		ua = ua[:300]
	}
	actor := from
	actor.Type, actor.ID, actor.Name = "admin", strconv.FormatInt(p.Admin.ID, 10), p.Admin.Name+" <"+p.Admin.Email+">"
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		ok, err := tx.DeleteAdminSignIn(ctx, p.IDHash)
		if err != nil {
			return err
		}
		if !ok {
			return ErrSignInExpired
		}
		if err := tx.InsertSession(ctx, store.Session{IDHash: hashToken(raw), AdminID: p.Admin.ID, CreatedMS: now, LastSeenMS: now,
			ClientIP: from.ClientIP, UserAgent: ua}); err != nil {
			return err
		}
		_, err = audit.Record(ctx, tx, audit.Entry{Category: audit.CategoryAuthentication, Activity: audit.ActivityAdminSecondFactor,
			Actor: actor, Target: adminTarget(p.Admin), Details: details})
		return err
	})
	if err != nil {
		return "", err
	}
	return raw, nil
}

// succeeded forgets the attempt and the administrator's earlier wrong
// second factors (only the factor itself can do that).
func (s *Service) succeeded(ctx context.Context, att *ratelimit.Attempt, acct ratelimit.Limit) {
	if err := att.Release(ctx); err != nil {
		s.log.ErrorContext(ctx, "release second-factor attempt", "err", err)
	}
	if err := s.db.ClearAttempts(ctx, acct.Bucket, acct.Key); err != nil {
		s.log.ErrorContext(ctx, "clear failed second factors", "err", err)
	}
}

// totpPeriod is the authenticator time step.
const totpPeriod = 30 * time.Second

// totpStep returns the time step whose code code is (the current step or
// one either side, for clocks that drift); ok is false when it is none.
func totpStep(secret, code string, now time.Time) (int64, bool) {
	code = strings.ReplaceAll(strings.TrimSpace(code), " ", "")
	if len(code) != 6 {
		return 0, false
	}
	for _, skew := range []time.Duration{0, -1, 1} {
		at := now.Add(skew * totpPeriod)
		if ok, _ := totp.ValidateCustom(code, secret, at, totp.ValidateOpts{Period: uint(totpPeriod / time.Second),
			Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1}); ok {
			return at.Unix() / int64(totpPeriod/time.Second), true
		}
	}
	return 0, false
}

func factorContext(adminID int64, kind string) string {
	return "admin-factor:" + strconv.FormatInt(adminID, 10) + ":" + kind
}

// VerifyTOTP checks a code from one of the administrator's authenticator
// apps as the second step and returns the raw session ID. Each time step
// signs in once; the attempt is counted before the code is checked.
func (s *Service) VerifyTOTP(ctx context.Context, p Pending, code string, from audit.Actor) (string, error) {
	if p.Stage != store.StageFactor {
		return "", ErrSignInExpired
	}
	att, acct, err := s.reserveFactor(ctx, p.Admin, from)
	if errors.Is(err, ErrFactorThrottled) {
		s.recordFactor(ctx, p.Admin, from, audit.Failure, "throttled: too many wrong second factors", map[string]any{"factor": FactorKindLabel(store.FactorTOTP)})
		return "", err
	}
	if err != nil {
		return "", err
	}
	factors, err := s.db.AdminFactors(ctx, p.Admin.ID)
	if err != nil {
		_ = att.Release(ctx)
		return "", err
	}
	label := FactorKindLabel(store.FactorTOTP)
	for _, f := range factors {
		if f.Kind != store.FactorTOTP {
			continue
		}
		secret, err := s.keys.Open(factorContext(f.AdminID, f.Kind), f.Secret)
		if err != nil {
			_ = att.Release(ctx)
			return "", fmt.Errorf("admins: open totp secret: %w", err)
		}
		step, ok := totpStep(string(secret), code, s.now())
		if !ok {
			continue
		}
		fresh := false
		if err := s.db.InTx(ctx, func(tx *store.Tx) error {
			fresh, err = tx.UseTOTPFactorStep(ctx, f.ID, step, s.now().UnixMilli())
			return err
		}); err != nil {
			_ = att.Release(ctx)
			return "", err
		}
		if !fresh {
			s.factorFailed(ctx, att, p, from, label, "code already used")
			return "", ErrCodeUsed
		}
		raw, err := s.finishSignIn(ctx, p, from, map[string]any{"factor": label, "name": f.Name})
		if err != nil {
			_ = att.Release(ctx)
			return "", err
		}
		s.succeeded(ctx, att, acct)
		return raw, nil
	}
	s.factorFailed(ctx, att, p, from, label, "wrong code")
	return "", ErrWrongCode
}

// normalizeRecovery makes a typed recovery code comparable: lower case,
// without spaces or dashes.
func normalizeRecovery(code string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(code) {
		if r == ' ' || r == '-' || r == '\t' {
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func (s *Service) recoveryHash(adminID int64, code string) string {
	m := hmac.New(sha256.New, s.keys.Derive("admin-recovery-codes"))
	m.Write([]byte(strconv.FormatInt(adminID, 10) + "\x00" + normalizeRecovery(code)))
	return hex.EncodeToString(m.Sum(nil))
}

// VerifyRecoveryCode signs in with one of the administrator's recovery codes
// instead of a factor; the code is used up.
func (s *Service) VerifyRecoveryCode(ctx context.Context, p Pending, code string, from audit.Actor) (string, error) {
	if p.Stage != store.StageFactor {
		return "", ErrSignInExpired
	}
	label := "Recovery code"
	att, acct, err := s.reserveFactor(ctx, p.Admin, from)
	if errors.Is(err, ErrFactorThrottled) {
		s.recordFactor(ctx, p.Admin, from, audit.Failure, "throttled: too many wrong second factors", map[string]any{"factor": label})
		return "", err
	}
	if err != nil {
		return "", err
	}
	used := false
	if n := normalizeRecovery(code); n != "" && len(n) <= 64 {
		if err := s.db.InTx(ctx, func(tx *store.Tx) error {
			used, err = tx.UseRecoveryCode(ctx, p.Admin.ID, s.recoveryHash(p.Admin.ID, code), s.now().UnixMilli())
			return err
		}); err != nil {
			_ = att.Release(ctx)
			return "", err
		}
	}
	if !used {
		s.factorFailed(ctx, att, p, from, label, "wrong or used recovery code")
		return "", ErrWrongRecovery
	}
	left, err := s.db.RecoveryCodesLeft(ctx, p.Admin.ID)
	if err != nil {
		_ = att.Release(ctx)
		return "", err
	}
	raw, err := s.finishSignIn(ctx, p, from, map[string]any{"factor": label, "recovery_codes_left": left})
	if err != nil {
		_ = att.Release(ctx)
		return "", err
	}
	s.succeeded(ctx, att, acct)
	return raw, nil
}

// passkeyUser is the WebAuthn view of an administrator: an opaque handle
// derived from the key file (stable, and revealing neither ID nor address)
// and the registered passkeys.
func (s *Service) passkeyUser(a store.Admin, factors []store.AdminFactor) (passkeys.User, map[string]store.AdminFactor, error) {
	m := hmac.New(sha256.New, s.keys.Derive("admin-webauthn-handle"))
	m.Write([]byte(strconv.FormatInt(a.ID, 10)))
	u := passkeys.User{Handle: m.Sum(nil), Name: a.Email, DisplayName: a.Name}
	byID := map[string]store.AdminFactor{}
	for _, f := range factors {
		if f.Kind != store.FactorPasskey {
			continue
		}
		rec, err := s.keys.Open(factorContext(f.AdminID, f.Kind), f.Secret)
		if err != nil {
			return u, nil, fmt.Errorf("admins: open passkey: %w", err)
		}
		id, err := base64.RawURLEncoding.DecodeString(f.CredentialID)
		if err != nil {
			return u, nil, fmt.Errorf("admins: passkey credential id: %w", err)
		}
		u.Credentials = append(u.Credentials, passkeys.Credential{ID: id, Record: rec})
		byID[f.CredentialID] = f
	}
	return u, byID, nil
}

// ceremonyContext binds sealed ceremony state to one administrator and one
// session or half-signed-in state (bind), so it cannot be used in another.
func ceremonyContext(adminID int64, bind, purpose string) string {
	return "admin-ceremony:" + strconv.FormatInt(adminID, 10) + ":" + bind + ":" + purpose
}

// ceremony is sealed state between a Begin and its Finish.
type ceremony struct {
	Expires  int64  `json:"exp"`
	WebAuthn []byte `json:"wa,omitempty"`
	Secret   string `json:"secret,omitempty"`
}

func (s *Service) seal(adminID int64, bind, purpose string, c ceremony) (string, error) {
	b, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	return s.keys.Seal(ceremonyContext(adminID, bind, purpose), b)
}

func (s *Service) unseal(adminID int64, bind, purpose, sealed string) (ceremony, bool) {
	var c ceremony
	if sealed == "" || s.keys == nil {
		return c, false
	}
	b, err := s.keys.Open(ceremonyContext(adminID, bind, purpose), sealed)
	if err != nil || json.Unmarshal(b, &c) != nil || s.now().UnixMilli() >= c.Expires {
		return c, false
	}
	return c, true
}

// BeginPasskeySignIn starts the passkey assertion of the second step. The
// options go to the browser; the sealed ceremony is kept with the
// half-signed-in state (bind is its ID hash) until FinishPasskeySignIn.
func (s *Service) BeginPasskeySignIn(ctx context.Context, p Pending) (passkeys.Options, string, error) {
	if s.passkeys == nil {
		return nil, "", ErrPasskeysOff
	}
	factors, err := s.db.AdminFactors(ctx, p.Admin.ID)
	if err != nil {
		return nil, "", err
	}
	u, _, err := s.passkeyUser(p.Admin, factors)
	if err != nil {
		return nil, "", err
	}
	if len(u.Credentials) == 0 {
		return nil, "", nil
	}
	opts, cer, err := s.passkeys.BeginLogin(u)
	if err != nil {
		return nil, "", err
	}
	sealed, err := s.seal(p.Admin.ID, p.IDHash, "signin", ceremony{Expires: s.now().Add(passkeys.Timeout).UnixMilli(), WebAuthn: cer})
	return opts, sealed, err
}

// VerifyPasskey checks the browser's assertion as the second step and
// returns the raw session ID; a refused assertion counts like a wrong code.
func (s *Service) VerifyPasskey(ctx context.Context, p Pending, sealed string, response []byte, from audit.Actor) (string, error) {
	if p.Stage != store.StageFactor {
		return "", ErrSignInExpired
	}
	if s.passkeys == nil {
		return "", ErrPasskeysOff
	}
	label := FactorKindLabel(store.FactorPasskey)
	att, acct, err := s.reserveFactor(ctx, p.Admin, from)
	if errors.Is(err, ErrFactorThrottled) {
		s.recordFactor(ctx, p.Admin, from, audit.Failure, "throttled: too many wrong second factors", map[string]any{"factor": label})
		return "", err
	}
	if err != nil {
		return "", err
	}
	factors, err := s.db.AdminFactors(ctx, p.Admin.ID)
	if err != nil {
		_ = att.Release(ctx)
		return "", err
	}
	u, byID, err := s.passkeyUser(p.Admin, factors)
	if err != nil {
		_ = att.Release(ctx)
		return "", err
	}
	c, ok := s.unseal(p.Admin.ID, p.IDHash, "signin", sealed)
	if !ok {
		s.factorFailed(ctx, att, p, from, label, "no passkey ceremony in progress, or it expired")
		return "", passkeys.ErrRefused
	}
	cred, err := s.passkeys.FinishLogin(u, c.WebAuthn, response)
	if err != nil {
		if errs.KindOf(err) != errs.Unauthorized {
			_ = att.Release(ctx)
			return "", err
		}
		s.log.InfoContext(ctx, "passkey refused", "admin_id", p.Admin.ID, "err", err)
		s.factorFailed(ctx, att, p, from, label, "passkey not accepted")
		return "", passkeys.ErrRefused
	}
	f := byID[base64.RawURLEncoding.EncodeToString(cred.ID)]
	sealedRec, err := s.keys.Seal(factorContext(p.Admin.ID, store.FactorPasskey), cred.Record)
	if err != nil {
		_ = att.Release(ctx)
		return "", err
	}
	if err := s.db.InTx(ctx, func(tx *store.Tx) error {
		return tx.UpdatePasskeyFactor(ctx, f.ID, sealedRec, s.now().UnixMilli())
	}); err != nil {
		_ = att.Release(ctx)
		return "", err
	}
	raw, err := s.finishSignIn(ctx, p, from, map[string]any{"factor": label, "name": f.Name})
	if err != nil {
		_ = att.Release(ctx)
		return "", err
	}
	s.succeeded(ctx, att, acct)
	return raw, nil
}

// TOTPSetup is a new authenticator secret being enrolled.
type TOTPSetup struct {
	Secret string // base32, for typing in
	URL    string // otpauth://
	QR     string // data: URI of a PNG QR code
	Sealed string // what Confirm needs back (kept server-side or in the encrypted session)
}

// BeginTOTP makes a new authenticator secret for a; bind is the session
// (or half-signed-in state) it is bound to. A still-valid sealed setup is
// shown again instead, so a reload does not change the code scanned.
func (s *Service) BeginTOTP(a store.Admin, bind, sealed string) (TOTPSetup, error) {
	if s.keys == nil {
		return TOTPSetup{}, ErrNoFactors
	}
	c, ok := s.unseal(a.ID, bind, "totp", sealed)
	if !ok {
		k, err := totp.Generate(totp.GenerateOpts{Issuer: "Writeback", AccountName: a.Email})
		if err != nil {
			return TOTPSetup{}, fmt.Errorf("admins: totp secret: %w", err)
		}
		c = ceremony{Expires: s.now().Add(EnrolTTL).UnixMilli(), Secret: k.Secret()}
		if sealed, err = s.seal(a.ID, bind, "totp", c); err != nil {
			return TOTPSetup{}, err
		}
	}
	u := authenticator.URL("Writeback", a.Email, c.Secret)
	qr, err := authenticator.QRDataURI(u, 200)
	if err != nil {
		return TOTPSetup{}, err
	}
	return TOTPSetup{Secret: c.Secret, URL: u, QR: qr, Sealed: sealed}, nil
}

func factorName(name, def string) (string, error) {
	name = strings.TrimSpace(name)
	if name == "" {
		return def, nil
	}
	if utf8.RuneCountInString(name) > 64 || !utf8.ValidString(name) || strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return "", errs.FieldErrors(map[string]string{"name": "Use a name of at most 64 characters."})
	}
	return name, nil
}

// ConfirmTOTP checks a code from the newly scanned app and enrols it. The
// code's time step is stored as used, so it cannot also sign in. When it
// is a's first factor, the recovery codes are made and returned (shown
// once); otherwise codes is nil.
func (s *Service) ConfirmTOTP(ctx context.Context, actor audit.Actor, a store.Admin, bind, sealed, name, code string) ([]string, error) {
	c, ok := s.unseal(a.ID, bind, "totp", sealed)
	if !ok {
		return nil, errs.FieldErrors(map[string]string{"code": "This setup has expired. Scan the new code below and enter the code it shows."})
	}
	name, err := factorName(name, FactorKindLabel(store.FactorTOTP))
	if err != nil {
		return nil, err
	}
	step, ok := totpStep(c.Secret, code, s.now())
	if !ok {
		s.recordFailure(ctx, actor, a, audit.ActivityAddAdminFactor, "wrong code from the new app", map[string]any{"factor": FactorKindLabel(store.FactorTOTP)})
		return nil, errs.FieldErrors(map[string]string{"code": "That code is not right. Enter the 6-digit code the app shows now."})
	}
	sec, err := s.keys.Seal(factorContext(a.ID, store.FactorTOTP), []byte(c.Secret))
	if err != nil {
		return nil, err
	}
	return s.addFactor(ctx, actor, a, store.AdminFactor{AdminID: a.ID, Kind: store.FactorTOTP, Name: name, Secret: sec, LastStep: step})
}

// BeginPasskeyRegistration starts registering a passkey for a, bound to
// bind; the options go to the browser, the sealed ceremony is kept until
// FinishPasskeyRegistration.
func (s *Service) BeginPasskeyRegistration(ctx context.Context, a store.Admin, bind string) (passkeys.Options, string, error) {
	if s.passkeys == nil {
		return nil, "", ErrPasskeysOff
	}
	if s.keys == nil {
		return nil, "", ErrNoFactors
	}
	factors, err := s.db.AdminFactors(ctx, a.ID)
	if err != nil {
		return nil, "", err
	}
	u, _, err := s.passkeyUser(a, factors)
	if err != nil {
		return nil, "", err
	}
	opts, cer, err := s.passkeys.BeginRegistration(u)
	if err != nil {
		return nil, "", err
	}
	sealed, err := s.seal(a.ID, bind, "passkey", ceremony{Expires: s.now().Add(passkeys.Timeout).UnixMilli(), WebAuthn: cer})
	return opts, sealed, err
}

// FinishPasskeyRegistration verifies the browser's new credential and enrols
// it; like ConfirmTOTP it returns the recovery codes when it is the first
// factor.
func (s *Service) FinishPasskeyRegistration(ctx context.Context, actor audit.Actor, a store.Admin, bind, sealed, name string, response []byte) ([]string, error) {
	if s.passkeys == nil {
		return nil, ErrPasskeysOff
	}
	name, err := factorName(name, FactorKindLabel(store.FactorPasskey))
	if err != nil {
		return nil, err
	}
	c, ok := s.unseal(a.ID, bind, "passkey", sealed)
	if !ok {
		return nil, errs.E(errs.Invalid, "The passkey setup has expired. Try again.", nil)
	}
	factors, err := s.db.AdminFactors(ctx, a.ID)
	if err != nil {
		return nil, err
	}
	u, _, err := s.passkeyUser(a, factors)
	if err != nil {
		return nil, err
	}
	cred, err := s.passkeys.FinishRegistration(u, c.WebAuthn, response)
	if err != nil {
		if errs.KindOf(err) == errs.Unauthorized {
			s.log.InfoContext(ctx, "passkey registration refused", "admin_id", a.ID, "err", err)
			s.recordFailure(ctx, actor, a, audit.ActivityAddAdminFactor, "passkey not registered", map[string]any{"factor": FactorKindLabel(store.FactorPasskey)})
			return nil, errs.E(errs.Invalid, "That passkey or security key could not be registered. Try again.", err)
		}
		return nil, err
	}
	sec, err := s.keys.Seal(factorContext(a.ID, store.FactorPasskey), cred.Record)
	if err != nil {
		return nil, err
	}
	codes, err := s.addFactor(ctx, actor, a, store.AdminFactor{AdminID: a.ID, Kind: store.FactorPasskey, Name: name, Secret: sec,
		CredentialID: base64.RawURLEncoding.EncodeToString(cred.ID)})
	if errors.Is(err, store.ErrDuplicate) {
		return nil, errs.E(errs.Invalid, "This passkey or security key is registered already.", err)
	}
	return codes, err
}

// recordFailure records a refused step of enrolment or removal.
func (s *Service) recordFailure(ctx context.Context, actor audit.Actor, a store.Admin, activity, reason string, details map[string]any) {
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		_, err := audit.Record(ctx, tx, audit.Entry{Category: audit.CategoryAuthentication, Activity: activity,
			Actor: actor, Target: adminTarget(a), Result: audit.Failure, Reason: reason, Details: details})
		return err
	})
	if err != nil {
		s.log.ErrorContext(ctx, "record refused sign-in method change", "err", err)
	}
}

// addFactor stores f and its audit event, and the first recovery codes
// when f is the first factor.
func (s *Service) addFactor(ctx context.Context, actor audit.Actor, a store.Admin, f store.AdminFactor) ([]string, error) {
	now := s.now().UnixMilli()
	f.CreatedMS = now
	var codes []string
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		n, err := tx.CountAdminFactors(ctx, a.ID)
		if err != nil {
			return err
		}
		if _, err := tx.InsertAdminFactor(ctx, f); err != nil {
			return err
		}
		if err := tx.SetEnrolRequired(ctx, a.ID, false, now); err != nil {
			return err
		}
		if _, err := audit.Record(ctx, tx, audit.Entry{Category: audit.CategoryAuthentication, Activity: audit.ActivityAddAdminFactor,
			Actor: actor, Target: adminTarget(a), Details: map[string]any{"factor": FactorKindLabel(f.Kind), "name": f.Name}}); err != nil {
			return err
		}
		if n == 0 {
			codes, err = s.replaceRecoveryCodes(ctx, tx, actor, a)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return codes, nil
}

// recoveryAlphabet leaves out letters and digits that read alike (0/o, 1/l/i).
const recoveryAlphabet = "abcdefghjkmnpqrstuvwxyz23456789"

func newRecoveryCode() string {
	b := make([]byte, 10)
	if _, err := rand.Read(b); err != nil {
		panic("admins: crypto/rand failed: " + err.Error())
	}
	out := make([]byte, 0, 11)
	for i, x := range b {
		if i == 5 {
			out = append(out, '-')
		}
		// 256 is not a multiple of 31: the bias (at most 1 in 256) costs
		// a fraction of a bit of the code's 49.
		out = append(out, recoveryAlphabet[int(x)%len(recoveryAlphabet)])
	}
	return string(out)
}

func (s *Service) replaceRecoveryCodes(ctx context.Context, tx *store.Tx, actor audit.Actor, a store.Admin) ([]string, error) {
	codes := make([]string, RecoveryCodeCount)
	hashes := make([]string, RecoveryCodeCount)
	for i := range codes {
		codes[i] = newRecoveryCode()
		hashes[i] = s.recoveryHash(a.ID, codes[i])
	}
	if err := tx.ReplaceRecoveryCodes(ctx, a.ID, hashes, s.now().UnixMilli()); err != nil {
		return nil, err
	}
	_, err := audit.Record(ctx, tx, audit.Entry{Category: audit.CategoryAuthentication, Activity: audit.ActivityRecoveryCodes,
		Actor: actor, Target: adminTarget(a), Details: map[string]any{"count": RecoveryCodeCount}})
	return codes, err
}

// NewRecoveryCodes voids a's recovery codes and makes new ones (shown
// once). An administrator without a factor has none.
func (s *Service) NewRecoveryCodes(ctx context.Context, actor audit.Actor, a store.Admin) ([]string, error) {
	if s.keys == nil {
		return nil, ErrNoFactors
	}
	var codes []string
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		n, err := tx.CountAdminFactors(ctx, a.ID)
		if err != nil {
			return err
		}
		if n == 0 {
			return errs.E(errs.Conflict, "Add a second factor first: recovery codes stand in for one.", nil)
		}
		codes, err = s.replaceRecoveryCodes(ctx, tx, actor, a)
		return err
	})
	return codes, err
}

// RemoveFactor removes one of a's factors. The last one is refused while
// a's role requires a second factor; with it go the recovery codes.
func (s *Service) RemoveFactor(ctx context.Context, actor audit.Actor, a store.Admin, id int64) error {
	p, _, err := s.Policy(ctx)
	if err != nil {
		return err
	}
	err = s.db.InTx(ctx, func(tx *store.Tx) error {
		f, err := tx.AdminFactor(ctx, a.ID, id)
		if errors.Is(err, store.ErrNotFound) {
			return errs.E(errs.NotFound, "That sign-in method does not exist (any more).", err)
		}
		if err != nil {
			return err
		}
		n, err := tx.CountAdminFactors(ctx, a.ID)
		if err != nil {
			return err
		}
		if n <= 1 && p.Requires(Role(a.Role)) {
			return ErrLastFactor
		}
		if err := tx.DeleteAdminFactor(ctx, a.ID, id); err != nil {
			return err
		}
		if n <= 1 {
			if _, err := tx.DeleteAdminFactors(ctx, a.ID); err != nil { // the recovery codes
				return err
			}
		}
		_, err = audit.Record(ctx, tx, audit.Entry{Category: audit.CategoryAuthentication, Activity: audit.ActivityRemoveAdminFactor,
			Actor: actor, Target: adminTarget(a), Details: map[string]any{"factor": FactorKindLabel(f.Kind), "name": f.Name}})
		return err
	})
	if errors.Is(err, ErrLastFactor) {
		s.recordFailure(ctx, actor, a, audit.ActivityRemoveAdminFactor, "last second factor, and the role requires one", nil)
	}
	return err
}

// FinishEnrolSignIn turns a half-signed-in state at the enrolment stage
// into a session once a factor has been enrolled in it.
func (s *Service) FinishEnrolSignIn(ctx context.Context, p Pending, from audit.Actor) (string, error) {
	if p.Stage != store.StageEnrol {
		return "", ErrSignInExpired
	}
	fs, err := s.db.AdminFactors(ctx, p.Admin.ID)
	if err != nil {
		return "", err
	}
	if len(fs) == 0 {
		return "", ErrSignInExpired
	}
	last := fs[len(fs)-1]
	return s.finishSignIn(ctx, p, from, map[string]any{"factor": FactorKindLabel(last.Kind), "name": last.Name, "enrolled": true})
}
