// Package bench holds what every `make bench` benchmark shares: timing
// operations at a number of concurrent callers, interleaving the measured
// path with its floor (the bare directory operation, a static file) in
// rounds so that drift on the machine falls on both alike, and printing each
// figure beside its floor with its target and a verdict.
//
// A verdict compares medians over rounds: on a noisy 2-core machine one round
// can be off by tens of percent, the median of several interleaved rounds
// rarely is.
package bench

import (
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
)

// Enabled reports whether the long-running benchmarks should run: `make
// bench` sets WRITEBACK_BENCH=1.
func Enabled() bool { return os.Getenv("WRITEBACK_BENCH") == "1" }

// Timing is the latencies of some operations and the wall time they took.
type Timing struct {
	Lat  []time.Duration
	Wall time.Duration
}

// Add appends another measurement of the same kind.
func (t *Timing) Add(o Timing) {
	t.Lat = append(t.Lat, o.Lat...)
	t.Wall += o.Wall
}

// Stats summarises a Timing.
type Stats struct {
	N      int
	P50    time.Duration
	P99    time.Duration
	PerSec float64
}

// Stats computes the nearest-rank median and 99th percentile and the rate.
func (t Timing) Stats() Stats {
	lat := slices.Clone(t.Lat)
	slices.Sort(lat)
	s := Stats{N: len(lat), P50: Percentile(lat, 50), P99: Percentile(lat, 99)}
	if t.Wall > 0 {
		s.PerSec = float64(len(lat)) / t.Wall.Seconds()
	}
	return s
}

// Percentile is the nearest-rank percentile p (0–100) of sorted latencies.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// Run makes total calls of f spread over n concurrent callers (caller c makes
// calls c, c+n, c+2n…, numbered i) and returns each call's latency and the
// wall time of the whole. The first error stops its caller and is returned.
func Run(n, total int, f func(caller, i int) error) (Timing, error) {
	lats := make([][]time.Duration, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := time.Now()
	for caller := range n {
		wg.Go(func() {
			for i := caller; i < total; i += n {
				t0 := time.Now()
				if err := f(caller, i); err != nil {
					errs[caller] = fmt.Errorf("caller %d, call %d: %w", caller, i, err)
					return
				}
				lats[caller] = append(lats[caller], time.Since(t0))
			}
		})
	}
	wg.Wait()
	t := Timing{Wall: time.Since(start)}
	for c := range n {
		if errs[c] != nil {
			return t, errs[c]
		}
		t.Lat = append(t.Lat, lats[c]...)
	}
	return t, nil
}

// Rounds is a measurement of several kinds of operation (say the portal's
// path and its floor) taken in interleaved rounds.
type Rounds struct {
	// Per[k][r] is kind k's timing in round r.
	Per [][]Timing
}

// Interleave runs rounds rounds of every kind, reversing the order of the
// kinds in every other round so neither always goes first. Each kind is
// called with the round number and returns that round's timing.
func Interleave(rounds int, kinds ...func(round int) (Timing, error)) (Rounds, error) {
	res := Rounds{Per: make([][]Timing, len(kinds))}
	order := make([]int, len(kinds))
	for r := range rounds {
		for i := range order {
			order[i] = i
			if r%2 == 1 {
				order[i] = len(kinds) - 1 - i
			}
		}
		for _, k := range order {
			t, err := kinds[k](r)
			if err != nil {
				return res, fmt.Errorf("round %d, kind %d: %w", r, k, err)
			}
			res.Per[k] = append(res.Per[k], t)
		}
	}
	return res, nil
}

// All is kind k's timings of every round together.
func (r Rounds) All(k int) Timing {
	var t Timing
	for _, x := range r.Per[k] {
		t.Add(x)
	}
	return t
}

// MedianRatio is the median over rounds of f(kind a's round stats) /
// f(kind b's round stats): the figure a verdict uses.
func (r Rounds) MedianRatio(a, b int, f func(Stats) float64) float64 {
	var ratios []float64
	for i := range r.Per[a] {
		if i >= len(r.Per[b]) {
			break
		}
		den := f(r.Per[b][i].Stats())
		if den == 0 {
			continue
		}
		ratios = append(ratios, f(r.Per[a][i].Stats())/den)
	}
	return Median(ratios)
}

// Median of some numbers (the mean of the middle two for an even count); 0
// for none.
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// P50 and PerSec pick a figure out of Stats, for MedianRatio.
func P50(s Stats) float64    { return float64(s.P50) }
func P99(s Stats) float64    { return float64(s.P99) }
func PerSec(s Stats) float64 { return s.PerSec }

// Figure is one line of the report: what was measured, beside its floor, the
// target and whether it was met.
type Figure struct {
	Name   string // "self-service change, 8 callers, p50"
	Value  string // "31.2 ms"
	Floor  string // "bare AD change 29.0 ms"; empty when the figure has no floor (cold start)
	Ratio  string // "1.08×" or "+4.1 ms"; empty when none
	Target string // "≤ 1.15×"
	Met    bool
}

// Verdict is "met" or "NOT MET".
func (f Figure) Verdict() string {
	if f.Met {
		return "met"
	}
	return "NOT MET"
}

// Print writes a titled table of figures to w. Every figure line starts with
// "BENCH " so that `make bench` can gather the verdicts of all packages into
// one summary at the end.
func Print(w io.Writer, title string, figs []Figure) {
	var sb strings.Builder
	fmt.Fprintf(&sb, "\n%s\n", title)
	for _, f := range figs {
		floor := f.Floor
		if floor == "" {
			floor = "-"
		}
		ratio := f.Ratio
		if ratio == "" {
			ratio = "-"
		}
		fmt.Fprintf(&sb, "BENCH %-52s │ %-12s │ floor %-34s │ %-9s │ target %-12s │ %s\n",
			f.Name, f.Value, floor, ratio, f.Target, f.Verdict())
	}
	io.WriteString(w, sb.String())
}

// Ms formats a duration in milliseconds with two decimals.
func Ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)) }

// Times formats a ratio as "1.07×".
func Times(x float64) string { return fmt.Sprintf("%.2f×", x) }
