package errs_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/writeback/writeback/services/errs"
	"github.com/writeback/writeback/services/i18n"
)

// TestValuesInTheReadersLanguage: a time given as a value is written the
// reader's way when the message is shown, and the English way in Message
// (logs, audit, API); a Text given as a value is translated with it.
func TestValuesInTheReadersLanguage(t *testing.T) {
	at := time.Date(2026, time.March, 4, 9, 30, 0, 0, time.UTC)
	err := errs.Ef(errs.Policy, errors.New("cause"), "The password was changed too recently: you can change it again after %s.", at)
	if got, want := errs.MessageOf(err), "The password was changed too recently: you can change it again after 4 Mar 2026, 09:30 UTC."; got != want {
		t.Errorf("English: %q, want %q", got, want)
	}
	de := i18n.WithLang(context.Background(), i18n.German)
	if got := errs.MessageIn(de, err); !containsAll(got, "4. März 2026, 09:30 UTC", "Kennwort") {
		t.Errorf("German: %q", got)
	}
	nested := errs.Textf("Rights on %s: %s", "ada", errs.Textf("yes"))
	if got := nested.In(de); !containsAll(got, "ada", "ja") {
		t.Errorf("nested German: %q", got)
	}
	if got := nested.String(); got != "Rights on ada: yes" {
		t.Errorf("nested English: %q", got)
	}
	if v, ok := nested.Args[1].(errs.Text); !ok || v.Format != "yes" {
		t.Error("In changed the Text's own values")
	}
}

func containsAll(s string, parts ...string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}
