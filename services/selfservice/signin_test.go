package selfservice

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/writeback/writeback/services/directory"
	"github.com/writeback/writeback/services/errs"
	"github.com/writeback/writeback/services/ratelimit"
	"github.com/writeback/writeback/store"
)

func TestSignInThrottledSaysHowLong(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	acct := ratelimit.Limit{Bucket: store.BucketDirectoryAccount, Window: 30 * time.Minute}
	cases := []struct {
		name string
		ref  ratelimit.Refusal
		want string
	}{
		{"retry known", ratelimit.Refusal{Limit: acct, Retry: now.Add(12*time.Minute + time.Second)}, "wait 13 minutes"},
		{"under a minute", ratelimit.Refusal{Limit: acct, Retry: now.Add(10 * time.Second)}, "wait a minute"},
		{"unknown: the window", ratelimit.Refusal{Limit: acct}, "wait 30 minutes"},
		{"address", ratelimit.Refusal{Limit: ratelimit.Limit{Bucket: store.BucketDirectoryAddress, Window: 15 * time.Minute}}, "from your network. Wait 15 minutes"},
	}
	for _, c := range cases {
		err := signInThrottled(&c.ref, now)
		if errs.KindOf(err) != errs.TooMany || !strings.Contains(errs.MessageOf(err), c.want) {
			t.Errorf("%s: %q, want it to say %q", c.name, errs.MessageOf(err), c.want)
		}
	}
}

// TestOurSide: the one classifier, at a sign-in with the person's own
// password and at every other step. At a sign-in the directory's answers
// about the account are the person's; later they are ours.
func TestOurSide(t *testing.T) {
	dirErr := func(code directory.Code, kind errs.Kind) error {
		return errs.E(kind, "x", &directory.OpError{Code: code, Err: errors.New("x")})
	}
	cases := []struct {
		err          error
		signIn, flow bool
	}{
		{dirErr(directory.CodeBadPassword, errs.Unauthorized), false, true},
		{dirErr(directory.CodeLocked, errs.Forbidden), false, true},
		{dirErr(directory.CodeDisabled, errs.Forbidden), false, true},
		{dirErr(directory.CodeExpired, errs.Forbidden), false, true},
		{dirErr(directory.CodeProtected, errs.Forbidden), false, true},
		{dirErr(directory.CodeNotFound, errs.NotFound), false, true},
		{dirErr(directory.CodeAmbiguous, errs.Conflict), false, true},
		{dirErr(directory.CodeConflict, errs.Conflict), false, true},
		{dirErr(directory.CodePolicy, errs.Policy), false, false},
		{dirErr(directory.CodeNotPermitted, errs.Forbidden), true, true},
		{dirErr(directory.CodeInsecure, errs.Forbidden), true, true},
		{dirErr(directory.CodeInvalid, errs.Invalid), true, true},
		{dirErr(directory.CodeServiceAccount, errs.Unavailable), true, true},
		{dirErr(directory.CodeCertificate, errs.Unavailable), true, true},
		{dirErr(directory.CodeUnavailable, errs.Unavailable), true, true},
		{dirErr(directory.CodeInternal, errs.Internal), true, true},
		{errors.New("store: commit: disk I/O error"), true, true},
		{ErrNoMail, true, true},
		{errs.E(errs.Unauthorized, "That code is not right.", nil), false, false},
		{errs.FieldErrors(map[string]string{"login": "Enter your user name."}), false, false},
		{nil, false, false},
	}
	for _, c := range cases {
		if got := ourSide(c.err, true); got != c.signIn {
			t.Errorf("%v at a sign-in: our side %v, want %v", c.err, got, c.signIn)
		}
		if got := ourSide(c.err, false); got != c.flow {
			t.Errorf("%v in a flow: our side %v, want %v", c.err, got, c.flow)
		}
	}
}
