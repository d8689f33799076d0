package web

import (
	"html"
	"time"

	"github.com/writeback/writeback/services/i18n"
)

// ReportsView is the Usage & insights page.
type ReportsView struct {
	Page
	From, To                 string // as typed (or the default range)
	MaxDays                  int
	Ready                    bool   // the figures below are filled
	CSVQuery                 string // the range as a query, for the CSV
	People, Enough, Required int
	Methods                  []ReportMethod
	// Scope is the last enumeration of the people in scope; nil before
	// the first.
	Scope        *ReportScope
	Columns      []string
	Days         []ReportDay
	Totals       []ReportCell
	Chart        []Bar
	ChartMax     int
	Reasons      []ReportReason
	Blocked      []ReportBlocked
	BlockedTotal int
}

// ReportScope is how many people are in scope of self-service, and how
// many of them have not registered enough, as of an enumeration.
type ReportScope struct {
	AsOf                                 time.Time
	InScope, NotRegistered, ReconfirmDue int
}

// ReportMethod is one method's count of people.
type ReportMethod struct {
	Method, Label string
	People        int
}

// ReportCell is one column's successes and failures.
type ReportCell struct{ OK, Failed int }

// ReportDay is one row of the daily table.
type ReportDay struct {
	Date  string
	Cells []ReportCell
}

// ReportReason is one reason of failures.
type ReportReason struct {
	Activity, Reason string
	Count            int
}

// ReportBlocked is one blocked account.
type ReportBlocked struct {
	UserID, Name, DN string
	Until            time.Time
}

// peopleHave is the verb phrase after a count of people.
func peopleHave(n int) string {
	if n == 1 {
		return i18n.Key("person has")
	}
	return i18n.Key("people have")
}

// strong is a figure in bold with a test id, as HTML to place into a
// translated sentence (the figure is escaped).
func strong(testid, figure string) string {
	return `<strong data-testid="` + testid + `">` + html.EscapeString(figure) + `</strong>`
}
