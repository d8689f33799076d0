package selfservice

import (
	"context"
	"encoding/json"
	"errors"
	"net/mail"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/pquerna/otp/totp"

	"github.com/writeback/writeback/services/admins"
	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/authenticator"
	"github.com/writeback/writeback/services/directory"
	"github.com/writeback/writeback/services/errs"
	"github.com/writeback/writeback/services/i18n"
	wbmail "github.com/writeback/writeback/services/mail"
	"github.com/writeback/writeback/services/writeback"
	"github.com/writeback/writeback/store"
)

// StartRegister signs a person in with their directory password and opens a
// registration flow bound to their browser session. The attempt is counted
// against the account's budget (see beginSignIn) before the password is sent.
//
// Its time tells nothing (see Pacer): a wrong password the directory checked
// is recorded; an unknown account, and every refusal after the form was
// checked, take the time of one of those. A sign-in that succeeded (or a password
// that is right but must be changed) says so in its answer.
func (s *Service) StartRegister(ctx context.Context, login, password, browser string, from audit.Actor) (string, error) {
	fields := map[string]errs.Text{}
	typed, err := directory.NormalizeIdentifier(login)
	if err != nil {
		fields["login"] = errs.TextOf(err)
	}
	if password == "" {
		fields["password"] = errs.Textf("Enter your password.")
	}
	if len(fields) > 0 {
		return "", errs.FieldTexts(fields)
	}
	// From here on the account matters: paced (what comes before answers
	// the same whoever is named).
	out := outPadded
	defer s.paced(ctx, s.Pacer.begin("register"), &out)
	av, err := s.Available(ctx, KindRegister)
	if err != nil {
		return "", s.signInFailed(ctx, newSignIn(audit.ActivityRegisterSecurity, typed, from), "self-service state not readable", err)
	}
	if !av.OK {
		return "", errs.E(errs.Forbidden, av.Reason, nil)
	}
	si, err := s.beginSignIn(ctx, audit.ActivityRegisterSecurity, typed, from)
	if err != nil {
		return "", err
	}
	// One directory session: the search that finds the account, the
	// attempt counted, then the bind.
	_, si.res, err = si.cl.AuthenticateLogin(ctx, typed, password, s.admit(ctx, si))
	var done bool
	if done, err = s.admitted(ctx, si, err); !done {
		return "", err
	}
	u := si.cand.User
	reached := si.found && reachedDirectory(err)
	// A successful bind resets the directory's bad-password count.
	if err = s.finish(ctx, si, err, true); err != nil {
		details := map[string]any{}
		writeback.AddDiagnostics(details, err)
		if ourSide(err, true) {
			details["error"] = err.Error()
			s.recordSignIn(ctx, si, audit.Failure, "sign-in failed on our side: "+errs.MessageOf(err), details, si.found)
			return "", errSignInOurSide
		}
		s.recordSignIn(ctx, si, audit.Failure, "sign-in failed: "+errs.MessageOf(err), details, si.found)
		var oe *directory.OpError
		if errors.As(err, &oe) && oe.Code == directory.CodeExpired {
			if reached {
				out = outShown
			}
			return "", err // the password was right: say it must be changed first
		}
		// Unknown, locked or disabled: the same words as a wrong password, so
		// nothing here tells a stranger about an account.
		if reached {
			out = outReal
		}
		return "", errs.E(errs.Unauthorized, "That user name and password don't match.", err)
	}
	out = outShown // signed in: every answer from here on needs the password
	if why := s.registrationBlocker(ctx, av.Policy, u.Protected, u.ProtectedReason); why != "" {
		return "", errs.E(errs.Forbidden, why, nil)
	}
	if av.Policy.Enabled == EnabledGroup {
		if ok, err := si.cl.MemberOf(ctx, u, av.Policy.Group); err != nil {
			return "", s.signInFailed(ctx, si, "group membership could not be read", err)
		} else if !ok {
			return "", errs.E(errs.Forbidden, "Self-service password reset is not turned on for your account. Contact your helpdesk.", nil)
		}
	}
	now := s.now()
	f := store.Flow{ID: randomID(), Kind: KindRegister, BrowserHash: BrowserHash(browser), Login: u.Login, UserID: u.ID, UserDN: u.DN,
		Eligible: true, CorrelationID: si.corr, CreatedMS: now.UnixMilli(), ExpiresMS: now.Add(FlowTTL).UnixMilli()}
	err = s.db.InTx(ctx, func(tx *store.Tx) error {
		if err := tx.InsertFlow(ctx, f); err != nil {
			return err
		}
		_, err := audit.Record(ctx, tx, audit.Entry{Category: audit.CategoryUserManagement, Activity: audit.ActivitySelfServiceProgress,
			Actor: userActor(from, f), Target: audit.Target{Type: "User", ID: u.ID, DN: u.DN, Name: u.DisplayName + " (" + u.Login + ")"},
			CorrelationID: si.corr, Details: map[string]any{"step": "signed in to register security info"}})
		return err
	})
	return f.ID, err
}

func (s *Service) registrationBlocker(ctx context.Context, p Policy, protected bool, reason string) string {
	if protected {
		return i18n.Key("This account is protected, so it can't use self-service password reset. Contact your helpdesk.")
	}
	return ""
}

// Registration is what the register page shows.
type Registration struct {
	ID             string
	Login          string
	Allowed        Methods
	DirectoryEmail string // masked
	AltEmail       string // masked, "" when none
	App            bool
	Questions      bool
	PendingEmail   string // masked address a code was sent to
	Phone          string // masked registered mobile number, "" when none
	DirectoryPhone string // masked mobile number of the directory, when it can receive texts
	PendingPhone   string // masked number a code was texted to
	AppSecret      string // base32 secret being set up
	AppQR          string // data: URI of the QR code
	AppURL         string // the otpauth:// URL the QR code holds
	Choices        []string
	ToRegister     int
	Stale          bool // older than the reconfirmation period
	Confirmed      time.Time
	// PasskeysOn: passkeys are allowed and this portal can offer them;
	// Passkeys are the person's registered ones.
	PasskeysOn bool
	Passkeys   []RegisteredPasskey
}

// Registration returns the state of a registration flow.
func (s *Service) Registration(ctx context.Context, id, browser string) (Registration, error) {
	fl, err := s.loadFlow(ctx, id, browser)
	if err != nil {
		return Registration{}, err
	}
	if fl.Kind != KindRegister {
		return Registration{}, ErrFlowGone
	}
	p, _, err := s.Policy(ctx)
	if err != nil {
		return Registration{}, err
	}
	r := Registration{ID: fl.ID, Login: fl.Login, Allowed: p.Methods, Choices: p.Questions, ToRegister: p.QuestionsToRegister}
	u, uerr := s.flowUser(ctx, fl.Flow)
	if uerr == nil && u.Email != "" {
		r.DirectoryEmail = Mask(u.Email)
	}
	regs, err := s.db.Methods(ctx, fl.UserID)
	if err != nil {
		return r, err
	}
	r.PasskeysOn = p.Methods.Passkey && s.pk != nil
	if r.Passkeys, err = s.registeredPasskeys(ctx, fl.UserID); err != nil {
		return r, err
	}
	oldest := int64(0)
	for _, m := range regs {
		if oldest == 0 || m.ConfirmedMS < oldest {
			oldest = m.ConfirmedMS
		}
		switch m.Method {
		case MethodEmail:
			if pt, err := s.keys.Open(methodContext(fl.UserID, MethodEmail), m.Secret); err == nil {
				r.AltEmail = Mask(string(pt))
			}
		case MethodApp:
			r.App = true
		case MethodQuestions:
			r.Questions = true
		}
	}
	if p.Methods.SMS {
		ph, err := s.db.Phone(ctx, fl.UserID)
		switch {
		case err == nil:
			if pt, err := s.keys.Open(phoneContext(fl.UserID), ph.Number); err == nil {
				r.Phone = smsMask(string(pt))
			}
			if oldest == 0 || ph.ConfirmedMS < oldest {
				oldest = ph.ConfirmedMS
			}
		case !errors.Is(err, store.ErrNotFound):
			return r, err
		}
		if m, _, err := s.SMSSettings(ctx); err == nil && uerr == nil && u.Mobile != "" {
			if n, err := m.Normalize(u.Mobile); err == nil {
				r.DirectoryPhone = smsMask(n)
			}
		}
		if fl.st.PhoneSealed != "" {
			if pt, err := s.keys.Open("sspr.pending-phone:"+fl.ID, fl.st.PhoneSealed); err == nil {
				r.PendingPhone = smsMask(string(pt))
			}
		}
	}
	if oldest != 0 {
		r.Confirmed = time.UnixMilli(oldest).UTC()
		r.Stale = p.ReconfirmDays > 0 && s.now().Sub(r.Confirmed) > time.Duration(p.ReconfirmDays)*24*time.Hour
	}
	if fl.st.AltEmailSealed != "" {
		if pt, err := s.keys.Open("sspr.pending-email:"+fl.ID, fl.st.AltEmailSealed); err == nil {
			r.PendingEmail = Mask(string(pt))
		}
	}
	if fl.st.AppSecretSealed != "" {
		if pt, err := s.keys.Open("sspr.pending-app:"+fl.ID, fl.st.AppSecretSealed); err == nil {
			r.AppSecret = string(pt)
			r.AppURL = authenticator.URL(orgName(p), fl.Login, r.AppSecret)
			r.AppQR, _ = authenticator.QRDataURI(r.AppURL, 220)
		}
	}
	return r, nil
}

// registerFlow reads a registration flow of this browser session.
func (s *Service) registerFlow(ctx context.Context, id, browser string) (flow, error) {
	fl, err := s.loadFlow(ctx, id, browser)
	if err == nil && fl.Kind != KindRegister {
		err = ErrFlowGone
	}
	return fl, err
}

// BeginAltEmail sends a code to an alternate address the person wants to
// register. The code limits are counted in the transaction that stores the
// code.
func (s *Service) BeginAltEmail(ctx context.Context, id, browser, addr string, from audit.Actor) (err error) {
	defer func() { err = EmployeeError(err) }()
	fl, err := s.registerFlow(ctx, id, browser)
	if err != nil {
		return err
	}
	addr = strings.TrimSpace(addr)
	if a, err := mail.ParseAddress(addr); err != nil || a.Address != addr || len(addr) > 254 {
		return errs.FieldErrors(map[string]string{"email": "Enter an e-mail address like name@example.com."})
	}
	e := entry(audit.ActivityRegisterSecurity, from, fl.Flow, map[string]any{"method": MethodLabel(MethodEmail), "step": "send e-mail"})
	snd, err := s.sender(ctx)
	if err != nil {
		s.failed(ctx, e, err)
		return err
	}
	now := s.now()
	since := now.Add(-time.Hour).UnixMilli()
	dk := s.mac("dest", strings.ToLower(addr))
	code := newCode()
	sealed, err := s.keys.Seal("sspr.pending-email:"+fl.ID, []byte(addr))
	if err != nil {
		return err
	}
	err = s.updateFlow(ctx, id, browser, func(tx *store.Tx, fl *flow) error {
		if n, err := tx.CountCodes(ctx, true, dk, since); err != nil {
			return err
		} else if n >= CodesPerAddress {
			return ErrTooManyCodes
		}
		if n, err := tx.CountCodes(ctx, false, key(fl.Flow), since); err != nil {
			return err
		} else if n >= CodesPerUser {
			return ErrTooManyCodes
		}
		if err := tx.InsertCode(ctx, store.Code{FlowID: fl.ID, Purpose: "register-email", UserID: key(fl.Flow), Destination: dk,
			CodeHash: s.mac(fl.ID, "register-email", code), CreatedMS: now.UnixMilli(), ExpiresMS: now.Add(CodeTTL).UnixMilli()}); err != nil {
			return err
		}
		fl.st.AltEmailSealed = sealed
		return nil
	})
	if err != nil {
		return err
	}
	p, _, _ := s.Policy(ctx)
	err = s.send(ctx, snd, wbmail.VerificationCode(i18n.LangOf(ctx), addr, orgName(p), code, CodeTTL))
	s.noteMail(ctx, err)
	if err != nil {
		e.Reason = "e-mail could not be sent: " + errs.MessageOf(err)
		s.failed(ctx, e, err)
		return err
	}
	return nil
}

// ConfirmAltEmail checks the code sent to the alternate address and registers it.
func (s *Service) ConfirmAltEmail(ctx context.Context, id, browser, code string, from audit.Actor) (err error) {
	defer func() { err = EmployeeError(err) }()
	fl, err := s.registerFlow(ctx, id, browser)
	if err != nil {
		return err
	}
	if fl.st.AltEmailSealed == "" {
		return ErrFlowGone
	}
	ok, msg, err := s.checkCode(ctx, fl.Flow, "register-email", strings.TrimSpace(code))
	if err != nil {
		return err
	}
	if !ok {
		return errs.FieldTexts(map[string]errs.Text{"code": msg})
	}
	addr, err := s.keys.Open("sspr.pending-email:"+fl.ID, fl.st.AltEmailSealed)
	if err != nil {
		return ErrFlowGone
	}
	return s.register(ctx, fl, browser, from, MethodEmail, addr, 0, func(st *flowState) bool {
		ok := st.AltEmailSealed == fl.st.AltEmailSealed
		st.AltEmailSealed = ""
		return ok
	})
}

// BeginApp creates a new authenticator secret for the person to scan.
func (s *Service) BeginApp(ctx context.Context, id, browser string) (err error) {
	defer func() { err = EmployeeError(err) }()
	fl, err := s.registerFlow(ctx, id, browser)
	if err != nil {
		return err
	}
	p, _, err := s.Policy(ctx)
	if err != nil {
		return err
	}
	k, err := totp.Generate(totp.GenerateOpts{Issuer: orgName(p), AccountName: fl.Login})
	if err != nil {
		return err
	}
	sealed, err := s.keys.Seal("sspr.pending-app:"+fl.ID, []byte(k.Secret()))
	if err != nil {
		return err
	}
	return s.updateFlow(ctx, id, browser, func(tx *store.Tx, fl *flow) error {
		fl.st.AppSecretSealed = sealed
		return nil
	})
}

// ConfirmApp checks a code from the newly scanned app and registers it. The
// code is checked with the same window as at a reset, and its time step is
// stored as used: the code that confirmed the app cannot then verify a reset.
func (s *Service) ConfirmApp(ctx context.Context, id, browser, code string, from audit.Actor) (err error) {
	defer func() { err = EmployeeError(err) }()
	fl, err := s.registerFlow(ctx, id, browser)
	if err != nil {
		return err
	}
	if fl.st.AppSecretSealed == "" {
		return ErrFlowGone
	}
	secret, err := s.keys.Open("sspr.pending-app:"+fl.ID, fl.st.AppSecretSealed)
	if err != nil {
		return ErrFlowGone
	}
	step, ok := totpStep(string(secret), strings.TrimSpace(code), s.now())
	if !ok {
		return errs.FieldErrors(map[string]string{"app_code": "That code is not right. Enter the 6-digit code the app shows now."})
	}
	return s.register(ctx, fl, browser, from, MethodApp, secret, step, func(st *flowState) bool {
		ok := st.AppSecretSealed == fl.st.AppSecretSealed
		st.AppSecretSealed = ""
		return ok
	})
}

// SaveQuestions registers answers to security questions, stored only as
// salted argon2id hashes of the normalised answers.
func (s *Service) SaveQuestions(ctx context.Context, id, browser string, questions, answers []string, from audit.Actor) (err error) {
	defer func() { err = EmployeeError(err) }()
	fl, err := s.registerFlow(ctx, id, browser)
	if err != nil {
		return err
	}
	p, _, err := s.Policy(ctx)
	if err != nil {
		return err
	}
	fields := map[string]errs.Text{}
	out := map[string]string{}
	for i, q := range questions {
		if q == "" {
			continue
		}
		if !slices.Contains(p.Questions, q) {
			fields["questions"] = errs.Textf("Choose questions from the list.")
			continue
		}
		if _, dup := out[q]; dup {
			fields["questions"] = errs.Textf("Choose different questions.")
			continue
		}
		a := ""
		if i < len(answers) {
			a = normalizeAnswer(answers[i])
		}
		if utf8.RuneCountInString(a) < 3 {
			fields["questions"] = errs.Textf("Answer every question you choose with at least 3 letters or digits.")
			continue
		}
		if len(fields) > 0 {
			continue // the form comes back anyway: spare the hashing
		}
		h, err := admins.HashPassword(a, s.AnswerParams)
		if err != nil {
			return err
		}
		out[q] = h
	}
	if len(fields) == 0 && len(out) != p.QuestionsToRegister {
		fields["questions"] = errs.Textf("Choose and answer %d different questions.", p.QuestionsToRegister)
	}
	if len(fields) > 0 {
		return errs.FieldTexts(fields)
	}
	b, _ := json.Marshal(out)
	return s.register(ctx, fl, browser, from, MethodQuestions, b, 0, nil)
}

// register stores a method for the person of the registration flow fl (as
// the caller read it) and records "User registered security info", in one
// transaction with the flow it reads again. settle, when set, clears what
// awaited confirmation and reports whether it is still what was confirmed
// (a concurrent confirmation or a new secret means it is not).
func (s *Service) register(ctx context.Context, fl flow, browser string, from audit.Actor, method string, secret []byte, lastStep int64, settle func(*flowState) bool) error {
	sealed, err := s.keys.Seal(methodContext(fl.UserID, method), secret)
	if err != nil {
		return err
	}
	return s.updateFlow(ctx, fl.ID, browser, func(tx *store.Tx, fl *flow) error {
		if settle != nil && !settle(&fl.st) {
			return ErrFlowGone
		}
		if err := tx.PutMethod(ctx, store.Method{UserID: fl.UserID, Method: method, Secret: sealed, ConfirmedMS: s.now().UnixMilli(), LastStep: lastStep}); err != nil {
			return err
		}
		_, err := audit.Record(ctx, tx, entry(audit.ActivityRegisterSecurity, from, fl.Flow, map[string]any{"method": MethodLabel(method)}))
		return err
	})
}
