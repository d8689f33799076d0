package i18n

import (
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
	"sync"

	"golang.org/x/text/feature/plural"
	"golang.org/x/text/language"
	"golang.org/x/text/message/catalog"
)

//go:embed locales
var locales embed.FS

// Entry is one translation: a text, or for a message that counts something
// its plural forms (CLDR's one, few, many, other…), chosen by the message's
// first value.
type Entry struct {
	Text   string
	Plural map[string]string
}

// UnmarshalJSON reads a text ("…") or plural forms ({"one": "…", "other": "…"}).
func (e *Entry) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		return json.Unmarshal(b, &e.Text)
	}
	if err := json.Unmarshal(b, &e.Plural); err != nil {
		return err
	}
	if e.Plural["other"] == "" {
		return fmt.Errorf("plural forms need \"other\"")
	}
	for form := range e.Plural {
		if _, ok := pluralForms[form]; !ok {
			return fmt.Errorf("%q is not a plural form (zero, one, two, few, many, other)", form)
		}
	}
	return nil
}

var pluralForms = map[string]bool{"zero": true, "one": true, "two": true, "few": true, "many": true, "other": true}

// Messages are one language's translations, by key.
type Messages map[string]Entry

// Load reads every language's files from fsys (locales/<code>/*.json). A key
// in two files of one language must have the same translation there.
func Load(fsys fs.FS) (map[language.Tag]Messages, error) {
	out := map[language.Tag]Messages{}
	for _, tag := range Supported {
		dir := path.Join("locales", Code(tag))
		files, err := fs.Glob(fsys, dir+"/*.json")
		if err != nil {
			return nil, err
		}
		m := Messages{}
		for _, f := range files {
			b, err := fs.ReadFile(fsys, f)
			if err != nil {
				return nil, err
			}
			var part map[string]Entry
			if err := json.Unmarshal(b, &part); err != nil {
				return nil, fmt.Errorf("i18n: %s: %w", f, err)
			}
			for k, e := range part {
				if old, ok := m[k]; ok && !sameEntry(old, e) {
					return nil, fmt.Errorf("i18n: %s: %q is translated differently in another file", f, k)
				}
				m[k] = e
			}
		}
		out[tag] = m
	}
	return out, nil
}

func sameEntry(a, b Entry) bool {
	if a.Text != b.Text || len(a.Plural) != len(b.Plural) {
		return false
	}
	for k, v := range a.Plural {
		if b.Plural[k] != v {
			return false
		}
	}
	return true
}

func build(all map[language.Tag]Messages) (*catalog.Builder, error) {
	b := catalog.NewBuilder(catalog.Fallback(English))
	for tag, msgs := range all {
		for key, e := range msgs {
			var err error
			if e.Plural == nil {
				err = b.SetString(tag, key, e.Text)
			} else {
				err = b.Set(tag, key, pluralMessage(e.Plural))
			}
			if err != nil {
				return nil, fmt.Errorf("i18n: %s: %q: %w", Code(tag), key, err)
			}
		}
	}
	return b, nil
}

// pluralMessage selects on the first value; the forms go in CLDR's order,
// "other" last as catalog wants.
func pluralMessage(forms map[string]string) catalog.Message {
	var cases []any
	for _, f := range []string{"zero", "one", "two", "few", "many"} {
		if s, ok := forms[f]; ok {
			cases = append(cases, f, s)
		}
	}
	cases = append(cases, "other", forms["other"])
	return plural.Selectf(1, "", cases...)
}

var (
	translations map[language.Tag]Messages
	catalogue    *catalog.Builder
	complete     map[string]bool     // keys every language other than English has
	plain        []map[string]string // by Supported's index: the texts of keys that take no value
)

// loaded makes the catalogue on first use, not at start-up: a command that
// shows no text (writeback version, the agent) does not pay for it.
var loaded sync.Once

func ensure() { loaded.Do(load) }

func load() {
	var err error
	if translations, err = Load(locales); err != nil {
		panic(err)
	}
	if catalogue, err = build(translations); err != nil {
		panic(err)
	}
	printers = newPrinters()
	plain = make([]map[string]string, len(Supported))
	for i, tag := range Supported {
		plain[i] = map[string]string{}
		for k, e := range translations[tag] {
			if e.Plural == nil && len(verbs(k)) == 0 {
				plain[i][k] = printers[i].Sprintf(k)
			}
		}
	}
	complete = map[string]bool{}
	for k := range translations[German] {
		ok := true
		for _, t := range Supported[1:] {
			if _, has := translations[t][k]; !has {
				ok = false
			}
		}
		complete[k] = ok
	}
}

func known(key string) bool { ensure(); return complete[key] }

// Known reports whether every language has a translation of key: whether
// a value that may be one of the portal's own words is one.
func Known(key string) bool { return known(key) }

// Keys lists the keys the translations of a language have, sorted.
func Keys(tag language.Tag) []string {
	ensure()
	ks := make([]string, 0, len(translations[tag]))
	for k := range translations[tag] {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// Translation is the entry a language has for key, if any.
func Translation(tag language.Tag, key string) (Entry, bool) {
	ensure()
	e, ok := translations[tag][key]
	return e, ok
}

// verbs lists a format's verbs in order (%s, %d, %#d…), so that a test can
// check that a translation takes the same values as its key.
func verbs(format string) []string {
	var out []string
	for i := 0; i < len(format); i++ {
		if format[i] != '%' {
			continue
		}
		j := i + 1
		for j < len(format) && strings.ContainsRune("+-# 0123456789.[]", rune(format[j])) {
			j++
		}
		if j < len(format) {
			if format[j] != '%' {
				out = append(out, format[i:j+1])
			}
			i = j
		}
	}
	return out
}
