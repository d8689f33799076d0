// Package campaign is the registration campaign: it mails everyone in scope
// of self-service who has not registered as many methods as a reset needs,
// or whose re-confirmation is due, with a link to the portal's /register.
//
// A run enumerates the directory once (directory.Directory.InScope, paged),
// compares it with the methods table and queues the people to mail in the
// database. The leader then mails the queue at the administrator's pace,
// claiming each person in a transaction before their mail goes out: a
// restart continues where it stopped, and two workers never mail one person
// twice in a run. Whether a person still needs the mail is decided at that
// moment, so someone who registered since the run began is skipped. When
// the campaign is on, a new run starts every interval after the last began,
// mailing those still not registered.
package campaign

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

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

// Bounds of the settings.
const (
	MinInterval  = 1   // days
	MaxInterval  = 365 // days
	MinPerMinute = 1
	MaxPerMinute = 600
)

// SampleSize is how many people the dry run names.
const SampleSize = 10

// TargetID names the campaign in audit rows.
const TargetID = "registration-campaign"

const docName = "registration_campaign"

// Every is how often the leader looks for a run to send or to start.
const Every = 15 * time.Second

// sendTimeout bounds one mail's delivery to the mail server.
const sendTimeout = 30 * time.Second

// staleAfter is how long a claimed person may stay unsettled before a
// worker takes it that the one mailing them stopped.
const staleAfter = 2 * sendTimeout

// Why a person is mailed (store.CampaignItem.Why).
const (
	WhyRegister  = "register"
	WhyReconfirm = "reconfirm"
)

// Settings are "Password reset › Registration campaign".
type Settings struct {
	// Enabled repeats the campaign: a new run every IntervalDays.
	Enabled      bool `json:"enabled"`
	IntervalDays int  `json:"interval_days"`
	PerMinute    int  `json:"per_minute"`
	// Who is mailed: people with fewer methods than a reset needs, people
	// whose re-confirmation is due; at least one.
	NotRegistered bool `json:"not_registered"`
	ReconfirmDue  bool `json:"reconfirm_due"`
}

// Default is off, every 7 days, 60 mails a minute, both groups of people.
func Default() Settings {
	return Settings{IntervalDays: 7, PerMinute: 60, NotRegistered: true, ReconfirmDue: true}
}

// Validate refuses settings out of bounds, with the form's field names.
func (st Settings) Validate() error {
	f := map[string]errs.Text{}
	if st.IntervalDays < MinInterval || st.IntervalDays > MaxInterval {
		f["interval_days"] = errs.Textf("Enter a whole number of days from %d to %d.", MinInterval, MaxInterval)
	}
	if st.PerMinute < MinPerMinute || st.PerMinute > MaxPerMinute {
		f["per_minute"] = errs.Textf("Enter a whole number of mails a minute from %d to %d.", MinPerMinute, MaxPerMinute)
	}
	if !st.NotRegistered && !st.ReconfirmDue {
		f["who"] = errs.Textf("Choose at least one group of people to mail.")
	}
	if len(f) > 0 {
		return errs.FieldTexts(f)
	}
	return nil
}

// ParseSettings reads the form's text fields into Settings, refusing what
// is not a whole number in bounds (Validate).
func ParseSettings(enabled bool, interval, perMinute string, notRegistered, reconfirm bool) (Settings, error) {
	st := Settings{Enabled: enabled, NotRegistered: notRegistered, ReconfirmDue: reconfirm}
	var err error
	if st.IntervalDays, err = strconv.Atoi(strings.TrimSpace(interval)); err != nil {
		st.IntervalDays = -1
	}
	if st.PerMinute, err = strconv.Atoi(strings.TrimSpace(perMinute)); err != nil {
		st.PerMinute = -1
	}
	return st, st.Validate()
}

// Lister enumerates the accounts in scope (directory.Directory.InScope).
type Lister interface {
	InScope(ctx context.Context, groupDN string, f func(directory.User) error) error
}

// Mailer sends one message through the configured mail server
// (*selfservice.Service).
type Mailer interface {
	SendMail(ctx context.Context, m mail.Message) error
}

// Scope is what the campaign reads of the self-service policy.
type Scope struct {
	Enabled       string // selfservice.EnabledNone, EnabledAll or EnabledGroup
	Group         string
	OrgName       string
	Language      string // the organisation's default language (i18n's code): the mail's
	Required      int    // methods a reset needs
	ReconfirmDays int    // 0: never
}

// Config is what the service needs.
type Config struct {
	DB *store.DB
	// Directory is the directory of the stored connection (or the agents).
	Directory func(ctx context.Context) (Lister, error)
	// Scope reads the self-service policy.
	Scope func(ctx context.Context) (Scope, error)
	Mail  Mailer
	Log   *slog.Logger
	// BaseURL is the portal's public URL (possibly with a path), for the
	// link to /register; empty leaves the link out.
	BaseURL string
}

// Service runs the campaign.
type Service struct {
	cfg Config
	now func() time.Time
}

// New builds the service.
func New(cfg Config) *Service {
	cfg.BaseURL = strings.TrimSuffix(cfg.BaseURL, "/")
	return &Service{cfg: cfg, now: time.Now}
}

// SetClock replaces the clock (tests: the interval passes).
func (s *Service) SetClock(now func() time.Time) { s.now = now }

// Settings reads the settings.
func (s *Service) Settings(ctx context.Context) (Settings, settings.Meta, error) {
	return settings.Get(ctx, s.cfg.DB, docName, Default())
}

// Save stores next if the settings are still at expectVersion, audited as
// "Update registration campaign" with what changed.
func (s *Service) Save(ctx context.Context, actor audit.Actor, expectVersion int64, next Settings) (bool, error) {
	if err := next.Validate(); err != nil {
		return false, err
	}
	changed, _, err := settings.Update(ctx, s.cfg.DB, docName, expectVersion, actor, Default(), func(old Settings) (Settings, []audit.Entry, error) {
		d := audit.Changes{}
		d.Add("enabled", old.Enabled, next.Enabled)
		d.Add("interval_days", old.IntervalDays, next.IntervalDays)
		d.Add("per_minute", old.PerMinute, next.PerMinute)
		d.Add("not_registered", old.NotRegistered, next.NotRegistered)
		d.Add("reconfirm_due", old.ReconfirmDue, next.ReconfirmDue)
		if len(d) == 0 {
			return old, nil, nil
		}
		return next, []audit.Entry{{Category: audit.CategoryPolicy, Activity: audit.ActivityUpdateRegistrationCampaign,
			Target: target, Details: d}}, nil
	})
	return changed, err
}

var target = audit.Target{Type: "Policy", ID: TargetID, Name: "Registration campaign"}

// ErrNobody means self-service is enabled for nobody, so nobody is mailed.
var ErrNobody = errs.E(errs.Invalid, "Self-service password reset is enabled for nobody (Password reset › Properties), so nobody is mailed.", nil)

// ErrRunning means a run is under way: it must end (or be stopped) first.
var ErrRunning = errs.E(errs.Conflict, "A run is under way already. Stop it first, or wait until it ends.", nil)

// ErrNotRunning means Stop found no run under way.
var ErrNotRunning = errs.E(errs.Invalid, "No run is under way.", nil)

// Person is one person the dry run names.
type Person struct {
	Login, Name string
	To          string // masked address
	Why         string // WhyRegister or WhyReconfirm
}

// Enumeration is what one look at the directory found.
type Enumeration struct {
	At      time.Time
	InScope int // accounts self-service is enabled for
	// NotRegistered have fewer methods than a reset needs; ReconfirmDue
	// registered enough but confirmed longer ago than the policy allows.
	NotRegistered, ReconfirmDue int
	// ToMail is how many a run would mail now (with the settings' choice
	// of people and a mail address); NoAddress are left out for want of
	// one.
	ToMail, NoAddress int
	Sample            []Person // the first SampleSize of those mailed
}

// need is why a person with reg is mailed under st and sc, "" when not.
func need(st Settings, sc Scope, reg store.Registration, now time.Time) string {
	if reg.Methods < max(sc.Required, 1) {
		if st.NotRegistered {
			return WhyRegister
		}
		return ""
	}
	if st.ReconfirmDue && sc.ReconfirmDays > 0 && reg.ConfirmedMS > 0 &&
		now.Sub(time.UnixMilli(reg.ConfirmedMS)) > time.Duration(sc.ReconfirmDays)*24*time.Hour {
		return WhyReconfirm
	}
	return ""
}

// group is the group DN of sc, "" for everyone, or ErrNobody.
func group(sc Scope) (string, error) {
	switch sc.Enabled {
	case selfservice.EnabledAll:
		return "", nil
	case selfservice.EnabledGroup:
		if strings.TrimSpace(sc.Group) != "" {
			return sc.Group, nil
		}
	}
	return "", ErrNobody
}

// DryRun enumerates the people in scope and says how many a run would mail
// now and who the first of them are; it mails nobody. The counts are kept
// for Usage & insights.
func (s *Service) DryRun(ctx context.Context) (Enumeration, error) {
	st, _, err := s.Settings(ctx)
	if err != nil {
		return Enumeration{}, err
	}
	e, _, err := s.enumerate(ctx, st, false)
	return e, err
}

// enumerate reads the directory and the methods table; with queue, it
// also returns the people to mail, in the directory's order. The counts are
// stored as the last enumeration.
func (s *Service) enumerate(ctx context.Context, st Settings, queue bool) (Enumeration, []store.CampaignItem, error) {
	sc, err := s.cfg.Scope(ctx)
	if err != nil {
		return Enumeration{}, nil, fmt.Errorf("campaign: read the self-service policy: %w", err)
	}
	g, err := group(sc)
	if err != nil {
		return Enumeration{}, nil, err
	}
	dir, err := s.cfg.Directory(ctx)
	if err != nil {
		return Enumeration{}, nil, err
	}
	regs, err := s.cfg.DB.Registrations(ctx)
	if err != nil {
		return Enumeration{}, nil, err
	}
	e := Enumeration{At: s.now()}
	var items []store.CampaignItem
	err = dir.InScope(ctx, g, func(u directory.User) error {
		if u.ID == "" {
			return nil
		}
		e.InScope++
		reg := regs[u.ID]
		// The counts are the policy's, whichever people the settings mail.
		switch need(Settings{NotRegistered: true, ReconfirmDue: true}, sc, reg, e.At) {
		case WhyRegister:
			e.NotRegistered++
		case WhyReconfirm:
			e.ReconfirmDue++
		}
		why := need(st, sc, reg, e.At)
		if why == "" {
			return nil
		}
		if strings.TrimSpace(u.Email) == "" {
			e.NoAddress++
			return nil
		}
		e.ToMail++
		if len(e.Sample) < SampleSize {
			e.Sample = append(e.Sample, Person{Login: u.Login, Name: u.DisplayName, To: selfservice.Mask(u.Email), Why: why})
		}
		if queue {
			items = append(items, store.CampaignItem{UserID: u.ID, Login: u.Login, Name: u.DisplayName, Email: u.Email, Why: why})
		}
		return nil
	})
	if err != nil {
		return Enumeration{}, nil, err
	}
	if err := s.cfg.DB.InTx(ctx, func(tx *store.Tx) error {
		return tx.PutRegistrationScope(ctx, store.RegistrationScope{AsOfMS: e.At.UnixMilli(), InScope: e.InScope,
			NotRegistered: e.NotRegistered, ReconfirmDue: e.ReconfirmDue})
	}); err != nil {
		return e, nil, err
	}
	return e, items, nil
}

// Start begins a run now: it enumerates the directory and queues everyone
// to mail; the leader mails them (Work). ErrRunning when one is under way.
func (s *Service) Start(ctx context.Context, actor audit.Actor) (Enumeration, error) {
	if run, err := s.cfg.DB.LatestCampaignRun(ctx); err == nil && run.State == store.CampaignSending {
		return Enumeration{}, ErrRunning
	} else if err != nil && !errors.Is(err, store.ErrNotFound) {
		return Enumeration{}, err
	}
	st, _, err := s.Settings(ctx)
	if err != nil {
		return Enumeration{}, err
	}
	e, items, err := s.enumerate(ctx, st, true)
	if err != nil {
		return e, err
	}
	err = s.cfg.DB.InTx(ctx, func(tx *store.Tx) error {
		id, err := tx.StartCampaignRun(ctx, store.CampaignRun{StartedMS: e.At.UnixMilli(), StartedBy: actor.Name,
			InScope: e.InScope, NotRegistered: e.NotRegistered, ReconfirmDue: e.ReconfirmDue}, items)
		if errors.Is(err, store.ErrCampaignRunning) {
			return ErrRunning
		}
		if err != nil {
			return err
		}
		_, err = audit.Record(ctx, tx, audit.Entry{Category: audit.CategoryUserManagement, Activity: audit.ActivityStartRegistrationCampaign,
			Actor: actor, Target: target, Result: audit.Success, Details: map[string]any{"run": id, "in_scope": e.InScope,
				"queued": e.ToMail, "no_address": e.NoAddress, "not_registered": e.NotRegistered, "reconfirm_due": e.ReconfirmDue,
				"per_minute": st.PerMinute}})
		return err
	})
	if err != nil {
		return e, fmt.Errorf("campaign: start a run: %w", err)
	}
	return e, nil
}

// Stop ends the run under way; the people not mailed yet are not mailed.
func (s *Service) Stop(ctx context.Context, actor audit.Actor) error {
	err := s.cfg.DB.InTx(ctx, func(tx *store.Tx) error {
		run, err := tx.LatestCampaignRun(ctx)
		if errors.Is(err, store.ErrNotFound) || (err == nil && run.State != store.CampaignSending) {
			return ErrNotRunning
		}
		if err != nil {
			return err
		}
		return s.end(ctx, tx, run, store.CampaignStopped, actor)
	})
	if err != nil {
		return fmt.Errorf("campaign: stop the run: %w", err)
	}
	return nil
}

// end moves run to state and audits it with its counts.
func (s *Service) end(ctx context.Context, tx *store.Tx, run store.CampaignRun, state string, actor audit.Actor) error {
	ok, err := tx.EndCampaignRun(ctx, run.ID, state, s.now().UnixMilli())
	if err != nil || !ok {
		return err
	}
	activity := audit.ActivityFinishRegistrationCampaign
	if state == store.CampaignStopped {
		activity = audit.ActivityStopRegistrationCampaign
	}
	_, err = audit.Record(ctx, tx, audit.Entry{Category: audit.CategoryUserManagement, Activity: activity, Actor: actor,
		Target: target, Result: audit.Success, Details: map[string]any{"run": run.ID, "queued": run.Total(), "sent": run.Sent,
			"skipped": run.Skipped, "failed": run.Failed, "not_mailed": run.Queued + run.Sending}})
	return err
}

// Status is the campaign's state for its page.
type Status struct {
	// Last is the latest run (nil when none ran yet); Running when it is
	// still sending.
	Last    *store.CampaignRun
	Running bool
	// Next is when the next run starts by itself: zero when the campaign
	// is off, a run is under way, or none ran yet (Start begins the first).
	Next time.Time
}

// Status reads the latest run and when the next one is due.
func (s *Service) Status(ctx context.Context) (Status, error) {
	var out Status
	run, err := s.cfg.DB.LatestCampaignRun(ctx)
	if errors.Is(err, store.ErrNotFound) {
		return out, nil
	}
	if err != nil {
		return out, err
	}
	out.Last, out.Running = &run, run.State == store.CampaignSending
	st, _, err := s.Settings(ctx)
	if err != nil {
		return out, err
	}
	if st.Enabled && !out.Running {
		out.Next = nextRun(run, st)
	}
	return out, nil
}

func nextRun(run store.CampaignRun, st Settings) time.Time {
	return time.UnixMilli(run.StartedMS).Add(time.Duration(st.IntervalDays) * 24 * time.Hour).UTC()
}

// Work does what is due now: it mails the queue of the run under way to
// its end, at the settings' pace, and finishes the run; or, when the
// campaign is on and its interval has passed since the last run began, it
// starts the next run and mails it. It returns once nothing is left to do
// or ctx ends.
func (s *Service) Work(ctx context.Context) error {
	run, err := s.cfg.DB.LatestCampaignRun(ctx)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if run.State != store.CampaignSending {
		st, _, err := s.Settings(ctx)
		if err != nil || !st.Enabled || s.now().Before(nextRun(run, st)) {
			return err
		}
		if _, err := s.Start(ctx, audit.System); err != nil {
			if errors.Is(err, ErrRunning) {
				return nil // another worker started it
			}
			return err
		}
		if run, err = s.cfg.DB.LatestCampaignRun(ctx); err != nil {
			return err
		}
	}
	return s.send(ctx, run.ID)
}

// send mails run id's queue, one claimed person at a time.
func (s *Service) send(ctx context.Context, id int64) error {
	now := s.now()
	if err := s.cfg.DB.InTx(ctx, func(tx *store.Tx) error {
		n, err := tx.FailStaleCampaignItems(ctx, id, now.Add(-staleAfter).UnixMilli(), now.UnixMilli(), "interrupted while mailing: the mail may not have gone")
		if n > 0 {
			s.cfg.Log.Warn("campaign: people claimed by a worker that stopped are marked failed", "run", id, "people", n)
		}
		return err
	}); err != nil {
		return err
	}
	for ctx.Err() == nil {
		st, _, err := s.Settings(ctx)
		if err != nil {
			return err
		}
		sc, err := s.cfg.Scope(ctx)
		if err != nil {
			return fmt.Errorf("campaign: read the self-service policy: %w", err)
		}
		it, why, ok, err := s.claim(ctx, id, st, sc)
		if err != nil {
			return err
		}
		if !ok {
			return s.finish(ctx, id)
		}
		if why == "" {
			continue // registered since: skipped, costs no time
		}
		if err := s.mailOne(ctx, it, why, sc.OrgName, sc.Language); err != nil {
			return err
		}
		if !pause(ctx, time.Minute/time.Duration(max(st.PerMinute, MinPerMinute))) {
			return ctx.Err()
		}
	}
	return ctx.Err()
}

// claim takes the next person of run id and decides, in the same
// transaction, whether they still need the mail: one who no longer does is
// settled as skipped (why ""). ok is false when nobody is left.
func (s *Service) claim(ctx context.Context, id int64, st Settings, sc Scope) (it store.CampaignItem, why string, ok bool, err error) {
	for {
		err = s.cfg.DB.InTx(ctx, func(tx *store.Tx) error {
			now := s.now()
			it, ok, err = tx.ClaimCampaignItem(ctx, id, now.UnixMilli())
			if err != nil || !ok {
				return err
			}
			reg, err := tx.RegistrationOf(ctx, it.UserID)
			if err != nil {
				return err
			}
			if why = need(st, sc, reg, now); why == "" {
				return tx.SettleCampaignItem(ctx, id, it.UserID, store.QueueSkipped, "registered since the run began", now.UnixMilli())
			}
			return nil
		})
		if err != nil || ok || it.UserID == "" {
			return it, why, ok, err
		}
		// Another worker claimed the one we read first: take the next.
		it = store.CampaignItem{}
	}
}

// ErrNoMail means the run waits: no mail server is configured. The person about to be mailed goes back to
// the queue, and the run goes on once a Global Administrator sets the mail
// server.
var ErrNoMail = errs.E(errs.Unavailable, "The registration campaign waits: no mail server is configured (Password reset › Mail server).", nil)

// mailOne mails a claimed person and settles them as sent or failed; with
// no usable mail server it puts them back and returns ErrNoMail. The mail
// is sent to the end even when the process starts to stop: cut off after
// the server took it, it would count as failed though it went.
func (s *Service) mailOne(ctx context.Context, it store.CampaignItem, why, org, lang string) error {
	tag, _ := i18n.Parse(lang) // sent in the background: the organisation's default language
	link := ""
	if s.cfg.BaseURL != "" {
		link = s.cfg.BaseURL + "/register"
	}
	m := mail.RegistrationCampaign(tag, it.Email, org, it.Name, link, why == WhyReconfirm)
	mctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), sendTimeout)
	mailErr := s.cfg.Mail.SendMail(mctx, m)
	cancel()
	actx := context.WithoutCancel(ctx)
	if errors.Is(mailErr, selfservice.ErrNoMail) {
		if err := s.cfg.DB.InTx(actx, func(tx *store.Tx) error {
			return tx.ReleaseCampaignItem(actx, it.RunID, it.UserID, s.now().UnixMilli())
		}); err != nil {
			return err
		}
		return ErrNoMail
	}
	state, reason := store.QueueSent, ""
	if mailErr != nil {
		state, reason = store.QueueFailed, "the mail could not be sent: "+errs.MessageOf(mailErr)
		s.cfg.Log.Warn("campaign: a mail could not be sent", "run", it.RunID, "login", it.Login, "err", mailErr)
	}
	if err := s.cfg.DB.InTx(actx, func(tx *store.Tx) error {
		return tx.SettleCampaignItem(actx, it.RunID, it.UserID, state, reason, s.now().UnixMilli())
	}); err != nil {
		s.cfg.Log.Error("campaign: record a mail", "run", it.RunID, "login", it.Login, "err", err)
	}
	return nil
}

// finish ends run id once nobody is queued or being mailed.
func (s *Service) finish(ctx context.Context, id int64) error {
	err := s.cfg.DB.InTx(ctx, func(tx *store.Tx) error {
		run, err := tx.LatestCampaignRun(ctx)
		if err != nil || run.ID != id || run.State != store.CampaignSending || run.Queued+run.Sending > 0 {
			return err
		}
		return s.end(ctx, tx, run, store.CampaignFinished, audit.System)
	})
	if err != nil {
		return fmt.Errorf("campaign: finish the run: %w", err)
	}
	return nil
}

// pause waits d; false when ctx ended first.
func pause(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// Run does the due work every interval until ctx ends (the leader's
// background work); the first look comes after delay.
func (s *Service) Run(ctx context.Context, delay, interval time.Duration) {
	if !pause(ctx, delay) {
		return
	}
	for {
		err := s.Work(ctx)
		switch {
		case err != nil && errors.Is(err, ErrNobody):
			s.cfg.Log.Info("campaign: self-service is enabled for nobody; no run")
		case err != nil && errors.Is(err, ErrNoMail):
			s.cfg.Log.Warn("campaign: the run waits for a mail server")
		case err != nil && ctx.Err() == nil:
			s.cfg.Log.Error("campaign: work failed", "err", err)
		}
		if !pause(ctx, interval) {
			return
		}
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
		return Scope{Enabled: pol.Enabled, Group: pol.Group, OrgName: pol.OrgName, Required: pol.Required,
			ReconfirmDays: pol.ReconfirmDays, Language: pol.Language}, err
	}
}

// ClientSource gives the directory of the stored connection, or the
// agents (*writeback.Service).
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
