// Package alerts mails the Global Administrators when something the portal
// depends on breaks: password writeback turns from Connected to Error, or
// the audit log's hash chain fails to verify. Each incident is mailed once
// when it begins and once when it ends, with the reason in plain words and
// the diagnostic, and every alert sent is an audit event.
//
// The readings come from the background work that runs on one replica, the
// leader (the writeback status monitor and the audit log's daily check).
// Each incident's state is a document in the database, changed in one write
// transaction that decides whether to mail: a restart, or another replica
// taking over as leader, finds the incident already open and does not mail
// it again.
package alerts

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"golang.org/x/text/language"

	"github.com/writeback/writeback/services/admins"
	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/i18n"
	"github.com/writeback/writeback/services/mail"
	"github.com/writeback/writeback/services/settings"
	"github.com/writeback/writeback/services/writeback"
	"github.com/writeback/writeback/store"
)

// Mailer sends one message through the configured mail server
// (*selfservice.Service).
type Mailer interface {
	SendMail(ctx context.Context, m mail.Message) error
}

// languager is a Mailer that knows the organisation's default language
// (*selfservice.Service does): alerts are written in it, as every mail the
// portal sends on its own.
type languager interface {
	Language(ctx context.Context) string
}

// The incidents, each a settings document of its own.
const (
	KindWriteback  = "writeback"
	KindAuditChain = "audit-chain"
)

// Service decides and sends the alerts.
type Service struct {
	db      *store.DB
	mail    Mailer
	log     *slog.Logger
	baseURL string
	now     func() time.Time
}

// New builds the service; baseURL is the portal's public URL, for links.
func New(db *store.DB, m Mailer, log *slog.Logger, baseURL string) *Service {
	return &Service{db: db, mail: m, log: log, baseURL: strings.TrimSuffix(baseURL, "/"), now: time.Now}
}

// incident is the stored state of one kind of incident.
type incident struct {
	// Healthy is what the last reading said (false also before the first).
	Healthy bool      `json:"healthy"`
	Open    bool      `json:"open"`
	Since   time.Time `json:"since,omitzero"`
	Reason  string    `json:"reason,omitempty"`
}

// reading is one observation of a kind: failing or not, and why.
type reading struct {
	kind    string
	failing bool
	reason  string   // plain words
	lines   []string // the diagnostic
	// fromHealthy: an incident opens only when the last reading was
	// healthy (writeback: "turns from Connected to Error").
	fromHealthy bool
}

// Writeback takes one reading of the writeback status monitor
// (writeback.Service.OnHealth): Connected ends an incident, Error after
// Connected begins one; "not configured" changes nothing.
func (s *Service) Writeback(ctx context.Context, h writeback.Health) {
	switch h.State {
	case settings.StateConnected:
		s.observe(ctx, reading{kind: KindWriteback})
	case settings.StateError:
		s.observe(ctx, reading{kind: KindWriteback, failing: true, reason: h.Message, lines: h.Lines, fromHealthy: true})
	}
}

// AuditChain takes one round of the audit log's background checks
// (audit.Log.OnVerified): a break begins an incident, an intact chain ends
// it; a check that could not run changes nothing.
func (s *Service) AuditChain(ctx context.Context, in audit.Integrity) {
	if !in.Checked || in.Err != "" {
		return
	}
	r := reading{kind: KindAuditChain, failing: !in.Result.OK}
	if r.failing {
		r.reason = in.Result.Problem
		if in.Result.BrokenID != 0 {
			r.lines = []string{fmt.Sprintf("First broken event: #%d.", in.Result.BrokenID)}
		}
		kind := "incremental"
		if in.Result.Full {
			kind = "full"
		}
		r.lines = append(r.lines, fmt.Sprintf("Found by the %s check at %s.", kind, in.At.UTC().Format(time.RFC3339)))
	}
	s.observe(ctx, r)
}

// Transitions an alert is sent for.
const (
	began = "began"
	ended = "ended"
)

// observe records r and mails the administrators when it begins or ends
// an incident.
func (s *Service) observe(ctx context.Context, r reading) {
	var transition string
	var inc incident
	now := s.now().UTC()
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		name := "alert_" + strings.ReplaceAll(r.kind, "-", "_")
		cur, err := tx.Config(ctx, name)
		if err != nil {
			return err
		}
		if _, err := settings.Decode(cur, &inc); err != nil {
			return err
		}
		next := inc
		next.Healthy = !r.failing
		switch {
		case r.failing && !inc.Open && (inc.Healthy || !r.fromHealthy):
			next.Open, next.Since, next.Reason = true, now, r.reason
			transition = began
		case !r.failing && inc.Open:
			next.Open = false
			transition = ended
		}
		if next == inc && cur.Version != 0 {
			return nil // nothing to write: the usual reading
		}
		b, err := json.Marshal(next)
		if err != nil {
			return err
		}
		_, err = tx.PutConfig(ctx, name, cur.Version, string(b), "system")
		inc = next
		return err
	})
	if err != nil {
		if ctx.Err() == nil {
			s.log.Error("alerts: record a reading", "kind", r.kind, "err", err)
		}
		return
	}
	if transition != "" {
		s.send(ctx, r, transition, inc, now)
	}
}

// send mails every active Global Administrator and audits the alert.
func (s *Service) send(ctx context.Context, r reading, transition string, inc incident, now time.Time) {
	tag := i18n.English
	if l, ok := s.mail.(languager); ok {
		tag, _ = i18n.Parse(l.Language(ctx))
	}
	subject, body := s.message(tag, r, transition, inc, now)
	// The audit event names the alert in English, as all its data.
	canonical, _ := s.message(i18n.English, r, transition, inc, now)
	list, err := s.db.ListAdmins(ctx)
	var to []string
	for _, a := range list {
		if !a.Disabled && a.Role == string(admins.GlobalAdmin) {
			to = append(to, a.Email)
		}
	}
	var failed []string
	reason := ""
	switch {
	case err != nil:
		reason = "the administrators could not be read: " + err.Error()
	case len(to) == 0:
		reason = "there is no active Global Administrator to mail"
	}
	for _, addr := range to {
		if err := s.mail.SendMail(ctx, mail.Message{To: addr, Subject: subject, Text: body}); err != nil {
			failed = append(failed, addr)
			reason = "e-mail could not be sent to " + strings.Join(failed, ", ") + ": " + err.Error()
		}
	}
	e := audit.Entry{Category: category(r.kind), Activity: audit.ActivitySendAlert, Actor: audit.System,
		Target: audit.Target{Type: "Alert", ID: r.kind, Name: canonical}, Result: audit.Success, Reason: reason,
		Details: map[string]any{"incident": transition, "reason": inc.Reason, "since": inc.Since.Format(time.RFC3339),
			"recipients": to, "failed": len(failed)}}
	if reason != "" {
		e.Result = audit.Failure
	}
	// Recorded even when the process is stopping: the mail went out.
	actx := context.WithoutCancel(ctx)
	if err := s.db.InTx(actx, func(tx *store.Tx) error { _, err := audit.Record(actx, tx, e); return err }); err != nil {
		s.log.Error("alerts: record the alert", "kind", r.kind, "err", err)
	}
	if e.Result == audit.Failure {
		s.log.Warn("alerts: the administrators were not all mailed", "kind", r.kind, "incident", transition, "reason", reason)
	} else {
		s.log.Info("alerts: mailed the Global Administrators", "kind", r.kind, "incident", transition, "recipients", len(to))
	}
}

func category(kind string) string {
	if kind == KindAuditChain {
		return audit.CategoryAuditLog
	}
	return audit.CategoryDirectoryManagement
}

// message is an alert's subject and text in the language tag. The
// reason and the diagnostic lines are the directory's and the checks' own
// words, as the operator log has them.
func (s *Service) message(tag language.Tag, r reading, transition string, inc incident, now time.Time) (subject, body string) {
	var b strings.Builder
	at := now.Format("2006-01-02 15:04:05 UTC")
	page := s.baseURL + "/admin/password-reset/on-premises-integration"
	line := func(text string) { b.WriteString(text + "\n") }
	switch {
	case r.kind == KindWriteback && transition == began:
		subject = i18n.In(tag, "Writeback alert: password writeback is failing")
		line(i18n.In(tag, "The on-premises writeback service turned from Connected to Error at %s.", at))
		line(i18n.In(tag, "Password resets, unlocks and changes cannot reach the directory until this is fixed."))
	case r.kind == KindWriteback:
		subject = i18n.In(tag, "Writeback recovered: password writeback works again")
		line(i18n.In(tag, "The on-premises writeback service is Connected again since %s, after %s in Error.", at, now.Sub(inc.Since).Round(time.Second).String()))
	case transition == began:
		subject = i18n.In(tag, "Writeback alert: the audit log failed its integrity check")
		line(i18n.In(tag, "The audit log's hash chain did not verify at %s: an event may have been altered, inserted or removed.", at))
		page = s.baseURL + "/admin/audit"
	default:
		subject = i18n.In(tag, "Writeback recovered: the audit log verifies again")
		line(i18n.In(tag, "The audit log's hash chain verified again at %s (the break was first found %s).", at, inc.Since.Format("2006-01-02 15:04:05 UTC")))
		page = s.baseURL + "/admin/audit"
	}
	if transition == began {
		b.WriteString("\n")
		line(i18n.In(tag, "Reason: %s", r.reason))
		if len(r.lines) > 0 {
			b.WriteString("\n")
			line(i18n.In(tag, "Details:"))
			for _, l := range r.lines {
				b.WriteString("  " + l + "\n")
			}
		}
		b.WriteString("\n")
		line(i18n.In(tag, "You will get one more e-mail when it is resolved; none in between."))
	}
	fmt.Fprintf(&b, "\n%s\n", page)
	return subject, b.String()
}
