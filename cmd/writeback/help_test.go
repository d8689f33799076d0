package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/writeback/writeback/cmd/internal/cmdline"
)

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
		subs := cmdline.SubNames(c.Subs)
		if len(subs) == 0 {
			for _, h := range []string{"--help", "-h"} {
				cases = append(cases, invocation{[]string{c.Name, h}, "Usage: writeback " + c.Name + " [flags]"})
			}
			cases = append(cases, invocation{[]string{"help", c.Name}, "Usage: writeback " + c.Name})
			continue
		}
		for _, h := range []string{"--help", "-h", "help"} {
			cases = append(cases, invocation{[]string{c.Name, h}, "Usage: writeback " + c.Name + " <subcommand>"})
		}
		cases = append(cases, invocation{[]string{"help", c.Name}, "Subcommands: " + strings.Join(subs, ", ")})
		for _, s := range subs {
			for _, h := range []string{"--help", "-h"} {
				cases = append(cases, invocation{[]string{c.Name, s, h}, "Usage: writeback " + c.Name + " " + s + " [flags]"})
			}
			cases = append(cases, invocation{[]string{"help", c.Name, s}, "Usage: writeback " + c.Name + " " + s})
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

// TestUnknownSubcommandsAndStrayArguments: a command with subcommands refuses one it does not have and names those
// it has; a command without refuses a stray argument (version, serve, …).
func TestUnknownSubcommandsAndStrayArguments(t *testing.T) {
	for _, c := range commands() {
		code, _, errOut := cli(t, "", c.Name, "no-such-subcommand")
		if code != 2 {
			t.Errorf("%s no-such-subcommand: exit %d, want 2", c.Name, code)
		}
		for _, s := range c.Subs {
			if !strings.Contains(errOut, `unknown subcommand "no-such-subcommand"`) || !strings.Contains(errOut, s.Name) {
				t.Errorf("%s: %q does not refuse the unknown subcommand naming %s", c.Name, errOut, s.Name)
			}
		}
	}
}
