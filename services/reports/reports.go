// Package reports is "Usage & insights": who has registered which methods,
// and what self-service and the helpdesk did per day — resets, unlocks and
// changes by result, the most frequent reasons of failures, the accounts
// blocked now. Every number comes from the audit log or the methods table,
// counted the way the Audit logs page filters them.
package reports

import (
	"context"
	"encoding/csv"
	"errors"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/errs"
	"github.com/writeback/writeback/services/i18n"
	"github.com/writeback/writeback/services/selfservice"
	"github.com/writeback/writeback/services/settings"
	"github.com/writeback/writeback/store"
)

// MaxDays is the longest range a report covers.
const MaxDays = 366

// Column is one activity a report counts.
type Column struct {
	Activity string // the audit activity
	Label    string
}

// Columns are the activities of the daily table, in its order.
var Columns = []Column{
	{audit.ActivityResetSelfService, i18n.Key("Self-service resets")},
	{audit.ActivityUnlockSelfService, i18n.Key("Self-service unlocks")},
	{audit.ActivityChangeSelfService, i18n.Key("Self-service changes")},
	{audit.ActivityResetByAdmin, i18n.Key("Helpdesk resets")},
	{audit.ActivityUnlockByAdmin, i18n.Key("Helpdesk unlocks")},
	{audit.ActivityBlockedSelfService, i18n.Key("Blocks")},
}

// Cell is one column's count on one day (or in all).
type Cell struct{ OK, Failed int }

// Day is one row of the daily table.
type Day struct {
	Date  time.Time // midnight UTC
	Cells []Cell    // by Columns
}

// Method is how many people registered one method.
type Method struct {
	Method, Label string
	People        int
}

// Blocked is an account blocked from self-service now.
type Blocked struct {
	UserID, Name, DN string
	Until            time.Time
}

// Report is one range's figures.
type Report struct {
	From, To time.Time // the first and the last day, midnight UTC
	Days     []Day     // every day of the range, oldest first
	Totals   []Cell    // by Columns
	Reasons  []store.ReasonCount
	// Registration, now (not per range): people with at least one method,
	// with as many as a reset needs (Required), and per method.
	People, Enough, Required int
	Methods                  []Method
	// Scope is the people in scope of self-service at the last
	// enumeration of the directory (the registration campaign's dry run or
	// run), nil before the first: the reports never read the directory.
	Scope        *Scope
	Blocked      []Blocked
	BlockedTotal int
}

// Scope is one enumeration's count of the people in scope.
type Scope struct {
	AsOf    time.Time
	InScope int
	// NotRegistered have fewer methods than a reset needs; ReconfirmDue
	// registered enough but are due to re-confirm.
	NotRegistered, ReconfirmDue int
}

// PolicySource gives the self-service policy (how many methods a reset
// needs): *selfservice.Service.
type PolicySource interface {
	Policy(ctx context.Context) (selfservice.Policy, settings.Meta, error)
}

// Service makes reports.
type Service struct {
	db     *store.DB
	policy PolicySource
	now    func() time.Time
}

// New builds the service.
func New(db *store.DB, policy PolicySource) *Service {
	return &Service{db: db, policy: policy, now: time.Now}
}

// Range checks a range of days typed as YYYY-MM-DD ("" for the default:
// the last 30 days up to today, UTC).
func (s *Service) Range(from, to string) (time.Time, time.Time, error) {
	today := s.now().UTC().Truncate(24 * time.Hour)
	f, t := today.AddDate(0, 0, -29), today
	fields := map[string]errs.Text{}
	if from != "" {
		d, err := time.Parse(time.DateOnly, from)
		if err != nil {
			fields["from"] = errs.Textf("Enter a date as YYYY-MM-DD, e.g. %s.", today.AddDate(0, 0, -29).Format(time.DateOnly))
		}
		f = d
	}
	if to != "" {
		d, err := time.Parse(time.DateOnly, to)
		if err != nil {
			fields["to"] = errs.Textf("Enter a date as YYYY-MM-DD, e.g. %s.", today.Format(time.DateOnly))
		}
		t = d
	}
	if len(fields) == 0 {
		switch {
		case t.Before(f):
			fields["to"] = errs.Textf("The last day comes before the first one.")
		case t.Sub(f) >= MaxDays*24*time.Hour:
			fields["to"] = errs.Textf("A report covers at most %d days.", MaxDays)
		}
	}
	if len(fields) > 0 {
		return time.Time{}, time.Time{}, errs.FieldTexts(fields)
	}
	return f, t, nil
}

// Report counts the days from..to (midnights UTC, from Range).
func (s *Service) Report(ctx context.Context, from, to time.Time) (Report, error) {
	r := Report{From: from, To: to}
	acts := make([]string, len(Columns))
	col := map[string]int{}
	for i, c := range Columns {
		acts[i], col[c.Activity] = c.Activity, i
	}
	since, until := from.UnixMilli(), to.AddDate(0, 0, 1).UnixMilli()
	counts, err := s.db.ActivityByDay(ctx, acts, since, until, time.UTC)
	if err != nil {
		return r, err
	}
	index := map[time.Time]int{}
	for d := from; !d.After(to); d = d.AddDate(0, 0, 1) {
		index[d] = len(r.Days)
		r.Days = append(r.Days, Day{Date: d, Cells: make([]Cell, len(Columns))})
	}
	r.Totals = make([]Cell, len(Columns))
	for _, c := range counts {
		i, ok := index[c.Day]
		if !ok {
			continue
		}
		cell, total := &r.Days[i].Cells[col[c.Activity]], &r.Totals[col[c.Activity]]
		if c.Result == audit.Failure {
			cell.Failed += c.Count
			total.Failed += c.Count
		} else {
			cell.OK += c.Count
			total.OK += c.Count
		}
	}
	// The reasons of failed resets, unlocks and changes (a block is not a
	// failure of its own).
	if r.Reasons, err = s.db.FailureReasons(ctx, acts[:5], since, until, 10); err != nil {
		return r, err
	}
	p, _, err := s.policy.Policy(ctx)
	if err != nil {
		return r, err
	}
	r.Required = p.Required
	reg, err := s.db.CountRegistrations(ctx, p.Required)
	if err != nil {
		return r, err
	}
	r.People, r.Enough = reg.People, reg.Enough
	switch sc, err := s.db.RegistrationScope(ctx); {
	case err == nil:
		r.Scope = &Scope{AsOf: time.UnixMilli(sc.AsOfMS).UTC(), InScope: sc.InScope, NotRegistered: sc.NotRegistered, ReconfirmDue: sc.ReconfirmDue}
	case !errors.Is(err, store.ErrNotFound):
		return r, err
	}
	// The methods allowed, then any other with registrations (allowed once).
	for _, m := range p.Methods.List() {
		r.Methods = append(r.Methods, Method{Method: m, Label: selfservice.MethodLabel(m), People: reg.ByMethod[m]})
		delete(reg.ByMethod, m)
	}
	for m, n := range reg.ByMethod { // methods added since, in a stable order below
		r.Methods = append(r.Methods, Method{Method: m, Label: selfservice.MethodLabel(m), People: n})
	}
	allowed := len(p.Methods.List())
	slices.SortFunc(r.Methods[allowed:], func(a, b Method) int { return strings.Compare(a.Method, b.Method) })
	if err := s.blocked(ctx, &r); err != nil {
		return r, err
	}
	return r, nil
}

// blocked lists up to 50 running blocks, each named by its latest
// "Blocked from self-service password reset" event.
func (s *Service) blocked(ctx context.Context, r *Report) error {
	list, total, err := s.db.BlockedUsers(ctx, s.now().UnixMilli(), 50)
	if err != nil {
		return err
	}
	r.BlockedTotal = total
	for _, b := range list {
		e, _, err := s.db.QueryAudit(ctx, store.AuditFilter{Activities: []string{audit.ActivityBlockedSelfService}, TargetID: b.UserID}, store.Cursor{}, 1)
		if err != nil {
			return err
		}
		row := Blocked{UserID: b.UserID, Name: b.UserID, Until: time.UnixMilli(b.UntilMS).UTC()}
		if len(e) > 0 {
			if e[0].TargetName != "" {
				row.Name = e[0].TargetName
			}
			row.DN = e[0].TargetDN
		}
		r.Blocked = append(r.Blocked, row)
	}
	return nil
}

// WriteCSV writes the daily table: one row a day, for each column its
// successes and failures, and a last row of totals.
func WriteCSV(w io.Writer, r Report) error {
	cw := csv.NewWriter(w)
	head := []string{"date"}
	for _, c := range Columns {
		head = append(head, c.Label+" succeeded", c.Label+" failed")
	}
	if err := cw.Write(head); err != nil {
		return err
	}
	row := func(first string, cells []Cell) error {
		rec := []string{first}
		for _, c := range cells {
			rec = append(rec, strconv.Itoa(c.OK), strconv.Itoa(c.Failed))
		}
		return cw.Write(rec)
	}
	for _, d := range r.Days {
		if err := row(d.Date.Format(time.DateOnly), d.Cells); err != nil {
			return err
		}
	}
	if err := row("total", r.Totals); err != nil {
		return err
	}
	cw.Flush()
	return cw.Error()
}
