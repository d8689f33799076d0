package selfservice

import (
	"context"
	"maps"
	"strconv"
	"strings"
	"time"

	"golang.org/x/text/language"

	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/errs"
	"github.com/writeback/writeback/services/i18n"
	"github.com/writeback/writeback/services/mail"
	"github.com/writeback/writeback/services/settings"
	"github.com/writeback/writeback/store"
)

const mailName = "mail"

// mailSealContext binds a sealed SMTP password to its place in the
// database; sealContextFor adds the server it was entered for.
const mailSealContext = "mail.password"

// sealContextFor is the context a password for server c is sealed under: it
// decrypts only for that server (host, port, TLS mode and trusted CAs), so a
// settings document pointed at another server cannot hand it over.
func sealContextFor(c mail.Config) string { return mailSealContext + "|" + c.ServerID() }

// errServerChanged is the password field's error when the server changed
// and no new password came with the change.
var errServerChanged = i18n.Key("The mail server changed, so the stored password is not sent to it: give the password for this server again (or clear the user name).")

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

// config is the stored server without its password.
func (m MailSettings) config() mail.Config {
	return mail.Config{Host: m.Host, Port: m.Port, TLS: m.TLS, From: m.From, Username: m.Username, CAPEM: m.CAPEM}
}

// openPassword decrypts the stored password for the server m names. A
// password sealed before passwords were bound to their server opens under
// the plain context; the next save seals it for its server.
func (s *Service) openPassword(m MailSettings) (string, error) {
	pt, err := s.keys.Open(sealContextFor(m.config()), m.PasswordSealed)
	if err != nil {
		var lerr error
		if pt, lerr = s.keys.Open(mailSealContext, m.PasswordSealed); lerr != nil {
			return "", err
		}
	}
	return string(pt), nil
}

// MailInput is a mail server as submitted; an empty Password keeps the
// stored one unless ClearPassword is set or the server changed (host, port,
// TLS mode or CA certificates): a stored password is never carried over to
// another server.
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

// MailSettings reads the mail server settings, from memory.
func (s *Service) MailSettings(ctx context.Context) (MailSettings, settings.Meta, error) {
	return settings.Get(ctx, s.db, mailName, MailSettings{})
}

// SaveMail validates and saves the mail server if still at expectVersion,
// recording "Update mail server settings" (the password only as "changed").
// Changing the server (host, port, TLS mode or CA certificates) without
// giving the password again is refused with a field error on "password":
// the stored password stays with the server it was entered for.
func (s *Service) SaveMail(ctx context.Context, actor audit.Actor, expectVersion int64, in MailInput) (bool, error) {
	in.Host, in.From, in.Username = strings.TrimSpace(in.Host), strings.TrimSpace(in.From), strings.TrimSpace(in.Username)
	changed, _, err := settings.Update(ctx, s.db, mailName, expectVersion, actor, MailSettings{}, func(old MailSettings) (MailSettings, []audit.Entry, error) {
		next := MailSettings{Host: in.Host, Port: in.Port, TLS: in.TLS, From: in.From, Username: in.Username, CAPEM: in.CAPEM}
		var password, pwProblem string
		switch {
		case in.ClearPassword || in.Username == "":
			// No authentication: nothing is stored.
		case in.Password != "":
			password = in.Password
		case old.PasswordSealed == "":
			// Validate asks for the password.
		case !old.config().SameServer(next.config()):
			pwProblem = errServerChanged
		default:
			pw, err := s.openPassword(old)
			if err != nil {
				pwProblem = i18n.Key("The stored password cannot be decrypted (was the key file replaced?). Enter it again.")
			}
			password = pw
		}
		cfg := next.config()
		cfg.Password = password
		fields := map[string]errs.Text{}
		if err := cfg.Validate(); err != nil {
			f := errs.TextsOf(err)
			if f == nil {
				return old, nil, err
			}
			maps.Copy(fields, f)
		}
		if pwProblem != "" {
			fields[mail.FieldPassword] = errs.Text{Format: pwProblem}
		}
		if len(fields) > 0 {
			return old, nil, errs.FieldTexts(fields)
		}
		if password != "" {
			sealed, err := s.keys.Seal(sealContextFor(next.config()), []byte(password))
			if err != nil {
				return old, nil, err
			}
			next.PasswordSealed = sealed
		}
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

// MailStatus is the outcome of the portal's last attempt to send mail: what
// the Mail server page and the setup checklist show administrators, since a
// person whose code mail failed is told nothing (that would tell a stranger
// the account exists).
type MailStatus struct {
	OK      bool      `json:"ok"`
	Message string    `json:"message,omitempty"` // the safe message of the failure
	At      time.Time `json:"at"`
}

const mailStatusName = "mail_status"

// MailStatus reads the outcome of the last send; At is zero before the first.
func (s *Service) MailStatus(ctx context.Context) (MailStatus, error) {
	return s.sendStatus(ctx, mailStatusName)
}

func (s *Service) sendStatus(ctx context.Context, name string) (MailStatus, error) {
	st, _, err := settings.Get(ctx, s.db, name, MailStatus{})
	return st, err
}

// noteMail records the outcome of a send (noteSend).
func (s *Service) noteMail(ctx context.Context, sendErr error) {
	s.noteSend(ctx, mailStatusName, sendErr)
}

// noteSend records the outcome of a send under name. A success is written
// only when it ends a failure, so ordinary sends cost no write.
func (s *Service) noteSend(ctx context.Context, name string, sendErr error) {
	next := MailStatus{OK: sendErr == nil, At: s.now().UTC()}
	if sendErr != nil {
		next.Message = errs.MessageOf(sendErr)
	} else if cur, err := s.sendStatus(ctx, name); err == nil && cur.OK && !cur.At.IsZero() {
		return
	}
	if err := settings.PutReading(ctx, s.db, name, next); err != nil {
		s.log.Error("record delivery status", "status", name, "err", err)
	}
}

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
	cfg := m.config()
	if m.PasswordSealed != "" {
		// Sealed for its server: a password saved for another server does
		// not open here, and is then not sent anywhere.
		pw, err := s.openPassword(m)
		if err != nil {
			return nil, errs.E(errs.Unavailable, "The mail server password cannot be decrypted; enter it again under Mail server.", err)
		}
		cfg.Password = pw
	}
	return mail.NewSender(cfg, s.log), nil
}

// SendTestMail sends a test message and records the attempt.
func (s *Service) SendTestMail(ctx context.Context, actor audit.Actor, to string) error {
	to = strings.TrimSpace(to)
	p, _, err := s.Policy(ctx)
	if err != nil {
		return err
	}
	err = s.SendMail(ctx, mail.TestMessage(i18n.LangOf(ctx), to, orgName(p)))
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

// orgLanguage is the organisation's default language, for mail sent on the
// portal's own rather than for a page someone is reading (English when none
// is set).
func orgLanguage(p Policy) language.Tag {
	t, _ := i18n.Parse(p.Language)
	return t
}

func orgName(p Policy) string {
	if p.OrgName != "" {
		return p.OrgName
	}
	return "Writeback"
}
