package bench

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	ms := func(xs ...int) []time.Duration {
		var out []time.Duration
		for _, x := range xs {
			out = append(out, time.Duration(x)*time.Millisecond)
		}
		return out
	}
	tests := []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"empty", nil, 50, 0},
		{"one", ms(7), 99, 7 * time.Millisecond},
		{"median of odd", ms(1, 2, 3), 50, 2 * time.Millisecond},
		{"median of even is the lower", ms(1, 2, 3, 4), 50, 2 * time.Millisecond},
		{"p99 of 100", ms(make([]int, 100)...), 99, 0},
		{"p99 picks the 99th", append(ms(make([]int, 98)...), ms(5, 9)...), 99, 5 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Percentile(tt.sorted, tt.p); got != tt.want {
				t.Errorf("Percentile(%v, %v) = %v, want %v", tt.sorted, tt.p, got, tt.want)
			}
		})
	}
}

func TestMedian(t *testing.T) {
	tests := []struct {
		xs   []float64
		want float64
	}{{nil, 0}, {[]float64{3}, 3}, {[]float64{3, 1, 2}, 2}, {[]float64{4, 1, 3, 2}, 2.5}}
	for _, tt := range tests {
		if got := Median(tt.xs); got != tt.want {
			t.Errorf("Median(%v) = %v, want %v", tt.xs, got, tt.want)
		}
	}
}

func TestInterleaveAlternatesOrderAndTakesMedianRatio(t *testing.T) {
	var order []int
	kind := func(k int, d time.Duration) func(int) (Timing, error) {
		return func(round int) (Timing, error) {
			order = append(order, k)
			// Round 2 is an outlier for kind 0.
			if k == 0 && round == 2 {
				d *= 10
			}
			return Timing{Lat: []time.Duration{d}, Wall: d}, nil
		}
	}
	r, err := Interleave(3, kind(0, 11*time.Millisecond), kind(1, 10*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	if want := []int{0, 1, 1, 0, 0, 1}; !slices.Equal(order, want) {
		t.Errorf("order = %v, want %v", order, want)
	}
	if got := r.MedianRatio(0, 1, P50); got < 1.09 || got > 1.11 {
		t.Errorf("median ratio = %v, want 1.1 (the outlier round ignored)", got)
	}
	if got := r.All(0).Stats().N; got != 3 {
		t.Errorf("All(0) has %d latencies, want 3", got)
	}
}

func TestInterleaveStopsAtError(t *testing.T) {
	boom := errors.New("boom")
	_, err := Interleave(2, func(int) (Timing, error) { return Timing{}, boom })
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want boom", err)
	}
}

func TestRunSpreadsCallsAndReportsErrors(t *testing.T) {
	seen := make([]int, 10)
	tm, err := Run(3, 10, func(caller, i int) error {
		if i%3 != caller {
			t.Errorf("call %d went to caller %d", i, caller)
		}
		seen[i]++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(tm.Lat) != 10 {
		t.Errorf("%d latencies, want 10", len(tm.Lat))
	}
	for i, n := range seen {
		if n != 1 {
			t.Errorf("call %d made %d times", i, n)
		}
	}
	boom := errors.New("boom")
	if _, err := Run(2, 4, func(caller, i int) error { return boom }); !errors.Is(err, boom) {
		t.Errorf("err = %v, want boom", err)
	}
}

func TestPrintMarksEveryFigure(t *testing.T) {
	var buf bytes.Buffer
	Print(&buf, "Title", []Figure{
		{Name: "a", Value: "1 ms", Floor: "bare 1 ms", Ratio: "1.00×", Target: "≤ 1.15×", Met: true},
		{Name: "b", Value: "30 ms", Target: "< 15 ms"},
	})
	out := buf.String()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || lines[0] != "Title" {
		t.Fatalf("output:\n%s", out)
	}
	if !strings.HasPrefix(lines[1], "BENCH a") || !strings.HasSuffix(lines[1], "│ met") {
		t.Errorf("line 1 = %q", lines[1])
	}
	if !strings.HasPrefix(lines[2], "BENCH b") || !strings.HasSuffix(lines[2], "│ NOT MET") || !strings.Contains(lines[2], "floor -") {
		t.Errorf("line 2 = %q", lines[2])
	}
}
