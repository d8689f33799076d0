package reminders_test

import (
	"context"
	"strings"
	"testing"

	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/reminders"
	"github.com/writeback/writeback/services/selfservice"
	"github.com/writeback/writeback/testbed"
)

// TestRemindersInTheOrganisationsLanguage: a reminder is sent in the
// background, with no reader's page open, so it is written in the
// organisation's default language (Password reset › Customization), its
// dates and counts as that language writes them.
func TestRemindersInTheOrganisationsLanguage(t *testing.T) {
	env := testbed.Load(t)
	w := adWorld(t, env)
	f := newFixture(t, env, w)
	f.setScope(reminders.Scope{Enabled: selfservice.EnabledGroup, Group: w.group, OrgName: "Example Corp", Language: "de"})
	if _, err := f.svc.Save(context.Background(), audit.CommandLine, 0, reminders.Settings{Enabled: true, Thresholds: []int{14}}); err != nil {
		t.Fatalf("Save: %v", err)
	}
	msgs := f.send(t)
	if len(msgs) != 1 {
		t.Fatalf("sent %d, want one reminder", len(msgs))
	}
	m := msgs[0]
	if m.Subject != "Ihr Example Corp-Kennwort läuft in 9 Tagen ab" {
		t.Errorf("subject %q, want it in German", m.Subject)
	}
	for _, want := range []string{"Hallo ", "Das Kennwort Ihres Example Corp-Kontos läuft in 9 Tagen ab, am ", " UTC. Danach", "Diese Erinnerung fragt nie nach Ihrem Kennwort"} {
		if !strings.Contains(m.Text, want) {
			t.Errorf("text lacks %q:\n%s", want, m.Text)
		}
	}
	for _, want := range []string{`<html lang="de">`, "läuft <strong>in 9 Tagen</strong> ab", "Diese Erinnerung fragt nie nach Ihrem Kennwort"} {
		if !strings.Contains(m.HTML, want) {
			t.Errorf("HTML lacks %q:\n%s", want, m.HTML)
		}
	}
	for _, english := range []string{"Hello", "expires", "This reminder", "sent automatically"} {
		if strings.Contains(m.Text+m.HTML, english) {
			t.Errorf("English %q left in the reminder:\n%s", english, m.Text)
		}
	}
}
