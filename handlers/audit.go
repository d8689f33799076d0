package handlers

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/writeback/writeback/services/agents"
	"github.com/writeback/writeback/services/apitokens"
	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/errs"
	"github.com/writeback/writeback/services/i18n"
	"github.com/writeback/writeback/services/selfservice"
	"github.com/writeback/writeback/store"
	"github.com/writeback/writeback/web"
)

// AuditLog is what handlers need of the audit log.
type AuditLog interface {
	Query(ctx context.Context, f store.AuditFilter, after store.Cursor, limit int) ([]store.AuditEvent, store.Cursor, error)
	Count(ctx context.Context, f store.AuditFilter) (int, bool, error)
	Event(ctx context.Context, id int64) (store.AuditEvent, error)
	Correlation(ctx context.Context, id string) ([]store.AuditEvent, error)
	Daily(ctx context.Context, f store.AuditFilter, tz *time.Location) ([]store.DayCount, error)
	Export(ctx context.Context, w io.Writer, format string, f store.AuditFilter, actor audit.Actor) (int64, error)
	Integrity() audit.Integrity
	Verify(ctx context.Context) (store.VerifyResult, error)
}

// auditCategories and auditActivities fill the filter lists.
var auditCategories = []string{audit.CategoryAuthentication, audit.CategoryAuditLog, audit.CategoryDirectoryManagement,
	audit.CategoryPolicy, audit.CategoryRoleManagement, audit.CategoryUserManagement}

var auditActivities = append(append(append([]string{}, audit.Activities...), selfservice.ActivitySendTest, selfservice.ActivityUpdateMail),
	append(append([]string{}, agents.Activities...), apitokens.Activities...)...)

const auditPage = 50

// auditFilter reads the filter from the query string; form echoes it back.
func auditFilter(q url.Values, now time.Time) (store.AuditFilter, web.AuditFilterForm, error) {
	form := web.AuditFilterForm{Range: q.Get("range"), Since: q.Get("since"), Until: q.Get("until"),
		Category: q.Get("category"), Activity: q.Get("activity"), Result: q.Get("result"),
		Actor: strings.TrimSpace(q.Get("actor")), Target: strings.TrimSpace(q.Get("target")),
		Text: strings.TrimSpace(q.Get("q")), CorrelationID: strings.TrimSpace(q.Get("correlation"))}
	f := store.AuditFilter{Result: form.Result, Actor: form.Actor, Target: form.Target, Text: form.Text, CorrelationID: form.CorrelationID}
	if form.Category != "" {
		f.Categories = []string{form.Category}
	}
	if form.Activity != "" {
		f.Activities = []string{form.Activity}
	}
	if form.Result != "" && form.Result != audit.Success && form.Result != audit.Failure {
		return f, form, errs.FieldErrors(map[string]string{"result": "Choose success or failure."})
	}
	switch form.Range {
	case "24h":
		f.SinceMS = now.Add(-24 * time.Hour).UnixMilli()
	case "", "7d":
		form.Range = "7d"
		f.SinceMS = now.Add(-7 * 24 * time.Hour).UnixMilli()
	case "30d":
		f.SinceMS = now.Add(-30 * 24 * time.Hour).UnixMilli()
	case "custom":
		fields := map[string]string{}
		if form.Since != "" {
			t, err := time.Parse("2006-01-02", form.Since)
			if err != nil {
				fields["since"] = i18n.Key("Enter a date like 2026-11-01.")
			}
			f.SinceMS = t.UnixMilli()
		}
		if form.Until != "" {
			t, err := time.Parse("2006-01-02", form.Until)
			if err != nil {
				fields["until"] = i18n.Key("Enter a date like 2026-11-30.")
			}
			f.UntilMS = t.Add(24 * time.Hour).UnixMilli()
		}
		if f.SinceMS != 0 && f.UntilMS != 0 && f.UntilMS <= f.SinceMS {
			fields["until"] = i18n.Key("The end date must not be before the start date.")
		}
		if len(fields) > 0 {
			return f, form, errs.FieldErrors(fields)
		}
	default:
		return f, form, errs.FieldErrors(map[string]string{"range": "Choose a date range."})
	}
	return f, form, nil
}

// filterQuery is the filter part of the current query string (no paging).
func filterQuery(q url.Values) url.Values {
	out := url.Values{}
	for _, k := range []string{"range", "since", "until", "category", "activity", "result", "actor", "target", "q", "correlation"} {
		if v := q.Get(k); v != "" {
			out.Set(k, v)
		}
	}
	return out
}

func row(e store.AuditEvent) web.AuditRow {
	actor := e.ActorName
	if actor == "" {
		actor = e.ActorType
	}
	target := e.TargetName
	if target == "" {
		target = e.TargetDN
	}
	return web.AuditRow{ID: e.ID, Time: time.UnixMilli(e.TimeMS).UTC(), Category: e.Category, Activity: e.Activity,
		Actor: actor, Target: target, Result: e.Result, Reason: e.Reason, CorrelationID: e.CorrelationID}
}

func (s *Server) auditList(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	p := s.page(w, r, "audit", i18n.T(r.Context(), "Password reset"), i18n.T(r.Context(), "Audit logs"), i18n.T(r.Context(), "Who changed what, when, from where, and whether it worked. Times are shown in your time zone; hover for UTC."))
	v := web.AuditView{Page: p, Categories: auditCategories, Activities: auditActivities}
	f, form, err := auditFilter(q, time.Now())
	v.Filter = form
	if err != nil {
		v.Fields = errs.FieldsIn(r.Context(), err)
		s.render(w, r, http.StatusUnprocessableEntity, web.AuditPage(v))
		return nil
	}
	// Paging keeps the cursors of earlier pages so Previous works.
	var stack []string
	if ps := q.Get("p"); ps != "" {
		stack = strings.Split(ps, ",")
		if len(stack) > 200 {
			stack = stack[len(stack)-200:]
		}
	}
	var cur store.Cursor
	if len(stack) > 0 {
		if cur, err = store.ParseCursor(stack[len(stack)-1]); err != nil {
			return errs.E(errs.Invalid, "That page link is not valid. Start from the first page.", err)
		}
	}
	rows, next, err := s.audit.Query(r.Context(), f, cur, auditPage)
	if err != nil {
		return err
	}
	total, capped, err := s.audit.Count(r.Context(), f)
	if err != nil {
		return err
	}
	for _, e := range rows {
		v.Rows = append(v.Rows, row(e))
	}
	v.Total, v.Capped = total, capped
	if len(rows) > 0 {
		v.From = len(stack)*auditPage + 1
		v.To = v.From + len(rows) - 1
	}
	fq := filterQuery(q)
	v.ExportQuery = fq.Encode()
	if !next.IsZero() {
		nq := filterQuery(q)
		nq.Set("p", strings.Join(append(append([]string{}, stack...), next.String()), ","))
		v.NextHref = "/admin/audit?" + nq.Encode()
	}
	if len(stack) > 0 {
		pq := filterQuery(q)
		if len(stack) > 1 {
			pq.Set("p", strings.Join(stack[:len(stack)-1], ","))
		}
		v.PrevHref = "/admin/audit?" + pq.Encode()
	}
	// The chart covers the selected range (at most 92 days of bars).
	cf := f
	if cf.UntilMS == 0 {
		cf.UntilMS = time.Now().Add(time.Minute).UnixMilli()
	}
	if cf.SinceMS == 0 || cf.UntilMS-cf.SinceMS > 92*24*3600*1000 {
		cf.SinceMS = cf.UntilMS - 92*24*3600*1000
	}
	days, err := s.audit.Daily(r.Context(), cf, time.UTC)
	if err != nil {
		return err
	}
	for _, d := range days {
		v.Chart = append(v.Chart, web.Bar{Day: d.Day.Format("2006-01-02"), Resets: d.Resets, Unlocks: d.Unlocks, Failures: d.Failures})
		v.ChartMax = max(v.ChartMax, d.Resets, d.Unlocks, d.Failures)
	}
	v.Integrity, v.IntegrityOK = integrityLine(r.Context(), s.audit.Integrity())
	if v.Viewer.IsGlobal() {
		ret, meta, err := s.settings.Retention(r.Context())
		if err != nil {
			return err
		}
		v.CanSettings, v.Retention, v.RetVersion = true, ret.Days, meta.Version
	}
	s.render(w, r, http.StatusOK, web.AuditPage(v))
	return nil
}

func eventView(e store.AuditEvent) web.AuditEventView {
	v := web.AuditEventView{Event: row(e)}
	v.Fields = [][2]string{
		{i18n.Key("Event"), strconv.FormatInt(e.ID, 10)},
		{i18n.Key("Date (UTC)"), time.UnixMilli(e.TimeMS).UTC().Format(audit.TimeFormat)},
		{i18n.Key("Category"), e.Category}, {i18n.Key("Activity"), e.Activity},
		{i18n.Key("Actor type"), e.ActorType}, {i18n.Key("Actor ID"), e.ActorID}, {i18n.Key("Actor"), e.ActorName},
		{i18n.Key("Target type"), e.TargetType}, {i18n.Key("Target ID"), e.TargetID}, {i18n.Key("Target DN"), e.TargetDN}, {i18n.Key("Target"), e.TargetName},
		{i18n.Key("Result"), e.Result}, {i18n.Key("Failure reason"), e.Reason}, {i18n.Key("Client address"), e.ClientIP}, {i18n.Key("User agent"), e.UserAgent},
		{i18n.Key("Correlation ID"), e.CorrelationID}, {i18n.Key("Previous hash"), e.PrevHash}, {i18n.Key("Hash"), e.Hash},
	}
	var pretty any
	if json.Unmarshal([]byte(e.Details), &pretty) == nil {
		if b, err := json.MarshalIndent(pretty, "", "  "); err == nil {
			v.Details = string(b)
		}
	}
	if v.Details == "" {
		v.Details = e.Details
	}
	return v
}

func (s *Server) auditEvent(w http.ResponseWriter, r *http.Request) error {
	id, err := strconv.ParseInt(chi.URLParam(r, "id"), 10, 64)
	if err != nil {
		return errNotFound
	}
	e, err := s.audit.Event(r.Context(), id)
	if err != nil {
		return err
	}
	v := eventView(e)
	v.Page = s.page(w, r, "audit", i18n.T(r.Context(), "Audit logs"), web.AuditLabel(r.Context(), e.Activity), "")
	s.render(w, r, http.StatusOK, web.AuditEventPage(v))
	return nil
}

func (s *Server) auditCorrelation(w http.ResponseWriter, r *http.Request) error {
	id := chi.URLParam(r, "id")
	events, err := s.audit.Correlation(r.Context(), id)
	if err != nil {
		return err
	}
	if len(events) == 0 {
		return errs.E(errs.NotFound, "No events carry that correlation ID.", nil)
	}
	v := web.CorrelationView{Page: s.page(w, r, "audit", i18n.T(r.Context(), "Audit logs"), i18n.T(r.Context(), "Attempt %s", id), i18n.T(r.Context(), "Every step of one attempt, oldest first.")), ID: id}
	for _, e := range events {
		v.Steps = append(v.Steps, eventView(e))
	}
	s.render(w, r, http.StatusOK, web.CorrelationPage(v))
	return nil
}

func (s *Server) auditExport(format string) func(http.ResponseWriter, *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		f, _, err := auditFilter(r.URL.Query(), time.Now())
		if err != nil {
			return err
		}
		ctype := "text/csv; charset=utf-8"
		if format == audit.FormatJSONL {
			ctype = "application/x-ndjson; charset=utf-8"
		}
		w.Header().Set("Content-Type", ctype)
		w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="writeback-audit-%s.%s"`, time.Now().UTC().Format("20060102-150405"), format))
		w.Header().Set("Cache-Control", "no-store")
		// Streamed: memory stays flat however many rows there are.
		if _, err := s.audit.Export(r.Context(), w, format, f, s.actor(r)); err != nil {
			s.log.ErrorContext(r.Context(), "audit export stopped", "err", err)
		}
		return nil
	}
}

func (s *Server) auditSettings(w http.ResponseWriter, r *http.Request) error {
	version, err := strconv.ParseInt(r.PostFormValue("version"), 10, 64)
	if err != nil {
		return errs.Invalidf("This form is missing its version. Reload the page and save again.")
	}
	days, err := strconv.Atoi(strings.TrimSpace(r.PostFormValue("retention_days")))
	if err != nil {
		days = -1
	}
	changed, err := s.settings.SaveRetention(r.Context(), s.actor(r), version, days)
	if err != nil {
		if k := errs.KindOf(err); k != errs.Invalid && k != errs.Conflict {
			return err
		}
		msg := errs.MessageIn(r.Context(), err)
		if f := errs.FieldsIn(r.Context(), err); f["retention_days"] != "" {
			msg = f["retention_days"]
		}
		s.flash(w, r, i18n.T(r.Context(), "Retention not saved: %s", msg))
		seeOther(w, r, "/admin/audit")
		return nil
	}
	if changed {
		s.flash(w, r, i18n.T(r.Context(), "Saved: audit events are kept for %d days.", days))
	}
	seeOther(w, r, "/admin/audit")
	return nil
}

// auditVerify runs the full integrity check now (every event, not only those
// since the last check), for anyone who may read the log.
func (s *Server) auditVerify(w http.ResponseWriter, r *http.Request) error {
	res, err := s.audit.Verify(r.Context())
	switch {
	case err != nil:
		return err
	case res.OK:
		s.flash(w, r, i18n.T(r.Context(), "Integrity verified: %d events, chain intact up to event %#d (full check).", res.Checked, res.LastGoodID))
	default:
		s.flash(w, r, i18n.T(r.Context(), "Integrity check failed: %s.", res.Problem))
	}
	seeOther(w, r, "/admin/audit")
	return nil
}

// integrityLine is the audit page's sentence on the chain's integrity, and
// whether it is good.
func integrityLine(ctx context.Context, in audit.Integrity) (string, bool) {
	switch {
	case !in.Checked:
		return i18n.T(ctx, "Integrity not checked yet since the server started."), false
	case in.Err != "":
		// The error itself is in the operator log (see audit.Log.Maintain);
		// its text is not for a page.
		return i18n.T(ctx, "The integrity check could not run. The server log has the reason; use Verify now to try again."), false
	case in.Result.OK && in.Result.Full:
		return i18n.T(ctx, "Integrity verified up to event %#d (full check of %d events at %s).",
			in.Result.LastGoodID, in.Result.Checked, i18n.DateTime(ctx, in.At)), true
	case in.Result.OK:
		if in.LastFull.IsZero() {
			return i18n.T(ctx, "Integrity verified up to event %#d (incremental check of the %d events after event %#d at %s; no full check yet).",
				in.Result.LastGoodID, in.Result.Checked, in.Result.FromID, i18n.DateTime(ctx, in.At)), true
		}
		return i18n.T(ctx, "Integrity verified up to event %#d (incremental check of the %d events after event %#d at %s; last full check at %s).",
			in.Result.LastGoodID, in.Result.Checked, in.Result.FromID, i18n.DateTime(ctx, in.At), i18n.DateTime(ctx, in.LastFull)), true
	case in.Result.Full:
		return i18n.T(ctx, "Integrity check failed: %s. Events are verified up to event %#d.", in.Result.Problem, in.Result.LastGoodID), false
	default:
		return i18n.T(ctx, "Integrity check failed: %s. Events are verified up to event %#d. Verify now reads the whole chain.", in.Result.Problem, in.Result.LastGoodID), false
	}
}
