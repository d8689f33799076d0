package selfservice

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/directory"
	"github.com/writeback/writeback/services/errs"
)

// fakePace is a Pacer on a fake clock: a step "takes" what the test says,
// pads are recorded instead of slept, and draws are chosen by the test.
type fakePace struct {
	p     *Pacer
	mu    sync.Mutex
	now   time.Time
	slept []time.Duration
	spun  []time.Duration // the last moments of pads, spun
	picks []int           // the draws the test wants, in order; empty: the last index
	late  time.Duration   // how late every wait wakes up
}

func newFakePace(start time.Duration) *fakePace {
	fp := &fakePace{p: NewPacer(start), now: time.Unix(1_800_000_000, 0)}
	fp.p.steer = false // exact draws; TestPacerSteersPaddedMedian turns it on
	fp.p.now = func() time.Time { fp.mu.Lock(); defer fp.mu.Unlock(); return fp.now }
	fp.p.sleep = func(ctx context.Context, d time.Duration) bool {
		fp.mu.Lock()
		defer fp.mu.Unlock()
		fp.slept = append(fp.slept, d)
		fp.now = fp.now.Add(d + fp.late)
		return true
	}
	fp.p.spin = func(ctx context.Context, deadline time.Time) {
		fp.mu.Lock()
		defer fp.mu.Unlock()
		if d := deadline.Sub(fp.now); d > 0 {
			fp.spun = append(fp.spun, d)
			fp.now = deadline
		}
	}
	fp.p.pick = func(n int) int {
		fp.mu.Lock()
		defer fp.mu.Unlock()
		if len(fp.picks) == 0 {
			return n - 1
		}
		i := fp.picks[0]
		fp.picks = fp.picks[1:]
		return i
	}
	return fp
}

// run is one step that takes took and ends as o; it returns how long the
// step waited in all (0: not padded).
func (fp *fakePace) run(dir, step string, took time.Duration, o outcome) time.Duration {
	pc := fp.p.begin(step)
	fp.mu.Lock()
	fp.now = fp.now.Add(took)
	n, m := len(fp.slept), len(fp.spun)
	fp.mu.Unlock()
	pc.end(context.Background(), dir, o)
	fp.mu.Lock()
	defer fp.mu.Unlock()
	var waited time.Duration
	for _, d := range append(slices.Clone(fp.slept[n:]), fp.spun[m:]...) {
		waited += d
	}
	return waited
}

// warm records paceWarm real durations of step, 10, 11, 12… ms.
func (fp *fakePace) warm(dir, step string) {
	for i := range paceWarm {
		fp.run(dir, step, time.Duration(10+i)*time.Millisecond, outReal)
	}
}

func ms(n float64) time.Duration { return time.Duration(n * float64(time.Millisecond)) }

func TestPacerBeforeAnySampleEveryOutcomeTakesTheStartValue(t *testing.T) {
	fp := newFakePace(250 * time.Millisecond)
	// A fresh process: an unknown account is not answered at once, and the
	// first real ones take as long (else the first real answer would stand
	// out against the start value).
	if w := fp.run("ad", "start reset", ms(2), outPadded); w != ms(248) {
		t.Errorf("unknown account before any sample waited %v, want 248ms (to the start value)", w)
	}
	for i := range paceWarm {
		if w := fp.run("ad", "start reset", ms(30), outReal); w != ms(220) {
			t.Errorf("real outcome %d during warm-up waited %v, want 220ms", i, w)
		}
	}
	// Warm: the real path pays only what it costs.
	if w := fp.run("ad", "start reset", ms(30), outReal); w != 0 {
		t.Errorf("real outcome once warm waited %v, want 0", w)
	}
	// A real outcome slower than the start value is not held either.
	fp2 := newFakePace(ms(20))
	if w := fp2.run("ad", "change", ms(70), outReal); w != 0 {
		t.Errorf("real outcome slower than the start value waited %v", w)
	}
}

func TestPacerPadsToARecordedRealDuration(t *testing.T) {
	fp := newFakePace(250 * time.Millisecond)
	fp.warm("ad", "change") // 10…17 ms
	cases := []struct {
		pick int
		took time.Duration
		want time.Duration
	}{
		{0, ms(1), ms(9)},     // drawn 10 ms
		{5, ms(1), ms(14)},    // drawn 15 ms
		{7, ms(3), ms(14)},    // drawn 17 ms
		{2, ms(12), 0},        // drawn 12 ms, already took 12 ms
		{1, ms(40), 0},        // slower than the draw: never shortened, never more
		{3, ms(12.5), ms(.5)}, // drawn 13 ms
	}
	for _, c := range cases {
		fp.picks = []int{c.pick}
		if w := fp.run("ad", "change", c.took, outPadded); w != c.want {
			t.Errorf("pick %d, took %v: waited %v, want %v", c.pick, c.took, w, c.want)
		}
	}
	// The padded outcomes recorded nothing: the ring still holds the
	// eight real durations (a draw of index 7 is still 17 ms).
	fp.picks = []int{7}
	if w := fp.run("ad", "change", 0, outPadded); w != ms(17) {
		t.Errorf("after padded outcomes, draw 7 waited %v, want 17ms", w)
	}
}

func TestPacerDrawsFromEveryRecordedSample(t *testing.T) {
	// With the real random draw, padded outcomes take each recorded
	// duration about equally often: the distribution matches, not only the
	// median.
	p := NewPacer(0)
	p.steer = false
	var mu sync.Mutex
	now := time.Unix(0, 0)
	got := map[time.Duration]int{}
	p.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	p.sleep = func(_ context.Context, d time.Duration) bool { got[d]++; return true }
	p.spin = func(context.Context, time.Time) {}
	for i := range paceSamples {
		pc := p.begin("choose email")
		now = now.Add(time.Duration(i+1) * time.Millisecond)
		pc.end(context.Background(), "", outReal)
	}
	const draws = 64 * 200
	for range draws {
		p.begin("choose email").end(context.Background(), "", outPadded)
	}
	if len(got) != paceSamples {
		t.Fatalf("padded to %d distinct durations, want all %d recorded ones", len(got), paceSamples)
	}
	for d, n := range got {
		if n < 100 || n > 320 { // expected 200 each
			t.Errorf("%v drawn %d times of %d", d, n, draws)
		}
	}
}

func TestPacerShownOutcomesAreNeitherPaddedNorRecorded(t *testing.T) {
	fp := newFakePace(250 * time.Millisecond)
	for range 3 * paceWarm {
		if w := fp.run("ad", "change", ms(70), outShown); w != 0 {
			t.Fatalf("a successful change waited %v", w)
		}
	}
	// Still no real sample: an unknown account takes the start value.
	if w := fp.run("ad", "change", ms(1), outPadded); w != ms(249) {
		t.Errorf("after only shown outcomes an unknown account waited %v, want the start value", w)
	}
}

func TestPacerKeepsTheLatestSamplesPerStepAndDirectory(t *testing.T) {
	fp := newFakePace(0)
	// An old, slow period, then paceSamples fast real durations: draws see
	// only the fast ones.
	for range paceSamples {
		fp.run("ad", "start reset", ms(500), outReal)
	}
	for range paceSamples {
		fp.run("ad", "start reset", ms(5), outReal)
	}
	for i := range paceSamples {
		fp.picks = []int{i}
		if w := fp.run("ad", "start reset", 0, outPadded); w != ms(5) {
			t.Fatalf("draw %d waited %v, want 5ms (the old samples are gone)", i, w)
		}
	}
	// Another step, and the same step of another directory, learn apart.
	if w := fp.run("ad", "change", 0, outPadded); w != 0 {
		t.Errorf("another step borrowed samples: waited %v", w)
	}
	fp.warm("ldap", "start reset") // 10…17 ms
	fp.picks = []int{0}
	if w := fp.run("ldap", "start reset", 0, outPadded); w != ms(10) {
		t.Errorf("other directory: waited %v, want its own 10ms", w)
	}
}

// TestPacerSteersPaddedMedian: when a padded outcome's own cost is close to
// what a real one costs (here: the same spread, 16 ms cheaper), "wait until
// the draw" alone often ends later than the draw, and the padded median
// lands over the real one; the steering brings it back.
func TestPacerSteersPaddedMedian(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	fp := newFakePace(0)
	fp.p.pick = func(n int) int { return rnd.IntN(n) }
	for i := range paceSamples {
		fp.run("ldap", "start reset", ms(float64(i+1)), outReal) // 1…64 ms, median 33
	}
	took := func(steer bool) time.Duration {
		fp.p.steer = steer
		var out []time.Duration
		for i := range 6000 {
			own := max(0, ms(float64(1+rnd.IntN(paceSamples)-16)))
			pc := fp.p.begin("start reset")
			fp.mu.Lock()
			fp.now = fp.now.Add(own)
			fp.mu.Unlock()
			pc.end(context.Background(), "ldap", outPadded)
			if i >= 3000 { // once steered
				out = append(out, fp.p.now().Sub(pc.start))
			}
		}
		slices.Sort(out)
		return out[len(out)/2]
	}
	if m := took(false); m < ms(36) {
		t.Fatalf("unsteered median %v: the test does not show the shift it is about", m)
	}
	if m := took(true); m < ms(31) || m > ms(35) {
		t.Errorf("steered median of padded outcomes %v, want the real median 33ms", m)
	}
}

// TestPacerAllowsForLateTimers: waits wake up late; the Pacer learns by how
// much and asks for that much less, so a padded outcome still takes the
// duration it drew.
func TestPacerAllowsForLateTimers(t *testing.T) {
	fp := newFakePace(0)
	fp.warm("ad", "start reset") // 10…17 ms
	fp.late = ms(1)
	var took []time.Duration
	for range 20 {
		fp.picks = []int{7}
		pc := fp.p.begin("start reset")
		pc.end(context.Background(), "ad", outPadded)
		took = append(took, fp.p.now().Sub(pc.start))
	}
	if took[0] != ms(18) {
		t.Errorf("first wait: took %v, want 18ms (17 drawn + 1 late, nothing learnt yet)", took[0])
	}
	for i, d := range took[1:] {
		if d != ms(17) {
			t.Errorf("wait %d: took %v, want the 17ms drawn", i+1, d)
		}
	}
	// A pad shorter than the lateness is spun, not slept: still exact.
	fp.picks = []int{0}
	slept := len(fp.slept)
	if w := fp.run("ad", "start reset", ms(9.5), outPadded); w != ms(.5) || len(fp.slept) != slept {
		t.Errorf("a 0.5ms pad with 1ms late timers waited %v, slept %v", w, fp.slept[slept:])
	}
}

func TestPacerCapsPads(t *testing.T) {
	fp := newFakePace(0)
	for range paceWarm {
		fp.run("ad", "change", 10*time.Second, outReal) // a directory slow for a while
	}
	if w := fp.run("ad", "change", ms(1), outPadded); w != DefaultPadMax-ms(1) {
		t.Errorf("waited %v, want the cap %v", w, DefaultPadMax)
	}
	big := newFakePace(time.Hour)
	if w := big.run("ad", "change", 0, outPadded); w != DefaultPadMax {
		t.Errorf("start value over the cap: waited %v", w)
	}
}

func TestPacerForgetsOldDirectories(t *testing.T) {
	fp := newFakePace(0)
	for i := range paceKeys + 1 {
		fp.warm(fmt.Sprintf("dir-%d", i), "change")
	}
	if n := len(fp.p.rings); n > paceKeys {
		t.Errorf("%d rings kept, want at most %d", n, paceKeys)
	}
}

// TestPacerConcurrent: many steps record and draw at once (run with -race).
func TestPacerConcurrent(t *testing.T) {
	p := NewPacer(0)
	var mu sync.Mutex
	var pads int
	p.sleep = func(_ context.Context, d time.Duration) bool {
		if d <= 0 || d > DefaultPadMax {
			t.Errorf("pad %v", d)
		}
		mu.Lock()
		pads++
		mu.Unlock()
		return true
	}
	// Every step takes 0 on this clock after the first: real durations
	// are what time.Now gives, pads go to the fake sleep.
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for i := range 500 {
				o := outPadded
				if (g+i)%2 == 0 {
					o = outReal
				}
				pc := p.begin("start reset")
				time.Sleep(time.Microsecond)
				pc.end(context.Background(), "ad", o)
			}
		})
	}
	wg.Wait()
	r := p.rings["ad\x00start reset"]
	if r == nil || r.n != paceSamples {
		t.Fatalf("ring after 4000 real outcomes: %+v", r)
	}
	for _, d := range r.d {
		if d <= 0 {
			t.Errorf("recorded %v", d)
		}
	}
	if pads == 0 {
		t.Error("no padded outcome waited")
	}
}

func TestSleepCtxStopsWhenTheRequestEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	if sleepCtx(ctx, time.Minute) {
		t.Error("a cancelled wait says it waited")
	}
	if el := time.Since(start); el > time.Second {
		t.Errorf("a cancelled request waited %v", el)
	}
	start = time.Now()
	if !sleepCtx(context.Background(), 20*time.Millisecond) {
		t.Error("a wait says it was cancelled")
	}
	if el := time.Since(start); el < 20*time.Millisecond {
		t.Errorf("waited %v of 20ms", el)
	}
}

func TestReachedDirectory(t *testing.T) {
	op := func(result uint16, code directory.Code) error {
		return errs.E(errs.Unauthorized, "x", &directory.OpError{Op: "change", Code: code, LDAPResult: result})
	}
	cases := []struct {
		name string
		err  error
		want bool
	}{
		{"success", nil, true},
		{"wrong current password (AD 19)", op(ldap.LDAPResultConstraintViolation, directory.CodeBadPassword), true},
		{"wrong password (bind 49)", op(ldap.LDAPResultInvalidCredentials, directory.CodeBadPassword), true},
		{"refused before sending: protected", op(0, directory.CodeProtected), false},
		{"refused before sending: locked", op(0, directory.CodeLocked), false},
		{"network error", op(ldap.ErrorNetwork, directory.CodeUnavailable), false},
		{"not an OpError", errors.New("boom"), false},
		{"not found", errs.E(errs.NotFound, "x", nil), false},
	}
	for _, c := range cases {
		if got := reachedDirectory(c.err); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

// paceFixture installs a fake Pacer whose clock stands still during a step
// (a step "takes" 0) and warms the given steps with real durations of
// 50 ms: a padded outcome then waits 50 ms, a real one waits nothing and
// adds a sample.
func (fx *fixture) paceFixture(steps ...string) *fakePace {
	fp := newFakePace(time.Hour)
	for _, st := range steps {
		for range paceWarm {
			fp.run("", st, ms(50), outReal)
		}
	}
	fp.slept = nil
	// Real steps on this clock record 0: draw a warm 50 ms one.
	fp.p.pick = func(int) int { return 0 }
	fx.s.Pacer = fp.p
	return fp
}

// outcomeOf tells how the last paced step ended: padded (it waited),
// real (it added a sample) or shown (neither).
func (fp *fakePace) outcomeOf(t *testing.T, step string, samplesBefore int, f func()) outcome {
	t.Helper()
	fp.mu.Lock()
	fp.slept = nil
	fp.mu.Unlock()
	f()
	fp.mu.Lock()
	defer fp.mu.Unlock()
	n := fp.samples(step)
	switch {
	case len(fp.slept) > 0 && n == samplesBefore:
		return outPadded
	case len(fp.slept) == 0 && n == samplesBefore+1:
		return outReal
	case len(fp.slept) == 0 && n == samplesBefore:
		return outShown
	}
	t.Fatalf("%s: slept %v, samples %d → %d", step, fp.slept, samplesBefore, n)
	return 0
}

// samples is how many real durations step holds (caller holds fp.mu or
// no step runs).
func (fp *fakePace) samples(step string) int {
	fp.p.mu.Lock()
	defer fp.p.mu.Unlock()
	if r := fp.p.rings["\x00"+step]; r != nil {
		return r.n
	}
	return 0
}

func outcomeName(o outcome) string {
	return map[outcome]string{outPadded: "padded", outReal: "real", outShown: "shown"}[o]
}

// TestStartPacedByWhatItDid: at the start of a reset, every account found
// does the same work (group membership and methods read, a protected or
// disabled one too) and is not padded; a name that finds none is padded
// to a real duration.
func TestStartPacedByWhatItDid(t *testing.T) {
	protected := directory.User{ID: "S-1-5-21-adm", DN: "CN=Adm,OU=People,DC=example,DC=test", Login: "adm", Email: "adm@example.com",
		Protected: true, ProtectedReason: "member of Domain Admins"}
	disabled := directory.User{ID: "S-1-5-21-off", DN: "CN=Off,OU=People,DC=example,DC=test", Login: "off", Email: "off@example.com", Disabled: true}
	nomail := directory.User{ID: "S-1-5-21-nomail", DN: "CN=No Mail,OU=People,DC=example,DC=test", Login: "nomail"}
	fx := newFixture(t, Methods{Email: true}, alice, protected, disabled, nomail)
	if _, err := fx.s.SavePolicy(context.Background(), audit.CommandLine, 1, "test", func(p *Policy) {
		p.Enabled, p.Group = EnabledGroup, "CN=SSPR,OU=Groups,DC=example,DC=test"
	}); err != nil {
		t.Fatal(err)
	}
	fp := fx.paceFixture("start reset")
	cases := []struct {
		login string
		want  outcome
	}{
		{"alice", outReal},
		{"adm", outReal},
		{"off", outReal},
		{"nomail", outReal},
		{"nobody", outPadded},
		{"alice\u00a0x", outPadded}, // finds none either
	}
	for _, c := range cases {
		members := fx.dir.count("member-of")
		got := fp.outcomeOf(t, "start reset", fp.samples("start reset"), func() { fx.start(KindReset, c.login, "b") })
		if got != c.want {
			t.Errorf("start %q: %s, want %s", c.login, outcomeName(got), outcomeName(c.want))
		}
		if read := fx.dir.count("member-of") - members; c.want == outReal && read != 1 {
			t.Errorf("start %q read the group membership %d times, want 1 like every account", c.login, read)
		}
	}
	// A name refused before the directory does no account's work and gets
	// the same field error whoever it names: it is neither padded nor
	// recorded.
	got := fp.outcomeOf(t, "start reset", fp.samples("start reset"), func() {
		if _, err := fx.s.Start(context.Background(), KindReset, "bad\x00name", "b", audit.Actor{}); err == nil {
			t.Error("a name with a control character was accepted")
		}
	})
	if got != outShown {
		t.Errorf("refused name: %s, want neither padded nor recorded", outcomeName(got))
	}
}

// TestChoosePacedByWhatItDid: sending a code reads where codes go for the
// flow of an account (real) and nothing for a flow that can never verify
// (padded to the time of the first).
func TestChoosePacedByWhatItDid(t *testing.T) {
	protected := directory.User{ID: "S-1-5-21-adm", DN: "CN=Adm,OU=People,DC=example,DC=test", Login: "adm", Email: "adm@example.com",
		Protected: true, ProtectedReason: "member of Domain Admins"}
	fx := newFixture(t, Methods{Email: true, Questions: true}, alice, protected)
	fx.registerQuestions(alice, "Paris", "Rex", "Volvo")
	fp := fx.paceFixture("choose email", "choose questions")
	for _, c := range []struct {
		login, method string
		want          outcome
	}{
		{"alice", MethodEmail, outReal},
		{"alice", MethodQuestions, outReal},
		{"adm", MethodEmail, outPadded},
		{"nobody", MethodEmail, outPadded},
		{"nobody", MethodQuestions, outPadded},
	} {
		b := "browser-" + c.login + c.method
		fx.s.Pacer = NewPacer(0)
		id := fx.start(KindReset, c.login, b)
		// A name that finds none offers the questions only for some names
		// (its choice is a decoy drawn from the name): take one that does.
		for i := 0; !slices.Contains(fx.view(id, b).Methods, c.method); i++ {
			id = fx.start(KindReset, c.login+strconv.Itoa(i), b)
		}
		fx.s.Pacer = fp.p
		step := "choose " + c.method
		gets := fx.dir.count("get")
		got := fp.outcomeOf(t, step, fp.samples(step), func() { fx.choose(id, b, c.method) })
		if got != c.want {
			t.Errorf("%s chooses %s: %s, want %s", c.login, c.method, outcomeName(got), outcomeName(c.want))
		}
		if c.method == MethodEmail && (fx.dir.count("get")-gets == 1) != (c.want == outReal) {
			t.Errorf("%s chooses e-mail: %d directory reads", c.login, fx.dir.count("get")-gets)
		}
	}
}

// TestChangeRefusesTheSamePasswordForEveryone: a new password equal to the
// current one is refused before the lookup, so the answer is the same for
// an account and for a name that finds none (the directory client refuses
// it only for accounts it found).
func TestChangeRefusesTheSamePasswordForEveryone(t *testing.T) {
	fx := newFixture(t, Methods{Email: true}, alice)
	fx.s.Pacer = NewPacer(0)
	for _, login := range []string{"alice", "nobody"} {
		err := fx.s.Change(context.Background(), login, "Same-Passw0rd", "Same-Passw0rd", "Same-Passw0rd", audit.Actor{ClientIP: "192.0.2.7"})
		f := errs.FieldsOf(err)
		if f["password"] != "The new password must be different from the current one." {
			t.Errorf("%s: %v (fields %v)", login, err, f)
		}
	}
}

func TestSpinUntil(t *testing.T) {
	for _, d := range []time.Duration{300 * time.Microsecond, 5 * time.Millisecond} {
		start := time.Now()
		spinUntil(context.Background(), start.Add(d))
		if el := time.Since(start); el < d || el > d+time.Second {
			t.Errorf("spin for %v took %v", d, el)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	spinUntil(ctx, start.Add(time.Minute))
	if el := time.Since(start); el > time.Second {
		t.Errorf("a cancelled request spun %v", el)
	}
}

// TestChangePacedAfterTheForm: a form refused for what was typed answers
// the same whoever is named and is not paced; from the lookup on, an
// outcome that did not reach the directory (here: no directory connection
// at all) is padded.
func TestChangePacedAfterTheForm(t *testing.T) {
	fx := newFixture(t, Methods{Email: true}, alice)
	fp := fx.paceFixture("change")
	from := audit.Actor{ClientIP: "192.0.2.9"}
	got := fp.outcomeOf(t, "change", fp.samples("change"), func() {
		if err := fx.s.Change(context.Background(), "alice", "Old-Passw0rd", "New-Passw0rd", "Other-Passw0rd", from); len(errs.FieldsOf(err)) == 0 {
			t.Errorf("mismatched confirmation: %v", err)
		}
	})
	if got != outShown {
		t.Errorf("refused form: %s, want neither padded nor recorded", outcomeName(got))
	}
	got = fp.outcomeOf(t, "change", fp.samples("change"), func() {
		if err := fx.s.Change(context.Background(), "alice", "Old-Passw0rd", "New-Passw0rd", "New-Passw0rd", from); err == nil {
			t.Error("a change without a directory connection succeeded")
		}
	})
	if got != outPadded {
		t.Errorf("no directory: %s, want padded", outcomeName(got))
	}
}
