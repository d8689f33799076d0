package selfservice

import (
	"context"
	"crypto/hmac"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/banned"
	"github.com/writeback/writeback/services/directory"
	"github.com/writeback/writeback/services/errs"
	"github.com/writeback/writeback/services/i18n"
	"github.com/writeback/writeback/services/mail"
	"github.com/writeback/writeback/services/passkeys"
	"github.com/writeback/writeback/services/sms"
	"github.com/writeback/writeback/store"
)

// Flow kinds.
const (
	KindReset    = "reset"
	KindUnlock   = "unlock"
	KindRegister = "register"
)

// Steps a person sees.
const (
	StepChoose    = "choose"
	StepCode      = "code"
	StepApp       = "app"
	StepQuestions = "questions"
	StepSMS       = "sms"
	StepPasskey   = "passkey"
	StepPassword  = "password"
	// StepUnlock: every method is verified but the unlock has not been
	// written (it failed on our side); the person may try again.
	StepUnlock  = "unlock"
	StepDone    = "done"
	StepBlocked = "blocked"
)

// flowState is the JSON state of a flow. Whether the account is blocked is
// not part of it: that is read from the store by account at every step, so a
// block stops the flows opened before it too.
type flowState struct {
	Pending   string   `json:"pending,omitempty"`
	Questions []string `json:"questions,omitempty"`
	Unlocked  bool     `json:"unlocked,omitempty"`
	// NotLocked: the unlock found the account not locked and wrote nothing.
	NotLocked bool `json:"not_locked,omitempty"`
	// Registration: what awaits confirmation, sealed.
	AltEmailSealed  string `json:"alt_email,omitempty"`
	AppSecretSealed string `json:"app_secret,omitempty"`
	PhoneSealed     string `json:"phone,omitempty"`
	// Offer: the methods the choice lists, fixed when the flow starts (see
	// offer); a flow from before it was kept lists every allowed method.
	Offer []string `json:"offer,omitempty"`
	// PasskeyCeremony is the WebAuthn state of the passkey request the
	// page shows (PasskeyOptions), used once.
	PasskeyCeremony []byte `json:"passkey_ceremony,omitempty"`
	PasskeyOptions  string `json:"passkey_options,omitempty"`
}

// flow is a stored flow with its state decoded.
type flow struct {
	store.Flow
	st       flowState
	verified []string
}

// Availability says whether a self-service page can be used at all.
type Availability struct {
	OK       bool
	Reason   string // plain words for people when not OK
	Helpdesk string
	HelpHref string
	OrgName  string
	Policy   Policy
	Unlock   bool // unlock without reset is offered
}

// Available tells whether self-service of a kind is on. It reveals only
// portal-wide settings, nothing about any account.
func (s *Service) Available(ctx context.Context, kind string) (Availability, error) {
	p, _, err := s.Policy(ctx)
	if err != nil {
		return Availability{}, err
	}
	st, err := s.dir.State(ctx)
	if err != nil {
		return Availability{}, err
	}
	a := Availability{OK: true, Helpdesk: p.Helpdesk, HelpHref: p.HelpdeskHref(), OrgName: orgName(p), Policy: p, Unlock: st.Unlock}
	switch {
	case st.Outage:
		// No writeback agent connected: the directory cannot be reached.
		a.OK, a.Reason = false, directory.MsgNotReached
	case !st.Writeback:
		a.OK, a.Reason = false, i18n.Key("Self-service password reset is not available right now: your organisation has not turned on writing passwords to its directory.")
	case p.Enabled == EnabledNone:
		a.OK, a.Reason = false, i18n.Key("Self-service password reset is not turned on for your organisation.")
	case kind == KindUnlock && !st.Unlock:
		a.OK, a.Reason = false, i18n.Key("Unlocking without resetting your password is not offered. Reset your password instead: that unlocks your account too.")
	}
	return a, nil
}

// View is what a page needs to show one step of a flow.
type View struct {
	ID        string
	Kind      string
	Step      string
	Methods   []string // methods the person may choose now
	Verified  int
	Required  int
	Questions []string
	Masked    []string // where codes go, shown only after a first verification
	// MaskedPhone is where text message codes go, shown likewise.
	MaskedPhone string
	// SMSTrouble: the portal's last text failed within the hour, so a code
	// may not arrive (portal-wide: it tells nothing about the account).
	SMSTrouble bool
	// PasskeyOptions is the request for navigator.credentials.get on the
	// passkey step: the same for every flow but for its challenge.
	PasskeyOptions string
	// NotLocked: an unlock found the account was not locked (shown only
	// once the person has verified).
	NotLocked bool
	// Personal is what of the verified person the banned-password rule
	// uses (banned.Personal), for the password step's strength meter: their
	// own names and login, on that step only.
	Personal      []string
	Policy        directory.Policy
	HasPolicy     bool
	CorrelationID string
}

// ErrFlowGone is the answer for a flow that is unknown, expired or belongs
// to another browser session.
var ErrFlowGone = errs.E(errs.NotFound, "This page has expired or was opened in another browser. Start again.", nil)

// errBlocked is the answer at every step of every flow of a blocked account.
var errBlocked = errs.E(errs.TooMany, "Too many failed attempts. Self-service password reset is blocked for this account for 24 hours. Contact your helpdesk if you need help now.", nil)

// loadFlow reads a flow for a step that only reads it (or that checks it
// again when it writes, inside updateFlow).
func (s *Service) loadFlow(ctx context.Context, id, browser string) (flow, error) {
	f, err := s.db.Flow(ctx, id)
	return s.checkFlow(f, err, browser)
}

// loadStep reads the flow of a step and the policy the step runs under.
func (s *Service) loadStep(ctx context.Context, id, browser string) (flow, Policy, error) {
	fl, err := s.loadFlow(ctx, id, browser)
	if err != nil {
		return flow{}, Policy{}, err
	}
	p, _, err := s.Policy(ctx)
	return fl, p, err
}

// checkFlow refuses a flow that is unknown, expired or bound to another
// browser session, and decodes its state.
func (s *Service) checkFlow(f store.Flow, err error, browser string) (flow, error) {
	if errors.Is(err, store.ErrNotFound) {
		return flow{}, ErrFlowGone
	}
	if err != nil {
		return flow{}, err
	}
	if !hmac.Equal([]byte(f.BrowserHash), []byte(BrowserHash(browser))) || s.now().UnixMilli() > f.ExpiresMS {
		return flow{}, ErrFlowGone
	}
	fl := flow{Flow: f}
	if err := json.Unmarshal([]byte(f.State), &fl.st); err != nil {
		return flow{}, fmt.Errorf("selfservice: flow state: %w", err)
	}
	if err := json.Unmarshal([]byte(f.Verified), &fl.verified); err != nil {
		return flow{}, fmt.Errorf("selfservice: flow verified: %w", err)
	}
	return fl, nil
}

// updateFlow reads a flow, lets change edit it and saves it, all in one
// transaction (which holds the database's write lock from its start), so a
// concurrent step can neither slip in between nor be overwritten. An error
// from change writes nothing.
func (s *Service) updateFlow(ctx context.Context, id, browser string, change func(tx *store.Tx, fl *flow) error) error {
	return s.db.InTx(ctx, func(tx *store.Tx) error {
		f, err := tx.Flow(ctx, id)
		fl, err := s.checkFlow(f, err, browser)
		if err != nil {
			return err
		}
		if err := change(tx, &fl); err != nil {
			return err
		}
		return saveFlow(ctx, tx, fl)
	})
}

func saveFlow(ctx context.Context, tx *store.Tx, fl flow) error {
	b, err := json.Marshal(fl.st)
	if err != nil {
		return fmt.Errorf("selfservice: flow state: %w", err)
	}
	v := []byte("[]")
	if len(fl.verified) > 0 {
		v, _ = json.Marshal(fl.verified)
	}
	fl.State, fl.Verified = string(b), string(v)
	return tx.UpdateFlow(ctx, fl.Flow)
}

// key is what failures and blocks count against: the directory ID of the
// account the flow resolved to, or, only when nothing matched, the typed
// login (so unknown names behave the same).
func key(f store.Flow) string {
	if f.UserID != "" {
		return f.UserID
	}
	return "login:" + strings.ToLower(f.Login)
}

// blockReader reads blocks: the database (*store.DB), or a transaction
// (*store.Tx) that goes on to write what the block allows.
type blockReader interface {
	BlockedUntil(ctx context.Context, userID string) (int64, error)
}

// blocked tells whether the account of f is blocked from self-service now.
func (s *Service) blocked(ctx context.Context, r blockReader, f store.Flow) (bool, error) {
	until, err := r.BlockedUntil(ctx, key(f))
	return until > s.now().UnixMilli(), err
}

// notBlocked returns errBlocked while the account of f is blocked.
func (s *Service) notBlocked(ctx context.Context, r blockReader, f store.Flow) error {
	blocked, err := s.blocked(ctx, r, f)
	if err == nil && blocked {
		err = errBlocked
	}
	return err
}

// name is how audit rows name the person of a flow: the account it resolved
// to, and the typed text only when nothing matched.
func name(f store.Flow) string {
	if f.Account != "" {
		return f.Account
	}
	return f.Login
}

func target(f store.Flow) audit.Target {
	return audit.Target{Type: "User", ID: f.UserID, DN: f.UserDN, Name: name(f)}
}

func userActor(from audit.Actor, f store.Flow) audit.Actor {
	from.Type, from.ID, from.Name = "user", f.UserID, name(f)
	return from
}

// entry starts an audit row about a step of f.
func entry(activity string, from audit.Actor, f store.Flow, details map[string]any) audit.Entry {
	if details == nil {
		details = map[string]any{}
	}
	return audit.Entry{Category: audit.CategoryUserManagement, Activity: activity, Actor: userActor(from, f), Target: target(f),
		CorrelationID: f.CorrelationID, Details: details}
}

func displayName(u directory.User) string {
	if u.DisplayName != "" {
		return u.DisplayName + " (" + u.Login + ")"
	}
	return u.Login
}

// Start begins a reset or unlock for whatever login was typed. It answers
// the same, in the same time, whether or not the account exists, is
// protected, or has no method: an ineligible flow simply never verifies.
// Every account found does the same work (see ineligible); for a login that
// finds none, which costs the directory less, the lookup is padded to the
// time it takes for a found one (see Pacer). Only that part is paced: what
// follows is the same for every flow. Text that is not a possible login
// (control characters, too long) is refused with a field error before
// anything reaches the directory.
func (s *Service) Start(ctx context.Context, kind, login, browser string, from audit.Actor) (id string, err error) {
	defer func() { err = EmployeeError(err) }()
	if kind != KindReset && kind != KindUnlock {
		return "", errs.Invalidf("unknown flow")
	}
	login, err = directory.NormalizeIdentifier(login)
	if err != nil {
		return "", errs.FieldErrors(map[string]string{"login": errs.MessageOf(err)})
	}
	av, err := s.Available(ctx, kind)
	if err != nil {
		return "", err
	}
	if !av.OK {
		return "", errs.E(errs.Forbidden, av.Reason, nil)
	}
	now := s.now()
	f := store.Flow{ID: randomID(), Kind: kind, BrowserHash: BrowserHash(browser), Login: login, CorrelationID: randomID()[:32],
		CreatedMS: now.UnixMilli(), ExpiresMS: now.Add(FlowTTL).UnixMilli()}
	step := "start reset"
	if kind == KindUnlock {
		step = "start unlock"
	}
	pc, out := s.Pacer.begin(step), outPadded
	reason := ""
	var have []string
	u, err := s.dir.Lookup(ctx, login)
	switch k := errs.KindOf(err); {
	case err == nil:
		out = outReal
		f.UserID, f.UserDN, f.Account = u.ID, u.DN, displayName(u)
		var cause error
		if reason, have, cause = s.ineligible(ctx, av.Policy, u); cause != nil {
			// The person gets the same answer as an ineligible account;
			// administrators get the reason.
			s.failed(ctx, entry(audit.ActivitySelfServiceProgress, from, f, map[string]any{"step": "check eligibility"}), cause)
		}
	case k == errs.NotFound || k == errs.Conflict || k == errs.Invalid:
		reason = "no single account matches what was typed"
	default:
		// The directory is unreachable or refused the portal: the same
		// answer for everyone, the detail for administrators.
		s.endPace(ctx, pc, outPadded)
		s.failed(ctx, entry(audit.ActivitySelfServiceProgress, from, f, map[string]any{"step": "start " + kind}), err)
		return "", err
	}
	s.endPace(ctx, pc, out)
	f.Eligible = reason == ""
	if blocked, err := s.blocked(ctx, s.db, f); err != nil {
		return "", err
	} else if blocked {
		reason, f.Eligible = "blocked from self-service", false
	}
	st, err := json.Marshal(flowState{Offer: s.offer(av.Policy, f, have)})
	if err != nil {
		return "", fmt.Errorf("selfservice: start: %w", err)
	}
	f.State = string(st)
	details := map[string]any{"step": "started " + kind, "eligible": f.Eligible}
	if reason != "" {
		details["not_eligible_because"] = reason
	}
	err = s.db.InTx(ctx, func(tx *store.Tx) error {
		if err := tx.InsertFlow(ctx, f); err != nil {
			return err
		}
		_, err := audit.Record(ctx, tx, entry(audit.ActivitySelfServiceProgress, from, f, details))
		return err
	})
	if err != nil {
		return "", fmt.Errorf("selfservice: start: %w", err)
	}
	return f.ID, nil
}

// ineligible returns why u cannot use self-service, or "", and the methods
// u can use (see available). cause is set when the reason is a failure on
// our side (directory, store) rather than the account's. It reads the group
// membership and the methods of every account, a protected or disabled one
// too, so that the time of the step does not tell which reason applies.
func (s *Service) ineligible(ctx context.Context, p Policy, u directory.User) (reason string, have []string, cause error) {
	member, merr := true, error(nil)
	if p.Enabled == EnabledGroup {
		member, merr = s.dir.MemberOf(ctx, u, p.Group)
	}
	have, herr := s.available(ctx, p, u)
	switch {
	case u.Protected:
		return "protected account: " + u.ProtectedReason, nil, nil
	case u.Disabled:
		return "disabled account", nil, nil
	case merr != nil:
		return "group membership could not be read", nil, merr
	case !member:
		return "not a member of the self-service group", nil, nil
	case herr != nil:
		return "methods could not be read", nil, herr
	case len(have) < p.Required:
		return fmt.Sprintf("has %d of the %d required methods", len(have), p.Required), nil, nil
	}
	return "", have, nil
}

// available lists the allowed methods a user can use right now.
func (s *Service) available(ctx context.Context, p Policy, u directory.User) ([]string, error) {
	regs, err := s.db.Methods(ctx, u.ID)
	if err != nil {
		return nil, err
	}
	has := map[string]bool{}
	for _, m := range regs {
		has[m.Method] = true
	}
	if u.Email != "" {
		has[MethodEmail] = true
	}
	if p.Methods.SMS {
		m, _, err := s.SMSSettings(ctx)
		if err != nil {
			return nil, err
		}
		n, err := s.phoneOf(ctx, u, m)
		if err != nil {
			return nil, err
		}
		has[MethodSMS] = n != ""
	}
	if s.pk != nil && p.Methods.Passkey {
		pks, err := s.db.Passkeys(ctx, u.ID)
		if err != nil {
			return nil, err
		}
		has[MethodPasskey] = len(pks) > 0
	}
	var out []string
	for _, m := range s.allowed(p) {
		if has[m] {
			out = append(out, m)
		}
	}
	return out, nil
}

// View returns the current step of a flow. A blocked account's flows show
// the blocked step, whenever they were opened.
func (s *Service) View(ctx context.Context, id, browser string) (View, error) {
	fl, p, err := s.loadStep(ctx, id, browser)
	if err != nil {
		return View{}, err
	}
	blocked, err := s.blocked(ctx, s.db, fl.Flow)
	if err != nil {
		return View{}, err
	}
	v := View{ID: fl.ID, Kind: fl.Kind, Verified: len(fl.verified), Required: p.Required, CorrelationID: fl.CorrelationID}
	for _, m := range s.offered(p, fl) {
		if !slices.Contains(fl.verified, m) {
			v.Methods = append(v.Methods, m)
		}
	}
	switch {
	case fl.DoneMS != 0:
		v.Step, v.NotLocked = StepDone, fl.st.NotLocked
	case blocked:
		v.Step = StepBlocked
	case len(fl.verified) >= p.Required && fl.Kind == KindUnlock:
		v.Step = StepUnlock
	case len(fl.verified) >= p.Required:
		v.Step = StepPassword
	case fl.st.Pending == MethodEmail:
		v.Step = StepCode
	case fl.st.Pending == MethodApp:
		v.Step = StepApp
	case fl.st.Pending == MethodQuestions:
		v.Step, v.Questions = StepQuestions, fl.st.Questions
	case fl.st.Pending == MethodSMS:
		v.Step, v.SMSTrouble = StepSMS, s.smsTrouble(ctx)
	case fl.st.Pending == MethodPasskey:
		v.Step, v.PasskeyOptions = StepPasskey, fl.st.PasskeyOptions
	default:
		v.Step = StepChoose
	}
	// Having proved one method, the person may see where codes go; on the
	// password step, the rules a new password must meet. Both come from
	// the account, read once.
	masked := len(fl.verified) > 0 && fl.Eligible && !blocked && fl.UserID != ""
	policy := v.Step == StepPassword && fl.Eligible
	if policy {
		v.Personal = banned.Personal(fl.UserDN, fl.Login, fl.Account)
	}
	if !masked && !policy {
		return v, nil
	}
	u, err := s.flowUser(ctx, fl.Flow)
	if err != nil {
		return v, nil
	}
	if masked {
		if dests, err := s.addresses(ctx, u); err == nil {
			for _, d := range dests {
				v.Masked = append(v.Masked, Mask(d))
			}
		}
		if p.Methods.SMS {
			if m, _, err := s.SMSSettings(ctx); err == nil {
				if n, err := s.phoneOf(ctx, u, m); err == nil && n != "" {
					v.MaskedPhone = sms.Mask(n)
				}
			}
		}
	}
	if policy {
		if pol, err := s.dir.Policy(ctx, u); err == nil {
			v.Policy, v.HasPolicy = pol, true
		}
	}
	return v, nil
}

// flowUser re-reads the flow's user by DN and checks it is still the same account.
func (s *Service) flowUser(ctx context.Context, f store.Flow) (directory.User, error) {
	u, err := s.dir.Get(ctx, f.UserDN)
	if err != nil {
		return u, err
	}
	if u.ID != f.UserID {
		return u, ErrFlowGone
	}
	return u, nil
}

// destinations are the addresses verification codes for the flow f go to
// (see addresses); none when f cannot verify.
func (s *Service) destinations(ctx context.Context, f store.Flow) ([]string, error) {
	if !f.Eligible || f.UserID == "" {
		return nil, nil
	}
	u, err := s.flowUser(ctx, f)
	if err != nil {
		return nil, err
	}
	return s.addresses(ctx, u)
}

// addresses are where codes and notices for u go: the directory e-mail
// attribute and a registered alternate address.
func (s *Service) addresses(ctx context.Context, u directory.User) ([]string, error) {
	var out []string
	if u.Email != "" {
		out = append(out, u.Email)
	}
	regs, err := s.db.Methods(ctx, u.ID)
	if err != nil {
		return nil, err
	}
	for _, m := range regs {
		if m.Method == MethodEmail {
			if pt, err := s.keys.Open(methodContext(u.ID, MethodEmail), m.Secret); err == nil && !slices.ContainsFunc(out, func(a string) bool { return strings.EqualFold(a, string(pt)) }) {
				out = append(out, string(pt))
			}
		}
	}
	return out, nil
}

func methodContext(userID, method string) string { return "sspr.method:" + method + ":" + userID }

// Choose picks the next method. For e-mail it sends a code (or, for a flow
// that can never verify, pretends to, taking the same time: the flow of an
// account reads where codes go, and for the others that part is padded to
// the time it takes; see Pacer). Questions are picked the same way.
func (s *Service) Choose(ctx context.Context, id, browser, method string, from audit.Actor) (err error) {
	defer func() { err = EmployeeError(err) }()
	fl, p, err := s.loadStep(ctx, id, browser)
	if err != nil {
		return err
	}
	if fl.DoneMS != 0 {
		return nil
	}
	if err := s.notBlocked(ctx, s.db, fl.Flow); err != nil {
		return err
	}
	if method != "" && (!slices.Contains(s.offered(p, fl), method) || slices.Contains(fl.verified, method)) {
		return errs.Invalidf("Choose one of the methods on the page.")
	}
	var pkOpts passkeys.Options
	var pkCeremony passkeys.Ceremony
	if method == MethodPasskey {
		if pkOpts, pkCeremony, err = s.beginPasskeyStep(); err != nil {
			return err
		}
	}
	var questions, dests []string
	var destErr error
	var phone string
	if method == MethodEmail || method == MethodQuestions || method == MethodSMS {
		pc, out := s.Pacer.begin("choose "+method), outPadded
		if fl.Eligible && fl.UserID != "" {
			out = outReal // reads the account's addresses or questions
		}
		switch method {
		case MethodQuestions:
			questions = s.questionsFor(ctx, fl.Flow, p)
		case MethodSMS:
			phone, destErr = s.flowPhone(ctx, fl.Flow)
		default:
			dests, destErr = s.destinations(ctx, fl.Flow)
		}
		s.endPace(ctx, pc, out)
	}
	switch method {
	case MethodEmail:
		s.countAddress(ctx, from.ClientIP)
		if err := s.sendCode(ctx, fl.Flow, p, dests, destErr, from); err != nil {
			return err
		}
	case MethodSMS:
		s.countAddress(ctx, from.ClientIP)
		if err := s.sendSMSCode(ctx, fl.Flow, p, phone, destErr, from); err != nil {
			return err
		}
	}
	// method "" goes back to the choice of methods.
	return s.updateFlow(ctx, id, browser, func(tx *store.Tx, fl *flow) error {
		if err := s.notBlocked(ctx, tx, fl.Flow); err != nil {
			return err
		}
		if fl.DoneMS == 0 && !slices.Contains(fl.verified, method) {
			fl.st.Pending, fl.st.Questions = method, questions
			fl.st.PasskeyCeremony, fl.st.PasskeyOptions = pkCeremony, string(pkOpts)
		}
		return nil
	})
}

// questionsFor picks the questions to ask: the person's registered ones,
// or, for a flow that cannot verify, questions from the policy list chosen
// from the login so that asking again shows the same ones.
func (s *Service) questionsFor(ctx context.Context, f store.Flow, p Policy) []string {
	n := p.QuestionsToAnswer
	if f.Eligible {
		if answers, err := s.answers(ctx, f.UserID); err == nil && len(answers) >= n {
			qs := make([]string, 0, len(answers))
			for q := range answers {
				qs = append(qs, q)
			}
			slices.Sort(qs)
			return qs[:n]
		}
	}
	qs := slices.Clone(p.Questions)
	seed := s.mac("questions", strings.ToLower(f.Login))
	slices.SortFunc(qs, func(a, b string) int { return strings.Compare(s.mac(seed, a), s.mac(seed, b)) })
	if len(qs) > n {
		qs = qs[:n]
	}
	slices.Sort(qs)
	return qs
}

func (s *Service) answers(ctx context.Context, userID string) (map[string]string, error) {
	regs, err := s.db.Methods(ctx, userID)
	if err != nil {
		return nil, err
	}
	for _, m := range regs {
		if m.Method == MethodQuestions {
			pt, err := s.keys.Open(methodContext(userID, MethodQuestions), m.Secret)
			if err != nil {
				return nil, err
			}
			var out map[string]string
			err = json.Unmarshal(pt, &out)
			return out, err
		}
	}
	return nil, nil
}

// sendDelay is how long a mail waits before it is built and sent: longer
// than the rest of the answer takes.
const sendDelay = 50 * time.Millisecond

// ErrTooManyCodes is the answer when codes are asked for too often.
var ErrTooManyCodes = errs.E(errs.TooMany, "Too many codes were requested. Wait an hour, or use another method.", nil)

// sendCode creates a code for the flow and e-mails it in the background to
// every destination that is under its limit; dests and err are what
// destinations gave. The limits are counted in the transaction that stores
// the code, so two requests cannot both pass them.
func (s *Service) sendCode(ctx context.Context, f store.Flow, p Policy, dests []string, err error, from audit.Actor) error {
	now := s.now()
	since := now.Add(-time.Hour).UnixMilli()
	if err != nil {
		// The person gets the same page as anyone (a code "sent"), the
		// administrators the reason.
		s.failed(ctx, entry(audit.ActivitySelfServiceProgress, from, f, map[string]any{"step": "read where codes go"}), err)
		dests = nil
	}
	code := newCode()
	var send []string
	err = s.db.InTx(ctx, func(tx *store.Tx) error {
		if n, err := tx.CountCodes(ctx, false, key(f), since); err != nil {
			return err
		} else if n >= CodesPerUser {
			return ErrTooManyCodes
		}
		if len(dests) == 0 {
			// The same count as for an account with one address, so
			// that the step costs the same (its answer is the same).
			if _, err := tx.CountCodes(ctx, true, s.mac("dest", ""), since); err != nil {
				return err
			}
		}
		for _, d := range dests {
			if c, err := tx.CountCodes(ctx, true, s.mac("dest", strings.ToLower(d)), since); err != nil {
				return err
			} else if c < CodesPerAddress {
				send = append(send, d)
			}
		}
		dest := ""
		if len(send) > 0 {
			dest = s.mac("dest", strings.ToLower(send[0]))
		}
		return tx.InsertCode(ctx, store.Code{FlowID: f.ID, Purpose: "verify", UserID: key(f), Destination: dest,
			CodeHash: s.mac(f.ID, "verify", code), CreatedMS: now.UnixMilli(), ExpiresMS: now.Add(CodeTTL).UnixMilli()})
	})
	if err != nil {
		return err
	}
	step := "verification code e-mailed"
	if len(send) == 0 {
		step = "verification code not sent (no usable address, or the account cannot use self-service)"
	}
	s.record(ctx, entry(audit.ActivitySelfServiceProgress, from, f, map[string]any{"step": step, "destinations": len(send)}))
	if len(send) == 0 {
		return nil
	}
	lang := i18n.LangOf(ctx) // the mail is in the language of the page that asked for it
	s.sendAsync(f, from, send, func(to string) mail.Message { return mail.VerificationCode(lang, to, orgName(p), code, CodeTTL) })
	return nil
}

// sendAsync sends mail without holding up the answer (its time would tell
// whether an account exists). It starts only after sendDelay: building
// and sending a mail takes the CPU, and on a small machine that would slow
// the answer it follows, which would tell that a code went out. A failure
// is audited and reported, never shown: a page that said so would only
// appear for real accounts.
func (s *Service) sendAsync(f store.Flow, from audit.Actor, to []string, msg func(to string) mail.Message) {
	s.sends.Add(1)
	go func() {
		defer s.sends.Done()
		time.Sleep(sendDelay)
		ctx, cancel := context.WithTimeout(s.bg, 45*time.Second)
		defer cancel()
		snd, err := s.sender(ctx)
		if err != nil {
			s.rec.MailSent(err)
		}
		for _, addr := range to {
			if err == nil {
				err = s.send(ctx, snd, msg(addr))
			}
			if err != nil {
				break
			}
		}
		s.noteMail(ctx, err)
		if err == nil {
			return
		}
		e := entry(audit.ActivitySelfServiceProgress, from, f, map[string]any{"step": "send e-mail"})
		e.Reason = "e-mail could not be sent: " + errs.MessageOf(err)
		s.failed(ctx, e, err)
	}()
}
