package reminders_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/writeback/writeback/services/errs"
	"github.com/writeback/writeback/services/reminders"
)

func TestParseThresholds(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []int
		err  string
	}{
		{"14, 7, 1", []int{14, 7, 1}, ""},
		{"1 14\n7", []int{14, 7, 1}, ""},
		{"7;7,3", []int{7, 3}, ""},
		{"90", []int{90}, ""},
		{"", nil, "at least one"},
		{" , ", nil, "at least one"},
		{"0", nil, `"0" is not a number of days from 1 to 90`},
		{"91", nil, "from 1 to 90"},
		{"7.5", nil, "not a number of days"},
		{"soon", nil, "not a number of days"},
		{"1 2 3 4 5 6 7", nil, "at most 6"},
	} {
		got, err := reminders.ParseThresholds(tc.in)
		if tc.err != "" {
			if m := errs.FieldsOf(err)["thresholds"]; !strings.Contains(m, tc.err) {
				t.Errorf("ParseThresholds(%q) = %v, %v; want an error saying %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("ParseThresholds(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	if s := reminders.FormatThresholds([]int{14, 7, 1}); s != "14, 7, 1" {
		t.Errorf("FormatThresholds = %q", s)
	}
}

func TestLeftText(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{40 * time.Minute, "1 hour"},
		{5 * time.Hour, "5 hours"},
		{24 * time.Hour, "1 day"},
		{6*24*time.Hour + 3*time.Hour + 10*time.Minute, "6 days 3 hours"},
		{25 * time.Hour, "1 day 1 hour"},
	} {
		if got := reminders.LeftText(tc.d); got != tc.want {
			t.Errorf("LeftText(%v) = %q, want %q", tc.d, got, tc.want)
		}
	}
}
