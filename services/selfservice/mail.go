package selfservice

import (
	"context"
	"strconv"
	"strings"

	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/errs"
	"github.com/writeback/writeback/services/mail"
	"github.com/writeback/writeback/services/settings"
	"github.com/writeback/writeback/store"
)

const mailName = "mail"

const mailSealContext = "mail.password"

// MailSettings is the stored mail server; the password only ever sealed.
type MailSettings struct {
	Host           string       `json:"host"`
	Port           int          `json:"port"`
	TLS            mail.TLSMode `json:"tls"`
	From           string       `json:"from"`
	Username       string       `json:"username"`
	PasswordSealed string       `json:"password_sealed"`
	CAPEM          string       `json:"ca_pem"`
}

// Configured reports whether a mail server is set.
func (m MailSettings) Configured() bool { return m.Host != "" }

// MailInput is a mail server as submitted; an empty Password keeps the
// stored one unless ClearPassword is set.
type MailInput struct {
	Host          string
	Port          int
	TLS           mail.TLSMode
	From          string
	Username      string
	Password      string
	ClearPassword bool
	CAPEM         string
}

// MailSettings reads the mail server settings.
func (s *Service) MailSettings(ctx context.Context) (MailSettings, settings.Meta, error) {
	var m MailSettings
	meta, err := settings.Load(ctx, s.db, mailName, &m)
	return m, meta, err
}

// SaveMail validates and saves the mail server if still at expectVersion,
// recording "Update mail server settings" (the password only as "changed").
func (s *Service) SaveMail(ctx context.Context, actor audit.Actor, expectVersion int64, in MailInput) (bool, error) {
	in.Host, in.From, in.Username = strings.TrimSpace(in.Host), strings.TrimSpace(in.From), strings.TrimSpace(in.Username)
	changed, _, err := settings.Update(ctx, s.db, mailName, expectVersion, actor, MailSettings{}, func(old MailSettings) (MailSettings, []audit.Entry, error) {
		sealed, password := old.PasswordSealed, in.Password
		switch {
		case in.ClearPassword || in.Username == "":
			sealed, password = "", ""
		case in.Password != "":
			var err error
			if sealed, err = s.keys.Seal(mailSealContext, []byte(in.Password)); err != nil {
				return old, nil, err
			}
		case sealed != "":
			pt, err := s.keys.Open(mailSealContext, sealed)
			if err != nil {
				return old, nil, errs.FieldErrors(map[string]string{"password": "The stored password cannot be decrypted (was the key file replaced?). Enter it again."})
			}
			password = string(pt)
		}
		cfg := mail.Config{Host: in.Host, Port: in.Port, TLS: in.TLS, From: in.From, Username: in.Username, Password: password, CAPEM: in.CAPEM}
		if err := cfg.Validate(); err != nil {
			return old, nil, err
		}
		next := MailSettings{Host: in.Host, Port: in.Port, TLS: in.TLS, From: in.From, Username: in.Username, PasswordSealed: sealed, CAPEM: in.CAPEM}
		d := audit.Changes{}
		d.Add("host", old.Host, next.Host)
		d.Add("port", old.Port, next.Port)
		d.Add("tls", old.TLS, next.TLS)
		d.Add("from", old.From, next.From)
		d.Add("username", old.Username, next.Username)
		if in.Password != "" || (old.PasswordSealed != "" && next.PasswordSealed == "") {
			d["password"] = "changed"
		}
		if old.CAPEM != next.CAPEM {
			d["trusted_ca_certificates"] = "changed"
		}
		if len(d) == 0 {
			return old, nil, nil
		}
		return next, []audit.Entry{{Category: audit.CategoryPolicy, Activity: ActivityUpdateMail,
			Target: audit.Target{Type: "MailServer", ID: "smtp", Name: next.Host + ":" + strconv.Itoa(next.Port)}, Details: d}}, nil
	})
	return changed, err
}

// Activities of this package beyond those in services/audit.
const (
	ActivityUpdateMail = "Update mail server settings"
	ActivitySendTest   = "Send test mail"
)

// ErrNoMail means no mail server is configured.
var ErrNoMail = errs.E(errs.Unavailable, "No mail server is configured. A Global Administrator sets it under Password reset › Mail server.", nil)

// sender builds a mail sender from the stored settings.
func (s *Service) sender(ctx context.Context) (*mail.Sender, error) {
	m, _, err := s.MailSettings(ctx)
	if err != nil {
		return nil, err
	}
	if !m.Configured() {
		return nil, ErrNoMail
	}
	pw := ""
	if m.PasswordSealed != "" {
		pt, err := s.keys.Open(mailSealContext, m.PasswordSealed)
		if err != nil {
			return nil, errs.E(errs.Unavailable, "The mail server password cannot be decrypted; enter it again under Mail server.", err)
		}
		pw = string(pt)
	}
	return mail.NewSender(mail.Config{Host: m.Host, Port: m.Port, TLS: m.TLS, From: m.From, Username: m.Username, Password: pw, CAPEM: m.CAPEM}, s.log), nil
}

// SendTestMail sends a test message and records the attempt.
func (s *Service) SendTestMail(ctx context.Context, actor audit.Actor, to string) error {
	to = strings.TrimSpace(to)
	p, _, err := s.Policy(ctx)
	if err != nil {
		return err
	}
	snd, err := s.sender(ctx)
	if err == nil {
		err = snd.Send(ctx, mail.TestMessage(to, orgName(p)))
	}
	result, reason := audit.Success, ""
	if err != nil {
		result, reason = audit.Failure, errs.MessageOf(err)
	}
	if rerr := s.db.InTx(ctx, func(tx *store.Tx) error {
		_, err := audit.Record(ctx, tx, audit.Entry{Category: audit.CategoryPolicy, Activity: ActivitySendTest, Actor: actor,
			Target: audit.Target{Type: "MailServer", ID: "smtp", Name: to}, Result: result, Reason: reason})
		return err
	}); rerr != nil {
		return rerr
	}
	return err
}

func orgName(p Policy) string {
	if p.OrgName != "" {
		return p.OrgName
	}
	return "Writeback"
}
