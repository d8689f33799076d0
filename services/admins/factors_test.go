package admins

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/errs"
	"github.com/writeback/writeback/services/keyring"
	"github.com/writeback/writeback/store"
)

// enrolled is a Global Administrator with an authenticator app (read from
// the store the way the page shows it: the setup's key).
func enrolled(t *testing.T) (*Service, *store.DB, store.Admin, string, []string) {
	t.Helper()
	s, db := newService(t)
	s.keys = keyring.New(make([]byte, 32))
	ctx := context.Background()
	a, err := s.Create(ctx, audit.CommandLine, NewAdmin{Email: "ada@example.com", Name: "Ada", Role: GlobalAdmin, Password: "a long enough password"})
	if err != nil {
		t.Fatal(err)
	}
	setup, err := s.BeginTOTP(a, "bind", "")
	if err != nil {
		t.Fatal(err)
	}
	code, _ := totp.GenerateCode(setup.Secret, time.Now())
	codes, err := s.ConfirmTOTP(ctx, audit.CommandLine, a, "bind", setup.Sealed, "", code)
	if err != nil || len(codes) != RecoveryCodeCount {
		t.Fatalf("confirm: %d codes, %v", len(codes), err)
	}
	return s, db, a, setup.Secret, codes
}

func pending(t *testing.T, s *Service, a store.Admin) Pending {
	t.Helper()
	next, raw, err := s.BeginSignIn(context.Background(), a, audit.Actor{ClientIP: "192.0.2.1"})
	if err != nil || next != NextFactor {
		t.Fatalf("begin sign-in: %v %v", next, err)
	}
	p, err := s.ResolvePending(context.Background(), raw)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestTOTPEachStepOnce: the code that confirmed the app does not also sign
// in; the next step's code signs in once; the secret is sealed at rest.
func TestTOTPEachStepOnce(t *testing.T) {
	s, db, a, secret, _ := enrolled(t)
	ctx := context.Background()
	fs, _ := db.AdminFactors(ctx, a.ID)
	if len(fs) != 1 || strings.Contains(fs[0].Secret, secret) || !strings.HasPrefix(fs[0].Secret, "v1:") || fs[0].Name != "Authenticator app" {
		t.Fatalf("stored factor %+v", fs)
	}
	// The code of the step that confirmed the app (not of "now": a step
	// boundary may lie between the enrolment and this line).
	now := time.Unix(fs[0].LastStep*int64(totpPeriod/time.Second), 0)
	used, _ := totp.GenerateCode(secret, now)
	if _, err := s.VerifyTOTP(ctx, pending(t, s, a), used, audit.Actor{}); !errors.Is(err, ErrCodeUsed) {
		t.Errorf("the confirming code signs in: %v", err)
	}
	next, _ := totp.GenerateCode(secret, now.Add(totpPeriod))
	p := pending(t, s, a)
	raw, err := s.VerifyTOTP(ctx, p, next, audit.Actor{})
	if err != nil || raw == "" {
		t.Fatalf("next step's code: %v", err)
	}
	if _, err := s.Resolve(ctx, raw); err != nil {
		t.Errorf("no session: %v", err)
	}
	if _, err := s.ResolvePending(ctx, "x"); !errors.Is(err, ErrSignInExpired) {
		t.Errorf("unknown pending: %v", err)
	}
	// The half-signed-in state is used up.
	if _, err := s.VerifyTOTP(ctx, p, next, audit.Actor{}); err == nil {
		t.Error("a used half-signed-in state signed in again")
	}
}

// TestRecoveryCodeRace: of two concurrent uses of one recovery code, one
// signs in.
func TestRecoveryCodeRace(t *testing.T) {
	s, _, a, _, codes := enrolled(t)
	var wg sync.WaitGroup
	results := make([]error, 2)
	for i := range results {
		p := pending(t, s, a)
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, results[i] = s.VerifyRecoveryCode(context.Background(), p, codes[0], audit.Actor{})
		}()
	}
	wg.Wait()
	ok := 0
	for _, err := range results {
		if err == nil {
			ok++
		} else if !errors.Is(err, ErrWrongRecovery) {
			t.Errorf("unexpected: %v", err)
		}
	}
	if ok != 1 {
		t.Errorf("%d of 2 concurrent uses signed in", ok)
	}
}

// TestResetSignInLinkOnce: a reset voids the password and the factors, its
// token sets a password once, and nobody resets themselves from the pages.
func TestResetSignInLinkOnce(t *testing.T) {
	s, db, a, _, _ := enrolled(t)
	ctx := context.Background()
	if _, err := s.ResetSignIn(ctx, audit.CommandLine, a.ID, a.ID); !errors.Is(err, ErrCannotResetSelf) {
		t.Errorf("self reset: %v", err)
	}
	tok, err := s.ResetSignIn(ctx, audit.CommandLine, 0, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(ctx, "ada@example.com", "a long enough password", audit.Actor{ClientIP: "192.0.2.1"}); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("old password after reset: %v", err)
	}
	if fs, left, _ := s.Factors(ctx, a.ID); len(fs) != 0 || left != 0 {
		t.Errorf("after reset: %d factors, %d codes", len(fs), left)
	}
	if _, err := s.SetPasswordWithToken(ctx, tok, "short", audit.Actor{}); errs.KindOf(err) != errs.Invalid {
		t.Errorf("short password: %v", err)
	}
	if _, err := s.SetPasswordWithToken(ctx, tok, "a brand new password", audit.Actor{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetPasswordWithToken(ctx, tok, "another new password", audit.Actor{}); !errors.Is(err, ErrResetLinkBad) {
		t.Errorf("token used twice: %v", err)
	}
	b, err := s.Authenticate(ctx, "ada@example.com", "a brand new password", audit.Actor{ClientIP: "192.0.2.1"})
	if err != nil {
		t.Fatal(err)
	}
	// Enrolment again, even with the requirement off: they had a factor.
	_, meta, _ := s.Policy(ctx)
	if _, err := s.SavePolicy(ctx, audit.CommandLine, meta.Version, Policy{}); err != nil {
		t.Fatal(err)
	}
	if next, _, err := s.BeginSignIn(ctx, b, audit.Actor{}); err != nil || next != NextEnrol {
		t.Errorf("after reset: %v %v, want enrolment", next, err)
	}
	if must, _ := db.EnrolRequired(ctx, a.ID); !must {
		t.Error("no enrolment flag")
	}
}
