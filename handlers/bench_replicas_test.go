package handlers_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/writeback/writeback/testbed"
	"github.com/writeback/writeback/testbed/bench"
)

// BenchmarkReplicasPages is issue 11's page figure: GET /reset at 50
// keep-alive connections through the test's own round-robin proxy (the
// balancer of replicas_test.go) to one replica and to two replicas on one
// PostgreSQL database, beside a static asset through the same proxy, in
// interleaved rounds. The portals are set up as in BenchmarkPages, on
// replica A only: B reads everything from the database. Every caller is a
// browser of its own whose session cookie was issued by replica A, so with
// two replicas half the requests carry a cookie B has never seen.
func BenchmarkReplicasPages(b *testing.B) {
	if !bench.Enabled() {
		b.Skip("WRITEBACK_BENCH=1 runs the benchmarks (make bench)")
	}
	env := testbed.Load(b)
	dbURL := env.NewPostgresDB(b)
	pa, pb, lite := newPortalOn(b, dbURL), newPortalOn(b, dbURL), newPortal(b)
	configureForBench(b, pa)
	configureForBench(b, lite)
	ha, hb := pa.handler(nil), pb.handler(nil)
	srvLite := httptest.NewServer(lite.handler(nil))
	defer srvLite.Close()
	one := &balancer{replicas: [2]http.Handler{ha, ha}}
	two := &balancer{replicas: [2]http.Handler{ha, hb}}
	one.route.Store(-1)
	two.route.Store(-1)
	srvOne, srvTwo := httptest.NewServer(one), httptest.NewServer(two)
	defer srvOne.Close()
	defer srvTwo.Close()

	tr := &http.Transport{MaxIdleConns: 4 * pageConns, MaxIdleConnsPerHost: 2 * pageConns, DisableCompression: true}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	// Cookies issued by A only (one's both slots are A).
	one.route.Store(0)
	anon := make([]string, pageConns)
	for i := range anon {
		anon[i] = benchSessionCookie(b, hc, srvOne.URL)
	}
	one.route.Store(-1)
	liteCookies := make([]string, pageConns)
	for i := range liteCookies {
		liteCookies[i] = benchSessionCookie(b, hc, srvLite.URL)
	}

	// Both replicas show the reset page with A's cookie before measuring.
	for i := range 2 {
		two.route.Store(int32(i))
		body, err := benchGet(hc, srvTwo.URL+benchResetPath, anon[0], true)
		if err != nil || !strings.Contains(body, `name="login"`) {
			b.Fatalf("replica %d: GET /reset with A's cookie: %v\n%s", i, err, body)
		}
	}
	two.route.Store(-1)

	get := func(base, path string, cookie func(int) string) func(int) (bench.Timing, error) {
		return func(int) (bench.Timing, error) {
			return bench.Run(pageConns, pageRequests, func(caller, _ int) error {
				_, err := benchGet(hc, base+path, cookie(caller), false)
				return err
			})
		}
	}
	none := func(int) string { return "" }
	mine := func(c int) string { return anon[c] }
	kinds := []func(int) (bench.Timing, error){
		get(srvTwo.URL, benchStaticPath, none),
		get(srvLite.URL, benchResetPath, func(c int) string { return liteCookies[c] }),
		get(srvOne.URL, benchResetPath, mine),
		get(srvTwo.URL, benchResetPath, mine),
	}
	for _, k := range kinds { // warm-up
		if _, err := k(0); err != nil {
			b.Fatal(err)
		}
	}
	rounds, err := bench.Interleave(pageRounds, kinds...)
	if err != nil {
		b.Fatal(err)
	}
	if two.served[1].Load() == 0 {
		b.Fatal("the proxy sent nothing to replica B")
	}
	bench.Print(os.Stdout, fmt.Sprintf("Replicas on PostgreSQL behind a round-robin proxy: GET /reset at %d connections vs a static asset (%s), %d rounds of %d requests each",
		pageConns, benchStaticPath, pageRounds, pageRequests), replicaFigures(rounds))
}

// replicaFigures turns the rounds of (static, /reset on a single box with
// SQLite, /reset on one replica, /reset on two) into the figures: each
// replica rate against the static asset's, with the single box's bar of
// BenchmarkPages (≥ 0.80×), and two replicas against one and against the
// single box.
func replicaFigures(r bench.Rounds) []bench.Figure {
	st, lite, one, two := r.All(0).Stats(), r.All(1).Stats(), r.All(2).Stats(), r.All(3).Stats()
	rOne, rTwo := r.MedianRatio(2, 0, bench.PerSec), r.MedianRatio(3, 0, bench.PerSec)
	rLite := r.MedianRatio(3, 1, bench.PerSec)
	perSec := func(s bench.Stats) string { return fmt.Sprintf("%.0f/s", s.PerSec) }
	return []bench.Figure{
		{Name: "GET /reset, two replicas against a single box, req/s", Value: perSec(two), Floor: "single box (SQLite) " + perSec(lite),
			Ratio: bench.Times(rLite), Target: "≥ 0.80×", Met: rLite >= 0.8},
		{Name: "GET /reset, one replica (PostgreSQL), requests/s", Value: perSec(one), Floor: "static asset " + perSec(st),
			Ratio: bench.Times(rOne), Target: "≥ 0.80×", Met: rOne >= 0.8},
		{Name: "GET /reset, two replicas round-robin, requests/s", Value: perSec(two), Floor: "static asset " + perSec(st),
			Ratio: bench.Times(rTwo), Target: "≥ 0.80×", Met: rTwo >= 0.8},
		{Name: "GET /reset, two replicas against one, p99", Value: bench.Ms(two.P99), Floor: "one replica " + bench.Ms(one.P99),
			Ratio: bench.Times(float64(two.P99) / float64(max(one.P99, 1))), Target: "≤ 1.50×", Met: one.P99 > 0 && two.P99 <= one.P99*3/2},
	}
}
