package passkeys

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/go-webauthn/webauthn/protocol"

	"github.com/writeback/writeback/services/errs"
)

func TestNewTakesTheRelyingPartyFromTheBaseURL(t *testing.T) {
	cases := []struct {
		base   string
		rpID   string
		origin string
		err    error
	}{
		{"https://reset.example.com", "reset.example.com", "https://reset.example.com", nil},
		{"https://reset.example.com:8443/password/", "reset.example.com", "https://reset.example.com:8443", nil},
		{"http://localhost:8080", "localhost", "http://localhost:8080", nil},
		{"http://127.0.0.1:8080", "", "", ErrHostName},
		{"http://[::1]:8080", "", "", ErrHostName},
	}
	for _, tc := range cases {
		s, err := New(tc.base, "Writeback")
		if tc.err != nil {
			if !errors.Is(err, tc.err) {
				t.Errorf("%s: err %v, want %v", tc.base, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", tc.base, err)
		}
		if s.wa.Config.RPID != tc.rpID || len(s.wa.Config.RPOrigins) != 1 || s.wa.Config.RPOrigins[0] != tc.origin {
			t.Errorf("%s: RP ID %q, origins %v", tc.base, s.wa.Config.RPID, s.wa.Config.RPOrigins)
		}
	}
	if _, err := New("reset.example.com", "Writeback"); err == nil {
		t.Error("a base URL without a scheme was accepted")
	}
}

// TestCeremonies: the options carry the RP ID and the person's handle; a
// response that is no credential, a missing or expired ceremony are all
// the one Unauthorized refusal.
func TestCeremonies(t *testing.T) {
	s, err := New("https://reset.example.com", "Writeback")
	if err != nil {
		t.Fatal(err)
	}
	u := User{Handle: []byte("0123456789abcdef0123456789abcdef"), Name: "ada@example.com", DisplayName: "Ada"}
	opts, cer, err := s.BeginRegistration(u)
	if err != nil {
		t.Fatal(err)
	}
	var o struct {
		RP        struct{ ID string }
		User      struct{ Name string }
		Challenge string
	}
	if err := json.Unmarshal(opts, &o); err != nil || o.RP.ID != "reset.example.com" || o.User.Name != "ada@example.com" || len(o.Challenge) < 32 {
		t.Errorf("options %s: %v", opts, err)
	}
	for name, c := range map[string]Ceremony{"garbage response": cer, "no ceremony": nil} {
		if _, err := s.FinishRegistration(u, c, []byte(`{"id":"x"}`)); errs.KindOf(err) != errs.Unauthorized {
			t.Errorf("%s: %v", name, err)
		}
	}
	s.now = func() time.Time { return time.Now().Add(Timeout + time.Minute) }
	if _, err := s.FinishRegistration(u, cer, []byte(`{}`)); errs.KindOf(err) != errs.Unauthorized || errs.MessageOf(err) != ErrRefused.Message {
		t.Errorf("expired ceremony: %v", err)
	}
	if _, _, err := s.BeginLogin(u); err == nil {
		t.Error("a login without credentials began")
	}
}

// TestRefusalKeepsNoChallenge: the operator's detail of a refused response
// names the problem, never the challenge it was checked against.
func TestRefusalKeepsNoChallenge(t *testing.T) {
	err := refused(&protocol.Error{Type: "verification_error", Details: "Error validating challenge",
		DevInfo: "Expected b Value: \"c2VjcmV0LWNoYWxsZW5nZQ\"\nReceived b: \"b3RoZXI\""})
	if strings.Contains(err.Error(), "c2VjcmV0") || !strings.Contains(err.Error(), "Error validating challenge") {
		t.Errorf("refusal: %v", err)
	}
	err = refused(&protocol.Error{Details: "Error validating origin", DevInfo: "Expected Values: [https://a], Received: https://b"})
	if !strings.Contains(err.Error(), "Received: https://b") {
		t.Errorf("origin refusal lost its detail: %v", err)
	}
}

// TestDiscoverableCeremonies: an employee's passkey is registered as a
// discoverable credential (the authenticator must keep it), and the
// request that verifies one names no credential and no person, so two
// requests differ only in their challenge; an answer to it that is no
// assertion, or one whose owner the lookup refuses, is the one refusal.
func TestDiscoverableCeremonies(t *testing.T) {
	s, err := New("https://reset.example.com", "Writeback")
	if err != nil {
		t.Fatal(err)
	}
	u := User{Handle: []byte("0123456789abcdef0123456789abcdef"), Name: "alice", DisplayName: "alice"}
	opts, _, err := s.BeginDiscoverableRegistration(u)
	if err != nil {
		t.Fatal(err)
	}
	var reg struct {
		AuthenticatorSelection struct {
			ResidentKey        string
			RequireResidentKey bool
		}
	}
	if err := json.Unmarshal(opts, &reg); err != nil || reg.AuthenticatorSelection.ResidentKey != "required" || !reg.AuthenticatorSelection.RequireResidentKey {
		t.Errorf("registration options %s: %v", opts, err)
	}
	a, cer, err := s.BeginDiscoverableLogin()
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := s.BeginDiscoverableLogin()
	if err != nil {
		t.Fatal(err)
	}
	strip := func(o Options) map[string]any {
		var m map[string]any
		if err := json.Unmarshal(o, &m); err != nil {
			t.Fatal(err)
		}
		delete(m, "challenge")
		return m
	}
	ma, mb := strip(a), strip(b)
	if _, named := ma["allowCredentials"]; named || ma["rpId"] != "reset.example.com" || !reflect.DeepEqual(ma, mb) {
		t.Errorf("discoverable requests %s and %s", a, b)
	}
	called := false
	lookup := func(id, handle []byte) (User, error) {
		called = true
		return User{}, errors.New("not the flow's account")
	}
	if _, err := s.FinishDiscoverableLogin(cer, []byte(`{"id":"x"}`), lookup); errs.KindOf(err) != errs.Unauthorized || called {
		t.Errorf("garbage assertion: %v (lookup called %v)", err, called)
	}
	if _, err := s.FinishDiscoverableLogin(nil, []byte(`{}`), lookup); errs.KindOf(err) != errs.Unauthorized {
		t.Errorf("no ceremony: %v", err)
	}
}
