package handlers_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/writeback/writeback/handlers"
	"github.com/writeback/writeback/services/admins"
	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/keyring"
	"github.com/writeback/writeback/store"
)

// fakeAdmins signs in anyone as a Reports Reader; other methods are not
// used by these tests (a call would panic and fail the request).
type fakeAdmins struct{ handlers.AdminService }

func (fakeAdmins) Authenticate(context.Context, string, string, audit.Actor) (store.Admin, error) {
	return store.Admin{ID: 1, Name: "Rita", Email: "rita@example.com", Role: "reports-reader"}, nil
}
func (fakeAdmins) BeginSignIn(context.Context, store.Admin, audit.Actor) (admins.Next, string, error) {
	return admins.NextSession, "session-1", nil
}
func (fakeAdmins) Resolve(context.Context, string) (store.Admin, error) {
	return store.Admin{ID: 1, Name: "Rita", Email: "rita@example.com", Role: "reports-reader"}, nil
}

// brokenAudit is an empty audit log whose last integrity check failed
// with a raw error.
type brokenAudit struct{ handlers.AuditLog }

const rawVerifyError = "store: verify audit: database disk image is malformed (11) at /var/lib/writeback/writeback.db"

func (brokenAudit) Query(context.Context, store.AuditFilter, store.Cursor, int) ([]store.AuditEvent, store.Cursor, error) {
	return nil, store.Cursor{}, nil
}
func (brokenAudit) Count(context.Context, store.AuditFilter) (int, bool, error) { return 0, false, nil }
func (brokenAudit) Daily(context.Context, store.AuditFilter, *time.Location) ([]store.DayCount, error) {
	return nil, nil
}
func (brokenAudit) Integrity() audit.Integrity {
	return audit.Integrity{Checked: true, At: time.Now(), Err: rawVerifyError}
}

// TestAuditPageHidesRawErrors: a failed integrity check reads as a plain
// sentence on the Audit logs page; the raw error stays in the server log.
func TestAuditPageHidesRawErrors(t *testing.T) {
	keys := keyring.New(make([]byte, 32))
	base, _ := url.Parse("http://portal.test")
	s := handlers.New(handlers.Config{BaseURL: base, CookieHashKey: keys.Derive("h"), CookieBlockKey: keys.Derive("b")},
		slog.New(slog.NewTextHandler(io.Discard, nil)), handlers.Deps{Admins: fakeAdmins{}, Audit: brokenAudit{}})
	srv := httptest.NewServer(s.Routes())
	t.Cleanup(srv.Close)
	c := (&harness{t: t, srv: srv}).client()
	tok := c.csrf("/login")
	if p := c.post("/login", url.Values{"csrf_token": {tok}, "email": {"rita@example.com"}, "password": {"x"}}); p.Status != http.StatusSeeOther {
		t.Fatalf("sign-in: %d", p.Status)
	}
	p := c.get("/admin/audit")
	if p.Status != http.StatusOK {
		t.Fatalf("audit page: %d\n%s", p.Status, p.Body)
	}
	if strings.Contains(p.Body, "malformed") || strings.Contains(p.Body, "/var/lib") {
		t.Error("the raw error reached the page")
	}
	if !strings.Contains(p.Body, "The integrity check could not run.") {
		t.Error("the page does not say the check could not run")
	}
}
