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

func TestSignInOurSide(t *testing.T) {
	dirErr := func(code directory.Code, kind errs.Kind) error {
		return errs.E(kind, "x", &directory.OpError{Code: code, Err: errors.New("x")})
	}
	cases := []struct {
		err  error
		want bool
	}{
		{dirErr(directory.CodeBadPassword, errs.Unauthorized), false},
		{dirErr(directory.CodeLocked, errs.Forbidden), false},
		{dirErr(directory.CodeNotFound, errs.NotFound), false},
		{dirErr(directory.CodePolicy, errs.Policy), false},
		{dirErr(directory.CodeNotPermitted, errs.Forbidden), true},
		{dirErr(directory.CodeServiceAccount, errs.Unavailable), true},
		{dirErr(directory.CodeInsecure, errs.Forbidden), true},
		{dirErr(directory.CodeUnavailable, errs.Unavailable), true},
		{errors.New("store: commit: disk I/O error"), true},
	}
	for _, c := range cases {
		if got := signInOurSide(c.err); got != c.want {
			t.Errorf("%v: our side %v, want %v", c.err, got, c.want)
		}
	}
}
