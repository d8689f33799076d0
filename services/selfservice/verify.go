package selfservice

import (
	"context"
	"crypto/hmac"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/writeback/writeback/services/admins"
	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/errs"
	"github.com/writeback/writeback/store"
)

// errBusy answers a guess while as many others for the same account are
// still being checked as the limit has room for: it is not evaluated.
var errBusy = errs.E(errs.TooMany, "Too many attempts at the same time. Wait a moment and try again.", nil)

// Verify checks what the person entered for the pending method. A wrong
// answer counts toward the 24-hour block of the account, whichever of its
// flows it came from; the error says what to do next.
//
// Guesses are counted one by one, however many run at once: one
// transaction checks the block, counts the failures in the window and
// reserves a failure before the guess is evaluated; a wrong guess settles
// the reservation (and blocks at the limit), a right one releases it. So no
// more wrong guesses are ever evaluated in the window than FailuresToBlock.
func (s *Service) Verify(ctx context.Context, id, browser, method string, code string, answers []string, from audit.Actor) (err error) {
	defer func() { err = EmployeeError(err) }()
	p, _, err := s.Policy(ctx)
	if err != nil {
		return err
	}
	if method == MethodPasskey && strings.TrimSpace(code) == "" {
		return ErrPasskeyNeedsScript // no guess was made: nothing to count
	}
	var fl flow
	var slot int64
	err = s.db.InTx(ctx, func(tx *store.Tx) error {
		f, err := tx.Flow(ctx, id)
		if fl, err = s.checkFlow(f, err, browser); err != nil {
			return err
		}
		if err := s.notBlocked(ctx, tx, fl.Flow); err != nil {
			return err
		}
		if fl.DoneMS != 0 || method == "" || fl.st.Pending != method {
			return errs.Invalidf("Choose a method first.")
		}
		slot, err = s.reserveGuess(ctx, tx, fl.Flow)
		return err
	})
	if err != nil {
		s.recordVerification(method, false, false, err)
		return err
	}
	s.countAddress(ctx, from.ClientIP)
	// From here on the reservation must be settled or released, even when
	// the request is cancelled.
	ctx = context.WithoutCancel(ctx)
	if s.evaluating != nil {
		s.evaluating(method)
	}
	var ok bool
	var failMsg errs.Text
	switch method {
	case MethodEmail:
		ok, failMsg, err = s.checkCode(ctx, fl.Flow, "verify", strings.TrimSpace(code))
	case MethodSMS:
		ok, failMsg, err = s.checkCode(ctx, fl.Flow, purposeSMS, strings.TrimSpace(code))
	case MethodApp:
		ok, err = s.checkTOTP(ctx, fl.Eligible, fl.UserID, strings.TrimSpace(code))
		failMsg = errs.Textf("That code is not right. Enter the 6-digit code your authenticator app shows now.")
	case MethodQuestions:
		ok, err = s.checkAnswers(ctx, fl.Eligible, fl.UserID, fl.st.Questions, answers)
		failMsg = errs.Textf("Those answers are not right. Check them and try again.")
	case MethodPasskey:
		ok, err = s.checkPasskey(ctx, id, browser, fl.Eligible, fl.UserID, fl.Login, strings.TrimSpace(code))
		failMsg = errs.Textf("That passkey was not accepted. Try again with a passkey you registered for this account, or use another method.")
	default:
		err = errs.Invalidf("Choose a method first.")
	}
	if err != nil {
		if rerr := s.db.InTx(ctx, func(tx *store.Tx) error { return tx.ReleaseFailure(ctx, slot) }); rerr != nil {
			s.log.Error("self-service: release a failure reservation", "err", rerr)
		}
		return err
	}
	s.recordVerification(method, true, ok, nil)
	if !ok {
		return s.wrongGuess(ctx, fl.Flow, from, method, slot, failMsg)
	}
	return s.rightGuess(ctx, id, browser, method, slot, p, from)
}

// reserveGuess checks, inside tx, that the account of f may have one more
// guess evaluated, and reserves its failure. The caller checked the block
// in the same transaction.
func (s *Service) reserveGuess(ctx context.Context, tx *store.Tx, f store.Flow) (int64, error) {
	now := s.now()
	settled, pending, err := tx.Failures(ctx, key(f), now.Add(-FailureWindow).UnixMilli())
	if err != nil {
		return 0, err
	}
	switch {
	case settled >= FailuresToBlock:
		return 0, errBlocked
	case settled+pending >= FailuresToBlock:
		return 0, errBusy
	}
	return tx.ReserveFailure(ctx, key(f), now.UnixMilli())
}

// wrongGuess settles the reservation of a wrong guess, audits it and blocks
// the account when the window holds FailuresToBlock of them.
func (s *Service) wrongGuess(ctx context.Context, f store.Flow, from audit.Actor, method string, slot int64, failMsg errs.Text) error {
	now := s.now()
	blocked := false
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		if err := tx.SettleFailure(ctx, slot); err != nil {
			return err
		}
		n, _, err := tx.Failures(ctx, key(f), now.Add(-FailureWindow).UnixMilli())
		if err != nil {
			return err
		}
		e := entry(audit.ActivitySelfServiceProgress, from, f, map[string]any{"failures_in_last_hour": n})
		e.Result, e.Reason = audit.Failure, "verification failed: "+MethodLabel(method)
		if _, err := audit.Record(ctx, tx, e); err != nil {
			return err
		}
		if n < FailuresToBlock {
			return nil
		}
		blocked = true
		if already, err := s.blocked(ctx, tx, f); err != nil || already {
			return err
		}
		until := now.Add(BlockFor)
		if err := tx.Block(ctx, key(f), until.UnixMilli()); err != nil {
			return err
		}
		e = entry(audit.ActivityBlockedSelfService, from, f, map[string]any{"blocked_until": until.UTC().Format(time.RFC3339)})
		e.Result, e.Reason = audit.Failure, fmt.Sprintf("%d failed verifications within an hour", n)
		_, err = audit.Record(ctx, tx, e)
		return err
	})
	switch {
	case err != nil:
		return err
	case blocked:
		return errBlocked
	}
	return errs.Ef(errs.Unauthorized, nil, failMsg.Format, failMsg.Args...)
}

// rightGuess releases the reservation of a right guess and records the
// method as verified on the flow as it is now (read in the same
// transaction), unless the account was blocked meanwhile. An unlock flow
// that has all its methods then unlocks.
func (s *Service) rightGuess(ctx context.Context, id, browser, method string, slot int64, p Policy, from audit.Actor) error {
	var outcome error
	done := false
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		if err := tx.ReleaseFailure(ctx, slot); err != nil {
			return err
		}
		f, err := tx.Flow(ctx, id)
		fl, err := s.checkFlow(f, err, browser)
		if errors.Is(err, ErrFlowGone) {
			outcome = err
			return nil
		}
		if err != nil {
			return err
		}
		if blocked, err := s.blocked(ctx, tx, fl.Flow); err != nil {
			return err
		} else if blocked {
			outcome = errBlocked
			return nil
		}
		if fl.DoneMS != 0 {
			return nil
		}
		if !slices.Contains(fl.verified, method) {
			fl.verified = append(fl.verified, method)
		}
		if fl.st.Pending == method {
			fl.st.Pending, fl.st.Questions = "", nil
			fl.st.PasskeyCeremony, fl.st.PasskeyOptions = nil, ""
		}
		if err := saveFlow(ctx, tx, fl); err != nil {
			return err
		}
		done = fl.Kind == KindUnlock && len(fl.verified) >= p.Required
		_, err = audit.Record(ctx, tx, entry(audit.ActivitySelfServiceProgress, from, fl.Flow,
			map[string]any{"step": "verified with " + MethodLabel(method), "verified": len(fl.verified), "required": p.Required}))
		return err
	})
	switch {
	case err != nil:
		return err
	case outcome != nil:
		return outcome
	case done:
		return s.unlock(ctx, id, browser, p, from)
	}
	return nil
}

// checkCode checks an e-mailed code: single use, 10 minutes, 5 tries. The
// try is counted in the transaction that reads the code, so concurrent
// tries cannot pass the limit; the code is compared in constant time.
func (s *Service) checkCode(ctx context.Context, f store.Flow, purpose, code string) (ok bool, msg errs.Text, err error) {
	now := s.now().UnixMilli()
	err = s.db.InTx(ctx, func(tx *store.Tx) error {
		c, err := tx.LatestCode(ctx, f.ID, purpose)
		if errors.Is(err, store.ErrNotFound) {
			msg = errs.Textf("There is no code to check. Send a code first.")
			return nil
		}
		if err != nil {
			return err
		}
		switch {
		case c.UsedMS != 0 || c.Voided:
			msg = errs.Textf("That code has already been used. Send a new one.")
		case now > c.ExpiresMS:
			msg = errs.Textf("That code has expired. Send a new one.")
		case c.Tries >= CodeTries:
			msg = errs.Textf("That code was entered wrongly too many times. Send a new one.")
		case !hmac.Equal([]byte(s.mac(f.ID, purpose, code)), []byte(c.CodeHash)) || len(code) != 8:
			msg = wrongCode(CodeTries - c.Tries - 1)
			return tx.MarkCode(ctx, c.ID, 0)
		default:
			ok = true
			return tx.MarkCode(ctx, c.ID, now)
		}
		return nil
	})
	return ok, msg, err
}

// wrongCode says a code is not right and how many more tries it has.
func wrongCode(n int) errs.Text {
	switch {
	case n <= 0:
		return errs.Textf("That code is not right. That was the last try with it: send a new one.")
	case n == 1:
		return errs.Textf("That code is not right. You have 1 more try with it.")
	}
	return errs.Textf("That code is not right. You have %d more tries with it.", n)
}

// totpPeriod is the authenticator time step.
const totpPeriod = 30 * time.Second

// totpStep returns the time step whose code code is, looking at the current
// step and one either side (phone clocks drift); ok is false when it is none
// of them. Registration and verification use the same window.
func totpStep(secret, code string, now time.Time) (step int64, ok bool) {
	for _, skew := range []time.Duration{0, -1, 1} {
		at := now.Add(skew * totpPeriod)
		if valid, _ := totp.ValidateCustom(code, secret, at, totp.ValidateOpts{Period: uint(totpPeriod / time.Second), Digits: otp.DigitsSix,
			Algorithm: otp.AlgorithmSHA1}); valid {
			return at.Unix() / int64(totpPeriod/time.Second), true
		}
	}
	return 0, false
}

// checkTOTP accepts a code from the registered app for the current time
// step or one step either side, each step at most once — counting the step
// that confirmed the app at registration.
func (s *Service) checkTOTP(ctx context.Context, eligible bool, userID, code string) (bool, error) {
	if !eligible {
		return false, nil
	}
	regs, err := s.db.Methods(ctx, userID)
	if err != nil {
		return false, err
	}
	i := slices.IndexFunc(regs, func(m store.Method) bool { return m.Method == MethodApp })
	if i < 0 {
		return false, nil
	}
	secret, err := s.keys.Open(methodContext(userID, MethodApp), regs[i].Secret)
	if err != nil {
		return false, err
	}
	step, ok := totpStep(string(secret), code, s.now())
	if !ok {
		return false, nil
	}
	fresh := false
	err = s.db.InTx(ctx, func(tx *store.Tx) error {
		var err error
		fresh, err = tx.UseTOTPStep(ctx, userID, step)
		return err
	})
	return fresh, err
}

// checkAnswers compares answers with the stored hashes. It does the same
// argon2id work for every question whether or not the account exists or
// registered answers, so its time tells nothing. A busy hasher
// (admins.ErrBusy) is an error, never a wrong answer: the guess was not
// evaluated and must not count toward the block.
func (s *Service) checkAnswers(ctx context.Context, eligible bool, userID string, questions, given []string) (bool, error) {
	var stored map[string]string
	if eligible {
		stored, _ = s.answers(ctx, userID)
	}
	ok := eligible && len(questions) > 0 && len(given) == len(questions)
	for i, q := range questions {
		h, found := stored[q]
		if !found {
			h, ok = s.dummyAnswerHash(), false
		}
		a := ""
		if i < len(given) {
			a = normalizeAnswer(given[i])
		}
		match, err := s.verifyHash(h, a)
		if errors.Is(err, admins.ErrBusy) {
			return false, err
		}
		ok = ok && err == nil && match
	}
	return ok, nil
}

// dummyAnswerHash is a hash no answer matches, with the same cost as real ones.
func (s *Service) dummyAnswerHash() string {
	s.dummyOnce.Do(func() { s.dummyHash = admins.DummyHash(s.AnswerParams) })
	return s.dummyHash
}
