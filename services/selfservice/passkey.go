package selfservice

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/errs"
	"github.com/writeback/writeback/services/i18n"
	"github.com/writeback/writeback/services/passkeys"
	"github.com/writeback/writeback/store"
)

// Passkeys as a verification method (issue 13). An employee registers one
// on /register, signed in with the directory password; on /reset and
// /unlock it proves it's them. The portal never names a credential to the
// browser there: every flow, of a real account or of a name that matches
// none, gets the same discoverable request (BeginDiscoverableLogin), and
// the credential the browser answers with must be one registered to the
// account of the flow. So the page tells nobody whose passkeys exist.

// UsePasskeys turns on passkeys as a verification method, verified by p
// (the relying party of the portal's base URL). Without it the method is
// never offered, whatever the policy allows.
func (s *Service) UsePasskeys(p *passkeys.Service) { s.pk = p }

// PasskeysAvailable reports whether passkeys can be offered at all (the
// base URL has a host name).
func (s *Service) PasskeysAvailable() bool { return s.pk != nil }

// allowed lists the methods the policy allows that this portal can offer.
func (s *Service) allowed(p Policy) []string {
	var out []string
	for _, m := range p.Methods.List() {
		if m == MethodPasskey && s.pk == nil {
			continue
		}
		out = append(out, m)
	}
	return out
}

// ErrPasskeyNeedsScript answers a passkey step sent without a credential
// (a browser without JavaScript).
var ErrPasskeyNeedsScript = errs.E(errs.Invalid, "Passkeys need JavaScript in your browser. Turn it on, or use another method.", nil)

// errPasskeysOff answers a passkey step on a portal without passkeys.
var errPasskeysOff = errs.E(errs.Invalid, "Passkeys are not available on this portal. Use another method.", nil)

// passkeyHandle is the WebAuthn user handle of a directory account: keyed,
// so that it reveals neither the directory ID nor the name, and stable.
func (s *Service) passkeyHandle(userID string) []byte {
	m := hmac.New(sha256.New, s.handleKey)
	m.Write([]byte(userID))
	return m.Sum(nil)
}

// passkeyUser is the WebAuthn view of a directory account with its
// registered passkeys (as stored).
func (s *Service) passkeyUser(ctx context.Context, userID, name string) (passkeys.User, []store.Passkey, error) {
	u := passkeys.User{Handle: s.passkeyHandle(userID), Name: name, DisplayName: name}
	rows, err := s.db.Passkeys(ctx, userID)
	if err != nil {
		return u, nil, err
	}
	for _, r := range rows {
		rec, err := s.keys.Open(methodContext(userID, MethodPasskey), r.Secret)
		if err != nil {
			return u, nil, fmt.Errorf("selfservice: open passkey: %w", err)
		}
		id, err := base64.RawURLEncoding.DecodeString(r.CredentialID)
		if err != nil {
			return u, nil, fmt.Errorf("selfservice: passkey credential id: %w", err)
		}
		u.Credentials = append(u.Credentials, passkeys.Credential{ID: id, Record: rec})
	}
	return u, rows, nil
}

// RegisteredPasskey is a passkey as the register page lists it.
type RegisteredPasskey struct {
	ID       string // credential ID (base64url), for removal
	Name     string
	Created  time.Time
	LastUsed time.Time // zero: never used
}

// passkeyRegContext binds a sealed registration ceremony to its flow.
func passkeyRegContext(flowID string) string { return "sspr.passkey-registration:" + flowID }

// BeginPasskeyRegistration starts registering a passkey in a registration
// flow: the options go to the page, the ceremony comes back sealed (bound
// to the flow) for the caller to keep in the person's session until
// FinishPasskeyRegistration, which the caller gives it to once. Showing
// the register page so writes nothing stored: a form sent back with a
// mistake changes nothing.
func (s *Service) BeginPasskeyRegistration(ctx context.Context, id, browser string) (passkeys.Options, string, error) {
	if s.pk == nil {
		return nil, "", errPasskeysOff
	}
	fl, err := s.registerFlow(ctx, id, browser)
	if err != nil {
		return nil, "", err
	}
	u, _, err := s.passkeyUser(ctx, fl.UserID, fl.Login)
	if err != nil {
		return nil, "", err
	}
	opts, cer, err := s.pk.BeginDiscoverableRegistration(u)
	if err != nil {
		return nil, "", err
	}
	sealed, err := s.keys.Seal(passkeyRegContext(fl.ID), cer)
	return opts, sealed, err
}

// FinishPasskeyRegistration verifies the browser's new credential against
// the sealed ceremony BeginPasskeyRegistration gave and registers it under
// name, recording "User registered security info".
func (s *Service) FinishPasskeyRegistration(ctx context.Context, id, browser, sealed, name string, response []byte, from audit.Actor) (err error) {
	defer func() { err = EmployeeError(err) }()
	if s.pk == nil {
		return errPasskeysOff
	}
	name = strings.TrimSpace(name)
	if name == "" {
		name = i18n.T(ctx, MethodLabel(MethodPasskey)) // named in the language of the page it was added on
	}
	if utf8.RuneCountInString(name) > 64 || strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return errs.FieldErrors(map[string]string{"passkey-name": "Use at most 64 letters, digits or spaces."})
	}
	if len(response) == 0 {
		return ErrPasskeyNeedsScript
	}
	fl, err := s.registerFlow(ctx, id, browser)
	if err != nil {
		return err
	}
	var cer passkeys.Ceremony // none (refused below) when it does not open
	if sealed != "" {
		cer, _ = s.keys.Open(passkeyRegContext(fl.ID), sealed)
	}
	u, _, err := s.passkeyUser(ctx, fl.UserID, fl.Login)
	if err != nil {
		return err
	}
	cred, err := s.pk.FinishRegistration(u, cer, response)
	if err != nil {
		s.log.InfoContext(ctx, "self-service passkey registration refused", "correlation_id", fl.CorrelationID, "err", err)
		return err
	}
	rec, err := s.keys.Seal(methodContext(fl.UserID, MethodPasskey), cred.Record)
	if err != nil {
		return err
	}
	return s.db.InTx(ctx, func(tx *store.Tx) error {
		if err := tx.AddPasskey(ctx, store.Passkey{CredentialID: base64.RawURLEncoding.EncodeToString(cred.ID), UserID: fl.UserID, Name: name,
			Secret: rec, CreatedMS: s.now().UnixMilli()}); err != nil {
			return err
		}
		_, err := audit.Record(ctx, tx, entry(audit.ActivityRegisterSecurity, from, fl.Flow, map[string]any{"method": MethodLabel(MethodPasskey), "name": name}))
		return err
	})
}

// RemovePasskey removes one of the signed-in person's passkeys and records
// it. A credential that is not theirs is "not found", whoever's it is.
func (s *Service) RemovePasskey(ctx context.Context, id, browser, credentialID string, from audit.Actor) (err error) {
	defer func() { err = EmployeeError(err) }()
	fl, err := s.registerFlow(ctx, id, browser)
	if err != nil {
		return err
	}
	return s.db.InTx(ctx, func(tx *store.Tx) error {
		pk, err := tx.DeletePasskey(ctx, fl.UserID, credentialID)
		if errors.Is(err, store.ErrNotFound) {
			return errs.E(errs.NotFound, "That passkey is not registered (any more).", nil)
		}
		if err != nil {
			return err
		}
		e := entry(audit.ActivityRegisterSecurity, from, fl.Flow, map[string]any{"method": MethodLabel(MethodPasskey), "name": pk.Name, "step": "removed"})
		_, err = audit.Record(ctx, tx, e)
		return err
	})
}

// registeredPasskeys lists a person's passkeys for the register page.
func (s *Service) registeredPasskeys(ctx context.Context, userID string) ([]RegisteredPasskey, error) {
	rows, err := s.db.Passkeys(ctx, userID)
	if err != nil {
		return nil, err
	}
	out := make([]RegisteredPasskey, 0, len(rows))
	for _, r := range rows {
		p := RegisteredPasskey{ID: r.CredentialID, Name: r.Name, Created: time.UnixMilli(r.CreatedMS).UTC()}
		if r.LastUsedMS != 0 {
			p.LastUsed = time.UnixMilli(r.LastUsedMS).UTC()
		}
		out = append(out, p)
	}
	return out, nil
}

// beginPasskeyStep makes a fresh discoverable request for a reset or
// unlock flow: the same for every flow (see the comment at the top).
func (s *Service) beginPasskeyStep() (passkeys.Options, passkeys.Ceremony, error) {
	if s.pk == nil {
		return nil, nil, errPasskeysOff
	}
	return s.pk.BeginDiscoverableLogin()
}

// checkPasskey verifies the assertion sent on a flow's passkey step. The
// flow's ceremony is used once: it is replaced by a fresh one (for the
// next try) in the same transaction that takes it. The assertion verifies
// only with a credential registered to the flow's account; anything else
// (a flow that cannot verify, another person's passkey, a bad signature, a
// sign count that went backwards) is a wrong answer.
func (s *Service) checkPasskey(ctx context.Context, id, browser string, eligible bool, userID, login, response string) (bool, error) {
	opts, next, err := s.beginPasskeyStep()
	if err != nil {
		return false, err
	}
	var cer passkeys.Ceremony
	var corr string
	if err := s.updateFlow(ctx, id, browser, func(tx *store.Tx, fl *flow) error {
		cer, corr = fl.st.PasskeyCeremony, fl.CorrelationID
		fl.st.PasskeyCeremony, fl.st.PasskeyOptions = next, string(opts)
		return nil
	}); err != nil {
		return false, err
	}
	var owner store.Passkey
	var readErr error // a failure on our side, never a wrong answer
	cred, err := s.pk.FinishDiscoverableLogin(cer, []byte(response), func(credID, handle []byte) (passkeys.User, error) {
		var err error
		owner, err = s.db.PasskeyByCredential(ctx, base64.RawURLEncoding.EncodeToString(credID))
		switch {
		case errors.Is(err, store.ErrNotFound):
			return passkeys.User{}, errors.New("no such passkey is registered")
		case err != nil:
			readErr = err
			return passkeys.User{}, err
		case !eligible || owner.UserID != userID:
			return passkeys.User{}, errors.New("the passkey is not one of the flow's account")
		}
		u, _, err := s.passkeyUser(ctx, userID, login)
		readErr = err
		return u, err
	})
	if readErr != nil {
		return false, readErr
	}
	if errs.KindOf(err) == errs.Unauthorized {
		s.log.InfoContext(ctx, "self-service passkey refused", "correlation_id", corr, "err", err)
		return false, nil
	}
	if err != nil {
		return false, err
	}
	sealed, err := s.keys.Seal(methodContext(userID, MethodPasskey), cred.Record)
	if err != nil {
		return false, err
	}
	err = s.db.InTx(ctx, func(tx *store.Tx) error {
		return tx.UsePasskey(ctx, userID, owner.CredentialID, sealed, s.now().UnixMilli())
	})
	return err == nil, err
}
