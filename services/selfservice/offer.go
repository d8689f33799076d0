package selfservice

import (
	"slices"

	"github.com/writeback/writeback/store"
)

// Only registered methods are offered (issue 13): the choice on /reset and
// /unlock lists what the person of the flow can use — allowed by the
// policy, and registered (or, for e-mail, an address in the directory). A
// flow that can never verify (a name that matches no account, a protected,
// disabled, blocked or method-less one) must not tell itself apart by its
// list: it offers a decoy, a plausible choice drawn from a keyed hash of
// the account (or of the typed name when none matched), so the same name
// gets the same list every time, as a real person does. The list is fixed
// when the flow starts, inside the step the Pacer already evens out, so no
// later page reads anything more for a real account than for a stranger.

// offer is the choice a new flow f keeps; have is what its account can use
// (ineligible's list), nil when it cannot verify.
func (s *Service) offer(p Policy, f store.Flow, have []string) []string {
	if f.Eligible {
		return have
	}
	return s.decoy(p, key(f))
}

// decoy is the choice a flow that can never verify offers: e-mail whenever
// the policy allows it (nearly every account has a directory address), each
// other allowed method by one bit of a keyed hash of seed and the method's
// name (so adding a method to the policy keeps the others' draw), and
// methods from the allowed list in order until the policy's number required
// is reached, as for any account that may reset.
func (s *Service) decoy(p Policy, seed string) []string {
	allowed := s.allowed(p)
	var out []string
	for _, m := range allowed {
		if m == MethodEmail || s.mac("offer", seed, m)[0]&1 == 1 {
			out = append(out, m)
		}
	}
	for _, m := range allowed {
		if len(out) >= p.Required {
			break
		}
		if !slices.Contains(out, m) {
			out = append(out, m)
		}
	}
	// Display order, as for a real account.
	slices.SortStableFunc(out, func(a, b string) int { return slices.Index(allowed, a) - slices.Index(allowed, b) })
	return out
}

// offered is the choice of fl under the policy as it is now: its offer, less
// what the policy no longer allows. A flow stored without an offer (started
// before offers were kept) lists every allowed method, as it did then.
func (s *Service) offered(p Policy, fl flow) []string {
	allowed := s.allowed(p)
	if fl.st.Offer == nil {
		return allowed
	}
	var out []string
	for _, m := range fl.st.Offer {
		if slices.Contains(allowed, m) {
			out = append(out, m)
		}
	}
	return out
}
