package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// dispatchedSubs asks a command's own dispatch which subcommands it accepts: its answer to an unknown one ends in
// "want a, b or c". Commands without subcommands answer something else and get nil.
func dispatchedSubs(t *testing.T, name string) []string {
	t.Helper()
	_, _, errOut := cli(t, "", name, "no-such-subcommand")
	if !strings.Contains(errOut, `unknown subcommand "no-such-subcommand"`) {
		return nil
	}
	m := regexp.MustCompile(`want (.+)$`).FindStringSubmatch(strings.TrimSpace(errOut))
	if m == nil {
		t.Fatalf("%s: cannot read the subcommands from %q", name, errOut)
	}
	return strings.FieldsFunc(strings.ReplaceAll(m[1], " or ", ","), func(r rune) bool { return r == ',' || r == ' ' })
}

// TestHelpEveryCommand: "--help" (and -h, and "help <command>") works for every command and subcommand the
// dispatcher knows: exit 0, usage on standard output, nothing on standard error, and nothing opened or created.
func TestHelpEveryCommand(t *testing.T) {
	data := filepath.Join(t.TempDir(), "must-not-exist")
	getenv := func(k string) string {
		if k == "WRITEBACK_DATA" {
			return data
		}
		return ""
	}
	type invocation struct {
		args []string
		want string // in stdout
	}
	var cases []invocation
	for _, c := range commands() {
		subs := dispatchedSubs(t, c.name)
		if len(subs) == 0 {
			for _, h := range []string{"--help", "-h"} {
				cases = append(cases, invocation{[]string{c.name, h}, "Usage: writeback " + c.name + " [flags]"})
			}
			cases = append(cases, invocation{[]string{"help", c.name}, "Usage: writeback " + c.name})
			continue
		}
		for _, h := range []string{"--help", "-h", "help"} {
			cases = append(cases, invocation{[]string{c.name, h}, "Usage: writeback " + c.name + " <subcommand>"})
		}
		cases = append(cases, invocation{[]string{"help", c.name}, "Subcommands: " + strings.Join(subs, ", ")})
		for _, s := range subs {
			for _, h := range []string{"--help", "-h"} {
				cases = append(cases, invocation{[]string{c.name, s, h}, "Usage: writeback " + c.name + " " + s + " [flags]"})
			}
			cases = append(cases, invocation{[]string{"help", c.name, s}, "Usage: writeback " + c.name + " " + s})
		}
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := run(context.Background(), tc.args, getenv, strings.NewReader(""), &out, &errOut)
			if code != 0 {
				t.Errorf("exit %d, stderr %q", code, errOut.String())
			}
			if errOut.Len() != 0 {
				t.Errorf("stderr %q, want nothing", errOut.String())
			}
			if !strings.Contains(out.String(), tc.want) {
				t.Errorf("stdout %q lacks %q", out.String(), tc.want)
			}
			if _, err := os.Stat(data); err == nil {
				t.Fatalf("--help created the data folder %s", data)
			}
		})
	}
	// A subcommand's flags are listed.
	_, out, _ := cli(t, "", "admin", "create", "--help")
	if !strings.Contains(out, "-email") || !strings.Contains(out, "-role") {
		t.Errorf("admin create --help lacks its flags:\n%s", out)
	}
}

// TestSubcommandListsMatchDispatch: commands().subs, which help prints and TestHelpEveryCommand walks, is exactly
// what each command's own dispatch accepts (read from its "unknown subcommand" answer), so neither can drift.
func TestSubcommandListsMatchDispatch(t *testing.T) {
	for _, c := range commands() {
		if got := dispatchedSubs(t, c.name); !slices.Equal(got, c.subs) {
			t.Errorf("%s: dispatch accepts %v, commands() lists %v", c.name, got, c.subs)
		}
		if len(c.subs) == 0 {
			// Commands without subcommands refuse stray arguments (version, serve, …).
			if code, _, _ := cli(t, "", c.name, "no-such-subcommand"); code == 0 {
				t.Errorf("%s accepted a stray argument", c.name)
			}
		}
	}
}
