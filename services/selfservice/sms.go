package selfservice

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/directory"
	"github.com/writeback/writeback/services/errs"
	"github.com/writeback/writeback/services/i18n"
	"github.com/writeback/writeback/services/settings"
	"github.com/writeback/writeback/services/sms"
	"github.com/writeback/writeback/store"
)

// Limits of text message codes, against toll fraud (someone making the
// portal text expensive numbers) and bombing (someone flooding a person's
// phone). They are counted in the database (sms_sends), in the transaction
// that stores the code, so they hold across concurrent requests and replicas.
const (
	SMSPerAccount   = 5           // codes by text per account per hour
	SMSPerNumber    = 5           // per number per hour
	SMSPerNumberDay = 10          // per number per day
	SMSPerClient    = 10          // per client address per hour
	SMSCooldown     = time.Minute // between two codes to one account or number
	// DefaultSMSDailyCap is the portal's cap per 24 hours when the gateway
	// page sets none; MaxSMSDailyCap the most it accepts.
	DefaultSMSDailyCap = 500
	MaxSMSDailyCap     = 100000
)

// Purposes of text message codes in sspr_codes.
const (
	purposeSMS         = "verify-sms"
	purposeRegisterSMS = "register-sms"
)

// What people read when text messages cannot be sent. They depend only on
// portal-wide state, never on the account, so anyone may see them.
var (
	MsgSMSUnavailable = i18n.Key("Text messages can't be sent right now. Choose another method, or try again later.")
	MsgSMSNotSent     = i18n.Key("We couldn't send a text message to that number. Check it and try again later, or contact your helpdesk.")
	MsgSMSCooldown    = i18n.Key("A code was sent less than a minute ago. Wait a minute before asking for a new one.")
)

var (
	errSMSUnavailable = errs.E(errs.Unavailable, MsgSMSUnavailable, nil)
	errSMSCooldown    = errs.E(errs.TooMany, MsgSMSCooldown, nil)
)

const smsName = "sms"

// smsSealContext binds a sealed gateway secret to its place; the gateway's
// scheme and host are added (sealContextForSMS), so a secret goes only to
// the gateway it was entered for.
const smsSealContext = "sms.secret"

func sealContextForSMS(c sms.Config) string { return smsSealContext + "|" + c.ServerID() }

// SMSSettings is the stored gateway; its secret only ever sealed.
type SMSSettings struct {
	sms.Config
	SecretSealed string `json:"secret_sealed,omitempty"`
	// DefaultRegion reads numbers written without their country code (an
	// ISO 3166 code such as GB); empty: numbers need their country code.
	DefaultRegion string `json:"default_region,omitempty"`
	// AllowedRegions, when not empty, are the only countries codes are
	// texted to.
	AllowedRegions []string `json:"allowed_regions,omitempty"`
	// DailyCap is the most codes the portal texts in 24 hours; 0 is
	// DefaultSMSDailyCap.
	DailyCap int `json:"daily_cap,omitempty"`
}

// Cap is the daily cap in force.
func (m SMSSettings) Cap() int {
	if m.DailyCap <= 0 {
		return DefaultSMSDailyCap
	}
	return m.DailyCap
}

// Normalize reads a number under these settings (see sms.Normalize).
func (m SMSSettings) Normalize(raw string) (string, error) {
	return sms.Normalize(raw, m.DefaultRegion, m.AllowedRegions)
}

// SMSInput is a gateway as submitted. An empty Secret keeps the stored one
// unless ClearSecret is set or the gateway (scheme and host) changed.
type SMSInput struct {
	Config         sms.Config
	Secret         string
	ClearSecret    bool
	DefaultRegion  string
	AllowedRegions []string
	DailyCap       int
}

// SMSSettings reads the gateway settings, from memory.
func (s *Service) SMSSettings(ctx context.Context) (SMSSettings, settings.Meta, error) {
	return settings.Get(ctx, s.db, smsName, SMSSettings{})
}

// Activities of text messages.
const (
	ActivityUpdateSMS   = "Update text message gateway settings"
	ActivitySendTestSMS = "Send test text message"
)

// SaveSMS validates and saves the gateway if still at expectVersion,
// recording "Update text message gateway settings" (the secret only as
// "changed"). A bad value changes nothing.
func (s *Service) SaveSMS(ctx context.Context, actor audit.Actor, expectVersion int64, in SMSInput) (bool, error) {
	c := in.Config
	c.URL, c.From, c.Username, c.AuthHead = strings.TrimSpace(c.URL), strings.TrimSpace(c.From), strings.TrimSpace(c.Username), strings.TrimSpace(c.AuthHead)
	c.Method = strings.ToUpper(strings.TrimSpace(c.Method))
	if c.Method == sms.MethodGet {
		c.Encoding, c.Body = "", ""
	}
	if c.Auth == "" {
		c.Auth = sms.AuthNone
	}
	region := strings.ToUpper(strings.TrimSpace(in.DefaultRegion))
	var allowed []string
	for _, r := range in.AllowedRegions {
		if r = strings.ToUpper(strings.TrimSpace(r)); r != "" && !slices.Contains(allowed, r) {
			allowed = append(allowed, r)
		}
	}
	changed, _, err := settings.Update(ctx, s.db, smsName, expectVersion, actor, SMSSettings{}, func(old SMSSettings) (SMSSettings, []audit.Entry, error) {
		next := SMSSettings{Config: c, DefaultRegion: region, AllowedRegions: allowed, DailyCap: in.DailyCap}
		secret, problem := in.Secret, ""
		switch {
		case in.ClearSecret || secret != "":
		case old.SecretSealed == "":
		case old.ServerID() != next.ServerID():
			problem = i18n.Key("The gateway changed, so the stored secret is not sent to it: enter the secret for this gateway again.")
		default:
			pt, err := s.keys.Open(sealContextForSMS(old.Config), old.SecretSealed)
			if err != nil {
				problem = i18n.Key("The stored secret cannot be decrypted (was the key file replaced?). Enter it again.")
			}
			secret = string(pt)
		}
		if in.ClearSecret {
			secret = ""
		}
		fields := map[string]errs.Text{}
		if err := c.Validate(secret); err != nil {
			f := errs.TextsOf(err)
			if f == nil {
				return old, nil, err
			}
			fields = f
		}
		if problem != "" {
			fields[sms.FieldSecret] = errs.Text{Format: problem}
		}
		if region != "" && !sms.ValidRegion(region) {
			fields["default_region"] = errs.Textf("Enter a two-letter country code such as GB or DE, or leave it empty.")
		}
		for _, r := range allowed {
			if !sms.ValidRegion(r) {
				fields["allowed_regions"] = errs.Textf("%q is not a country code: list two-letter codes such as GB, DE, separated by commas.", r)
			}
		}
		if in.DailyCap < 0 || in.DailyCap > MaxSMSDailyCap {
			fields["daily_cap"] = errs.Textf("Enter a whole number from 1 to %#d, or leave it empty for %#d.", MaxSMSDailyCap, DefaultSMSDailyCap)
		}
		if len(fields) > 0 {
			return old, nil, errs.FieldTexts(fields)
		}
		if secret != "" && c.NeedsSecret() {
			sealed, err := s.keys.Seal(sealContextForSMS(next.Config), []byte(secret))
			if err != nil {
				return old, nil, err
			}
			next.SecretSealed = sealed
		}
		d := audit.Changes{}
		d.Add("preset", old.Preset, next.Preset)
		d.Add("method", old.Method, next.Method)
		d.Add("url", redactURL(old.URL), redactURL(next.URL))
		d.Add("headers", headerNames(old.Headers), headerNames(next.Headers))
		d.Add("encoding", old.Encoding, next.Encoding)
		d.Add("body", old.Body, next.Body)
		d.Add("from", old.From, next.From)
		d.Add("auth", old.Auth, next.Auth)
		d.Add("username", old.Username, next.Username)
		d.Add("auth_header", old.AuthHead, next.AuthHead)
		d.Add("default_region", old.DefaultRegion, next.DefaultRegion)
		d.Add("allowed_regions", strings.Join(old.AllowedRegions, ","), strings.Join(next.AllowedRegions, ","))
		d.Add("daily_cap", old.Cap(), next.Cap())
		if in.Secret != "" || (old.SecretSealed != "" && next.SecretSealed == "") {
			d["secret"] = "changed"
		}
		if len(d) == 0 {
			return old, nil, nil
		}
		return next, []audit.Entry{{Category: audit.CategoryPolicy, Activity: ActivityUpdateSMS,
			Target: audit.Target{Type: "SMSGateway", ID: "sms", Name: next.ServerID()}, Details: d}}, nil
	})
	return changed, err
}

// redactURL is a URL template for the audit log: its query values are left
// out, in case someone put a key there instead of {{secret}}.
func redactURL(raw string) string {
	base, query, ok := strings.Cut(raw, "?")
	if !ok {
		return raw
	}
	var keys []string
	for _, kv := range strings.Split(query, "&") {
		k, _, _ := strings.Cut(kv, "=")
		keys = append(keys, k+"=…")
	}
	return base + "?" + strings.Join(keys, "&")
}

// headerNames lists header names for the audit log (values may be secret).
func headerNames(hs []sms.Header) string {
	names := make([]string, len(hs))
	for i, h := range hs {
		names[i] = h.Name
	}
	return strings.Join(names, ",")
}

// SMSStatus is the outcome of the portal's last attempt to text: for the
// gateway page, and for the code step, which tells everyone (whoever they
// are) that texts may not be arriving.
type SMSStatus = MailStatus

const smsStatusName = "sms_status"

// SMSStatus reads the outcome of the last send; At is zero before the first.
func (s *Service) SMSStatus(ctx context.Context) (SMSStatus, error) {
	return s.sendStatus(ctx, smsStatusName)
}

// noteSMS records the outcome of a send (noteSend).
func (s *Service) noteSMS(ctx context.Context, sendErr error) {
	s.noteSend(ctx, smsStatusName, sendErr)
}

// smsTrouble tells whether the last text failed within the hour: the code
// step then says codes may not arrive.
func (s *Service) smsTrouble(ctx context.Context) bool {
	st, err := s.SMSStatus(ctx)
	return err == nil && !st.OK && !st.At.IsZero() && s.now().Sub(st.At) < time.Hour
}

// smsSender builds a sender from the stored settings; errSMSUnavailable
// (with the reason as its cause) when no gateway is usable.
func (s *Service) smsSender(ctx context.Context) (*sms.Sender, SMSSettings, error) {
	m, _, err := s.SMSSettings(ctx)
	if err != nil {
		return nil, m, err
	}
	if !m.Configured() {
		return nil, m, errs.E(errs.Unavailable, MsgSMSUnavailable, errors.New("no text message gateway is configured"))
	}
	secret := ""
	if m.SecretSealed != "" {
		pt, err := s.keys.Open(sealContextForSMS(m.Config), m.SecretSealed)
		if err != nil {
			return nil, m, errs.E(errs.Unavailable, "The text message gateway's secret cannot be decrypted; enter it again under Text messages.", err)
		}
		secret = string(pt)
	}
	return sms.NewSender(m.Config, secret, s.smsClient), m, nil
}

// smsText is the code message: short enough for one SMS, and ending with
// the origin-bound line (@host #code) with which phones offer to fill the
// code in on the portal's page and nowhere else.
func (s *Service) smsText(ctx context.Context, p Policy, code string) string {
	text := i18n.T(ctx, "%s verification code: %s. It expires in %d minutes. Never share it.", orgName(p), code, int(CodeTTL/time.Minute))
	if u, err := url.Parse(s.baseURL); err == nil && u.Host != "" {
		text += "\n\n@" + u.Hostname() + " #" + code
	}
	return text
}

// SendTestSMS texts a test message to a number and records the attempt
// (the number masked).
func (s *Service) SendTestSMS(ctx context.Context, actor audit.Actor, to string) error {
	snd, m, err := s.smsSender(ctx)
	if err != nil {
		return err
	}
	number, err := m.Normalize(to)
	if err != nil {
		return errs.FieldErrors(map[string]string{"to": errs.MessageOf(err)})
	}
	p, _, err := s.Policy(ctx)
	if err != nil {
		return err
	}
	err = snd.Send(ctx, sms.Message{To: number, Text: i18n.T(ctx, "%s: this is a test message from your password reset portal.", orgName(p))})
	s.noteSMS(ctx, err)
	e := audit.Entry{Category: audit.CategoryPolicy, Activity: ActivitySendTestSMS, Actor: actor,
		Target: audit.Target{Type: "SMSGateway", ID: "sms", Name: sms.Mask(number)}, Result: audit.Success}
	if err != nil {
		e.Result, e.Reason, e.Details = audit.Failure, errs.MessageOf(err), gatewayDetails(err)
	}
	if rerr := s.db.InTx(ctx, func(tx *store.Tx) error { _, err := audit.Record(ctx, tx, e); return err }); rerr != nil {
		return rerr
	}
	return err
}

// gatewayDetails is what the audit row of a failed send keeps: the
// gateway's status and the start of its answer, with the number, the text
// and the secret cut out (sms.GatewayError).
func gatewayDetails(err error) map[string]any {
	d := map[string]any{}
	var ge *sms.GatewayError
	if errors.As(err, &ge) {
		if ge.Status != 0 {
			d["gateway_status"] = ge.Status
		}
		d["gateway_detail"] = ge.Detail
	}
	return d
}

// smsKeys are the keyed hashes an SMS send is counted under.
func (s *Service) smsKeys(account, number, client string) (string, string, string) {
	n, c := "", ""
	if number != "" {
		n = s.mac("sms-number", number)
	}
	if client != "" {
		c = s.mac("sms-client", client)
	}
	return s.mac("sms-account", account), n, c
}

// reserveSMS checks the limits inside tx and records the send. number is
// "" when nothing will be sent (a flow that cannot verify): it still counts
// toward the account's and the address's limits, so that what a person
// sees does not depend on whether the account exists. A number over its own
// limits is not texted (send false) and not told: only its owner could
// learn anything from it, and they would learn that the account exists.
// strictNumber (registration, where the person is signed in and typed the
// number) refuses instead.
func (s *Service) reserveSMS(ctx context.Context, tx *store.Tx, cap int, account, number, client string, strictNumber bool) (send bool, err error) {
	now := s.now()
	uk, nk, ck := s.smsKeys(account, number, client)
	c, err := tx.SMSCounts(ctx, store.SMSQuery{UserKey: uk, Number: nk, Client: ck, SinceMS: now.Add(-time.Hour).UnixMilli(),
		DayMS: now.Add(-24 * time.Hour).UnixMilli(), NumberDayMS: now.Add(-24 * time.Hour).UnixMilli()})
	if err != nil {
		return false, err
	}
	switch {
	case c.Day >= cap:
		return false, errs.E(errs.Unavailable, MsgSMSUnavailable, fmt.Errorf("the daily cap of %d text messages is reached", cap))
	case c.LastUser != 0 && now.UnixMilli()-c.LastUser < SMSCooldown.Milliseconds():
		return false, errSMSCooldown
	case c.User >= SMSPerAccount:
		return false, ErrTooManyCodes
	case ck != "" && c.Client >= SMSPerClient:
		return false, ErrTooManyCodes
	}
	send = number != ""
	if send && (c.Number >= SMSPerNumber || c.NumberDay >= SMSPerNumberDay ||
		(c.LastNumber != 0 && now.UnixMilli()-c.LastNumber < SMSCooldown.Milliseconds())) {
		if strictNumber {
			return false, ErrTooManyCodes
		}
		send = false
	}
	if !send {
		nk = ""
	}
	return send, tx.InsertSMSSend(ctx, store.SMSSend{UserKey: uk, Number: nk, Client: ck, Sent: send, TimeMS: now.UnixMilli()})
}

// phoneOf is where text message codes for u go: the number the person
// registered, else the directory's mobile attribute when it holds a mobile
// number; "" when neither.
func (s *Service) phoneOf(ctx context.Context, u directory.User, m SMSSettings) (string, error) {
	ph, err := s.db.Phone(ctx, u.ID)
	switch {
	case err == nil:
		pt, err := s.keys.Open(phoneContext(u.ID), ph.Number)
		if err != nil {
			return "", err
		}
		return string(pt), nil
	case !errors.Is(err, store.ErrNotFound):
		return "", err
	}
	if u.Mobile == "" {
		return "", nil
	}
	n, err := m.Normalize(u.Mobile)
	if err != nil {
		return "", nil // a desk phone or a number the portal cannot read: no SMS
	}
	return n, nil
}

// smsMask masks a number for the person it belongs to (sms.Mask).
func smsMask(e164 string) string { return sms.Mask(e164) }

func phoneContext(userID string) string { return "sspr.phone:" + userID }

// flowPhone is the number codes of flow f go to; "" when f cannot verify.
func (s *Service) flowPhone(ctx context.Context, f store.Flow) (string, error) {
	if !f.Eligible || f.UserID == "" {
		return "", nil
	}
	u, err := s.flowUser(ctx, f)
	if err != nil {
		return "", err
	}
	m, _, err := s.SMSSettings(ctx)
	if err != nil {
		return "", err
	}
	return s.phoneOf(ctx, u, m)
}

// sendSMSCode creates a code for the flow and texts it in the background;
// number and numErr are what flowPhone gave. Every flow, whether or not it
// can verify, counts toward the limits and stores a code (which nothing
// matches when nothing was sent), so the answer is the same.
func (s *Service) sendSMSCode(ctx context.Context, f store.Flow, p Policy, number string, numErr error, from audit.Actor) error {
	if numErr != nil {
		s.failed(ctx, entry(audit.ActivitySelfServiceProgress, from, f, map[string]any{"step": "read where text messages go"}), numErr)
		number = ""
	}
	m, _, err := s.SMSSettings(ctx)
	if err != nil {
		return err
	}
	if !m.Configured() {
		return errSMSUnavailable
	}
	code := newCode()
	now := s.now()
	var send bool
	err = s.db.InTx(ctx, func(tx *store.Tx) error {
		var err error
		if send, err = s.reserveSMS(ctx, tx, m.Cap(), key(f), number, from.ClientIP, false); err != nil {
			return err
		}
		dest := ""
		if send {
			dest = s.mac("dest", number)
		}
		return tx.InsertCode(ctx, store.Code{FlowID: f.ID, Purpose: purposeSMS, UserID: key(f), Destination: dest,
			CodeHash: s.mac(f.ID, purposeSMS, code), CreatedMS: now.UnixMilli(), ExpiresMS: now.Add(CodeTTL).UnixMilli()})
	})
	if err != nil {
		if errs.KindOf(err) == errs.Unavailable {
			e := entry(audit.ActivitySelfServiceProgress, from, f, map[string]any{"step": "text message code"})
			e.Reason = "text message not sent: " + errs.MessageOf(err)
			s.failed(ctx, e, err)
		}
		return err
	}
	step := "verification code sent by text message"
	switch {
	case !send && number != "":
		step = "verification code not sent: the number had reached its limit of text messages"
	case !send:
		step = "verification code not sent (no mobile number, or the account cannot use self-service)"
	}
	s.record(ctx, entry(audit.ActivitySelfServiceProgress, from, f, map[string]any{"step": step}))
	if send {
		s.textAsync(f, from, number, s.smsText(ctx, p, code))
	}
	return nil
}

// textAsync texts without holding up the answer, as sendAsync does for
// mail: a failure is audited (with the gateway's answer) and shown on the
// gateway page and, to everyone on the code step, as "may not arrive".
func (s *Service) textAsync(f store.Flow, from audit.Actor, number, text string) {
	s.sends.Add(1)
	go func() {
		defer s.sends.Done()
		time.Sleep(sendDelay)
		ctx, cancel := context.WithTimeout(s.bg, 45*time.Second)
		defer cancel()
		snd, _, err := s.smsSender(ctx)
		if err == nil {
			err = snd.Send(ctx, sms.Message{To: number, Text: text})
		}
		s.noteSMS(ctx, err)
		if err == nil {
			return
		}
		e := entry(audit.ActivitySelfServiceProgress, from, f, gatewayDetails(err))
		e.Details["step"] = "send text message"
		e.Reason = "text message could not be sent: " + errs.MessageOf(err)
		s.failed(ctx, e, err)
	}()
}

// SetSMSClient replaces the HTTP client texts are sent with (tests: a
// gateway behind a test CA).
func (s *Service) SetSMSClient(c sms.Client) { s.smsClient = c }

// BeginPhone texts a code to a mobile number the person wants to register.
// The person is signed in, so a gateway failure is told in plain words.
func (s *Service) BeginPhone(ctx context.Context, id, browser, raw string, from audit.Actor) (err error) {
	defer func() { err = EmployeeError(err) }()
	fl, err := s.registerFlow(ctx, id, browser)
	if err != nil {
		return err
	}
	snd, m, err := s.smsSender(ctx)
	if err != nil {
		return err
	}
	number, err := m.Normalize(raw)
	if err != nil {
		return errs.FieldErrors(map[string]string{"phone": errs.MessageOf(err)})
	}
	code := newCode()
	sealed, err := s.keys.Seal("sspr.pending-phone:"+fl.ID, []byte(number))
	if err != nil {
		return err
	}
	now := s.now()
	err = s.updateFlow(ctx, id, browser, func(tx *store.Tx, fl *flow) error {
		if _, err := s.reserveSMS(ctx, tx, m.Cap(), key(fl.Flow), number, from.ClientIP, true); err != nil {
			return err
		}
		if err := tx.InsertCode(ctx, store.Code{FlowID: fl.ID, Purpose: purposeRegisterSMS, UserID: key(fl.Flow), Destination: s.mac("dest", number),
			CodeHash: s.mac(fl.ID, purposeRegisterSMS, code), CreatedMS: now.UnixMilli(), ExpiresMS: now.Add(CodeTTL).UnixMilli()}); err != nil {
			return err
		}
		fl.st.PhoneSealed = sealed
		return nil
	})
	if err != nil {
		return err
	}
	p, _, _ := s.Policy(ctx)
	err = snd.Send(ctx, sms.Message{To: number, Text: s.smsText(ctx, p, code)})
	s.noteSMS(ctx, err)
	e := entry(audit.ActivityRegisterSecurity, from, fl.Flow, map[string]any{"method": MethodLabel(MethodSMS), "step": "send text message"})
	if err != nil {
		for k, v := range gatewayDetails(err) {
			e.Details[k] = v
		}
		e.Reason = "text message could not be sent: " + errs.MessageOf(err)
		s.failed(ctx, e, err)
		return errs.E(errs.Unavailable, MsgSMSNotSent, err)
	}
	s.record(ctx, e)
	return nil
}

// ConfirmPhone checks the code texted to the number and registers it.
func (s *Service) ConfirmPhone(ctx context.Context, id, browser, code string, from audit.Actor) (err error) {
	defer func() { err = EmployeeError(err) }()
	fl, err := s.registerFlow(ctx, id, browser)
	if err != nil {
		return err
	}
	if fl.st.PhoneSealed == "" {
		return ErrFlowGone
	}
	ok, msg, err := s.checkCode(ctx, fl.Flow, purposeRegisterSMS, strings.TrimSpace(code))
	if err != nil {
		return err
	}
	if !ok {
		return errs.FieldTexts(map[string]errs.Text{"phone_code": msg})
	}
	number, err := s.keys.Open("sspr.pending-phone:"+fl.ID, fl.st.PhoneSealed)
	if err != nil {
		return ErrFlowGone
	}
	sealed, err := s.keys.Seal(phoneContext(fl.UserID), number)
	if err != nil {
		return err
	}
	return s.updateFlow(ctx, fl.ID, browser, func(tx *store.Tx, cur *flow) error {
		if cur.st.PhoneSealed != fl.st.PhoneSealed {
			return ErrFlowGone
		}
		cur.st.PhoneSealed = ""
		if err := tx.PutPhone(ctx, store.Phone{UserID: fl.UserID, Number: sealed, ConfirmedMS: s.now().UnixMilli()}); err != nil {
			return err
		}
		_, err := audit.Record(ctx, tx, entry(audit.ActivityRegisterSecurity, from, cur.Flow, map[string]any{"method": MethodLabel(MethodSMS)}))
		return err
	})
}
