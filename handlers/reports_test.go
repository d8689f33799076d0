package handlers_test

import (
	"context"
	"encoding/csv"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/writeback/writeback/services/admins"
	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/selfservice"
	"github.com/writeback/writeback/store"
)

// TestUsageAndInsights: the report's numbers are the audit log's and the
// methods table's: its totals equal what the Audit logs filter counts for
// each activity and result in the same days, its CSV holds the same rows,
// registrations are counted per method; a bad range is refused with the
// reason; a Reports Reader reads it.
func TestUsageAndInsights(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	today := time.Now().UTC().Truncate(24 * time.Hour)
	type ev struct {
		daysAgo          int
		activity, result string
		reason           string
	}
	evs := []ev{
		{0, audit.ActivityResetSelfService, audit.Success, ""},
		{0, audit.ActivityResetSelfService, audit.Failure, "The code was wrong."},
		{1, audit.ActivityResetSelfService, audit.Failure, "The code was wrong."},
		{1, audit.ActivityUnlockSelfService, audit.Success, ""},
		{2, audit.ActivityChangeSelfService, audit.Failure, "The current password was wrong."},
		{2, audit.ActivityResetByAdmin, audit.Success, ""},
		{3, audit.ActivityBlockedSelfService, audit.Success, ""},
		{3, audit.ActivityAddAdmin, audit.Success, ""},          // not counted
		{40, audit.ActivityResetSelfService, audit.Success, ""}, // before the range
	}
	if err := h.db.InTx(ctx, func(tx *store.Tx) error {
		for i, e := range evs {
			at := today.AddDate(0, 0, -e.daysAgo).Add(time.Duration(i) * time.Minute).UnixMilli()
			row := store.AuditEvent{TimeMS: at, Category: "UserManagement", Activity: e.activity, ActorType: "user", TargetID: "u" + strconv.Itoa(i),
				TargetName: "Person " + strconv.Itoa(i), Result: e.result, Reason: e.reason, Details: "{}"}
			if err := tx.AppendAudit(ctx, &row); err != nil {
				return err
			}
		}
		for _, m := range []store.Method{{UserID: "a", Method: "email"}, {UserID: "a", Method: "app"}, {UserID: "b", Method: "email"}} {
			m.Secret, m.ConfirmedMS = "sealed", 1
			if err := tx.PutMethod(ctx, m); err != nil {
				return err
			}
		}
		return tx.Block(ctx, "u6", time.Now().Add(time.Hour).UnixMilli())
	}); err != nil {
		t.Fatal(err)
	}

	if _, err := h.ss.SavePolicy(ctx, audit.CommandLine, 0, "Authentication methods", func(p *selfservice.Policy) { p.Required = 2 }); err != nil {
		t.Fatal(err)
	}
	rr := h.client().signedIn(admins.ReportsReader)
	p := rr.get("/admin/reports")
	if p.Status != http.StatusOK {
		t.Fatalf("report: %d", p.Status)
	}
	from, to := today.AddDate(0, 0, -29), today
	for _, want := range []string{`<strong data-testid="registered">2</strong>`, `<strong data-testid="enough">1</strong>`,
		`<tr data-testid="method-email"><td>E-mail code</td><td class="num">2</td>`, `<tr data-testid="method-app"><td>Authenticator app code</td><td class="num">1</td>`,
		"Per day, " + from.Format(time.DateOnly) + " to " + to.Format(time.DateOnly), "The code was wrong.</td><td class=\"num\">2</td>",
		"1 account is blocked", "Person 6</a>", `data-testid="chart"`,
		// The chart: today 2 resets (1 failed), 1 day ago 1 unlock and 1 failed reset, 2 days ago 1 helpdesk reset and a failed change.
		"<title>" + to.Format(time.DateOnly) + ": 2 resets</title>", "<title>" + to.Format(time.DateOnly) + ": 1 failures</title>",
		"<title>" + to.AddDate(0, 0, -1).Format(time.DateOnly) + ": 1 unlocks</title>",
		"<title>" + to.AddDate(0, 0, -2).Format(time.DateOnly) + ": 1 resets</title>", "<title>" + to.AddDate(0, 0, -2).Format(time.DateOnly) + ": 1 failures</title>",
		"<title>" + to.AddDate(0, 0, -3).Format(time.DateOnly) + ": 0 failures</title>"} {
		if !strings.Contains(p.Body, want) {
			t.Errorf("report lacks %q", want)
		}
	}

	// The CSV's totals equal the audit log's counts of each activity and
	// result in the range.
	resp := rr.get("/admin/reports/export.csv?from=" + from.Format(time.DateOnly) + "&to=" + to.Format(time.DateOnly))
	if resp.Status != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/csv") {
		t.Fatalf("csv: %d %q", resp.Status, resp.Header.Get("Content-Type"))
	}
	recs, err := csv.NewReader(strings.NewReader(resp.Body)).ReadAll()
	if err != nil || len(recs) != 1+30+1 {
		t.Fatalf("csv: %d rows, %v", len(recs), err)
	}
	head, total := recs[0], recs[len(recs)-1]
	if total[0] != "total" || recs[30][0] != today.Format(time.DateOnly) {
		t.Fatalf("csv rows: %v … %v", recs[1], total)
	}
	activities := map[string]string{"Self-service resets": audit.ActivityResetSelfService, "Self-service unlocks": audit.ActivityUnlockSelfService,
		"Self-service changes": audit.ActivityChangeSelfService, "Helpdesk resets": audit.ActivityResetByAdmin,
		"Helpdesk unlocks": audit.ActivityUnlockByAdmin, "Blocks": audit.ActivityBlockedSelfService}
	for i := 1; i < len(head); i++ {
		label, result := strings.TrimSuffix(strings.TrimSuffix(head[i], " succeeded"), " failed"), audit.Success
		if strings.HasSuffix(head[i], " failed") {
			result = audit.Failure
		}
		n, _, err := h.db.CountAudit(ctx, store.AuditFilter{Activities: []string{activities[label]}, Result: result,
			SinceMS: from.UnixMilli(), UntilMS: to.AddDate(0, 0, 1).UnixMilli()})
		if err != nil || total[i] != strconv.Itoa(n) {
			t.Errorf("%s: the report says %s, the audit log %d (%v)", head[i], total[i], n, err)
		}
	}
	if total[1] != "1" || total[2] != "2" {
		t.Errorf("self-service resets in the range: %v", total[1:3])
	}

	// A bad range is refused with the reason.
	for _, tc := range []struct{ q, want string }{
		{"?from=yesterday", "Enter a date as YYYY-MM-DD"},
		{"?from=2026-05-02&to=2026-05-01", "The last day comes before the first one."},
		{"?from=2024-01-01&to=2026-01-01", "A report covers at most 366 days."},
	} {
		p := rr.get("/admin/reports" + tc.q)
		if p.Status != http.StatusUnprocessableEntity || !strings.Contains(p.Body, tc.want) || strings.Contains(p.Body, `data-testid="registration"`) {
			t.Errorf("%s: %d", tc.q, p.Status)
		}
	}
	if p := h.client().get("/admin/reports"); p.Status != http.StatusSeeOther {
		t.Errorf("signed out: %d", p.Status)
	}
}
