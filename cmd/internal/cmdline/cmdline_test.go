package cmdline

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/writeback/writeback/services/errs"
)

func TestReport(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		code int
		want string
	}{
		{"none", nil, 0, ""},
		{"usage", Usagef("--x %q: want on or off", "maybe"), 2, "prog cmd: --x \"maybe\": want on or off\n"},
		{"safe message, hidden cause", errs.E(errs.Forbidden, "Refused.", errors.New("secret cause")), 1, "prog cmd: Refused.\n"},
		{"fields", errs.FieldErrors(map[string]string{"urls": "Enter a URL."}), 1, "prog cmd: " + errs.MessageOf(errs.FieldErrors(map[string]string{"urls": "Enter a URL."})) + " urls: Enter a URL.\n"},
		{"plain, several lines", errors.New("one\ntwo\r\nthree"), 1, "prog cmd: one two three\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			if code := Report("prog cmd", tc.err, &b); code != tc.code || b.String() != tc.want {
				t.Errorf("Report = %d %q, want %d %q", code, b.String(), tc.code, tc.want)
			}
		})
	}
}

func TestDispatch(t *testing.T) {
	var ran []string
	cmds := []Command{
		{Name: "one", Summary: "the first", Run: func(_ context.Context, args []string, _ Env, _ IO) error {
			ran = append(ran, "one "+strings.Join(args, " "))
			return nil
		}},
		{Name: "two", Summary: "with subcommands", Subs: []Sub{{Name: "a", Run: func(_ context.Context, args []string, _ Env, io IO) error {
			fs := NewFlags("prog two a", io.Out)
			fs.String("flag", "", "a flag")
			return Parse(fs, args)
		}}, {Name: "b", Run: func(context.Context, []string, Env, IO) error { return Usagef("bad") }}}},
	}
	for _, tc := range []struct {
		args          []string
		code          int
		out, errOut   string
		wantRanLength int
	}{
		{nil, 2, "HELP", "", 0},
		{[]string{"help"}, 0, "HELP", "", 0},
		{[]string{"one", "x"}, 0, "", "", 1},
		{[]string{"two"}, 2, "", "prog two: want a subcommand: a or b\n", 0},
		{[]string{"two", "--help"}, 0, "Subcommands: a, b", "", 0},
		{[]string{"two", "c"}, 2, "", "prog two: unknown subcommand \"c\": want a or b\n", 0},
		{[]string{"two", "b"}, 2, "", "prog two: bad\n", 0},
		{[]string{"help", "two", "a"}, 0, "Usage: prog two a [flags]", "", 0},
		{[]string{"three"}, 2, "", "prog: unknown command \"three\" (run \"prog help\")\n", 0},
	} {
		ran = nil
		var out, errOut bytes.Buffer
		code := Dispatch(context.Background(), "prog", cmds, func(w io.Writer) { w.Write([]byte("HELP")) }, tc.args, func(string) string { return "" }, IO{Out: &out, Err: &errOut})
		if code != tc.code || !strings.Contains(out.String(), tc.out) || errOut.String() != tc.errOut || len(ran) != tc.wantRanLength {
			t.Errorf("%v: %d %q %q ran %v; want %d, out with %q, err %q", tc.args, code, out.String(), errOut.String(), ran, tc.code, tc.out, tc.errOut)
		}
	}
}

func TestOnOff(t *testing.T) {
	for v, want := range map[string]bool{"on": true, "YES": true, "true": true, "off": false, "No": false, "false": false} {
		if got, err := OnOff("x", v); err != nil || got != want {
			t.Errorf("OnOff(%q) = %v, %v", v, got, err)
		}
	}
	if _, err := OnOff("x", "maybe"); err == nil || err.Error() != `--x "maybe": want on or off` {
		t.Errorf("OnOff(maybe): %v", err)
	}
}
