package directory

import (
	"errors"
	"testing"
)

func TestNormalizeIdentifier(t *testing.T) {
	tests := []struct {
		in, want string
		err      error
	}{
		{"alice", "alice", nil},
		{"  alice@example.com ", "alice@example.com", nil},
		{"Zoë.Müller", "Zoë.Müller", nil},
		{"", "", ErrIdentifierEmpty},
		{"   ", "", ErrIdentifierEmpty},
		{"alice\x00junk", "", ErrIdentifierInvalid},
		{"alice\tx", "", ErrIdentifierInvalid},
		{"alice\n", "", ErrIdentifierInvalid},
		{"al\u200bice", "", ErrIdentifierInvalid}, // zero-width space (Cf)
		{"al\u202eice", "", ErrIdentifierInvalid}, // right-to-left override
		{"al\x7fice", "", ErrIdentifierInvalid},
		{"al\xffice", "", ErrIdentifierInvalid},
		{string(make([]byte, 257)), "", ErrIdentifierTooLong},
	}
	for _, tt := range tests {
		got, err := NormalizeIdentifier(tt.in)
		if !errors.Is(err, tt.err) || got != tt.want {
			t.Errorf("NormalizeIdentifier(%q) = %q, %v; want %q, %v", tt.in, got, err, tt.want, tt.err)
		}
		if (err != nil) != IsIdentifierError(err) {
			t.Errorf("IsIdentifierError(%v) = %v", err, IsIdentifierError(err))
		}
	}
	long := make([]byte, 300)
	for i := range long {
		long[i] = 'a'
	}
	if _, err := NormalizeIdentifier(string(long)); !errors.Is(err, ErrIdentifierTooLong) {
		t.Errorf("300 letters: %v, want ErrIdentifierTooLong", err)
	}
}

func FuzzNormalizeIdentifier(f *testing.F) {
	for _, s := range []string{"alice", "alice\x00junk", " a@b.c ", "\u202e", "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := NormalizeIdentifier(s)
		if err != nil {
			if got != "" {
				t.Fatalf("error %v with a value %q", err, got)
			}
			return
		}
		again, err := NormalizeIdentifier(got)
		if err != nil || again != got {
			t.Fatalf("not idempotent: %q → %q → %q, %v", s, got, again, err)
		}
		for _, r := range got {
			if r < 0x20 || r == 0x7f {
				t.Fatalf("control character %U accepted in %q", r, got)
			}
		}
	})
}
