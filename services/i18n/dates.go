package i18n

import (
	"context"
	"strconv"
	"time"

	"golang.org/x/text/language"
)

// Months are the abbreviated month names of each language (CLDR's
// "abbreviated, format" forms).
var months = map[language.Tag][12]string{
	English: {"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"},
	German:  {"Jan.", "Feb.", "März", "Apr.", "Mai", "Juni", "Juli", "Aug.", "Sept.", "Okt.", "Nov.", "Dez."},
	French:  {"janv.", "févr.", "mars", "avr.", "mai", "juin", "juil.", "août", "sept.", "oct.", "nov.", "déc."},
	Spanish: {"ene", "feb", "mar", "abr", "may", "jun", "jul", "ago", "sept", "oct", "nov", "dic"},
}

// Date is t's day in the language of ctx: "2 Dec 2026", "2. Dez. 2026",
// "2 déc. 2026", "2 dic 2026".
func Date(ctx context.Context, t time.Time) string { return DateIn(LangOf(ctx), t) }

// DateIn is Date for a language given directly.
func DateIn(tag language.Tag, t time.Time) string {
	if t.IsZero() {
		return ""
	}
	m, ok := months[tag]
	if !ok {
		m = months[English]
	}
	day := strconv.Itoa(t.Day())
	if tag == German {
		day += "."
	}
	return day + " " + m[t.Month()-1] + " " + strconv.Itoa(t.Year())
}

// DateTime is t in UTC, its day and time in the language of ctx ("2 Dec
// 2026, 14:05 UTC"); the pages' script shows the reader's own time zone.
func DateTime(ctx context.Context, t time.Time) string { return DateTimeIn(LangOf(ctx), t) }

// DateTimeIn is DateTime for a language given directly (mails).
func DateTimeIn(tag language.Tag, t time.Time) string {
	if t.IsZero() {
		return ""
	}
	t = t.UTC()
	return DateIn(tag, t) + ", " + t.Format("15:04") + " UTC"
}

// Number is n with the digit grouping of the language of ctx (1,234 ·
// 1.234 · 1 234).
func Number(ctx context.Context, n int64) string {
	ensure()
	return printers[indexOf(LangOf(ctx))].Sprintf("%d", n)
}
