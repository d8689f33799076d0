package alerts_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/writeback/writeback/services/alerts"
	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/selfservice"
	"github.com/writeback/writeback/store"
)

// TestAlertInTheOrganisationsLanguage: with German as the organisation's
// default language (Customization) the alert and its recovery are written
// in German; the audit events name them in English, as all audit data.
func TestAlertInTheOrganisationsLanguage(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if _, err := f.ss.SavePolicy(ctx, audit.CommandLine, 0, "test", func(p *selfservice.Policy) { p.Language = "de" }); err != nil {
		t.Fatal(err)
	}
	al := alerts.New(f.db, f.ss, slog.New(slog.NewTextHandler(f.logs, nil)), "https://reset.example.com")
	at := time.Date(2026, time.March, 2, 14, 5, 0, 0, time.UTC)
	al.AuditChain(ctx, audit.Integrity{Checked: true, At: at, Result: store.VerifyResult{OK: true}})
	al.AuditChain(ctx, audit.Integrity{Checked: true, At: at, Result: store.VerifyResult{OK: false, Problem: "event 7 does not match its hash", BrokenID: 7}})
	f.ss.Wait()
	m := f.wantMails(t, 1, "Writeback-Warnung: Das Überwachungsprotokoll hat die Integritätsprüfung nicht bestanden")
	for _, want := range []string{"Die Hash-Kette des Überwachungsprotokolls ließ sich am", "Grund: event 7 does not match its hash",
		"Sie erhalten eine weitere E-Mail, wenn das Problem behoben ist", "https://reset.example.com/admin/audit"} {
		if !strings.Contains(m.Text, want) {
			t.Errorf("the alert lacks %q:\n%s", want, m.Text)
		}
	}
	if strings.Contains(m.Text, "You will get one more e-mail") {
		t.Errorf("English left in the alert:\n%s", m.Text)
	}
	al.AuditChain(ctx, audit.Integrity{Checked: true, At: at, Result: store.VerifyResult{OK: true}})
	f.ss.Wait()
	m = f.wantMails(t, 2, "Writeback wiederhergestellt: Das Überwachungsprotokoll ist wieder prüfbar")
	if !strings.Contains(m.Text, "Die Hash-Kette des Überwachungsprotokolls war am") {
		t.Errorf("the recovery mail:\n%s", m.Text)
	}
	evs := f.alertsSent(t)
	if len(evs) != 2 || evs[0].TargetName != "Writeback alert: the audit log failed its integrity check" ||
		evs[1].TargetName != "Writeback recovered: the audit log verifies again" {
		for _, e := range evs {
			t.Logf("audit: %q", e.TargetName)
		}
		t.Errorf("%d alert events, want the two named in English", len(evs))
	}
}
