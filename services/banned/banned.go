// Package banned refuses passwords that attackers guess first: the common
// passwords of a bundled list, the terms an organisation bans, and those
// derived from the person's own names or login or the organisation's name.
// It works as Entra's password protection does, in outline: the password is
// normalised (case and common character substitutions), a banned term
// found in it, exactly or one typo away, counts for little, and a password
// made of banned terms and a little decoration (a year, a "!") is refused.
//
// Scoring: the password is split into the banned terms found in it and the
// rest. Each term found is 1 point; of the rest, each letter is 1 point, a
// run of digits is 1 point when it is at most 4 long or itself a common
// password ("2026", "123456"), else 1 per digit, and a run of other
// characters is 1 point when at most 2 long, else 1 per character. A
// password in which a banned term was found is refused below MinPoints.
// "Winter2026!" is winter + 2026 + ! = 3 points: refused.
package banned

import (
	"bufio"
	_ "embed"
	"slices"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"
)

// MinPoints is the score a password with a banned term in it needs.
const MinPoints = 5

// Rule names why a password was refused.
type Rule string

const (
	RuleCommon   Rule = "common"   // a commonly used password (the bundled list)
	RuleCustom   Rule = "custom"   // a term on the organisation's own list
	RulePersonal Rule = "personal" // the person's names or login, or the organisation's name
	RuleBreached Rule = "breached" // on the offline list of breached passwords (OpenBreached)
)

// Term lengths: shorter terms are matched only as the whole password (with
// its decoration), not inside a longer one, nor one typo away.
const (
	minTermLen  = 3 // shorter terms are ignored
	minInnerLen = 4 // found inside a longer password from this length
	minFuzzyLen = 6 // one typo away from this length
)

//go:embed common.txt
var commonText string

// commonList is the bundled list, normalised, read once.
var commonList = sync.OnceValue(func() *List {
	var words []string
	sc := bufio.NewScanner(strings.NewReader(commonText))
	for sc.Scan() {
		words = append(words, sc.Text())
	}
	return NewList(words)
})

// Common is the bundled list of common passwords (see common.txt's source
// in the README).
func Common() *List { return commonList() }

// List is a set of banned terms, normalised.
type List struct {
	set   map[string]struct{}
	byLen map[int][][]rune // terms of minFuzzyLen-1 runes and more, by length, for the one-typo match
	inner [][]rune         // terms of minInnerLen runes and more, longest first, for the search inside a password
}

// NewList normalises terms into a list; terms shorter than 3 characters
// are left out.
func NewList(terms []string) *List {
	l := &List{set: map[string]struct{}{}, byLen: map[int][][]rune{}}
	for _, t := range terms {
		n := Normalize(strings.TrimSpace(t))
		if utf8.RuneCountInString(n) < minTermLen {
			continue
		}
		if _, dup := l.set[n]; dup {
			continue
		}
		l.set[n] = struct{}{}
		r := []rune(n)
		if len(r) >= minFuzzyLen-1 {
			l.byLen[len(r)] = append(l.byLen[len(r)], r)
		}
		if len(r) >= minInnerLen {
			l.inner = append(l.inner, r)
		}
	}
	slices.SortStableFunc(l.inner, func(a, b []rune) int { return len(b) - len(a) })
	return l
}

// Len is how many terms the list holds.
func (l *List) Len() int { return len(l.set) }

// has tells whether n (normalised) is on the list, or one typo from a term
// on it when n is long enough.
func (l *List) has(n []rune) bool {
	if l == nil {
		return false
	}
	s := string(n)
	if _, ok := l.set[s]; ok {
		return true
	}
	if len(n) < minFuzzyLen {
		return false
	}
	for k := len(n) - 1; k <= len(n)+1; k++ {
		for _, t := range l.byLen[k] {
			if oneEdit(n, t) {
				return true
			}
		}
	}
	return false
}

// substitutions are the characters people put for letters. 'i' and 'l'
// are one letter here, since '1' and '!' stand for either.
var substitutions = map[rune]rune{
	'0': 'o', '1': 'l', '!': 'l', '|': 'l', 'i': 'l', '3': 'e', '4': 'a', '@': 'a',
	'$': 's', '5': 's', '7': 't', '+': 't', '8': 'b',
}

// Normalize lowers s and replaces the usual substitutions, rune for rune.
func Normalize(s string) string { return string(normalize([]rune(strings.ToLower(s)))) }

func normalize(r []rune) []rune {
	out := make([]rune, len(r))
	for i, c := range r {
		if s, ok := substitutions[c]; ok {
			c = s
		}
		out[i] = c
	}
	return out
}

// Refusal says why a password was refused.
type Refusal struct {
	Rule Rule
	// Term is the banned term found (normalised). Employees are never
	// shown a term of the organisation's list (it would teach the list).
	Term string
}

// Checker checks new passwords against the bundled list (when Common is
// set), the organisation's list and the person's own terms.
type Checker struct {
	Common *List // nil: the bundled list is not used
	Custom *List
}

// Check refuses password when a banned term found in it leaves it below
// MinPoints; personal are the person's names, login and the
// organisation's name (split into words by the caller or not: both the
// whole value and its words are used). ok is false when refused.
func (c Checker) Check(password string, personal []string) (Refusal, bool) {
	raw := []rune(strings.ToLower(password))
	if len(raw) == 0 {
		return Refusal{}, true
	}
	norm := normalize(raw)
	mine := NewList(personalTerms(personal))
	lists := []struct {
		rule Rule
		list *List
	}{{RulePersonal, mine}, {RuleCustom, c.Custom}, {RuleCommon, c.Common}}

	// The password as a whole, or without its decoration, is a term (or
	// one typo from one).
	for _, sp := range cores(raw) {
		core := norm[sp[0]:sp[1]]
		if len(core) < minTermLen {
			continue
		}
		for _, l := range lists {
			if !l.list.has(core) {
				continue
			}
			if 1+points(raw[:sp[0]])+points(raw[sp[1]:]) < MinPoints {
				return Refusal{Rule: l.rule, Term: string(core)}, false
			}
		}
	}
	// Terms inside it: the organisation's and the person's (the common
	// list's words are everyday words, which a long passphrase may hold).
	for _, l := range lists[:2] {
		if r, bad := inner(raw, norm, l.list); bad {
			return Refusal{Rule: l.rule, Term: r}, false
		}
	}
	return Refusal{}, true
}

// cores are the spans of raw worth looking up: the whole, and without the
// leading and/or trailing run of non-letters.
func cores(raw []rune) [][2]int {
	i := 0
	for i < len(raw) && !unicode.IsLetter(raw[i]) {
		i++
	}
	j := len(raw)
	for j > i && !unicode.IsLetter(raw[j-1]) {
		j--
	}
	out := [][2]int{{0, len(raw)}}
	for _, sp := range [][2]int{{i, len(raw)}, {0, j}, {i, j}} {
		if sp[0] < sp[1] && !slices.Contains(out, sp) {
			out = append(out, sp)
		}
	}
	return out
}

// inner finds the terms of l (of minInnerLen and more) inside norm, longest
// first and without overlap, and reports whether the password then scores
// below MinPoints.
func inner(raw, norm []rune, l *List) (string, bool) {
	if l == nil {
		return "", false
	}
	used := make([]bool, len(norm))
	found, first := 0, ""
	for _, tr := range l.inner {
		for at := 0; at+len(tr) <= len(norm); {
			if !slices.Equal(norm[at:at+len(tr)], tr) || slices.Contains(used[at:at+len(tr)], true) {
				at++
				continue
			}
			for k := at; k < at+len(tr); k++ {
				used[k] = true
			}
			if found == 0 {
				first = string(tr)
			}
			found++
			at += len(tr)
		}
	}
	if found == 0 {
		return "", false
	}
	score := found
	for i := 0; i < len(raw); {
		if used[i] {
			i++
			continue
		}
		j := i
		for j < len(raw) && !used[j] {
			j++
		}
		score += points(raw[i:j])
		i = j
	}
	return first, score < MinPoints
}

// points scores what is left of a password around the terms found in it.
func points(rest []rune) int {
	p := 0
	for i := 0; i < len(rest); {
		j := i + 1
		kind := class(rest[i])
		for j < len(rest) && class(rest[j]) == kind {
			j++
		}
		run := rest[i:j]
		switch {
		case kind == 'a':
			p += len(run)
		case kind == 'd' && (len(run) <= 4 || isCommonDigits(run)):
			p++
		case kind == 'd':
			p += len(run)
		case len(run) <= 2:
			p++
		default:
			p += len(run)
		}
		i = j
	}
	return p
}

// isCommonDigits tells a run of digits that is itself a common password
// ("123456", "696969").
func isCommonDigits(run []rune) bool {
	_, ok := Common().set[string(normalize(run))]
	return ok
}

// class is 'a' for a letter, 'd' for a digit, 'o' for anything else.
func class(r rune) byte {
	switch {
	case unicode.IsLetter(r):
		return 'a'
	case unicode.IsDigit(r):
		return 'd'
	}
	return 'o'
}

// oneEdit tells whether a and b differ by exactly one insertion, deletion
// or substitution (or not at all).
func oneEdit(a, br []rune) bool {
	if d := len(a) - len(br); d < -1 || d > 1 {
		return false
	}
	i, j, edits := 0, 0, 0
	for i < len(a) && j < len(br) {
		if a[i] == br[j] {
			i++
			j++
			continue
		}
		edits++
		if edits > 1 {
			return false
		}
		switch {
		case len(a) > len(br):
			i++
		case len(a) < len(br):
			j++
		default:
			i++
			j++
		}
	}
	return edits+(len(a)-i)+(len(br)-j) <= 1
}

// personalTerms are the values given and the words in them: "Alice
// Smith" gives "Alice Smith", "Alice" and "Smith"; "alice.smith@example.com"
// gives its local part's words too.
func personalTerms(values []string) []string {
	var out []string
	for _, v := range values {
		v = strings.TrimSpace(v)
		if v == "" {
			continue
		}
		if at := strings.LastIndexByte(v, '@'); at > 0 {
			v = v[:at]
		}
		if k := strings.IndexByte(v, '\\'); k >= 0 { // DOMAIN\login
			v = v[k+1:]
		}
		out = append(out, strings.Join(strings.FieldsFunc(v, notAlnum), ""))
		out = append(out, strings.FieldsFunc(v, notAlnum)...)
	}
	return out
}

func notAlnum(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) }
