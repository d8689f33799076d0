package web

import (
	"context"
	"strconv"
	"time"

	"github.com/writeback/writeback/services/i18n"
)

// AuditRow is one event in the audit table.
type AuditRow struct {
	ID            int64
	Time          time.Time
	Category      string
	Activity      string
	Actor         string
	Target        string
	Result        string
	Reason        string
	CorrelationID string
}

// AuditFilterForm is the viewer's filter as typed.
type AuditFilterForm struct {
	Range, Since, Until                string
	Category, Activity, Result         string
	Actor, Target, Text, CorrelationID string
}

// Bar is one day of the chart.
type Bar struct {
	Day                       string
	Resets, Unlocks, Failures int
}

// AuditView is the Audit logs page.
type AuditView struct {
	Page
	Filter      AuditFilterForm
	Rows        []AuditRow
	From, To    int
	Total       int
	Capped      bool
	NextHref    string
	PrevHref    string
	ExportQuery string
	Categories  []string
	Activities  []string
	Chart       []Bar
	ChartMax    int
	Integrity   string
	IntegrityOK bool
	CanSettings bool
	Retention   int
	RetVersion  int64
}

// AuditEventView shows every field of one event.
type AuditEventView struct {
	Page
	Event   AuditRow
	Fields  [][2]string
	Details string
}

// CorrelationView shows one attempt step by step.
type CorrelationView struct {
	Page
	ID    string
	Steps []AuditEventView
}

// Comma formats n with thousands separators.
func Comma(n int) string {
	s := strconv.Itoa(n)
	out := ""
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			out += ","
		}
		out += string(c)
	}
	return out
}

// chart geometry, in SVG user units.
const (
	chartW, chartH, chartPad = 720, 140, 20
)

// BarGeom is where one bar series of a day is drawn.
type BarGeom struct {
	X, Y, W, H int
	Class      string
	Title      string
}

// ChartBars lays out the chart: for each day three bars side by side.
func ChartBars(ctx context.Context, bars []Bar, max int) []BarGeom {
	if len(bars) == 0 {
		return nil
	}
	if max < 1 {
		max = 1
	}
	slot := (chartW - 2*chartPad) / len(bars)
	if slot < 3 {
		slot = 3
	}
	w := slot / 4
	if w < 1 {
		w = 1
	}
	var out []BarGeom
	for i, b := range bars {
		x := chartPad + i*slot
		for j, v := range []struct {
			n     int
			class string
			name  string
		}{{b.Resets, "resets", i18n.Key("%s: %d resets")}, {b.Unlocks, "unlocks", i18n.Key("%s: %d unlocks")}, {b.Failures, "failures", i18n.Key("%s: %d failures")}} {
			h := v.n * (chartH - 2*chartPad) / max
			if v.n > 0 && h < 1 {
				h = 1
			}
			out = append(out, BarGeom{X: x + j*w, Y: chartH - chartPad - h, W: w, H: h, Class: v.class,
				Title: i18n.T(ctx, v.name, b.Day, v.n)})
		}
	}
	return out
}

// AuditLabel is a canonical audit value (an activity, a category, a
// reason) in the reader's language when the catalogue translates it, else
// as stored: the audit log's data stays English, its page need not.
func AuditLabel(ctx context.Context, s string) string { return asText(ctx, s) }
