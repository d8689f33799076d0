// Package passkeys runs WebAuthn ceremonies (passkeys and security keys)
// for whoever needs them — administrators' second factor today, employees'
// verification method later — with github.com/go-webauthn/webauthn. It
// knows nothing of who the person is beyond a stable opaque handle and a
// name, and nothing of where credentials or ceremony state are kept: its
// callers store the Credential records it returns and the Ceremony state
// between a Begin and its Finish (server-side, bound to the person's
// session), and send the options to the browser.
//
// The relying party is the portal's base URL: its host name is the RP ID and
// its scheme, host and port the one accepted origin. Browsers accept an RP
// ID that is a domain name (localhost included), never an IP address.
package passkeys

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/writeback/writeback/services/errs"
)

// Timeout is how long a ceremony may take, in the browser and between Begin
// and Finish.
const Timeout = 3 * time.Minute

// Service runs WebAuthn ceremonies for one relying party.
type Service struct {
	wa  *webauthn.WebAuthn
	now func() time.Time
}

// ErrHostName is returned by New for a base URL whose host is an IP
// address: browsers use passkeys only on a host name.
var ErrHostName = errors.New("passkeys need a base URL with a host name (such as https://reset.example.com or http://localhost:8080), not an IP address")

// New builds the service for the portal at baseURL; rpName is the name the
// browser shows ("Writeback").
func New(baseURL, rpName string) (*Service, error) {
	u, err := url.Parse(baseURL)
	if err != nil || u.Hostname() == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return nil, fmt.Errorf("passkeys: base URL %q is not an absolute http(s) URL", baseURL)
	}
	if net.ParseIP(u.Hostname()) != nil {
		return nil, ErrHostName
	}
	origin := u.Scheme + "://" + u.Host
	wa, err := webauthn.New(&webauthn.Config{
		RPID:          u.Hostname(),
		RPDisplayName: rpName,
		RPOrigins:     []string{origin},
		// No attestation: the portal trusts whatever authenticator the
		// person chooses, and asks for no statement about its make.
		AttestationPreference: protocol.PreferNoAttestation,
		AuthenticatorSelection: protocol.AuthenticatorSelection{
			ResidentKey:      protocol.ResidentKeyRequirementPreferred,
			UserVerification: protocol.VerificationPreferred,
		},
		Timeouts: webauthn.TimeoutsConfig{
			Login:        webauthn.TimeoutConfig{Enforce: true, Timeout: Timeout, TimeoutUVD: Timeout},
			Registration: webauthn.TimeoutConfig{Enforce: true, Timeout: Timeout, TimeoutUVD: Timeout},
		},
	})
	if err != nil {
		return nil, fmt.Errorf("passkeys: %w", err)
	}
	return &Service{wa: wa, now: time.Now}, nil
}

// User is the person a ceremony is for.
type User struct {
	// Handle is a stable, opaque ID of at most 64 bytes that reveals
	// nothing about the person (the authenticator stores it).
	Handle      []byte
	Name        string // e.g. an e-mail address
	DisplayName string
	// Credentials are the person's registered credentials (records made
	// by FinishRegistration, as stored).
	Credentials []Credential
}

// Credential is a stored credential record: JSON of the library's record
// (public key, sign count, flags), and its ID for look-ups.
type Credential struct {
	ID     []byte
	Record []byte
}

type waUser struct {
	u     User
	creds []webauthn.Credential
}

func (w waUser) WebAuthnID() []byte                         { return w.u.Handle }
func (w waUser) WebAuthnName() string                       { return w.u.Name }
func (w waUser) WebAuthnDisplayName() string                { return w.u.DisplayName }
func (w waUser) WebAuthnCredentials() []webauthn.Credential { return w.creds }

func wrap(u User) (waUser, error) {
	w := waUser{u: u}
	for _, c := range u.Credentials {
		var rec webauthn.Credential
		if err := json.Unmarshal(c.Record, &rec); err != nil {
			return w, fmt.Errorf("passkeys: decode credential: %w", err)
		}
		w.creds = append(w.creds, rec)
	}
	return w, nil
}

// Ceremony is the state a Finish needs from its Begin (the challenge among
// it): to be kept server-side, bound to the session it was made for, and
// used once.
type Ceremony []byte

// Options is the JSON the browser passes to navigator.credentials.create or
// get (the publicKey member; PublicKeyCredential.parse…OptionsFromJSON).
type Options []byte

// ErrRefused is the answer to any response that does not verify: wrong
// origin or challenge, unknown credential, bad signature, an expired
// ceremony. The cause is kept for the operator's log.
var ErrRefused = errs.E(errs.Unauthorized, "That passkey or security key was not accepted. Try again, or use another way to sign in.", nil)

// BeginRegistration starts registering a new credential for u; the
// person's existing credentials are excluded, so one authenticator is
// registered once.
func (s *Service) BeginRegistration(u User) (Options, Ceremony, error) {
	w, err := wrap(u)
	if err != nil {
		return nil, nil, err
	}
	return s.beginRegistration(w)
}

// BeginDiscoverableRegistration is BeginRegistration for a credential the
// authenticator must keep itself (a discoverable credential, what browsers
// and phones call a passkey): it can then be used without the portal naming
// it, which is how employees' passkeys verify (BeginDiscoverableLogin).
func (s *Service) BeginDiscoverableRegistration(u User) (Options, Ceremony, error) {
	w, err := wrap(u)
	if err != nil {
		return nil, nil, err
	}
	return s.beginRegistration(w, webauthn.WithResidentKeyRequirement(protocol.ResidentKeyRequirementRequired))
}

func (s *Service) beginRegistration(w waUser, opts ...webauthn.RegistrationOption) (Options, Ceremony, error) {
	opts = append(opts, webauthn.WithExclusions(webauthn.Credentials(w.creds).CredentialDescriptors()))
	creation, sess, err := s.wa.BeginRegistration(w, opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("passkeys: begin registration: %w", err)
	}
	return marshalPair(creation.Response, sess)
}

// FinishRegistration verifies the browser's answer (the JSON of the new
// PublicKeyCredential) against the ceremony and returns the credential
// record to store.
func (s *Service) FinishRegistration(u User, c Ceremony, response []byte) (Credential, error) {
	w, sess, err := s.unpack(u, c)
	if err != nil {
		return Credential{}, err
	}
	parsed, err := protocol.ParseCredentialCreationResponseBytes(response)
	if err != nil {
		return Credential{}, refused(err)
	}
	cred, err := s.wa.CreateCredential(w, sess, parsed)
	if err != nil {
		return Credential{}, refused(err)
	}
	rec, err := json.Marshal(cred)
	if err != nil {
		return Credential{}, fmt.Errorf("passkeys: encode credential: %w", err)
	}
	return Credential{ID: cred.ID, Record: rec}, nil
}

// BeginLogin starts an assertion with one of u's credentials.
func (s *Service) BeginLogin(u User) (Options, Ceremony, error) {
	w, err := wrap(u)
	if err != nil {
		return nil, nil, err
	}
	if len(w.creds) == 0 {
		return nil, nil, errors.New("passkeys: begin login: no credentials")
	}
	assertion, sess, err := s.wa.BeginLogin(w)
	if err != nil {
		return nil, nil, fmt.Errorf("passkeys: begin login: %w", err)
	}
	return marshalPair(assertion.Response, sess)
}

// FinishLogin verifies an assertion (the JSON of the PublicKeyCredential
// navigator.credentials.get returned) and returns the credential it was
// made with, its record updated (sign count) for storing back. A sign
// count that went backwards (a cloned authenticator) is refused.
func (s *Service) FinishLogin(u User, c Ceremony, response []byte) (Credential, error) {
	w, sess, err := s.unpack(u, c)
	if err != nil {
		return Credential{}, err
	}
	parsed, err := protocol.ParseCredentialRequestResponseBytes(response)
	if err != nil {
		return Credential{}, refused(err)
	}
	cred, err := s.wa.ValidateLogin(w, sess, parsed)
	if err != nil {
		return Credential{}, refused(err)
	}
	return accepted(cred)
}

// BeginDiscoverableLogin starts an assertion that names no credential: the
// browser offers whichever passkey for this site the person holds, and the
// options are the same whoever it is for (nothing in them tells whose, or
// whether anyone's, credentials exist).
func (s *Service) BeginDiscoverableLogin() (Options, Ceremony, error) {
	assertion, sess, err := s.wa.BeginDiscoverableLogin()
	if err != nil {
		return nil, nil, fmt.Errorf("passkeys: begin discoverable login: %w", err)
	}
	return marshalPair(assertion.Response, sess)
}

// FinishDiscoverableLogin verifies an assertion begun with
// BeginDiscoverableLogin. lookup returns the person whose credential the
// assertion names (its ID and the user handle the authenticator returned),
// with their stored credentials; an error from it refuses the assertion.
// It returns the credential, its record updated (sign count) for storing
// back; a sign count that went backwards is refused as in FinishLogin.
func (s *Service) FinishDiscoverableLogin(c Ceremony, response []byte, lookup func(credentialID, handle []byte) (User, error)) (Credential, error) {
	sess, err := s.session(c)
	if err != nil {
		return Credential{}, err
	}
	parsed, err := protocol.ParseCredentialRequestResponseBytes(response)
	if err != nil {
		return Credential{}, refused(err)
	}
	cred, err := s.wa.ValidateDiscoverableLogin(func(rawID, handle []byte) (webauthn.User, error) {
		u, err := lookup(rawID, handle)
		if err != nil {
			return nil, err
		}
		return wrap(u)
	}, sess, parsed)
	if err != nil {
		return Credential{}, refused(err)
	}
	return accepted(cred)
}

// accepted turns a verified assertion's credential into the record to
// store, refusing one whose sign count did not increase.
func accepted(cred *webauthn.Credential) (Credential, error) {
	if cred.Authenticator.CloneWarning {
		return Credential{}, refused(errors.New("sign count did not increase: the authenticator may be cloned"))
	}
	rec, err := json.Marshal(cred)
	if err != nil {
		return Credential{}, fmt.Errorf("passkeys: encode credential: %w", err)
	}
	return Credential{ID: cred.ID, Record: rec}, nil
}

func (s *Service) unpack(u User, c Ceremony) (waUser, webauthn.SessionData, error) {
	w, err := wrap(u)
	if err != nil {
		return w, webauthn.SessionData{}, err
	}
	sess, err := s.session(c)
	return w, sess, err
}

// session decodes a ceremony that has not expired.
func (s *Service) session(c Ceremony) (webauthn.SessionData, error) {
	var sess webauthn.SessionData
	if len(c) == 0 || json.Unmarshal(c, &sess) != nil {
		return sess, refused(errors.New("no ceremony in progress"))
	}
	if !sess.Expires.IsZero() && s.now().After(sess.Expires) {
		return sess, refused(errors.New("ceremony expired"))
	}
	return sess, nil
}

func marshalPair(opts any, sess *webauthn.SessionData) (Options, Ceremony, error) {
	o, err := json.Marshal(opts)
	if err != nil {
		return nil, nil, fmt.Errorf("passkeys: encode options: %w", err)
	}
	c, err := json.Marshal(sess)
	if err != nil {
		return nil, nil, fmt.Errorf("passkeys: encode ceremony: %w", err)
	}
	return o, c, nil
}

// refused keeps the library's detail (for the operator's log) behind the
// one answer people see. The library's developer information is kept only
// where it holds no challenge: a wrong origin (a base URL that is not the
// one the browser used) is what an operator needs to see.
func refused(cause error) error {
	detail := cause.Error()
	var pe *protocol.Error
	if errors.As(cause, &pe) {
		detail = pe.Details
		if pe.DevInfo != "" && !strings.Contains(strings.ToLower(pe.Details), "challenge") {
			detail += ": " + pe.DevInfo
		}
	}
	return errs.E(errs.Unauthorized, ErrRefused.Message, fmt.Errorf("passkeys: %s", detail))
}
