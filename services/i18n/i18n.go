// Package i18n is the portal's one message catalogue: every page, message,
// mail and error an employee or administrator reads is looked up here in
// the reader's language, with numbers and dates formatted for it.
//
// A message's key is its English text (a fmt format when it takes values),
// so that code reads as what it says and an untranslated message falls back
// to English. The translations live in locales/<language>/*.json, embedded;
// a test fails when a key the code uses is missing in any language.
//
// The audit log, the API and the logs keep English: they hold data, which
// must read the same whatever the viewer's language.
package i18n

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// The languages the portal speaks. English is the source and the fallback.
var (
	English = language.English
	German  = language.German
	French  = language.French
	Spanish = language.Spanish
)

// Supported lists the languages in the order the switcher offers them.
var Supported = []language.Tag{English, German, French, Spanish}

// Name is the name of a supported language in that language, as the
// switcher shows it.
func Name(tag language.Tag) string {
	switch tag {
	case German:
		return "Deutsch"
	case French:
		return "Français"
	case Spanish:
		return "Español"
	}
	return "English"
}

// Code is the short code of a supported language ("de"), as the cookie,
// the settings and the page's lang attribute carry it.
func Code(tag language.Tag) string {
	b, _ := tag.Base()
	return b.String()
}

// Parse returns the supported language a short code names, and whether it
// names one. The empty code is not a language.
func Parse(code string) (language.Tag, bool) {
	code = strings.ToLower(strings.TrimSpace(code))
	for _, t := range Supported {
		if Code(t) == code {
			return t, true
		}
	}
	return English, false
}

var matcher = language.NewMatcher(Supported)

// Choose picks the language of a request: the one the person chose with the
// switcher (cookie), else the best of the browser's Accept-Language that the
// portal speaks, else the organisation's default (asked for only then),
// else English.
func Choose(cookie, acceptLanguage string, orgDefault func() string) language.Tag {
	if t, ok := Parse(cookie); ok {
		return t
	}
	if acceptLanguage != "" {
		if t, ok := fromAccept(acceptLanguage); ok {
			return t
		}
	}
	if orgDefault == nil {
		return English
	}
	if t, ok := Parse(orgDefault()); ok {
		return t
	}
	return English
}

// accepted remembers what fromAccept made of an Accept-Language: browsers
// send a handful of distinct values, and matching one costs microseconds.
// It holds at most maxAccepted values (then new ones are matched each time).
var (
	accepted    sync.Map // string → acceptedTag
	acceptedLen atomic.Int32
)

const maxAccepted = 512

type acceptedTag struct {
	tag language.Tag
	ok  bool
}

// fromAccept is the best language of an Accept-Language the portal speaks,
// and whether there is one.
func fromAccept(h string) (language.Tag, bool) {
	if v, ok := accepted.Load(h); ok {
		a := v.(acceptedTag)
		return a.tag, a.ok
	}
	a := acceptedTag{tag: English}
	if tags, _, err := language.ParseAcceptLanguage(h); err == nil && len(tags) > 0 {
		if _, i, conf := matcher.Match(tags...); conf != language.No {
			a = acceptedTag{tag: Supported[i], ok: true}
		}
	}
	if acceptedLen.Load() < maxAccepted {
		if _, loaded := accepted.LoadOrStore(h, a); !loaded {
			acceptedLen.Add(1)
		}
	}
	return a.tag, a.ok
}

type langKey struct{}

// WithLang returns ctx carrying the reader's language.
func WithLang(ctx context.Context, tag language.Tag) context.Context {
	return context.WithValue(ctx, langKey{}, tag)
}

// LangOf is the reader's language in ctx, English when none is set.
func LangOf(ctx context.Context) language.Tag {
	if t, ok := ctx.Value(langKey{}).(language.Tag); ok {
		return t
	}
	return English
}

// T is the message key in the language of ctx, its values formatted for
// that language (numbers with its digit grouping; %#d for a number that is
// not a quantity, such as a year or a port).
func T(ctx context.Context, key string, args ...any) string {
	return In(LangOf(ctx), key, args...)
}

// In is T for a language given directly (mails sent in the background).
func In(tag language.Tag, key string, args ...any) string {
	if onMissing != nil && !known(key) {
		onMissing(key)
	}
	ensure()
	i := indexOf(tag)
	if len(args) == 0 {
		// Most texts take no value: a map lookup, not a printer's work.
		if s, ok := plain[i][key]; ok {
			return s
		}
		if !strings.ContainsRune(key, '%') {
			return key
		}
	}
	return printers[i].Sprintf(key, args...)
}

// Key marks a message defined where no reader is known yet (a label in a
// table, an error's text), so that the catalogue's test finds it; it is
// looked up with T when shown.
func Key(s string) string { return s }

// printers are the supported languages' printers, in Supported's order
// (made in init, once the catalogue is built).
var printers []*message.Printer

func newPrinters() []*message.Printer {
	p := make([]*message.Printer, len(Supported))
	for i, t := range Supported {
		p[i] = message.NewPrinter(t, message.Catalog(catalogue))
	}
	return p
}

func indexOf(tag language.Tag) int {
	for i, t := range Supported {
		if t == tag {
			return i
		}
	}
	return 0
}

// onMissing, when set (by tests, through SetMissing), hears every key T
// was asked for that the catalogue lacks.
var onMissing func(key string)

// SetMissing makes fn hear every key looked up that no translation has;
// tests use it to fail on a message that bypasses the catalogue. Set it
// before any lookup; nil turns it off.
func SetMissing(fn func(key string)) { onMissing = fn }
