package handlers_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/writeback/writeback/handlers"
	"github.com/writeback/writeback/services/agenthub"
	"github.com/writeback/writeback/services/agentwire"
	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/connector"
	"github.com/writeback/writeback/services/directory"
	"github.com/writeback/writeback/services/settings"
	"github.com/writeback/writeback/services/writeback"
	"github.com/writeback/writeback/testbed"
	"github.com/writeback/writeback/testbed/bench"
)

// Issue 10 item 11's targets: what the agent may add to a helpdesk reset.
const (
	agentAddedTarget = 5 * time.Millisecond // at p50, over the direct reset's
	agentRateTarget  = 0.90                 // of the direct reset's rate
)

// agentLatencyFigure is the p50 line of item 11: the reset through the
// agent beside the direct one, the median over rounds of the p50
// difference, met when under agentAddedTarget. No rounds is never met.
func agentLatencyFigure(name string, agent, direct bench.Stats, added time.Duration, rounds int) bench.Figure {
	return bench.Figure{
		Name:   name,
		Value:  bench.Ms(agent.P50),
		Floor:  "direct " + bench.Ms(direct.P50),
		Ratio:  fmt.Sprintf("%+.2f ms", float64(added)/float64(time.Millisecond)),
		Target: "< +" + bench.Ms(agentAddedTarget),
		Met:    rounds > 0 && added < agentAddedTarget,
	}
}

// agentRateFigure is the rate line of item 11: the resets per second
// through the agent beside the direct ones, the median over rounds of their
// ratio, met when at least agentRateTarget.
func agentRateFigure(name string, agent, direct bench.Stats, ratio float64) bench.Figure {
	return bench.Figure{
		Name:   name,
		Value:  fmt.Sprintf("%.1f/s", agent.PerSec),
		Floor:  fmt.Sprintf("direct %.1f/s", direct.PerSec),
		Ratio:  bench.Times(ratio),
		Target: "≥ " + bench.Times(agentRateTarget),
		Met:    ratio >= agentRateTarget,
	}
}

// medianP50Diff is the median over rounds of kind a's p50 minus kind b's:
// the verdict of an added latency, as MedianRatio is of a ratio.
func medianP50Diff(r bench.Rounds, a, b int) time.Duration {
	var d []float64
	for i := range r.Per[a] {
		if i >= len(r.Per[b]) {
			break
		}
		d = append(d, float64(r.Per[a][i].Stats().P50-r.Per[b][i].Stats().P50))
	}
	return time.Duration(bench.Median(d))
}

// wantBenchDir tells whether WRITEBACK_BENCH_DIRS (ad, openldap,
// comma-separated; empty for all) names the directory type typ.
func wantBenchDir(typ string) bool {
	o := os.Getenv("WRITEBACK_BENCH_DIRS")
	return o == "" || slices.Contains(strings.Split(o, ","), typ)
}

// directInput is the direct connection to d that the portal (direct mode)
// and the agent (its own data folder) both save.
func directInput(env testbed.Env, d directoryCase) writeback.Input {
	return writeback.Input{Type: directory.Type(d.typ), URLs: []string{d.dir.URL}, CAPEM: env.CAPEM(),
		BindDN: d.dir.BindDN, BindPassword: d.dir.BindPassword, BaseDNs: []string{d.dir.PeopleDN}, PasswordWriteback: true}
}

// writebackOn saves in on p and turns the portal's writeback switch on.
func writebackOn(tb testing.TB, p *portal, in writeback.Input) {
	tb.Helper()
	ctx := context.Background()
	if _, err := p.wb.SaveConnection(ctx, audit.CommandLine, 0, in); err != nil {
		tb.Fatal(err)
	}
	if _, _, err := p.settings.SaveOnPrem(ctx, audit.CommandLine, 0, settings.OnPrem{Writeback: true, Unlock: true}); err != nil {
		tb.Fatal(err)
	}
}

// agentDeployment is a portal in agents mode served over HTTPS, with one
// writeback agent connected to it over a WebSocket: the agent program's
// parts (connector.Agent, its own store and writeback service holding the
// direct connection, a *directory.Client) dial the portal's WebSocket
// endpoint as cmd/writeback-agent does.
type agentDeployment struct {
	portal *portal
	hub    *agenthub.Hub
	srv    *httptest.Server
	ident  *agentwire.Identity
}

func newAgentDeployment(tb testing.TB, env testbed.Env, d directoryCase) *agentDeployment {
	tb.Helper()
	ctx := context.Background()

	// The agent's data folder: the direct connection, as `writeback-agent
	// directory set` stores it, and its identity.
	side := newPortal(tb)
	if _, err := side.wb.SaveConnection(ctx, audit.CommandLine, 0, directInput(env, d)); err != nil {
		tb.Fatal(err)
	}
	ident, err := agentwire.NewIdentity()
	if err != nil {
		tb.Fatal(err)
	}

	// The portal: the connection saved direct first, then switched to
	// agents mode (which clears the servers and the service account).
	p := newPortal(tb)
	writebackOn(tb, p, directInput(env, d))
	_, meta, err := p.wb.Connection(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := p.wb.SaveConnection(ctx, audit.CommandLine, meta.Version, writeback.Input{Mode: writeback.ModeAgents}); err != nil {
		tb.Fatal(err)
	}
	reg := &agentRegistry{agents: map[string]agentwire.Public{}, names: map[string]string{}}
	reg.enrol("id-bench", "bench-agent", ident.Public())
	hub := agenthub.New(reg, p.log)
	tb.Cleanup(hub.Shutdown)
	p.wb.UseAgents(hub)
	base, _ := url.Parse(testBaseURL)
	s := handlers.New(handlers.Config{BaseURL: base, CookieHashKey: p.keys.Derive("h"), CookieBlockKey: p.keys.Derive("b")}, p.log,
		handlers.Deps{Admins: p.admins, Settings: p.settings, Writeback: p.wb, SelfService: p.ss, Audit: p.audit, AgentHub: hub})
	srv := httptest.NewUnstartedServer(s.Routes())
	srv.Config.ReadTimeout, srv.Config.WriteTimeout = 10*time.Second, 10*time.Second
	srv.StartTLS()
	tb.Cleanup(srv.Close)

	ag := connector.New(connector.Config{
		AgentID: "id-bench", Identity: ident, PortalKey: hub.PublicKey(),
		Directory: func(ctx context.Context) (directory.Directory, []string, error) {
			cl, c, err := side.wb.Client(ctx)
			return cl, c.BaseDNs, err
		},
		Status: func(ctx context.Context) agentwire.Status {
			c, _, err := side.wb.Connection(ctx)
			return agentwire.Status{Version: "bench", Host: "agent.corp.test", PasswordWriteback: err == nil && c.PasswordWriteback,
				Configured: err == nil && c.Configured(), Directory: string(c.Type) + " " + strings.Join(c.URLs, ", ")}
		},
		// The agent's own write limit (120 a minute by default) would
		// refuse a benchmark's load: it is not what is measured.
		WritesPerMinute: 1 << 30,
	})
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = ag.Run(runCtx, func(ctx context.Context) (connector.Conn, error) {
			c, _, err := websocket.Dial(ctx, "wss"+strings.TrimPrefix(srv.URL, "https")+agentwire.PathConnect,
				&websocket.DialOptions{HTTPClient: srv.Client(), HTTPHeader: http.Header{agentwire.HeaderAgentID: {"id-bench"}}})
			if err != nil {
				return nil, err
			}
			c.SetReadLimit(agentwire.MaxMessage)
			return agentConn{c}, nil
		})
	}()
	tb.Cleanup(func() { stop(); <-done })
	deadline := time.Now().Add(10 * time.Second)
	for n, w := hub.Connected(); n != 1 || w != 1; n, w = hub.Connected() {
		if time.Now().After(deadline) {
			tb.Fatal("the agent did not connect")
		}
		time.Sleep(5 * time.Millisecond)
	}
	return &agentDeployment{portal: p, hub: hub, srv: srv, ident: ident}
}

// BenchmarkAgentReset is issue 10 item 11: a helpdesk reset
// (writeback.AdminReset: the switches, the stored connection, the account's
// read and the write, the audit row) through a writeback agent beside the
// same reset over the portal's direct connection, at 1 and 8 callers,
// against Samba AD and OpenLDAP. The agent path is the real one: the
// portal's hub behind the handlers' WebSocket endpoint on an HTTPS server,
// connector.Agent dialling it with coder/websocket, the password sealed to
// the connection's session (HPKE to the agent's key), the agent's own writeback service and *directory.Client
// doing the work. Targets: the agent adds under 5 ms at p50 and costs under
// 10% of the rate.
//
// Each caller resets its own test user (AD serialises writes to one
// account); both paths reset the same users, in interleaved rounds
// (bench.Interleave), and the verdicts are medians over the rounds. It
// runs only with WRITEBACK_BENCH=1 (make bench); WRITEBACK_BENCH_QUICK=1
// makes the counts small; WRITEBACK_BENCH_DIRS (ad, openldap) limits the
// directories. It ignores b.N: use -benchtime 1x.
func BenchmarkAgentReset(b *testing.B) {
	if !bench.Enabled() {
		b.Skip("set WRITEBACK_BENCH=1 (make bench does) to run the writeback agent benchmark against the test bed")
	}
	env := testbed.Load(b)
	ctx := context.Background()
	rounds := 8
	if quick() {
		rounds = 4
	}
	var figs []bench.Figure
	for _, d := range directories(env) {
		if !wantBenchDir(d.typ) {
			continue
		}
		direct := newPortal(b)
		writebackOn(b, direct, directInput(env, d))
		through := newAgentDeployment(b, env, d)
		const maxCallers = 8
		users := make([]testbed.TestUser, maxCallers)
		for i := range users {
			users[i] = d.newUser(b, testbed.UserOptions{})
		}
		reset := func(wb *writeback.Service) func(caller, _ int) error {
			return func(caller, _ int) error {
				_, err := wb.AdminReset(ctx, audit.CommandLine, users[caller].Login, testbed.RandomPassword(), false)
				return err
			}
		}
		viaAgent, viaDirect := reset(through.portal.wb), reset(direct.wb)
		// The part of the agent's cost that item 5 requires: the password
		// sealed on the connection's session (set up once with HPKE to the
		// agent's key) and opened there, timed alone in the same rounds.
		nonce := make([]byte, agentwire.MinNonce)
		portalSess, enc, err := agentwire.NewPortalSession(through.ident.Public(), "id-bench", nonce, nonce)
		if err != nil {
			b.Fatal(err)
		}
		agentSess, err := through.ident.OpenSession("id-bench", nonce, nonce, enc)
		if err != nil {
			b.Fatal(err)
		}
		sealOnly := func(_, i int) error {
			id := fmt.Sprintf("job-%d", i)
			sealed, err := portalSess.Seal(id, agentwire.FieldPassword, []byte(testbed.RandomPassword()))
			if err == nil {
				_, err = agentSess.Open(id, agentwire.FieldPassword, sealed)
			}
			return err
		}

		// The reset really went through the agent: its audit row names it.
		if err := viaAgent(0, 0); err != nil {
			b.Fatalf("%s: reset through the agent: %v", d.typ, err)
		}
		if rows, err := through.portal.db.RecentAudit(ctx, audit.ActivityResetByAdmin, 1); err != nil || len(rows) != 1 ||
			!strings.Contains(rows[0].Details, `"bench-agent"`) {
			b.Fatalf("%s: the reset's audit row does not name the agent: %+v (%v)", d.typ, rows, err)
		}

		for _, n := range []int{1, maxCallers} {
			// Warm-up: both pools, the root DSE, the protected groups, TLS.
			for _, k := range []func(int, int) error{viaDirect, viaAgent} {
				if _, err := bench.Run(n, 2*n, k); err != nil {
					b.Fatalf("%s warm-up: %v", d.typ, err)
				}
			}
			per := scaled(16, 4)
			if n > 1 {
				per = scaled(32, 16)
			}
			kinds := []func(int) (bench.Timing, error){
				func(int) (bench.Timing, error) { return bench.Run(n, per, viaAgent) },
				func(int) (bench.Timing, error) { return bench.Run(n, per, viaDirect) },
			}
			if n == 1 {
				kinds = append(kinds, func(int) (bench.Timing, error) { return bench.Run(n, per, sealOnly) })
			}
			r, err := bench.Interleave(rounds, kinds...)
			if err != nil {
				b.Fatalf("%s, %d callers: %v", d.typ, n, err)
			}
			callers := "1 caller"
			if n > 1 {
				callers = fmt.Sprintf("%d callers", n)
			}
			ag, dir := r.All(0).Stats(), r.All(1).Stats()
			name := fmt.Sprintf("reset through an agent, %s, %s", d.typ, callers)
			figs = append(figs,
				agentLatencyFigure(name+", p50", ag, dir, medianP50Diff(r, 0, 1), len(r.Per[0])),
				agentRateFigure(name+", rate", ag, dir, r.MedianRatio(0, 1, bench.PerSec)))
			fmt.Fprintf(os.Stdout, "agent reset, %s, %s: %d of each in %d rounds; through the agent p50 %s p99 %s %.1f/s; direct p50 %s p99 %s %.1f/s\n",
				d.typ, callers, ag.N, rounds, bench.Ms(ag.P50), bench.Ms(ag.P99), ag.PerSec, bench.Ms(dir.P50), bench.Ms(dir.P99), dir.PerSec)
			if n == 1 {
				fmt.Fprintf(os.Stdout, "agent reset, %s, %s, parts: the password's seal (portal) and open (agent) on the connection's session alone p50 %.1f µs\n",
					d.typ, callers, float64(r.All(2).Stats().P50)/float64(time.Microsecond))
			}
		}
	}
	bench.Print(os.Stdout, "Helpdesk reset (writeback.AdminReset) through a writeback agent (HTTPS WebSocket, sealed password, the agent's own LDAP client) vs over the direct connection", figs)
	b.ReportMetric(0, "ns/op")
}

func TestAgentBenchFigures(t *testing.T) {
	ms := func(f float64) time.Duration { return time.Duration(f * float64(time.Millisecond)) }
	ag, dir := bench.Stats{N: 8, P50: ms(33), PerSec: 30}, bench.Stats{N: 8, P50: ms(30), PerSec: 33}
	for _, tc := range []struct {
		added  time.Duration
		rounds int
		ratio  string
		met    bool
	}{{ms(3), 8, "+3.00 ms", true}, {ms(4.99), 8, "+4.99 ms", true}, {ms(5), 8, "+5.00 ms", false},
		{ms(-0.5), 8, "-0.50 ms", true}, {ms(1), 0, "+1.00 ms", false}} {
		f := agentLatencyFigure("x", ag, dir, tc.added, tc.rounds)
		if f.Met != tc.met || f.Ratio != tc.ratio || f.Value != "33.00 ms" || f.Floor != "direct 30.00 ms" || f.Target != "< +5.00 ms" {
			t.Errorf("added %s, %d rounds: %+v", tc.added, tc.rounds, f)
		}
	}
	for _, tc := range []struct {
		ratio float64
		met   bool
	}{{0.95, true}, {0.90, true}, {0.89, false}, {0, false}} {
		f := agentRateFigure("x", ag, dir, tc.ratio)
		if f.Met != tc.met || f.Value != "30.0/s" || f.Floor != "direct 33.0/s" || f.Target != "≥ 0.90×" {
			t.Errorf("ratio %.2f: %+v", tc.ratio, f)
		}
	}
	// The median of the rounds' p50 differences: rounds of 10−8, 12−9 and
	// 30−10 ms give 3 ms, not the mean (8.3 ms).
	r := bench.Rounds{Per: [][]bench.Timing{
		{{Lat: []time.Duration{ms(10)}}, {Lat: []time.Duration{ms(12)}}, {Lat: []time.Duration{ms(30)}}},
		{{Lat: []time.Duration{ms(8)}}, {Lat: []time.Duration{ms(9)}}, {Lat: []time.Duration{ms(10)}}},
	}}
	if got := medianP50Diff(r, 0, 1); got != ms(3) {
		t.Errorf("medianP50Diff = %s, want 3ms", got)
	}
}
