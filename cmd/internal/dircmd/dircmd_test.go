package dircmd

import (
	"bytes"
	"context"
	"flag"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/writeback/writeback/cmd/internal/cmdline"
	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/directory"
	"github.com/writeback/writeback/services/settings"
	"github.com/writeback/writeback/services/writeback"
)

// fakeConnections records what the commands hand the writeback service.
type fakeConnections struct {
	cur    writeback.Connection
	saved  []writeback.Input
	opened int
}

func (f *fakeConnections) Connection(context.Context) (writeback.Connection, settings.Meta, error) {
	return f.cur, settings.Meta{Version: 1}, nil
}

func (f *fakeConnections) SaveConnection(_ context.Context, _ audit.Actor, _ int64, in writeback.Input) (bool, error) {
	f.saved = append(f.saved, in)
	return true, nil
}

func (f *fakeConnections) Test(context.Context, audit.Actor, string) (directory.Checklist, error) {
	return directory.Checklist{OK: true}, nil
}

func program(f *fakeConnections, modes bool) Program {
	return Program{
		Name:  "prog",
		Modes: modes,
		DataFlag: func(fs *flag.FlagSet, _ cmdline.Env) *string {
			return fs.String("data", "unused", "data folder")
		},
		Open: func(context.Context, string, io.Writer) (Connections, func() error, error) {
			f.opened++
			return f, func() error { return nil }, nil
		},
	}
}

func runSet(p Program, args ...string) (string, error) {
	var out, errOut bytes.Buffer
	err := p.Set(context.Background(), args, func(string) string { return "" }, cmdline.IO{In: strings.NewReader(""), Out: &out, Err: &errOut})
	return out.String(), err
}

var stored = writeback.Connection{Type: directory.TypeAD, URLs: []string{"ldaps://dc1.example.com"}, BindDN: "CN=svc,DC=example,DC=com",
	BindPasswordSealed: "sealed", BaseDNs: []string{"OU=People,DC=example,DC=com"}, PasswordWriteback: true}

// TestSetMode: the portal's --mode reaches the writeback service as
// Input.Mode; a bad value, and server flags in agents mode, are one-line
// usage errors with nothing saved; the agent has no --mode at all.
func TestSetMode(t *testing.T) {
	for _, tc := range []struct {
		name     string
		modes    bool
		cur      writeback.Connection
		args     []string
		wantMode string
		wantErr  string
	}{
		{"agents", true, stored, []string{"--mode", "agents"}, "agents", ""},
		{"direct", true, stored, []string{"--mode", "direct"}, "direct", ""},
		{"kept", true, writeback.Connection{Type: directory.TypeAD, Mode: "agents", BaseDNs: stored.BaseDNs}, []string{"--base-dn", "OU=Staff,DC=example,DC=com"}, "agents", ""},
		{"first save in agents mode needs no server", true, writeback.Connection{}, []string{"--mode", "agents", "--type", "ad", "--base-dn", "OU=People,DC=example,DC=com"}, "agents", ""},
		{"bad value", true, stored, []string{"--mode", "agent"}, "", `--mode "agent": want direct or agents`},
		{"empty value", true, stored, []string{"--mode", ""}, "", `--mode "": want direct or agents`},
		{"url in agents mode", true, stored, []string{"--mode", "agents", "--url", "ldaps://dc2.example.com"}, "", "--url: in agents mode"},
		{"bind dn while in agents mode", true, writeback.Connection{Type: directory.TypeAD, Mode: "agents"}, []string{"--bind-dn", "CN=x"}, "", "--bind-dn: in agents mode"},
		{"switch in agents mode", true, stored, []string{"--mode", "agents", "--password-writeback", "on"}, "", "--password-writeback: in agents mode"},
		{"back to direct needs the server", true, writeback.Connection{Type: directory.TypeAD, Mode: "agents", BaseDNs: stored.BaseDNs}, []string{"--mode", "direct"}, "", "--url is required to switch to direct mode"},
		{"back to direct keeps type and bases", true, writeback.Connection{Type: directory.TypeAD, Mode: "agents", BaseDNs: stored.BaseDNs},
			[]string{"--mode", "direct", "--url", "ldaps://dc1.example.com", "--bind-dn", "CN=svc", "--bind-password-file", "PWFILE"}, "direct", ""},
		{"first save needs every server flag", true, writeback.Connection{}, []string{"--type", "ad", "--url", "ldaps://dc1"}, "", "--bind-dn is required when no connection is stored yet"},
		{"no --mode on the agent", false, stored, []string{"--mode", "agents"}, "", "flag provided but not defined: -mode"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeConnections{cur: tc.cur}
			args := slices.Clone(tc.args)
			if i := slices.Index(args, "PWFILE"); i >= 0 {
				args[i] = filepath.Join(t.TempDir(), "pw")
				os.WriteFile(args[i], []byte("secret\n"), 0o600)
			}
			_, err := runSet(program(f, tc.modes), args...)
			if tc.wantErr != "" {
				if _, ok := err.(cmdline.UsageError); !ok || !strings.Contains(err.Error(), tc.wantErr) || strings.Contains(err.Error(), "\n") {
					t.Fatalf("err %v (%T), want a one-line usage error containing %q", err, err, tc.wantErr)
				}
				if len(f.saved) != 0 {
					t.Errorf("saved %+v after a refusal", f.saved)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(f.saved) != 1 || f.saved[0].Mode != tc.wantMode {
				t.Fatalf("saved %+v, want one save with Mode %q", f.saved, tc.wantMode)
			}
		})
	}
}

// TestBadValuesOpenNothing: a value that is wrong whatever is stored is
// refused before the data folder is opened.
func TestBadValuesOpenNothing(t *testing.T) {
	for _, args := range [][]string{
		{"--type", "novell"},
		{"--mode", "sideways"},
		{"--password-writeback", "maybe"},
	} {
		f := &fakeConnections{cur: stored}
		if _, err := runSet(program(f, true), args...); err == nil {
			t.Errorf("%v accepted", args)
		}
		if f.opened != 0 {
			t.Errorf("%v opened the data folder", args)
		}
	}
}

// TestShowMode: the portal shows its mode, and in agents mode no server or
// credential rows; the agent shows no mode row.
func TestShowMode(t *testing.T) {
	show := func(p Program) string {
		var out bytes.Buffer
		if err := p.Show(context.Background(), nil, func(string) string { return "" }, cmdline.IO{Out: &out, Err: io.Discard}); err != nil {
			t.Fatal(err)
		}
		return out.String()
	}
	if out := show(program(&fakeConnections{cur: stored}, true)); !strings.HasPrefix(out, "mode ") || !strings.Contains(out, "direct") ||
		!strings.Contains(out, "bind-password             stored (encrypted)") {
		t.Errorf("portal, direct:\n%s", out)
	}
	agentsConn := writeback.Connection{Type: directory.TypeAD, Mode: "agents", BaseDNs: stored.BaseDNs}
	if out := show(program(&fakeConnections{cur: agentsConn}, true)); !strings.Contains(out, "agents (the writeback agents hold") ||
		strings.Contains(out, "bind-dn") || strings.Contains(out, "urls") || !strings.Contains(out, "OU=People,DC=example,DC=com") {
		t.Errorf("portal, agents:\n%s", out)
	}
	if out := show(program(&fakeConnections{cur: stored}, false)); strings.Contains(out, "mode") || !strings.HasPrefix(out, "type ") {
		t.Errorf("agent:\n%s", out)
	}
}

// TestSetHints: the hint after a save names the program that saved.
func TestSetHints(t *testing.T) {
	pw := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pw, []byte("secret\n"), 0o600)
	out, err := runSet(program(&fakeConnections{}, false), "--type", "ad", "--url", "ldaps://dc1", "--bind-dn", "CN=svc", "--bind-password-file", pw, "--base-dn", "DC=x")
	if err != nil || !strings.Contains(out, `run "prog directory test"`) {
		t.Errorf("%q %v", out, err)
	}
}
