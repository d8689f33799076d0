package handlers_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/writeback/writeback/services/admins"
	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/selfservice"
)

// TestPagesReadSettingsFromMemory: once read, the settings documents behind
// the employee's start page and the administrator's On-premises page are
// served from memory, with no database read or JSON decode per request; a
// save through the page is seen by the very next request.
func TestPagesReadSettingsFromMemory(t *testing.T) {
	h := newHarness(t)
	// Saves in this process must be seen without help from the recheck for
	// other processes' saves.
	h.db.SetConfigRecheck(time.Hour)
	h.connectDirectory(t, true)
	if _, err := h.ss.SavePolicy(context.Background(), audit.CommandLine, 0, "test", func(p *selfservice.Policy) {
		p.Enabled = selfservice.EnabledAll
	}); err != nil {
		t.Fatal(err)
	}
	admin := h.client().signedIn(admins.GlobalAdmin)
	employee := h.client()
	get := func(c *client, path, want string) {
		t.Helper()
		p := c.get(path)
		if p.Status != http.StatusOK || !strings.Contains(p.Body, want) {
			t.Fatalf("GET %s: status %d, want %q on the page:\n%s", path, p.Status, want, p.Body)
		}
	}
	const off = "has not turned on writing passwords"
	get(employee, "/reset", off)
	get(admin, onPremPath, `data-testid="service-panel"`)

	reads := h.db.ConfigReads()
	for range 10 {
		get(employee, "/reset", off)
		get(employee, "/", "Get back into your account")
		get(admin, onPremPath, `data-testid="service-panel"`)
	}
	if n := h.db.ConfigReads() - reads; n != 0 {
		t.Errorf("30 page views read settings documents from the database %d times", n)
	}

	p := admin.post(onPremPath, url.Values{"csrf_token": {admin.csrf(onPremPath)}, "version": {currentVersion(t, h)}, "writeback": {"yes"}, "unlock": {"no"}})
	if p.Status != http.StatusSeeOther {
		t.Fatalf("save: status %d\n%s", p.Status, p.Body)
	}
	get(employee, "/reset", `name="login"`)
	get(admin, onPremPath, `id="writeback-yes" name="writeback" value="yes" checked`)
}
