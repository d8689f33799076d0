package handlers_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/writeback/writeback/handlers"
	"github.com/writeback/writeback/services/admins"
	"github.com/writeback/writeback/services/apitokens"
	"github.com/writeback/writeback/services/metrics"
	"github.com/writeback/writeback/services/selfservice"
	"github.com/writeback/writeback/services/writeback"
	"github.com/writeback/writeback/testbed"
)

const metricsToken = "metrics-token-for-tests-0123456789"

// newMetricsHarness is a harness whose portal counts into metrics of its
// own, wired as serve wires them, and serves /metrics to metricsToken.
func newMetricsHarness(t *testing.T) *harness {
	t.Helper()
	p := newPortal(t)
	reg := prometheus.NewRegistry()
	met := metrics.New(reg)
	metrics.RegisterAuditChain(reg, p.audit.Integrity)
	p.db.OnError(met.DatabaseError)
	p.db.OnAudit(met.Audit)
	p.wb.UseRecorder(met)
	p.ss.UseRecorder(met)
	base, _ := url.Parse(p.base)
	s := handlers.New(handlers.Config{BaseURL: base, CookieHashKey: p.keys.Derive("h"), CookieBlockKey: p.keys.Derive("b"),
		Metrics: met, MetricsHandler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), MetricsToken: []byte(metricsToken)}, p.log,
		handlers.Deps{Admins: p.admins, Settings: p.settings, Writeback: p.wb, SelfService: p.ss, Audit: p.audit, Limits: p.ss})
	srv := httptest.NewServer(s.Routes())
	t.Cleanup(srv.Close)
	return &harness{portal: p, t: t, srv: srv}
}

// scrape reads /metrics with the token: the raw text, and each sample by
// name{labels} (a histogram by its _count).
func (h *harness) scrape(t *testing.T) (string, map[string]float64) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, h.srv.URL+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+metricsToken)
	p := h.client().do(req)
	if p.Status != http.StatusOK {
		t.Fatalf("/metrics: %d\n%s", p.Status, p.Body)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(p.Body))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for name, f := range fams {
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			slices.Sort(labels)
			key := name + "{" + strings.Join(labels, ",") + "}"
			switch {
			case m.Counter != nil:
				out[key] = m.Counter.GetValue()
			case m.Gauge != nil:
				out[key] = m.Gauge.GetValue()
			case m.Histogram != nil:
				out[name+"_count{"+strings.Join(labels, ",")+"}"] = float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return p.Body, out
}

// TestMetricsAfterRealFlows drives real flows against the real directory
// and SMTP sink and checks that each metric moved by exactly what they did:
// a self-service reset with an e-mailed code, a wrong code on a second
// flow, a helpdesk reset; the directory's reachability and the audit
// chain; and that no label carries a login, a flow ID, a code or a token.
func TestMetricsAfterRealFlows(t *testing.T) {
	env := testbed.Load(t)
	d := directories(env)[1] // OpenLDAP: the flows are the same on AD
	s := newSSPROn(t, env, d, selfservice.Methods{Email: true}, newMetricsHarness(t))
	ctx := context.Background()
	_, before := s.scrape(t)

	// A self-service reset: one code mail, one right code, one reset, one
	// notification.
	user := d.newUser(t, testbed.UserOptions{})
	c := s.client()
	flow := c.begin("reset", user.Login)
	s.verifyByEmail(t, c, flow, user.Mail)
	newPw := "Rst-" + testbed.RandomPassword()
	if p := c.step(flow, "password", url.Values{"password": {newPw}, "confirm": {newPw}}); p.Status != http.StatusSeeOther {
		t.Fatalf("set password: %d\n%s", p.Status, between(p.Body, "<main", "</main>"))
	}
	s.sink.WaitFor(t, user.Mail, 10*time.Second) // the notification
	// A wrong code on another person's flow (one more code mail).
	other := d.newUser(t, testbed.UserOptions{})
	flow2 := c.begin("reset", other.Login)
	c.step(flow2, "method", url.Values{"method": {"email"}})
	code := s.code(t, other.Mail)
	wrong := "00000000"
	if wrong == code {
		wrong = "11111111"
	}
	wrongPage := c.step(flow2, "verify", url.Values{"method": {"email"}, "code": {wrong}})
	// A helpdesk reset.
	hd := s.client().signedIn(admins.HelpdeskAdmin)
	target := d.newUser(t, testbed.UserOptions{})
	hdPw := "Hd-" + testbed.RandomPassword()
	if p := hd.post(userPath(target.Login)+"/reset", url.Values{"csrf_token": {hd.csrf("/")}, "password": {hdPw}, "confirm": {hdPw}}); p.Status != http.StatusSeeOther {
		t.Fatalf("helpdesk reset: %d\n%s", p.Status, between(p.Body, "<main", "</main>"))
	}
	// The health reading and the chain check the leader runs.
	s.wb.RefreshStatus(ctx)
	if _, err := s.audit.VerifyIncremental(ctx); err != nil {
		t.Fatal(err)
	}
	s.ss.Wait()

	text, after := s.scrape(t)
	moved := func(key string) float64 { return after[key] - before[key] }
	for key, want := range map[string]float64{
		"writeback_password_operations_total{channel=self-service,operation=reset,result=success}":                           1,
		"writeback_password_operations_total{channel=helpdesk,operation=reset,result=success}":                               1,
		"writeback_password_operations_total{channel=command-line,operation=reset,result=success}":                           0,
		"writeback_password_operations_total{channel=self-service,operation=unlock,result=success}":                          0,
		"writeback_selfservice_verifications_total{method=email,result=success}":                                             1,
		"writeback_selfservice_verifications_total{method=email,result=wrong}":                                               1,
		"writeback_selfservice_blocks_total{}":                                                                               0,
		"writeback_mail_messages_total{result=success}":                                                                      3, // two codes, one notification
		"writeback_mail_messages_total{result=failure}":                                                                      0,
		"writeback_directory_write_duration_seconds_count{mode=direct,operation=reset}":                                      2,
		"writeback_http_requests_total{method=POST,route=/reset/{flow}/password,status=303}":                                 1,
		"writeback_http_requests_total{method=POST,route=/reset/{flow}/verify,status=303}":                                   1,
		"writeback_http_requests_total{method=POST,route=/admin/users/{login}/reset,status=303}":                             1,
		"writeback_http_requests_total{method=POST,route=/reset/{flow}/verify,status=" + itoa(int64(wrongPage.Status)) + "}": 1,
		"writeback_database_errors_total{}":                                                                                  0,
	} {
		if got := moved(key); got != want {
			t.Errorf("%s moved by %v, want %v", key, got, want)
		}
	}
	if wrongPage.Status == http.StatusSeeOther {
		t.Errorf("the wrong code was taken")
	}
	if got := after["writeback_http_request_duration_seconds_count{method=POST,route=/reset}"] - before["writeback_http_request_duration_seconds_count{method=POST,route=/reset}"]; got != 2 {
		t.Errorf("POST /reset latency observed %v times, want 2", got)
	}
	if got := after["writeback_directory_server_up{server="+d.dir.URL+"}"]; got != 1 {
		t.Errorf("directory_server_up for %s = %v, want 1\n%s", d.dir.URL, got, text)
	}
	if got, ok := after["writeback_audit_chain_intact{}"]; !ok || got != 1 {
		t.Errorf("audit_chain_intact = %v (present %v), want 1", got, ok)
	}
	// No label carries what identifies a person or a flow, nor a secret.
	for _, secret := range []string{user.Login, other.Login, target.Login, user.Mail, strings.TrimPrefix(flow, "/reset/"),
		strings.TrimPrefix(flow2, "/reset/"), code, newPw, hdPw, metricsToken} {
		if strings.Contains(text, secret) {
			t.Errorf("the metrics carry %q", secret)
		}
	}
}

// TestMetricsEndpointGuarded: without a token /metrics does not exist on
// the public listener; with one, a request without it or with another gets
// 401 and counts as such, and no session cookie is set.
func TestMetricsEndpointGuarded(t *testing.T) {
	if p := newHarness(t).client().get("/metrics"); p.Status != http.StatusNotFound {
		t.Errorf("/metrics without a token configured: %d, want 404", p.Status)
	}
	h := newMetricsHarness(t)
	c := h.client()
	for _, auth := range []string{"", "Bearer wrong", "Bearer " + metricsToken + "x", "Basic " + metricsToken, metricsToken} {
		req := c.getRequest("/metrics")
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		p := c.do(req)
		if p.Status != http.StatusUnauthorized || strings.Contains(p.Body, "writeback_") || p.Header.Get("Set-Cookie") != "" {
			t.Errorf("Authorization %q: %d, cookie %q\n%s", auth, p.Status, p.Header.Get("Set-Cookie"), p.Body)
		}
	}
	if _, m := h.scrape(t); m["writeback_http_requests_total{method=GET,route=/metrics,status=401}"] != 5 {
		t.Errorf("refused scrapes counted %v, want 5", m["writeback_http_requests_total{method=GET,route=/metrics,status=401}"])
	}
}

// TestMetricsMethodAndRouteBounded: a made-up method or path does not make
// a series of its own.
func TestMetricsMethodAndRouteBounded(t *testing.T) {
	h := newMetricsHarness(t)
	c := h.client()
	for _, path := range []string{"/no-such-page-1", "/no-such-page-2"} {
		req := c.getRequest(path)
		req.Method = "BREW"
		c.do(req)
	}
	text, m := h.scrape(t)
	if strings.Contains(text, "BREW") || strings.Contains(text, "no-such-page") {
		t.Errorf("the method or path made a label:\n%s", text)
	}
	if got := m["writeback_http_requests_total{method=OTHER,route=unmatched,status=404}"]; got != 2 {
		t.Errorf("unmatched requests: %v, want 2\n%s", got, text)
	}
}

var _ writeback.Recorder = (*metrics.Metrics)(nil)
var _ selfservice.Recorder = (*metrics.Metrics)(nil)

// TestMetricsAndAPIUnderBasePath: under a base URL with a path, /metrics
// (with its token) and the API answer under the path, and the OpenAPI
// document names the API's address under it.
func TestMetricsAndAPIUnderBasePath(t *testing.T) {
	p := newPortalAt(t, "", "http://portal.test/password/")
	reg := prometheus.NewRegistry()
	met := metrics.New(reg)
	base, _ := url.Parse(p.base)
	s := handlers.New(handlers.Config{BaseURL: base, CookieHashKey: p.keys.Derive("h"), CookieBlockKey: p.keys.Derive("b"),
		Metrics: met, MetricsHandler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), MetricsToken: []byte(metricsToken)}, p.log,
		handlers.Deps{Admins: p.admins, Settings: p.settings, Writeback: p.wb, SelfService: p.ss, Audit: p.audit, Limits: p.ss,
			APITokens: apitokens.NewService(p.db, p.log)})
	srv := httptest.NewServer(s.Routes())
	t.Cleanup(srv.Close)
	get := func(path, auth string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	get("/password/reset", "")
	if code, body := get("/password/metrics", "Bearer "+metricsToken); code != http.StatusOK ||
		!strings.Contains(body, `writeback_http_requests_total{method="GET",route="/reset",status="200"} 1`) {
		t.Errorf("/password/metrics: %d\n%.2000s", code, body)
	}
	if code, _ := get("/password/metrics", ""); code != http.StatusUnauthorized {
		t.Errorf("/password/metrics without the token: %d, want 401", code)
	}
	code, body := get("/password/api/v1/openapi.json", "")
	if code != http.StatusOK || !strings.Contains(body, `"url":"http://portal.test/password/api/v1"`) {
		t.Errorf("/password/api/v1/openapi.json: %d\n%.500s", code, body)
	}
	if code, _ := get("/password/api/v1/users/alice", ""); code != http.StatusUnauthorized {
		t.Errorf("an API call under the path without a token: %d, want 401", code)
	}
}
