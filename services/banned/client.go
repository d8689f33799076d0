package banned

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"unicode/utf8"
)

// ClientRules are the rules a page's strength meter (static/meter.js)
// checks while the person types, as far as a page may know them: the
// server checks them again, and that check is the one that counts.
//
// The organisation's terms reach the page only as salted SHA-256 hashes of
// their normalised form, so that the page source does not list them (the
// rules never show a term to employees); the meter finds them exactly, the
// one-typo variants only the server finds. Salting with a value of each page
// keeps hashes from one page useless on another; a short term can still be
// guessed from its hash by trying words, which is no more than the
// password check itself tells.
type ClientRules struct {
	Common       bool     // the bundled list is on (the page's script has the list)
	PersonalRule bool     // the personal rule is on
	Personal     []string // the organisation's name and the person's terms, when it is
	Salt         string
	Custom       []string // hex SHA-256 of Salt and each normalised term
}

// ClientRules returns the rules for a page whose person is known by
// personal (their own login or names, as the page already shows or was
// given them; never another person's).
func (s *Service) ClientRules(ctx context.Context, personal ...string) (ClientRules, error) {
	st, _, err := s.Settings(ctx)
	if err != nil {
		return ClientRules{}, fmt.Errorf("banned: read the settings: %w", err)
	}
	out := ClientRules{Common: st.Common, PersonalRule: st.Personal}
	if st.Personal {
		out.Personal = nonEmpty(personal)
		if s.orgName != nil {
			org, err := s.orgName(ctx)
			if err != nil {
				return ClientRules{}, fmt.Errorf("banned: read the organisation's name: %w", err)
			}
			out.Personal = nonEmpty(append(out.Personal, org))
		}
	}
	if len(st.Custom) == 0 {
		return out, nil
	}
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return ClientRules{}, fmt.Errorf("banned: salt: %w", err)
	}
	out.Salt = hex.EncodeToString(b[:])
	seen := map[string]bool{}
	for _, t := range st.Custom {
		n := Normalize(t)
		if utf8.RuneCountInString(n) < minTermLen || seen[n] {
			continue
		}
		seen[n] = true
		out.Custom = append(out.Custom, HashTerm(out.Salt, n))
	}
	slices.Sort(out.Custom) // no order to tell anything
	return out, nil
}

// HashTerm is the hash a page carries for a normalised term: hex SHA-256
// of the salt and the term (as UTF-8), as static/meter.js computes it.
func HashTerm(salt, normalized string) string {
	sum := sha256.Sum256([]byte(salt + normalized))
	return hex.EncodeToString(sum[:])
}
