package selfservice

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/writeback/writeback/services/admins"
	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/directory"
	"github.com/writeback/writeback/services/errs"
	"github.com/writeback/writeback/services/mail"
	"github.com/writeback/writeback/services/writeback"
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
	StepPassword  = "password"
	StepDone      = "done"
	StepBlocked   = "blocked"
)

// flowState is the JSON state of a flow.
type flowState struct {
	Pending    string   `json:"pending,omitempty"`
	Questions  []string `json:"questions,omitempty"`
	SendFailed bool     `json:"send_failed,omitempty"`
	Blocked    bool     `json:"blocked,omitempty"`
	Unlocked   bool     `json:"unlocked,omitempty"`
	// Registration: what awaits confirmation, sealed.
	AltEmailSealed  string `json:"alt_email,omitempty"`
	AppSecretSealed string `json:"app_secret,omitempty"`
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
	st, err := s.wb.State(ctx)
	if err != nil {
		return Availability{}, err
	}
	a := Availability{OK: true, Helpdesk: p.Helpdesk, HelpHref: p.HelpdeskHref(), OrgName: orgName(p), Policy: p, Unlock: st.Unlock}
	switch {
	case !st.Writeback:
		a.OK, a.Reason = false, "Self-service password reset is not available right now: your organisation has not turned on writing passwords to its directory."
	case p.Enabled == EnabledNone:
		a.OK, a.Reason = false, "Self-service password reset is not turned on for your organisation."
	case kind == KindUnlock && !st.Unlock:
		a.OK, a.Reason = false, "Unlocking without resetting your password is not offered. Reset your password instead: that unlocks your account too."
	}
	return a, nil
}

// View is what a page needs to show one step of a flow.
type View struct {
	ID            string
	Kind          string
	Step          string
	Methods       []string // methods the person may choose now
	Verified      int
	Required      int
	Questions     []string
	Masked        []string // where codes go, shown only after a first verification
	Notice        string
	Policy        directory.Policy
	HasPolicy     bool
	CorrelationID string
}

// ErrFlowGone is the answer for a flow that is unknown, expired or belongs
// to another browser session.
var ErrFlowGone = errs.E(errs.NotFound, "This page has expired or was opened in another browser. Start again.", nil)

func (s *Service) loadFlow(ctx context.Context, id, browser string) (store.Flow, flowState, []string, error) {
	var st flowState
	var verified []string
	f, err := s.db.Flow(ctx, id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && (f.BrowserHash != BrowserHash(browser) || s.now().UnixMilli() > f.ExpiresMS)) {
		return f, st, nil, ErrFlowGone
	}
	if err != nil {
		return f, st, nil, err
	}
	if err := json.Unmarshal([]byte(f.State), &st); err != nil {
		return f, st, nil, fmt.Errorf("selfservice: flow state: %w", err)
	}
	if err := json.Unmarshal([]byte(f.Verified), &verified); err != nil {
		return f, st, nil, fmt.Errorf("selfservice: flow verified: %w", err)
	}
	return f, st, verified, nil
}

func (s *Service) saveFlow(ctx context.Context, tx *store.Tx, f store.Flow, st flowState, verified []string) error {
	b, _ := json.Marshal(st)
	v, _ := json.Marshal(verified)
	if verified == nil {
		v = []byte("[]")
	}
	f.State, f.Verified = string(b), string(v)
	return tx.UpdateFlow(ctx, f)
}

// key is what failures and blocks count against: the directory ID, or the
// typed login for accounts that do not exist (so both behave the same).
func key(f store.Flow) string {
	if f.UserID != "" {
		return f.UserID
	}
	return "login:" + strings.ToLower(f.Login)
}

// Start begins a reset or unlock for whatever login was typed. It answers
// the same, in about the same time, whether or not the account exists, is
// protected, or has no method: an ineligible flow simply never verifies.
func (s *Service) Start(ctx context.Context, kind, login, browser string, from audit.Actor) (string, error) {
	start := time.Now()
	defer s.floor(ctx, start)
	login = strings.TrimSpace(login)
	if login == "" || len(login) > 256 {
		return "", errs.FieldErrors(map[string]string{"login": "Enter your user name or e-mail address."})
	}
	if kind != KindReset && kind != KindUnlock {
		return "", errs.Invalidf("unknown flow")
	}
	av, err := s.Available(ctx, kind)
	if err != nil {
		return "", err
	}
	if !av.OK {
		return "", errs.E(errs.Forbidden, av.Reason, nil)
	}
	f := store.Flow{ID: randomID(), Kind: kind, BrowserHash: BrowserHash(browser), Login: login, CorrelationID: randomID()[:32],
		CreatedMS: s.now().UnixMilli(), ExpiresMS: s.now().Add(FlowTTL).UnixMilli()}
	target := audit.Target{Type: "User", Name: login}
	reason := ""
	u, err := s.wb.Lookup(ctx, login)
	switch k := errs.KindOf(err); {
	case err == nil:
		f.UserID, f.UserDN = u.ID, u.DN
		target = audit.Target{Type: "User", ID: u.ID, DN: u.DN, Name: u.DisplayName + " (" + u.Login + ")"}
		reason = s.ineligible(ctx, av.Policy, u)
	case k == errs.NotFound || k == errs.Conflict || k == errs.Invalid:
		reason = "no single account matches what was typed"
	default:
		return "", err // the directory is unreachable: the same for everyone
	}
	f.Eligible = reason == ""
	var st flowState
	if until, err := s.db.BlockedUntil(ctx, key(f)); err != nil {
		return "", err
	} else if until > s.now().UnixMilli() {
		st.Blocked = true
		reason = "blocked from self-service until " + time.UnixMilli(until).UTC().Format(time.RFC3339)
		f.Eligible = false
	}
	b, _ := json.Marshal(st)
	f.State = string(b)
	details := map[string]any{"step": "started " + kind, "eligible": f.Eligible}
	if reason != "" {
		details["not_eligible_because"] = reason
	}
	err = s.db.InTx(ctx, func(tx *store.Tx) error {
		if err := tx.InsertFlow(ctx, f); err != nil {
			return err
		}
		_, err := audit.Record(ctx, tx, audit.Entry{Category: audit.CategoryUserManagement, Activity: audit.ActivitySelfServiceProgress,
			Actor: userActor(from, f), Target: target, CorrelationID: f.CorrelationID, Details: details})
		return err
	})
	if err != nil {
		return "", fmt.Errorf("selfservice: start: %w", err)
	}
	return f.ID, nil
}

func userActor(from audit.Actor, f store.Flow) audit.Actor {
	from.Type, from.ID, from.Name = "user", f.UserID, f.Login
	return from
}

// ineligible returns why u cannot use self-service, or "".
func (s *Service) ineligible(ctx context.Context, p Policy, u directory.User) string {
	switch {
	case u.Protected:
		return "protected account: " + u.ProtectedReason
	case u.Disabled:
		return "disabled account"
	}
	if p.Enabled == EnabledGroup {
		cl, _, err := s.wb.Client(ctx)
		if err != nil {
			return "directory unavailable"
		}
		ok, err := cl.MemberOf(ctx, u, p.Group)
		if err != nil {
			return "group membership could not be read"
		}
		if !ok {
			return "not a member of the self-service group"
		}
	}
	have, err := s.available(ctx, p, u)
	if err != nil {
		return "methods could not be read"
	}
	if len(have) < p.Required {
		return fmt.Sprintf("has %d of the %d required methods", len(have), p.Required)
	}
	return ""
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
	var out []string
	for _, m := range p.Methods.List() {
		if has[m] {
			out = append(out, m)
		}
	}
	return out, nil
}

// View returns the current step of a flow.
func (s *Service) View(ctx context.Context, id, browser string) (View, error) {
	f, st, verified, err := s.loadFlow(ctx, id, browser)
	if err != nil {
		return View{}, err
	}
	p, _, err := s.Policy(ctx)
	if err != nil {
		return View{}, err
	}
	v := View{ID: f.ID, Kind: f.Kind, Verified: len(verified), Required: p.Required, CorrelationID: f.CorrelationID}
	for _, m := range p.Methods.List() {
		if !slices.Contains(verified, m) {
			v.Methods = append(v.Methods, m)
		}
	}
	if st.SendFailed {
		v.Notice = "We could not send an e-mail just now. Try again in a few minutes, use another method, or contact your helpdesk."
	}
	switch {
	case f.DoneMS != 0:
		v.Step = StepDone
	case st.Blocked:
		v.Step = StepBlocked
	case len(verified) >= p.Required:
		v.Step = StepPassword
		if f.Kind == KindUnlock {
			v.Step = StepDone
		}
	case st.Pending == MethodEmail:
		v.Step = StepCode
	case st.Pending == MethodApp:
		v.Step = StepApp
	case st.Pending == MethodQuestions:
		v.Step, v.Questions = StepQuestions, st.Questions
	default:
		v.Step = StepChoose
	}
	if len(verified) > 0 && f.Eligible {
		// Having proved one method, the person may see where codes go.
		if dests, err := s.destinations(ctx, f); err == nil {
			for _, d := range dests {
				v.Masked = append(v.Masked, Mask(d))
			}
		}
	}
	if v.Step == StepPassword && f.Eligible {
		if u, err := s.flowUser(ctx, f); err == nil {
			if pol, err := s.wb.Policy(ctx, u); err == nil {
				v.Policy, v.HasPolicy = pol, true
			}
		}
	}
	return v, nil
}

// flowUser re-reads the flow's user by DN and checks it is still the same account.
func (s *Service) flowUser(ctx context.Context, f store.Flow) (directory.User, error) {
	cl, _, err := s.wb.Client(ctx)
	if err != nil {
		return directory.User{}, err
	}
	u, _, err := cl.Get(ctx, f.UserDN)
	if err != nil {
		return u, err
	}
	if u.ID != f.UserID {
		return u, ErrFlowGone
	}
	return u, nil
}

// destinations are the addresses verification codes go to: the directory
// e-mail attribute and a registered alternate address.
func (s *Service) destinations(ctx context.Context, f store.Flow) ([]string, error) {
	if !f.Eligible || f.UserID == "" {
		return nil, nil
	}
	u, err := s.flowUser(ctx, f)
	if err != nil {
		return nil, err
	}
	var out []string
	if u.Email != "" {
		out = append(out, u.Email)
	}
	regs, err := s.db.Methods(ctx, f.UserID)
	if err != nil {
		return nil, err
	}
	for _, m := range regs {
		if m.Method == MethodEmail {
			if pt, err := s.keys.Open(methodContext(f.UserID, MethodEmail), m.Secret); err == nil && !slices.ContainsFunc(out, func(a string) bool { return strings.EqualFold(a, string(pt)) }) {
				out = append(out, string(pt))
			}
		}
	}
	return out, nil
}

func methodContext(userID, method string) string { return "sspr.method:" + method + ":" + userID }

// Choose picks the next method. For e-mail it sends a code (or, for a flow
// that can never verify, pretends to, taking the same time).
func (s *Service) Choose(ctx context.Context, id, browser, method string, from audit.Actor) error {
	start := time.Now()
	defer s.floor(ctx, start)
	f, st, verified, err := s.loadFlow(ctx, id, browser)
	if err != nil {
		return err
	}
	p, _, err := s.Policy(ctx)
	if err != nil {
		return err
	}
	if st.Blocked || f.DoneMS != 0 {
		return nil
	}
	if method == "" { // back to the choice of methods
		st.Pending, st.Questions = "", nil
		return s.db.InTx(ctx, func(tx *store.Tx) error { return s.saveFlow(ctx, tx, f, st, verified) })
	}
	if !slices.Contains(p.Methods.List(), method) || slices.Contains(verified, method) {
		return errs.Invalidf("Choose one of the methods on the page.")
	}
	st.Pending, st.SendFailed = method, false
	switch method {
	case MethodQuestions:
		st.Questions = s.questionsFor(ctx, f, p)
	case MethodEmail:
		if err := s.sendCode(ctx, f, from); err != nil {
			return err
		}
	}
	return s.db.InTx(ctx, func(tx *store.Tx) error { return s.saveFlow(ctx, tx, f, st, verified) })
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

// ErrTooManyCodes is the answer when codes are asked for too often.
var ErrTooManyCodes = errs.E(errs.TooMany, "Too many codes were requested. Wait an hour, or use another method.", nil)

// sendCode creates a code for the flow and e-mails it in the background to
// every destination that is under its limit.
func (s *Service) sendCode(ctx context.Context, f store.Flow, from audit.Actor) error {
	now := s.now()
	n, err := s.db.CountCodes(ctx, false, key(f), now.Add(-time.Hour).UnixMilli())
	if err != nil {
		return err
	}
	if n >= CodesPerUser {
		return ErrTooManyCodes
	}
	dests, err := s.destinations(ctx, f)
	if err != nil {
		s.log.Warn("self-service: read destinations", "err", err)
		dests = nil
	}
	code := newCode()
	var send []string
	for _, d := range dests {
		dk := s.mac("dest", strings.ToLower(d))
		if c, err := s.db.CountCodes(ctx, true, dk, now.Add(-time.Hour).UnixMilli()); err == nil && c < CodesPerAddress {
			send = append(send, d)
		}
	}
	dest := ""
	if len(send) > 0 {
		dest = s.mac("dest", strings.ToLower(send[0]))
	}
	err = s.db.InTx(ctx, func(tx *store.Tx) error {
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
	s.record(ctx, audit.Entry{Category: audit.CategoryUserManagement, Activity: audit.ActivitySelfServiceProgress, Actor: userActor(from, f),
		Target: audit.Target{Type: "User", ID: f.UserID, DN: f.UserDN, Name: f.Login}, CorrelationID: f.CorrelationID,
		Details: map[string]any{"step": step, "destinations": len(send)}})
	if len(send) == 0 {
		return nil
	}
	p, _, _ := s.Policy(ctx)
	s.sendAsync(f, from, send, func(to string) mail.Message { return mail.VerificationCode(to, orgName(p), code, CodeTTL) })
	return nil
}

// sendAsync sends mail without holding up the answer (its time would tell
// whether an account exists); a failure is noted on the flow and audited.
func (s *Service) sendAsync(f store.Flow, from audit.Actor, to []string, msg func(to string) mail.Message) {
	s.sends.Add(1)
	go func() {
		defer s.sends.Done()
		ctx, cancel := context.WithTimeout(s.bg, 45*time.Second)
		defer cancel()
		snd, err := s.sender(ctx)
		for _, addr := range to {
			if err == nil {
				err = snd.Send(ctx, msg(addr))
			}
			if err != nil {
				break
			}
		}
		if err == nil {
			return
		}
		s.log.Warn("self-service: send mail failed", "correlation_id", f.CorrelationID, "err", err)
		s.record(ctx, audit.Entry{Category: audit.CategoryUserManagement, Activity: audit.ActivitySelfServiceProgress, Actor: userActor(from, f),
			Target: audit.Target{Type: "User", ID: f.UserID, DN: f.UserDN, Name: f.Login}, CorrelationID: f.CorrelationID, Result: audit.Failure,
			Reason: "e-mail could not be sent: " + errs.MessageOf(err), Details: map[string]any{"step": "send e-mail"}})
		if f.ID == "" {
			return
		}
		if fl, err := s.db.Flow(ctx, f.ID); err == nil {
			var st flowState
			var verified []string
			_ = json.Unmarshal([]byte(fl.State), &st)
			_ = json.Unmarshal([]byte(fl.Verified), &verified)
			st.SendFailed = true
			_ = s.db.InTx(ctx, func(tx *store.Tx) error { return s.saveFlow(ctx, tx, fl, st, verified) })
		}
	}()
}

// Verify checks what the person entered for the pending method. A wrong
// answer counts toward the 24-hour block; the error says what to do next.
func (s *Service) Verify(ctx context.Context, id, browser, method string, code string, answers []string, from audit.Actor) error {
	f, st, verified, err := s.loadFlow(ctx, id, browser)
	if err != nil {
		return err
	}
	if st.Blocked {
		return errBlocked
	}
	if f.DoneMS != 0 || st.Pending != method {
		return errs.Invalidf("Choose a method first.")
	}
	p, _, err := s.Policy(ctx)
	if err != nil {
		return err
	}
	var ok bool
	var failMsg string
	switch method {
	case MethodEmail:
		ok, failMsg, err = s.checkCode(ctx, f, "verify", strings.TrimSpace(code))
	case MethodApp:
		ok = f.Eligible && s.checkTOTP(ctx, f.UserID, strings.TrimSpace(code))
		failMsg = "That code is not right. Enter the 6-digit code your authenticator app shows now."
	case MethodQuestions:
		ok = s.checkAnswers(ctx, f.Eligible, f.UserID, st.Questions, answers)
		failMsg = "Those answers are not right. Check them and try again."
	default:
		return errs.Invalidf("Choose a method first.")
	}
	if err != nil {
		return err
	}
	target := audit.Target{Type: "User", ID: f.UserID, DN: f.UserDN, Name: f.Login}
	if !ok {
		blocked, err := s.fail(ctx, f, st, verified, from, method)
		if err != nil {
			return err
		}
		if blocked {
			return errBlocked
		}
		return errs.E(errs.Unauthorized, failMsg, nil)
	}
	verified = append(verified, method)
	st.Pending, st.Questions = "", nil
	err = s.db.InTx(ctx, func(tx *store.Tx) error {
		if err := s.saveFlow(ctx, tx, f, st, verified); err != nil {
			return err
		}
		_, err := audit.Record(ctx, tx, audit.Entry{Category: audit.CategoryUserManagement, Activity: audit.ActivitySelfServiceProgress,
			Actor: userActor(from, f), Target: target, CorrelationID: f.CorrelationID,
			Details: map[string]any{"step": "verified with " + MethodLabel(method), "verified": len(verified), "required": p.Required}})
		return err
	})
	if err != nil {
		return err
	}
	if f.Kind == KindUnlock && len(verified) >= p.Required {
		return s.unlock(ctx, f, from)
	}
	return nil
}

var errBlocked = errs.E(errs.TooMany, "Too many failed attempts. Self-service password reset is blocked for this account for 24 hours. Contact your helpdesk if you need help now.", nil)

// fail records a failed verification and blocks after too many.
func (s *Service) fail(ctx context.Context, f store.Flow, st flowState, verified []string, from audit.Actor, method string) (bool, error) {
	now := s.now()
	blocked := false
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		n, err := tx.AddFailure(ctx, key(f), now.UnixMilli(), now.Add(-FailureWindow).UnixMilli())
		if err != nil {
			return err
		}
		target := audit.Target{Type: "User", ID: f.UserID, DN: f.UserDN, Name: f.Login}
		if _, err := audit.Record(ctx, tx, audit.Entry{Category: audit.CategoryUserManagement, Activity: audit.ActivitySelfServiceProgress,
			Actor: userActor(from, f), Target: target, CorrelationID: f.CorrelationID, Result: audit.Failure,
			Reason: "verification failed: " + MethodLabel(method), Details: map[string]any{"failures_in_last_hour": n}}); err != nil {
			return err
		}
		if n < FailuresToBlock {
			return nil
		}
		blocked = true
		if err := tx.Block(ctx, key(f), now.Add(BlockFor).UnixMilli()); err != nil {
			return err
		}
		st.Blocked = true
		if err := s.saveFlow(ctx, tx, f, st, verified); err != nil {
			return err
		}
		_, err = audit.Record(ctx, tx, audit.Entry{Category: audit.CategoryUserManagement, Activity: audit.ActivityBlockedSelfService,
			Actor: userActor(from, f), Target: target, CorrelationID: f.CorrelationID, Result: audit.Failure,
			Reason: fmt.Sprintf("%d failed verifications within an hour", n), Details: map[string]any{"blocked_until": now.Add(BlockFor).UTC().Format(time.RFC3339)}})
		return err
	})
	return blocked, err
}

// checkCode checks an e-mailed code: single use, 10 minutes, 5 tries.
func (s *Service) checkCode(ctx context.Context, f store.Flow, purpose, code string) (ok bool, msg string, err error) {
	now := s.now().UnixMilli()
	err = s.db.InTx(ctx, func(tx *store.Tx) error {
		c, err := tx.LatestCode(ctx, f.ID, purpose)
		if errors.Is(err, store.ErrNotFound) {
			msg = "There is no code to check. Send a code first."
			return nil
		}
		if err != nil {
			return err
		}
		switch {
		case c.UsedMS != 0 || c.Voided:
			msg = "That code has already been used. Send a new one."
		case now > c.ExpiresMS:
			msg = "That code has expired. Send a new one."
		case c.Tries >= CodeTries:
			msg = "That code was entered wrongly too many times. Send a new one."
		case len(code) != 8 || s.mac(f.ID, purpose, code) != c.CodeHash:
			msg = fmt.Sprintf("That code is not right. You have %d more tries with it.", max(0, CodeTries-c.Tries-1))
			return tx.MarkCode(ctx, c.ID, 0)
		default:
			ok = true
			return tx.MarkCode(ctx, c.ID, now)
		}
		return nil
	})
	return ok, msg, err
}

// checkTOTP accepts a code from the registered app for the current time
// step or one step either side, each step at most once.
func (s *Service) checkTOTP(ctx context.Context, userID, code string) bool {
	regs, err := s.db.Methods(ctx, userID)
	if err != nil {
		return false
	}
	for _, m := range regs {
		if m.Method != MethodApp {
			continue
		}
		secret, err := s.keys.Open(methodContext(userID, MethodApp), m.Secret)
		if err != nil {
			return false
		}
		now := s.now()
		for _, skew := range []int64{0, -1, 1} {
			at := now.Add(time.Duration(skew) * 30 * time.Second)
			if ok, _ := totp.ValidateCustom(code, string(secret), at, totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1}); !ok {
				continue
			}
			fresh := false
			err := s.db.InTx(ctx, func(tx *store.Tx) error {
				var err error
				fresh, err = tx.UseTOTPStep(ctx, userID, at.Unix()/30)
				return err
			})
			return err == nil && fresh
		}
		return false
	}
	return false
}

// checkAnswers compares answers with the stored hashes. It does the same
// argon2id work for every question whether or not the account exists or
// registered answers, so its time tells nothing.
func (s *Service) checkAnswers(ctx context.Context, eligible bool, userID string, questions, given []string) bool {
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
		match, err := admins.VerifyPassword(h, a)
		ok = ok && err == nil && match
	}
	return ok
}

// dummyAnswerHash is a hash no answer matches, with the same cost as real ones.
func (s *Service) dummyAnswerHash() string {
	s.dummyOnce.Do(func() {
		s.dummyHash, _ = admins.HashPassword(randomID(), s.AnswerParams)
	})
	return s.dummyHash
}

// SetPassword writes the new password of a verified reset flow (and ends
// any lockout), then notifies as the policy says.
func (s *Service) SetPassword(ctx context.Context, id, browser, password, confirm string, from audit.Actor) error {
	f, st, verified, err := s.loadFlow(ctx, id, browser)
	if err != nil {
		return err
	}
	p, _, err := s.Policy(ctx)
	if err != nil {
		return err
	}
	if f.Kind != KindReset || f.DoneMS != 0 || st.Blocked || len(verified) < p.Required || !f.Eligible {
		return ErrFlowGone
	}
	if password == "" {
		return errs.FieldErrors(map[string]string{"password": "Enter a new password."})
	}
	if password != confirm {
		return errs.FieldErrors(map[string]string{"confirm": "The two passwords are not the same."})
	}
	if err := s.ensureWriteback(ctx); err != nil {
		return err
	}
	u, err := s.flowUser(ctx, f)
	if err != nil {
		return err
	}
	cl, _, err := s.wb.Client(ctx)
	if err != nil {
		return err
	}
	res, err := cl.Reset(ctx, u, password, directory.ResetOptions{Unlock: true})
	details := map[string]any{"server": res.Server, "was_locked": u.Locked}
	target := audit.Target{Type: "User", ID: u.ID, DN: u.DN, Name: u.DisplayName + " (" + u.Login + ")"}
	e := audit.Entry{Category: audit.CategoryUserManagement, Activity: audit.ActivityResetSelfService, Actor: userActor(from, f),
		Target: target, CorrelationID: f.CorrelationID, Details: details}
	if err != nil {
		e.Result, e.Reason = audit.Failure, errs.MessageOf(err)
		writeback.AddDiagnostics(details, err)
		s.record(ctx, e)
		if errs.KindOf(err) == errs.Policy {
			return errs.FieldErrors(map[string]string{"password": errs.MessageOf(err)})
		}
		return err
	}
	f.DoneMS = s.now().UnixMilli()
	st.Pending = ""
	err = s.db.InTx(ctx, func(tx *store.Tx) error {
		if err := s.saveFlow(ctx, tx, f, st, verified); err != nil {
			return err
		}
		_, err := audit.Record(ctx, tx, e)
		return err
	})
	if err != nil {
		return err
	}
	s.notify(ctx, f, from, u, p, true)
	return nil
}

func (s *Service) ensureWriteback(ctx context.Context) error {
	st, err := s.wb.State(ctx)
	if err != nil {
		return err
	}
	if !st.Writeback {
		return errs.E(errs.Forbidden, "Self-service password reset is not available right now: writing passwords to the directory has been turned off. Contact your helpdesk.", nil)
	}
	return nil
}

// unlock ends the lockout of a verified unlock flow.
func (s *Service) unlock(ctx context.Context, f store.Flow, from audit.Actor) error {
	st, err := s.wb.State(ctx)
	if err != nil {
		return err
	}
	if !st.Unlock {
		return errs.E(errs.Forbidden, "Unlocking without a reset has been turned off. Reset your password instead.", nil)
	}
	u, err := s.flowUser(ctx, f)
	if err != nil {
		return err
	}
	cl, _, err := s.wb.Client(ctx)
	if err != nil {
		return err
	}
	res, err := cl.Unlock(ctx, u)
	details := map[string]any{"server": res.Server, "was_locked": u.Locked}
	e := audit.Entry{Category: audit.CategoryUserManagement, Activity: audit.ActivityUnlockSelfService, Actor: userActor(from, f),
		Target: audit.Target{Type: "User", ID: u.ID, DN: u.DN, Name: u.DisplayName + " (" + u.Login + ")"}, CorrelationID: f.CorrelationID, Details: details}
	if err != nil {
		e.Result, e.Reason = audit.Failure, errs.MessageOf(err)
		writeback.AddDiagnostics(details, err)
		s.record(ctx, e)
		return err
	}
	fl, fst, verified, err := s.loadFlowByID(ctx, f.ID)
	if err != nil {
		return err
	}
	fl.DoneMS = s.now().UnixMilli()
	fst.Unlocked = true
	err = s.db.InTx(ctx, func(tx *store.Tx) error {
		if err := s.saveFlow(ctx, tx, fl, fst, verified); err != nil {
			return err
		}
		_, err := audit.Record(ctx, tx, e)
		return err
	})
	if err != nil {
		return err
	}
	p, _, _ := s.Policy(ctx)
	s.notify(ctx, f, from, u, p, false)
	return nil
}

func (s *Service) loadFlowByID(ctx context.Context, id string) (store.Flow, flowState, []string, error) {
	var st flowState
	var verified []string
	f, err := s.db.Flow(ctx, id)
	if err != nil {
		return f, st, nil, err
	}
	_ = json.Unmarshal([]byte(f.State), &st)
	_ = json.Unmarshal([]byte(f.Verified), &verified)
	return f, st, verified, nil
}

// notify sends "your password was reset" / "your account was unlocked" and,
// when the person is also a portal administrator, the notice to the others.
func (s *Service) notify(ctx context.Context, f store.Flow, from audit.Actor, u directory.User, p Policy, reset bool) {
	when := s.now()
	if p.NotifyUsers {
		if dests, err := s.destinations(ctx, f); err == nil && len(dests) > 0 {
			s.sendAsync(store.Flow{UserID: f.UserID, UserDN: f.UserDN, Login: f.Login, CorrelationID: f.CorrelationID}, from, dests, func(to string) mail.Message {
				if reset {
					return mail.PasswordReset(to, orgName(p), u.DisplayName, when, s.baseURL)
				}
				return mail.AccountUnlocked(to, orgName(p), u.DisplayName, when, s.baseURL)
			})
		}
	}
	if reset && p.NotifyAdmins && u.Email != "" {
		list, err := s.db.ListAdmins(ctx)
		if err != nil {
			return
		}
		isAdmin := slices.ContainsFunc(list, func(a store.Admin) bool { return !a.Disabled && strings.EqualFold(a.Email, u.Email) })
		if !isAdmin {
			return
		}
		var to []string
		for _, a := range list {
			if !a.Disabled && a.Role == string(admins.GlobalAdmin) && !strings.EqualFold(a.Email, u.Email) {
				to = append(to, a.Email)
			}
		}
		s.sendAsync(store.Flow{UserID: f.UserID, Login: f.Login, CorrelationID: f.CorrelationID}, from, to, func(addr string) mail.Message {
			return mail.AdminPasswordResetNotice(addr, orgName(p), u.DisplayName, when)
		})
	}
}
