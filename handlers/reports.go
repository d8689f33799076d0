package handlers

import (
	"context"
	"net/http"
	"net/url"
	"time"

	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/errs"
	"github.com/writeback/writeback/services/i18n"
	"github.com/writeback/writeback/services/reports"
	"github.com/writeback/writeback/web"
)

// ReportsService is what Usage & insights needs of services/reports.
type ReportsService interface {
	Range(from, to string) (time.Time, time.Time, error)
	Report(ctx context.Context, from, to time.Time) (reports.Report, error)
}

var reportsLead = i18n.Key("Who has registered which methods, and how resets, unlocks and changes went per day.")

// reportRange reads the range of a request; a bad one is a page with the
// fields' messages (nothing else is counted).
func (s *Server) reportRange(r *http.Request) (from, to time.Time, err error) {
	q := r.URL.Query()
	return s.reports.Range(q.Get("from"), q.Get("to"))
}

func (s *Server) reportsPage(w http.ResponseWriter, r *http.Request) error {
	if s.reports == nil {
		return errNotFound
	}
	v := web.ReportsView{Page: s.page(w, r, "reports", i18n.T(r.Context(), "Password reset"), i18n.T(r.Context(), "Usage & insights"), i18n.T(r.Context(), reportsLead)),
		From: r.URL.Query().Get("from"), To: r.URL.Query().Get("to"), MaxDays: reports.MaxDays}
	from, to, err := s.reportRange(r)
	if err != nil {
		if errs.KindOf(err) != errs.Invalid {
			return err
		}
		v.Fields = errs.FieldsIn(r.Context(), err)
		s.render(w, r, http.StatusUnprocessableEntity, web.ReportsPage(v))
		return nil
	}
	rep, err := s.reports.Report(r.Context(), from, to)
	if err != nil {
		return err
	}
	v.From, v.To = from.Format(time.DateOnly), to.Format(time.DateOnly)
	v.CSVQuery = url.Values{"from": {v.From}, "to": {v.To}}.Encode()
	fillReport(r.Context(), &v, rep)
	s.render(w, r, http.StatusOK, web.ReportsPage(v))
	return nil
}

func fillReport(ctx context.Context, v *web.ReportsView, rep reports.Report) {
	v.Ready = true
	v.People, v.Enough, v.Required, v.BlockedTotal = rep.People, rep.Enough, rep.Required, rep.BlockedTotal
	if sc := rep.Scope; sc != nil {
		v.Scope = &web.ReportScope{AsOf: sc.AsOf, InScope: sc.InScope, NotRegistered: sc.NotRegistered, ReconfirmDue: sc.ReconfirmDue}
	}
	for _, m := range rep.Methods {
		v.Methods = append(v.Methods, web.ReportMethod{Method: m.Method, Label: i18n.T(ctx, m.Label), People: m.People})
	}
	for _, c := range reports.Columns {
		v.Columns = append(v.Columns, i18n.T(ctx, c.Label))
	}
	cells := func(cs []reports.Cell) []web.ReportCell {
		out := make([]web.ReportCell, len(cs))
		for i, c := range cs {
			out[i] = web.ReportCell{OK: c.OK, Failed: c.Failed}
		}
		return out
	}
	for _, d := range rep.Days {
		day := d.Date.Format(time.DateOnly)
		v.Days = append(v.Days, web.ReportDay{Date: day, Cells: cells(d.Cells)})
		// The chart: resets (self-service and helpdesk), unlocks, and the
		// failures of any of them and of changes.
		b := web.Bar{Day: day}
		for i, c := range d.Cells {
			switch reports.Columns[i].Activity {
			case audit.ActivityResetSelfService, audit.ActivityResetByAdmin:
				b.Resets += c.OK + c.Failed
			case audit.ActivityUnlockSelfService, audit.ActivityUnlockByAdmin:
				b.Unlocks += c.OK + c.Failed
			}
			if reports.Columns[i].Activity != audit.ActivityBlockedSelfService {
				b.Failures += c.Failed
			}
		}
		v.ChartMax = max(v.ChartMax, b.Resets, b.Unlocks, b.Failures)
		v.Chart = append(v.Chart, b)
	}
	v.Totals = cells(rep.Totals)
	for _, r := range rep.Reasons {
		v.Reasons = append(v.Reasons, web.ReportReason{Activity: web.AuditLabel(ctx, r.Activity), Reason: web.AuditLabel(ctx, r.Reason), Count: r.Count})
	}
	for _, b := range rep.Blocked {
		v.Blocked = append(v.Blocked, web.ReportBlocked{UserID: b.UserID, Name: b.Name, DN: b.DN, Until: b.Until})
	}
}

// reportsCSV downloads the daily table of a range.
func (s *Server) reportsCSV(w http.ResponseWriter, r *http.Request) error {
	if s.reports == nil {
		return errNotFound
	}
	from, to, err := s.reportRange(r)
	if err != nil {
		return err
	}
	rep, err := s.reports.Report(r.Context(), from, to)
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set("Content-Type", "text/csv; charset=utf-8")
	h.Set("Content-Disposition", `attachment; filename="writeback-report-`+from.Format(time.DateOnly)+`-to-`+to.Format(time.DateOnly)+`.csv"`)
	h.Set("Cache-Control", "no-store")
	return reports.WriteCSV(w, rep)
}
