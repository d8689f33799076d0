package reminders

import (
	"time"

	"golang.org/x/text/language"

	"github.com/writeback/writeback/services/i18n"
)

// LeftIn is LeftText in a language: how long until an expiry, to the hour
// ("6 days 3 hours", "6 Tage 3 Stunden").
func LeftIn(tag language.Tag, d time.Duration) string {
	h := int(d.Round(time.Hour) / time.Hour)
	days, hours := h/24, h%24
	switch {
	case days == 0:
		return i18n.In(tag, "%d hours", hours)
	case hours == 0:
		return i18n.In(tag, "%d days", days)
	}
	return i18n.In(tag, "%d days", days) + " " + i18n.In(tag, "%d hours", hours)
}
