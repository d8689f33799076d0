package handlers_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/writeback/writeback/handlers"
	"github.com/writeback/writeback/services/admins"
	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/directory"
	"github.com/writeback/writeback/services/selfservice"
	"github.com/writeback/writeback/services/settings"
	"github.com/writeback/writeback/services/writeback"
	"github.com/writeback/writeback/testbed/bench"
)

// Page benchmark sizes: connections, requests per kind and round, rounds.
const (
	pageConns    = 50
	pageRequests = 6000
	pageRounds   = 7
)

// The pages measured. The admin page is the landing page of /admin, the
// On-premises integration page: it reads six settings documents (both
// switches, the writeback status, the directory connection, the policy, the
// mail settings and their status) and makes no directory call.
const (
	benchStaticPath = "/static/app.css"
	benchResetPath  = "/reset"
	benchAdminPath  = onPremPath
)

// BenchmarkPages is issue 9's page figure: GET /reset and a signed-in admin
// page at 50 keep-alive connections over real TCP against a static asset of
// the same server, in interleaved rounds; the verdicts use the median of the
// per-round ratios. The portal is set up as in production use: a directory
// connection with a CA certificate, both switches on, self-service enabled,
// and the request log on (at Info, written to io.Discard). Clients send a
// browser's Accept-Encoding and carry their session cookie.
func BenchmarkPages(b *testing.B) {
	if !bench.Enabled() {
		b.Skip("WRITEBACK_BENCH=1 runs the benchmarks (make bench)")
	}
	p := newPortal(b)
	configureForBench(b, p)
	base, _ := url.Parse(testBaseURL)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv := httptest.NewServer(handlers.New(handlers.Config{BaseURL: base, CookieHashKey: p.keys.Derive("h"), CookieBlockKey: p.keys.Derive("b")}, log,
		handlers.Deps{Admins: p.admins, Settings: p.settings, Writeback: p.wb, SelfService: p.ss, Audit: p.audit}).Routes())
	defer srv.Close()

	tr := &http.Transport{MaxIdleConns: 2 * pageConns, MaxIdleConnsPerHost: 2 * pageConns, DisableCompression: true}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	// Every caller is a browser of its own with its session cookie; the
	// administrator's session is signed in once and shared.
	anon := make([]string, pageConns)
	for i := range anon {
		anon[i] = benchSessionCookie(b, hc, srv.URL)
	}
	adminCookie := benchSignIn(b, p, hc, srv.URL)

	type target struct {
		path   string
		cookie func(caller int) string
		want   string // on the page, checked once before measuring (unless empty)
	}
	targets := []target{
		{benchStaticPath, func(int) string { return "" }, ""}, // compressed: nothing to look for
		{benchResetPath, func(c int) string { return anon[c] }, `name="login"`},
		{benchAdminPath, func(int) string { return adminCookie }, `data-testid="service-panel"`},
	}
	for _, tg := range targets {
		body, err := benchGet(hc, srv.URL+tg.path, tg.cookie(0), true)
		if err != nil {
			b.Fatalf("%s: %v", tg.path, err)
		}
		if !strings.Contains(body, tg.want) {
			b.Fatalf("%s does not show %q:\n%s", tg.path, tg.want, body)
		}
	}
	kinds := make([]func(int) (bench.Timing, error), len(targets))
	for k, tg := range targets {
		url := srv.URL + tg.path
		kinds[k] = func(int) (bench.Timing, error) {
			return bench.Run(pageConns, pageRequests, func(caller, _ int) error {
				_, err := benchGet(hc, url, tg.cookie(caller), false)
				return err
			})
		}
	}
	// A warm-up round: connections open, caches and pools filled.
	for _, k := range kinds {
		if _, err := k(0); err != nil {
			b.Fatal(err)
		}
	}
	rounds, err := bench.Interleave(pageRounds, kinds...)
	if err != nil {
		b.Fatal(err)
	}
	bench.Print(os.Stdout, fmt.Sprintf("Pages at %d keep-alive connections vs a static asset (%s), %d rounds of %d requests each",
		pageConns, benchStaticPath, pageRounds, pageRequests), pageFigures(rounds))
}

// pageFigures turns the rounds of (static, /reset, admin page) into the
// three figures of item 7: both pages' rates against the static file's, and
// /reset's p99 against the static file's.
func pageFigures(r bench.Rounds) []bench.Figure {
	st, reset, admin := r.All(0).Stats(), r.All(1).Stats(), r.All(2).Stats()
	rateReset := r.MedianRatio(1, 0, bench.PerSec)
	rateAdmin := r.MedianRatio(2, 0, bench.PerSec)
	p99Reset := r.MedianRatio(1, 0, bench.P99)
	perSec := func(s bench.Stats) string { return fmt.Sprintf("%.0f/s", s.PerSec) }
	return []bench.Figure{
		{Name: "GET /reset, 50 connections, requests/s", Value: perSec(reset), Floor: "static asset " + perSec(st),
			Ratio: bench.Times(rateReset), Target: "≥ 0.80×", Met: rateReset >= 0.8},
		{Name: "GET admin page (on-premises), 50 connections, req/s", Value: perSec(admin), Floor: "static asset " + perSec(st),
			Ratio: bench.Times(rateAdmin), Target: "≥ 0.50×", Met: rateAdmin >= 0.5},
		{Name: "GET /reset, 50 connections, p99", Value: bench.Ms(reset.P99), Floor: "static asset " + bench.Ms(st.P99),
			Ratio: bench.Times(p99Reset), Target: "≤ 1.50×", Met: p99Reset > 0 && p99Reset <= 1.5},
	}
}

// TestPageFigures checks the verdicts of the page benchmark on made-up
// rounds: the median of the per-round ratios decides, not the totals.
func TestPageFigures(t *testing.T) {
	tm := func(n int, wall, lat time.Duration) bench.Timing {
		t := bench.Timing{Wall: wall}
		for range n {
			t.Lat = append(t.Lat, lat)
		}
		return t
	}
	// Round 1 has /reset far slower than the static file, rounds 0 and 2
	// barely: the median ratio (0.9×) meets the target although the totals
	// would not.
	r := bench.Rounds{Per: [][]bench.Timing{
		{tm(100, time.Second, time.Millisecond), tm(100, time.Second, time.Millisecond), tm(100, time.Second, time.Millisecond)},
		{tm(90, time.Second, time.Millisecond), tm(10, time.Second, 10*time.Millisecond), tm(95, time.Second, 2*time.Millisecond)},
		{tm(40, time.Second, time.Millisecond), tm(40, time.Second, time.Millisecond), tm(40, time.Second, time.Millisecond)},
	}}
	figs := pageFigures(r)
	if len(figs) != 3 {
		t.Fatalf("%d figures", len(figs))
	}
	for i, want := range []struct {
		ratio string
		met   bool
	}{{"0.90×", true}, {"0.40×", false}, {"2.00×", false}} {
		if figs[i].Ratio != want.ratio || figs[i].Met != want.met {
			t.Errorf("figure %q: ratio %s met %v, want %s %v", figs[i].Name, figs[i].Ratio, figs[i].Met, want.ratio, want.met)
		}
	}
}

// benchGet fetches url with a browser's Accept-Encoding and the cookie,
// reads the whole answer and wants a 200 (304 is not asked for). keep
// returns the body.
func benchGet(hc *http.Client, url, cookie string, keep bool) (string, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Accept-Encoding", "gzip, deflate, br, zstd")
	req.Header.Set("Accept", "text/html,*/*")
	req.Header.Set("User-Agent", "Mozilla/5.0 (bench)")
	if cookie != "" {
		req.Header.Set("Cookie", cookie)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var body string
	if keep {
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return "", err
		}
		body = string(b)
	} else if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return body, fmt.Errorf("GET %s: status %d", url, resp.StatusCode)
	}
	return body, nil
}

// benchSessionCookie is the session cookie a first visit to / gets.
func benchSessionCookie(tb testing.TB, hc *http.Client, base string) string {
	tb.Helper()
	resp, err := hc.Get(base + "/")
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	for _, c := range resp.Cookies() {
		return c.Name + "=" + c.Value
	}
	tb.Fatal("no session cookie on /")
	return ""
}

// benchSignIn creates a Global Administrator and signs in through /login.
func benchSignIn(tb testing.TB, p *portal, hc *http.Client, base string) string {
	tb.Helper()
	if _, err := p.admins.Create(context.Background(), audit.CommandLine, admins.NewAdmin{Email: "bench@example.com", Name: "Bench",
		Role: admins.GlobalAdmin, Password: testPassword}); err != nil {
		tb.Fatal(err)
	}
	cookie := benchSessionCookie(tb, hc, base)
	req, _ := http.NewRequest(http.MethodGet, base+"/login", nil)
	req.Header.Set("Cookie", cookie)
	resp, err := hc.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := csrfRE.FindStringSubmatch(string(b))
	if m == nil {
		tb.Fatal("no csrf token on /login")
	}
	form := url.Values{"csrf_token": {m[1]}, "email": {"bench@example.com"}, "password": {testPassword}}
	req, _ = http.NewRequest(http.MethodPost, base+"/login", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", base)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	req.Header.Set("Cookie", cookie)
	resp, err = hc.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		tb.Fatalf("sign-in: status %d", resp.StatusCode)
	}
	for _, c := range resp.Cookies() {
		return c.Name + "=" + c.Value
	}
	return cookie
}

// configureForBench sets the portal up as a working one: a directory
// connection with a CA certificate (nothing needs to answer there: pages do
// not connect), both switches on, self-service enabled with e-mailed codes.
func configureForBench(tb testing.TB, p *portal) {
	tb.Helper()
	ctx := context.Background()
	if _, err := p.wb.SaveConnection(ctx, audit.CommandLine, 0, writeback.Input{
		Type: directory.TypeAD, URLs: []string{"ldaps://dc1.example.com", "ldaps://dc2.example.com"}, CAPEM: benchCAPEM(tb),
		BindDN: "CN=svc,DC=example,DC=com", BindPassword: "service password", BaseDNs: []string{"OU=People,DC=example,DC=com"},
		PasswordWriteback: true,
	}); err != nil {
		tb.Fatal(err)
	}
	if _, _, err := p.settings.SaveOnPrem(ctx, audit.CommandLine, 0, settings.OnPrem{Writeback: true, Unlock: true}); err != nil {
		tb.Fatal(err)
	}
	if _, err := p.ss.SavePolicy(ctx, audit.CommandLine, 0, "bench", func(pl *selfservice.Policy) {
		pl.ChallengeOff = true // more attempts than the proof-of-work threshold; challenge_test.go tests it
		pl.Enabled, pl.Methods, pl.Required, pl.Helpdesk, pl.OrgName = selfservice.EnabledAll, selfservice.Methods{Email: true}, 1, "help@example.com", "Example Corp"
	}); err != nil {
		tb.Fatal(err)
	}
}

// benchCAPEM is a freshly made CA certificate in PEM (RSA 2048, as an AD
// certificate authority's typically is).
func benchCAPEM(tb testing.TB) string {
	tb.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		tb.Fatal(err)
	}
	tpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Bench CA"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}
