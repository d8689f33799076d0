// Package reminders mails people whose directory password expires soon: at
// each threshold (by default 14, 7 and 1 days before), once per threshold
// and password, with a link to the portal's change-password page. It reads
// the expiry from the directory (AD's msDS-UserPasswordExpiryTimeComputed,
// OpenLDAP's pwdChangedTime plus the policy's pwdMaxAge), limited to the
// people self-service is enabled for.
//
// What was sent is kept in the database and claimed before the mail goes
// out, in one transaction: a restart, or another replica taking over the
// background work, never mails the same threshold twice for one password. A
// new password (another pwdLastSet or pwdChangedTime) starts afresh.
package reminders

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/text/language"

	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/directory"
	"github.com/writeback/writeback/services/errs"
	"github.com/writeback/writeback/services/i18n"
	"github.com/writeback/writeback/services/mail"
	"github.com/writeback/writeback/services/selfservice"
	"github.com/writeback/writeback/services/settings"
	"github.com/writeback/writeback/services/writeback"
	"github.com/writeback/writeback/store"
)

// Limits of the thresholds.
const (
	MaxThresholds = 6
	MaxDays       = 90
)

// TargetID names the settings in audit rows.
const TargetID = "expiry-reminders"

const docName = "expiry_reminders"

// Every is how often the leader looks for passwords that reach a threshold.
const Every = time.Hour

// sendTimeout bounds one reminder's delivery to the mail server.
const sendTimeout = 30 * time.Second

// keepSent is how long a sent reminder is remembered: longer than any
// password lives past its last reminder.
const keepSent = 400 * 24 * time.Hour

// Settings are the reminders' part of "Password reset › Notifications".
type Settings struct {
	Enabled bool `json:"enabled"`
	// Thresholds are days before the expiry, largest first.
	Thresholds []int `json:"thresholds"`
}

// Default is off, with the thresholds 14, 7 and 1 days.
func Default() Settings { return Settings{Thresholds: []int{14, 7, 1}} }

// Lister lists the accounts whose password expires soon
// (directory.Directory.Expiring).
type Lister interface {
	Expiring(ctx context.Context, groupDN string, until time.Time) ([]directory.User, error)
}

// Mailer sends one message through the configured mail server
// (*selfservice.Service).
type Mailer interface {
	SendMail(ctx context.Context, m mail.Message) error
}

// Texter texts a reminder to a person's mobile number when text messages
// are configured (*selfservice.Service); to is the number masked, "" when
// nothing was sent.
type Texter interface {
	TextReminder(ctx context.Context, u directory.User, text string) (to string, err error)
}

// Scope is who self-service is enabled for, and the organisation's name
// for the mail.
type Scope struct {
	Enabled string // selfservice.EnabledNone, EnabledAll or EnabledGroup
	Group   string
	OrgName string
	// Language is the organisation's default language (i18n's code): the
	// reminders' language, since no page of the reader's is open.
	Language string
}

// Config is what the service needs.
type Config struct {
	DB *store.DB
	// Directory is the directory of the stored connection.
	Directory func(ctx context.Context) (Lister, error)
	// Scope reads the self-service policy.
	Scope func(ctx context.Context) (Scope, error)
	Mail  Mailer
	// Text, when set, also texts each reminder that was mailed.
	Text Texter
	Log  *slog.Logger
	// BaseURL is the portal's public URL (possibly with a path), for the
	// link to /change; empty leaves the link out.
	BaseURL string
}

// Service finds and sends the reminders.
type Service struct {
	cfg Config
	now func() time.Time
}

// New builds the service.
func New(cfg Config) *Service {
	cfg.BaseURL = strings.TrimSuffix(cfg.BaseURL, "/")
	return &Service{cfg: cfg, now: time.Now}
}

// SetClock replaces the clock (tests: a password expires in 10 days, the
// clock is moved to 4 days before).
func (s *Service) SetClock(now func() time.Time) { s.now = now }

// Settings reads the settings.
func (s *Service) Settings(ctx context.Context) (Settings, settings.Meta, error) {
	return settings.Get(ctx, s.cfg.DB, docName, Default())
}

// ParseThresholds reads "14, 7, 1" (commas or spaces) into days, largest
// first, refusing what is not a whole number of days from 1 to MaxDays,
// more than MaxThresholds values or none; the error is the "thresholds"
// field's.
func ParseThresholds(text string) ([]int, error) {
	bad := func(msg errs.Text) error { return errs.FieldTexts(map[string]errs.Text{"thresholds": msg}) }
	var out []int
	for _, f := range strings.FieldsFunc(text, func(r rune) bool { return r == ',' || r == ';' || r == ' ' || r == '\t' || r == '\n' || r == '\r' }) {
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 || n > MaxDays {
			return nil, bad(errs.Textf("%.12q is not a number of days from 1 to %d.", f, MaxDays))
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	switch {
	case len(out) == 0:
		return nil, bad(errs.Textf("Give at least one number of days, for example 14, 7, 1."))
	case len(out) > MaxThresholds:
		return nil, bad(errs.Textf("Give at most %d numbers of days; this has %d.", MaxThresholds, len(out)))
	}
	slices.Sort(out)
	slices.Reverse(out)
	return out, nil
}

// FormatThresholds is the thresholds as the form shows them: "14, 7, 1".
func FormatThresholds(t []int) string {
	parts := make([]string, len(t))
	for i, n := range t {
		parts[i] = strconv.Itoa(n)
	}
	return strings.Join(parts, ", ")
}

// Save stores next if the settings are still at expectVersion, audited as
// "Update password expiry reminders" with what changed.
func (s *Service) Save(ctx context.Context, actor audit.Actor, expectVersion int64, next Settings) (bool, error) {
	th, err := ParseThresholds(FormatThresholds(next.Thresholds))
	if err != nil {
		return false, err
	}
	next.Thresholds = th
	changed, _, err := settings.Update(ctx, s.cfg.DB, docName, expectVersion, actor, Default(), func(old Settings) (Settings, []audit.Entry, error) {
		d := audit.Changes{}
		d.Add("enabled", old.Enabled, next.Enabled)
		d.Add("thresholds", FormatThresholds(old.Thresholds), FormatThresholds(next.Thresholds))
		if len(d) == 0 {
			return old, nil, nil
		}
		return next, []audit.Entry{{Category: audit.CategoryPolicy, Activity: audit.ActivityUpdateExpiryReminders,
			Target: audit.Target{Type: "Policy", ID: TargetID, Name: "Password expiry reminders"}, Details: d}}, nil
	})
	return changed, err
}

// Due is one reminder to send now.
type Due struct {
	User directory.User
	// Threshold is the threshold (days) the password has reached: the
	// smallest one not below the time left.
	Threshold int
	Expires   time.Time
	// Left is the time until Expires.
	Left time.Duration
	// Skip says why no mail goes out (no e-mail address); empty when one
	// does.
	Skip string
}

// Plan lists the reminders due now, whether or not the reminders are on
// (the dry run): the accounts in scope whose password reaches a threshold
// and was not reminded at that threshold yet, soonest expiry first.
func (s *Service) Plan(ctx context.Context) ([]Due, error) {
	st, _, err := s.Settings(ctx)
	if err != nil {
		return nil, err
	}
	return s.plan(ctx, st)
}

// ErrNobody means self-service is enabled for nobody, so nobody is reminded.
var ErrNobody = errs.E(errs.Invalid, "Self-service password reset is enabled for nobody (Password reset › Properties), so nobody is reminded.", nil)

func (s *Service) plan(ctx context.Context, st Settings) ([]Due, error) {
	if len(st.Thresholds) == 0 {
		return nil, nil
	}
	sc, err := s.cfg.Scope(ctx)
	if err != nil {
		return nil, fmt.Errorf("reminders: read the self-service policy: %w", err)
	}
	group := ""
	switch sc.Enabled {
	case selfservice.EnabledAll:
	case selfservice.EnabledGroup:
		if group = sc.Group; strings.TrimSpace(group) == "" {
			return nil, ErrNobody
		}
	default:
		return nil, ErrNobody
	}
	dir, err := s.cfg.Directory(ctx)
	if err != nil {
		return nil, err
	}
	now := s.now()
	users, err := dir.Expiring(ctx, group, now.Add(time.Duration(slices.Max(st.Thresholds))*24*time.Hour))
	if err != nil {
		return nil, err
	}
	sent, err := s.cfg.DB.SentReminders(ctx)
	if err != nil {
		return nil, err
	}
	var out []Due
	for _, u := range users {
		left := u.PasswordExpires.Sub(now)
		th := threshold(st.Thresholds, left)
		if th == 0 || u.ID == "" || sent[key(u, th)] {
			continue
		}
		d := Due{User: u, Threshold: th, Expires: u.PasswordExpires, Left: left}
		if strings.TrimSpace(u.Email) == "" {
			d.Skip = i18n.Key("no e-mail address")
		}
		out = append(out, d)
	}
	slices.SortStableFunc(out, func(a, b Due) int { return a.Expires.Compare(b.Expires) })
	return out, nil
}

// threshold is the smallest threshold at or above left, 0 when none is
// (or the password has expired already).
func threshold(thresholds []int, left time.Duration) int {
	best := 0
	for _, t := range thresholds {
		if left > 0 && left <= time.Duration(t)*24*time.Hour && (best == 0 || t < best) {
			best = t
		}
	}
	return best
}

// key names u's reminder at threshold th: its password is told by when it
// was set (or, when unknown, when it expires).
func key(u directory.User, th int) store.ReminderKey {
	set := u.PasswordLastSet
	if set.IsZero() {
		set = u.PasswordExpires
	}
	return store.ReminderKey{UserID: u.ID, PasswordSetMS: set.UnixMilli(), ThresholdDays: th}
}

// Report is what one round did.
type Report struct {
	Sent    int
	Failed  int
	Skipped int // no e-mail address
}

// Send mails the reminders due now, when the reminders are on; each one is
// claimed in the database first and audited.
func (s *Service) Send(ctx context.Context) (Report, error) {
	var rep Report
	st, _, err := s.Settings(ctx)
	if err != nil || !st.Enabled {
		return rep, err
	}
	due, err := s.plan(ctx, st)
	if err != nil {
		return rep, err
	}
	sc, err := s.cfg.Scope(ctx)
	if err != nil {
		return rep, fmt.Errorf("reminders: read the self-service policy: %w", err)
	}
	for _, d := range due {
		if ctx.Err() != nil {
			return rep, ctx.Err()
		}
		if d.Skip != "" {
			rep.Skipped++
			continue
		}
		sentNow, err := s.sendOne(ctx, d, sc.OrgName, sc.Language)
		switch {
		case err != nil:
			rep.Failed++
		case sentNow:
			rep.Sent++
		}
	}
	if _, err := s.cfg.DB.PruneReminders(ctx, s.now().Add(-keepSent).UnixMilli()); err != nil {
		s.cfg.Log.Warn("reminders: prune old reminders", "err", err)
	}
	return rep, nil
}

// sendOne claims d, mails it and audits it; a mail that fails is released
// for the next round. sent is false when another round claimed it first.
func (s *Service) sendOne(ctx context.Context, d Due, org, lang string) (sent bool, err error) {
	tag, _ := i18n.Parse(lang)
	k := key(d.User, d.Threshold)
	err = s.cfg.DB.InTx(ctx, func(tx *store.Tx) error {
		sent, err = tx.ClaimReminder(ctx, k, s.now().UnixMilli())
		return err
	})
	if err != nil || !sent {
		return false, err
	}
	link := ""
	if s.cfg.BaseURL != "" {
		link = s.cfg.BaseURL + "/change"
	}
	m := mail.PasswordExpiry(tag, d.User.Email, org, d.User.DisplayName, d.Expires, d.Left, link)
	// A claimed mail is sent to the end even when the process starts to
	// stop: cut off after the server took it, it would count as failed and
	// be sent again after the restart.
	mctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), sendTimeout)
	mailErr := s.cfg.Mail.SendMail(mctx, m)
	cancel()
	e := audit.Entry{Category: audit.CategoryUserManagement, Activity: audit.ActivitySendExpiryReminder, Actor: audit.System,
		Target: audit.Target{Type: "User", ID: d.User.ID, DN: d.User.DN, Name: d.User.Login}, Result: audit.Success,
		Details: map[string]any{"threshold_days": d.Threshold, "expires": d.Expires.UTC().Format(time.RFC3339),
			"to": selfservice.Mask(d.User.Email)}}
	// Recorded even when the process is stopping: the mail may have gone.
	actx := context.WithoutCancel(ctx)
	if mailErr != nil {
		e.Result, e.Reason = audit.Failure, "the reminder could not be sent: "+errs.MessageOf(mailErr)
	} else if s.cfg.Text != nil {
		// Texted only once mailed: a failed mail is tried again next
		// round, and the text would go twice.
		to, err := s.cfg.Text.TextReminder(actx, d.User, reminderText(tag, org, d.Left, link))
		switch {
		case err != nil:
			e.Details["text_error"] = errs.MessageOf(err)
			s.cfg.Log.Warn("reminders: a reminder could not be texted", "login", d.User.Login, "err", err)
		case to != "":
			e.Details["text_to"] = to
		}
	}
	err = s.cfg.DB.InTx(actx, func(tx *store.Tx) error {
		if mailErr != nil {
			if err := tx.ReleaseReminder(actx, k); err != nil {
				return err
			}
		}
		_, err := audit.Record(actx, tx, e)
		return err
	})
	if err != nil {
		s.cfg.Log.Error("reminders: record a reminder", "login", d.User.Login, "err", err)
	}
	if mailErr != nil {
		s.cfg.Log.Warn("reminders: a reminder could not be sent", "login", d.User.Login, "threshold_days", d.Threshold, "err", mailErr)
		return false, mailErr
	}
	return true, nil
}

// reminderText is the text message of a reminder: short enough for one SMS.
func reminderText(tag language.Tag, org string, left time.Duration, link string) string {
	if org == "" {
		org = i18n.In(tag, "Your organisation")
	}
	text := i18n.In(tag, "%s: your password expires in %s.", org, LeftIn(tag, left))
	if link != "" {
		text += " " + i18n.In(tag, "Change it now at %s", link)
	}
	return text
}

// Run sends the due reminders every interval until ctx ends (the leader's
// background work); the first round comes after one interval's wait of
// delay.
func (s *Service) Run(ctx context.Context, delay, interval time.Duration) {
	t := time.NewTimer(delay)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		rep, err := s.Send(ctx)
		switch {
		case err != nil && errors.Is(err, ErrNobody):
			s.cfg.Log.Info("reminders: self-service is enabled for nobody; no reminders")
		case err != nil && ctx.Err() == nil:
			s.cfg.Log.Error("reminders: a round failed", "err", err)
		case rep.Sent+rep.Failed+rep.Skipped > 0:
			s.cfg.Log.Info("reminders: a round ended", "sent", rep.Sent, "failed", rep.Failed, "no_address", rep.Skipped)
		}
		t.Reset(interval)
	}
}

// PolicySource reads the self-service policy (*selfservice.Service).
type PolicySource interface {
	Policy(ctx context.Context) (selfservice.Policy, settings.Meta, error)
}

// ScopeOf is Config.Scope read from the self-service policy.
func ScopeOf(p PolicySource) func(context.Context) (Scope, error) {
	return func(ctx context.Context) (Scope, error) {
		pol, _, err := p.Policy(ctx)
		return Scope{Enabled: pol.Enabled, Group: pol.Group, OrgName: pol.OrgName, Language: pol.Language}, err
	}
}

// ClientSource gives the directory of the stored connection
// (*writeback.Service).
type ClientSource interface {
	Client(ctx context.Context) (directory.Directory, writeback.Connection, error)
}

// DirectoryOf is Config.Directory read from the stored connection.
func DirectoryOf(c ClientSource) func(context.Context) (Lister, error) {
	return func(ctx context.Context) (Lister, error) {
		d, _, err := c.Client(ctx)
		return d, err
	}
}

// LeftText is how long until an expiry, to the hour: "6 days 3 hours".
func LeftText(d time.Duration) string {
	h := int(d.Round(time.Hour) / time.Hour)
	days, hours := h/24, h%24
	plural := func(n int, w string) string {
		if n == 1 {
			return "1 " + w
		}
		return strconv.Itoa(n) + " " + w + "s"
	}
	switch {
	case days == 0:
		return plural(hours, "hour")
	case hours == 0:
		return plural(days, "day")
	}
	return plural(days, "day") + " " + plural(hours, "hour")
}
