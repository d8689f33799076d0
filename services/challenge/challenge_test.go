package challenge

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"
)

// spent is a fake of the database's spent-challenge table.
type spent struct {
	mu sync.Mutex
	m  map[string]int64
}

func (s *spent) SpendChallenge(_ context.Context, id string, exp int64) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[id]; ok {
		return false, nil
	}
	s.m[id] = exp
	return true, nil
}

func TestWorkIsBounded(t *testing.T) {
	s := New(make([]byte, 32), &spent{m: map[string]int64{}})
	for _, tc := range []struct{ base, level, want int }{
		{DefaultMaxNumber, 0, DefaultMaxNumber},
		{DefaultMaxNumber, 1, 2 * DefaultMaxNumber},
		{DefaultMaxNumber, 3, 8 * DefaultMaxNumber},
		{DefaultMaxNumber, 50, MaxMaxNumber},
		{1, 0, MinMaxNumber},
		{10 * MaxMaxNumber, 0, MaxMaxNumber},
	} {
		s.MaxNumber = tc.base
		c, err := s.Issue("flow", tc.level)
		if err != nil {
			t.Fatal(err)
		}
		if c.MaxNumber != tc.want {
			t.Errorf("base %d level %d: %d, want %d", tc.base, tc.level, c.MaxNumber, tc.want)
		}
	}
}

func TestCheck(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	s := New(make([]byte, 32), &spent{m: map[string]int64{}})
	s.MaxNumber = MinMaxNumber
	s.SetClock(func() time.Time { return now })
	issue := func(scope string) string {
		c, err := s.Issue(scope, 0)
		if err != nil {
			t.Fatal(err)
		}
		p, err := Solve(c)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	edit := func(payload string, f func(m map[string]any)) string {
		raw, _ := base64.StdEncoding.DecodeString(payload)
		var m map[string]any
		_ = json.Unmarshal(raw, &m)
		f(m)
		b, _ := json.Marshal(m)
		return base64.StdEncoding.EncodeToString(b)
	}
	other := New([]byte("another portal's key, 32 bytes!!"), &spent{m: map[string]int64{}})
	other.MaxNumber = MinMaxNumber
	foreign, _ := other.Issue("a", 0)
	foreignPayload, _ := Solve(foreign)
	good := issue("a")
	for _, tc := range []struct {
		name, scope, payload string
		want                 error
	}{
		{"right", "a", good, nil},
		{"replayed", "a", good, ErrInvalid},
		{"missing", "a", "", ErrMissing},
		{"not base64", "a", "%%%", ErrInvalid},
		{"too long", "a", string(make([]byte, 5000)), ErrInvalid},
		{"another scope", "b", issue("a"), ErrInvalid},
		{"another key", "a", foreignPayload, ErrInvalid},
		{"wrong number", "a", edit(issue("a"), func(m map[string]any) { m["number"] = m["number"].(float64) + 1 }), ErrInvalid},
		{"salt changed", "a", edit(issue("a"), func(m map[string]any) { m["salt"] = "00?expires=9999999999" }), ErrInvalid},
		{"other algorithm", "a", edit(issue("a"), func(m map[string]any) { m["algorithm"] = "SHA-1" }), ErrInvalid},
	} {
		if err := s.Check(context.Background(), tc.scope, tc.payload); !errors.Is(err, tc.want) && !(tc.want == nil && err == nil) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	late := issue("a")
	now = now.Add(TTL + time.Second)
	if err := s.Check(context.Background(), "a", late); !errors.Is(err, ErrExpired) {
		t.Errorf("expired: %v", err)
	}
}
