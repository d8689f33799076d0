package handlers_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/writeback/writeback/handlers"
	"github.com/writeback/writeback/services/admins"
	"github.com/writeback/writeback/services/agents"
	"github.com/writeback/writeback/services/apitokens"
	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/banned"
	"github.com/writeback/writeback/services/branding"
	"github.com/writeback/writeback/services/campaign"
	"github.com/writeback/writeback/services/keyring"
	"github.com/writeback/writeback/services/passkeys"
	"github.com/writeback/writeback/services/reminders"
	"github.com/writeback/writeback/services/reports"
	"github.com/writeback/writeback/services/selfservice"
	"github.com/writeback/writeback/services/settings"
	"github.com/writeback/writeback/services/writeback"
	"github.com/writeback/writeback/store"
	"github.com/writeback/writeback/testbed"
)

// cheap keeps argon2id fast in tests; production uses DefaultHashParams.
var cheap = admins.HashParams{Memory: 1024, Time: 1, Threads: 1}

const testPassword = "correct horse battery"

// portal is the portal's services over a fresh database, wired as serve
// wires them, with cheap password hashing; the harness serves it over
// HTTP, the fuzz targets call its handler directly.
type portal struct {
	db       *store.DB
	keys     *keyring.Keyring
	log      *slog.Logger
	logs     *testbed.SyncBuffer
	admins   *admins.Service
	settings *settings.Service
	wb       *writeback.Service
	ss       *selfservice.Service
	banned   *banned.Service
	rem      *reminders.Service
	camp     *campaign.Service
	audit    *audit.Log
	tokens   *apitokens.Service
	brand    *branding.Service
	// base is the base URL the handler is told (testBaseURL unless a test
	// serves on an address of its own).
	base string
}

// testBaseURL is the portal's base URL in tests.
const testBaseURL = "http://portal.test"

func newPortal(tb testing.TB) *portal { tb.Helper(); return newPortalOn(tb, "") }

// newPortalOn is newPortal on the database at databaseURL ("" for a fresh
// SQLite file): two portals on one PostgreSQL database are two replicas,
// with the same key (as a shared key file gives them) and caches of their
// own.
func newPortalOn(tb testing.TB, databaseURL string) *portal {
	tb.Helper()
	return newPortalAt(tb, databaseURL, testBaseURL)
}

// newPortalAt is newPortalOn with the base URL base, the source of every
// absolute link (e-mails, passkeys) and of the path the portal is served
// under.
func newPortalAt(tb testing.TB, databaseURL, base string) *portal {
	tb.Helper()
	ctx := context.Background()
	db, err := store.OpenDatabase(ctx, databaseURL, tb.TempDir())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	if _, err := db.Migrate(ctx); err != nil {
		tb.Fatal(err)
	}
	logs := &testbed.SyncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	keys := keyring.New(make([]byte, 32))
	pk, err := passkeys.New(base, "Writeback")
	if err != nil {
		tb.Fatal(err)
	}
	adm, err := admins.New(db, log, cheap, admins.WithKeyring(keys), admins.WithPasskeys(pk))
	if err != nil {
		tb.Fatal(err)
	}
	set := settings.New(db)
	wb := writeback.New(db, set, keys, log)
	tb.Cleanup(func() { wb.Close() })
	ss := selfservice.New(db, wb, keys, log, base)
	ss.Pacer, ss.AnswerParams = selfservice.NewPacer(0), cheap
	tb.Cleanup(ss.Wait)
	bn := banned.New(db)
	bn.SetOrgName(ss.OrgName)
	ss.UseBanned(bn)
	wb.UseBanned(bn)
	// The expiry reminders, wired as serve wires them (cmd/writeback's
	// useSelfService).
	rem := reminders.New(reminders.Config{DB: db, Mail: ss, Log: log, BaseURL: base,
		Directory: reminders.DirectoryOf(wb), Scope: reminders.ScopeOf(ss)})
	camp := campaign.New(campaign.Config{DB: db, Mail: ss, Log: log, BaseURL: base,
		Directory: campaign.DirectoryOf(wb), Scope: campaign.ScopeOf(ss)})
	p := &portal{db: db, keys: keys, log: log, logs: logs, admins: adm, settings: set, wb: wb, ss: ss, banned: bn, rem: rem, camp: camp, audit: audit.NewLog(db, log), base: base,
		tokens: apitokens.NewService(db, log), brand: branding.New(db, ss.OrgName)}
	p.secondFactorOptional(tb)
	return p
}

// secondFactorOptional makes the second factor optional for every role, as
// an operator may choose: the tests that are not about it sign in with the
// password alone. It writes the policy document directly, so that no audit
// event of it shows among those the tests count; factors_test.go puts the
// default back (defaultSecondFactorPolicy).
func (p *portal) secondFactorOptional(tb testing.TB) {
	tb.Helper()
	b, _ := json.Marshal(admins.Policy{})
	if err := p.db.InTx(context.Background(), func(tx *store.Tx) error {
		_, err := tx.PutConfig(context.Background(), "admin_signin", 0, string(b), "test harness")
		if errors.Is(err, store.ErrConflict) {
			return nil // a replica on the same database wrote it already
		}
		return err
	}); err != nil {
		tb.Fatal(err)
	}
}

// handler is the portal's HTTP handler, trusting the given proxies.
func (p *portal) handler(trusted []netip.Prefix) http.Handler {
	base, _ := url.Parse(p.base)
	s := handlers.New(handlers.Config{BaseURL: base, CookieHashKey: p.keys.Derive("h"), CookieBlockKey: p.keys.Derive("b"), TrustedProxies: trusted}, p.log,
		handlers.Deps{Admins: p.admins, Settings: p.settings, Writeback: p.wb, SelfService: p.ss, Audit: p.audit, Limits: p.ss, Banned: p.banned,
			Reminders: p.rem, Campaign: p.camp, APITokens: p.tokens, Branding: p.brand, Reports: reports.New(p.db, p.ss)})
	return s.Routes()
}

type harness struct {
	*portal
	t   *testing.T
	srv *httptest.Server
	// prefix is the path the portal is served under ("" at the root): the
	// clients ask for every path under it, check that every answer keeps
	// the browser under it (checkUnderPrefix), and give tests Locations
	// without it, so that the same steps run at the root and under a path.
	prefix string
}

func newHarness(t *testing.T) *harness { return newHarnessWith(t, nil) }

// newHarnessWith builds a harness whose server trusts the given proxies.
func newHarnessWith(t *testing.T, trusted []netip.Prefix) *harness {
	t.Helper()
	p := newPortal(t)
	srv := httptest.NewServer(p.handler(trusted))
	t.Cleanup(srv.Close)
	return &harness{portal: p, t: t, srv: srv}
}

// newHarnessUnder builds a harness whose portal has the base URL base, with
// a path (e.g. "http://portal.test/password/"), and is served under it, with
// the agents page too.
func newHarnessUnder(t *testing.T, base string, trusted []netip.Prefix) *harness {
	t.Helper()
	p := newPortalAt(t, "", base)
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	ag := agents.New(p.db, p.log)
	s := handlers.New(handlers.Config{BaseURL: u, CookieHashKey: p.keys.Derive("h"), CookieBlockKey: p.keys.Derive("b"), TrustedProxies: trusted}, p.log,
		handlers.Deps{Admins: p.admins, Settings: p.settings, Writeback: p.wb, SelfService: p.ss, Audit: p.audit, Limits: p.ss, Agents: ag, AgentEnroll: ag, Branding: p.brand, Reports: reports.New(p.db, p.ss)})
	srv := httptest.NewServer(s.Routes())
	t.Cleanup(srv.Close)
	return &harness{portal: p, t: t, srv: srv, prefix: strings.TrimSuffix(u.Path, "/")}
}

// addAdmin creates an administrator directly through the service.
func (h *harness) addAdmin(email string, role admins.Role) store.Admin {
	h.t.Helper()
	a, err := h.admins.Create(context.Background(), audit.CommandLine, admins.NewAdmin{Email: email, Name: strings.Split(email, "@")[0], Role: role, Password: testPassword})
	if err != nil {
		h.t.Fatal(err)
	}
	return a
}

// client is a browser-like client with a cookie jar that does not follow redirects.
type client struct {
	t    *testing.T
	h    *harness
	http *http.Client
}

func (h *harness) client() *client {
	jar, _ := cookiejar.New(nil)
	return &client{t: h.t, h: h, http: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}}
}

type page struct {
	Status   int
	Body     string
	Location string
	Header   http.Header
}

func (c *client) do(req *http.Request) page {
	c.t.Helper()
	p, err := c.send(req)
	if err != nil {
		c.t.Fatal(err)
	}
	return p
}

// send is do for goroutines: the error comes back instead of ending the
// test.
func (c *client) send(req *http.Request) (page, error) {
	resp, err := c.http.Do(req)
	if err != nil {
		return page{}, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	loc := resp.Header.Get("Location")
	if pre := c.h.prefix; pre != "" {
		for _, bad := range outsidePrefix(pre, req.URL, resp, b) {
			c.t.Errorf("%s %s: %s", req.Method, req.URL.Path, bad)
		}
		loc = strings.TrimPrefix(loc, pre)
	}
	return page{Status: resp.StatusCode, Body: string(b), Location: loc, Header: resp.Header}, nil
}

func (c *client) get(path string) page {
	c.t.Helper()
	return c.do(c.getRequest(path))
}

// post sends a form as a same-origin browser would.
func (c *client) post(path string, form url.Values) page {
	c.t.Helper()
	return c.do(c.postRequest(path, form))
}

func (c *client) getRequest(path string) *http.Request {
	req, _ := http.NewRequest(http.MethodGet, c.h.srv.URL+c.h.prefix+path, nil)
	return req
}

func (c *client) postRequest(path string, form url.Values) *http.Request {
	req, _ := http.NewRequest(http.MethodPost, c.h.srv.URL+c.h.prefix+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", c.h.srv.URL)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	return req
}

var csrfRE = regexp.MustCompile(`name="csrf-token" content="([0-9a-f]+)"`)
var versionRE = regexp.MustCompile(`name="version" value="(\d+)"`)

// csrf reads the CSRF token from a page of the current session.
func (c *client) csrf(path string) string {
	c.t.Helper()
	p := c.get(path)
	m := csrfRE.FindStringSubmatch(p.Body)
	if m == nil {
		c.t.Fatalf("no csrf token on %s (status %d)", path, p.Status)
	}
	return m[1]
}

func (c *client) login(email string) {
	c.t.Helper()
	tok := c.csrf("/login")
	p := c.post("/login", url.Values{"csrf_token": {tok}, "email": {email}, "password": {testPassword}})
	if p.Status != http.StatusSeeOther {
		c.t.Fatalf("login %s: status %d\n%s", email, p.Status, p.Body)
	}
}

func (c *client) signedIn(role admins.Role) *client {
	c.t.Helper()
	email := string(role) + "@example.com"
	if _, err := c.h.db.AdminByEmail(context.Background(), email); err != nil {
		c.h.addAdmin(email, role)
	}
	c.login(email)
	return c
}
