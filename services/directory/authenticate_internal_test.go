package directory

import (
	"strconv"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
)

func TestFailureCount(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	filetime := func(t time.Time) string { return strconv.FormatInt(t.UnixNano()/100+filetimeEpochDelta, 10) }
	gen := func(t time.Time) string { return t.Format("20060102150405.000000Z") }
	p := Policy{LockoutThreshold: 3, LockoutWindow: 30 * time.Minute}
	cases := []struct {
		name  string
		typ   Type
		attrs map[string][]string
		p     Policy
		known bool
		want  int
	}{
		{"AD recent", TypeAD, map[string][]string{"badPwdCount": {"2"}, "badPasswordTime": {filetime(now.Add(-time.Minute))}}, p, true, 2},
		{"AD after the window", TypeAD, map[string][]string{"badPwdCount": {"2"}, "badPasswordTime": {filetime(now.Add(-31 * time.Minute))}}, p, true, 0},
		{"AD window unknown: as counted", TypeAD, map[string][]string{"badPwdCount": {"2"}, "badPasswordTime": {filetime(now.Add(-31 * time.Minute))}}, Policy{}, false, 2},
		{"AD not readable", TypeAD, map[string][]string{}, p, true, -1},
		{"OpenLDAP within the interval", TypeOpenLDAP, map[string][]string{"pwdFailureTime": {gen(now.Add(-40 * time.Minute)), gen(now.Add(-time.Minute)), gen(now)}}, p, true, 2},
		{"OpenLDAP without an interval: all count", TypeOpenLDAP, map[string][]string{"pwdFailureTime": {gen(now.Add(-40 * time.Hour)), gen(now)}}, Policy{LockoutThreshold: 3}, true, 2},
		{"OpenLDAP none", TypeOpenLDAP, map[string][]string{}, p, true, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := ldap.NewEntry("cn=x", c.attrs)
			if got := failureCount(c.typ, e, c.p, c.known, now); got != c.want {
				t.Fatalf("failureCount = %d, want %d", got, c.want)
			}
		})
	}
}

func TestADLocked(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		name   string
		lt     time.Time
		dur    time.Duration
		locked bool
		until  time.Time
	}{
		{"never locked", time.Time{}, 30 * time.Minute, false, time.Time{}},
		{"within the duration", now.Add(-10 * time.Minute), 30 * time.Minute, true, now.Add(20 * time.Minute)},
		{"after the duration", now.Add(-31 * time.Minute), 30 * time.Minute, false, time.Time{}},
		{"until an administrator unlocks", now.Add(-48 * time.Hour), 0, true, time.Time{}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if locked, until := adLocked(c.lt, c.dur, now); locked != c.locked || !until.Equal(c.until) {
				t.Fatalf("adLocked = %v, %v; want %v, %v", locked, until, c.locked, c.until)
			}
		})
	}
}
