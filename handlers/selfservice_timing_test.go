package handlers_test

import (
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/writeback/writeback/services/selfservice"
	"github.com/writeback/writeback/testbed"
)

// oldFloor is what every public step used to take at least (issue 9).
const oldFloor = 600 * time.Millisecond

// TestSelfServiceRealPathNotHeldToAFloor: with the production pacing, a
// change with the old password takes what the directory takes from the
// first try, and once the start step knows what a real account costs, an
// existing and an unknown name are both answered in about that — far under
// the old fixed floor.
func TestSelfServiceRealPathNotHeldToAFloor(t *testing.T) {
	env := testbed.Load(t)
	for _, d := range directories(env) {
		t.Run(d.name, func(t *testing.T) {
			s := newSSPR(t, env, d, selfservice.Methods{Email: true})
			s.ss.Pacer = selfservice.NewPacer(selfservice.DefaultPadStart)
			user := d.newUser(t, testbed.UserOptions{})
			c := s.client()
			pw := user.Password
			var changes []time.Duration
			for range 3 {
				next := testbed.RandomPassword()
				form := url.Values{"csrf_token": {c.csrf("/")}, "login": {user.Login}, "current": {pw}, "password": {next}, "confirm": {next}}
				start := time.Now()
				p := c.post("/change", form)
				changes = append(changes, time.Since(start))
				if p.Status != http.StatusSeeOther {
					t.Fatalf("change: %d\n%s", p.Status, between(p.Body, "<main", "</main>"))
				}
				pw = next
			}
			if m := median(changes); m >= oldFloor*3/4 {
				t.Errorf("a self-service change took %v at the median (%v), held near the old %v floor", m, changes, oldFloor)
			}

			// Warm the start step with real accounts, then time both kinds.
			for range 8 {
				s.client().begin("reset", user.Login)
			}
			var known, unknown []time.Duration
			for range 5 {
				for _, login := range []string{user.Login, "nobody-" + testbed.RandomLogin()} {
					cl := s.client()
					tok := cl.csrf("/")
					start := time.Now()
					p := cl.post("/reset", url.Values{"csrf_token": {tok}, "login": {login}})
					el := time.Since(start)
					if p.Status != http.StatusSeeOther || !strings.HasPrefix(p.Location, "/reset/") {
						t.Fatalf("start %s: %d", login, p.Status)
					}
					if login == user.Login {
						known = append(known, el)
					} else {
						unknown = append(unknown, el)
					}
				}
			}
			for _, c := range []struct {
				name string
				took []time.Duration
			}{{"an existing account", known}, {"an unknown name", unknown}} {
				if m := median(c.took); m >= oldFloor*3/4 {
					t.Errorf("the start of a reset for %s took %v at the median (%v), held near the old %v floor", c.name, m, c.took, oldFloor)
				}
			}
		})
	}
}

// TestSelfServiceChangeSamePasswordSameAnswer: a new password equal to the
// current one gets the same answer for an existing account and for a name
// that finds none (it used to be refused by the directory client only for
// accounts it found, which told them apart).
func TestSelfServiceChangeSamePasswordSameAnswer(t *testing.T) {
	env := testbed.Load(t)
	for _, d := range directories(env) {
		t.Run(d.name, func(t *testing.T) {
			s := newSSPR(t, env, d, selfservice.Methods{Email: true})
			user := d.newUser(t, testbed.UserOptions{})
			var answers []string
			for _, login := range []string{user.Login, "nobody-" + testbed.RandomLogin()} {
				c := s.client()
				p := c.post("/change", url.Values{"csrf_token": {c.csrf("/")}, "login": {login}, "current": {user.Password},
					"password": {user.Password}, "confirm": {user.Password}})
				if p.Status != http.StatusUnprocessableEntity {
					t.Errorf("%s: status %d", login, p.Status)
				}
				body := strings.ReplaceAll(between(p.Body, "<main", "</main>"), login, "LOGIN")
				answers = append(answers, formTokenRE.ReplaceAllString(body, ""))
			}
			if answers[0] != answers[1] {
				t.Errorf("an existing account and an unknown name got different answers:\n%s\n----\n%s", answers[0], answers[1])
			}
			if !strings.Contains(answers[0], "must be different from the current one") {
				t.Errorf("answer does not say why:\n%s", answers[0])
			}
			if err := env.BindAs(t, d.dir, user.DN, user.Password); err != nil {
				t.Errorf("the password changed: %v", err)
			}
		})
	}
}

var formTokenRE = regexp.MustCompile(`name="csrf_token" value="[0-9a-f]+"`)

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}
