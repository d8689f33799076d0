package selfservice

import (
	"context"
	"time"

	"github.com/writeback/writeback/services/challenge"
)

// challengeWindow is how far back the challenge's counters look.
const challengeWindow = time.Hour

// addressKey is how a client address is counted: a keyed hash, so the
// table holds no address.
func (s *Service) addressKey(ip string) string { return s.mac("challenge-address", ip) }

// needsChallenge tells whether the next protected step of the flow (a code
// sent, an answer checked) asks for a solved challenge: the policy has the
// challenge on, and the flow's account (counted the same way for a name
// that matched nothing) or the client address took ChallengeThreshold such
// steps in the last hour. level is how many steps past the threshold the
// higher of the two counts is (the challenge's work doubles with each).
func (s *Service) needsChallenge(ctx context.Context, p Policy, fl flow, ip string) (need bool, level int, err error) {
	if p.ChallengeOff || fl.DoneMS != 0 {
		return false, 0, nil
	}
	since := s.now().Add(-challengeWindow).UnixMilli()
	n, err := s.db.AccountAttempts(ctx, key(fl.Flow), since)
	if err != nil {
		return false, 0, err
	}
	if ip != "" {
		a, err := s.db.AddressAttempts(ctx, s.addressKey(ip), since)
		if err != nil {
			return false, 0, err
		}
		n = max(n, a)
	}
	if n < p.ChallengeThreshold() {
		return false, 0, nil
	}
	return true, n - p.ChallengeThreshold(), nil
}

// Challenge returns a challenge for the flow's next protected step when it
// needs one (nil when not), for the page to hand to the browser. ip is the
// client address.
func (s *Service) Challenge(ctx context.Context, id, browser, ip string) (*challenge.Challenge, error) {
	fl, p, err := s.loadStep(ctx, id, browser)
	if err != nil {
		return nil, err
	}
	need, level, err := s.needsChallenge(ctx, p, fl, ip)
	if err != nil || !need {
		return nil, err
	}
	c, err := s.challenges.Issue(fl.ID, level)
	return &c, err
}

// CheckChallenge lets the flow's next protected step go ahead: nil when no
// challenge is needed or payload solves one issued for this flow (which is
// then spent); the refusal otherwise, before anything is counted or sent.
func (s *Service) CheckChallenge(ctx context.Context, id, browser, ip, payload string) error {
	fl, p, err := s.loadStep(ctx, id, browser)
	if err != nil {
		return err
	}
	need, _, err := s.needsChallenge(ctx, p, fl, ip)
	if err != nil || !need {
		return err
	}
	return s.challenges.Check(ctx, fl.ID, payload)
}

// countAddress counts one protected step for the client address.
func (s *Service) countAddress(ctx context.Context, ip string) {
	if ip == "" {
		return
	}
	if err := s.db.AddAddressAttempt(ctx, s.addressKey(ip), s.now().UnixMilli()); err != nil {
		s.log.Error("self-service: count a step of a client address", "err", err)
	}
}

// Challenges is the challenge service, for tests that lower its work.
func (s *Service) Challenges() *challenge.Service { return s.challenges }
