package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/writeback/writeback/services/sms/smstest"
)

// TestSMSCommands: sms set from a preset with a secret file, show without
// the secret, a bad value refused with one line, and a test message that
// reaches the gateway.
func TestSMSCommands(t *testing.T) {
	data := t.TempDir()
	g := smstest.Start(t)
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte("cli-Secret-77\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := cli(t, "", "sms", "set", "--data", data, "--url", "http://sms.example.com/x?to={{to}}&m={{message}}", "--method", "GET"); code == 0 || !strings.Contains(errOut, "https://") {
		t.Errorf("plain http elsewhere: %d %q", code, errOut)
	}
	code, out, errOut := cli(t, "", "sms", "set", "--data", data, "--preset", "twilio", "--url", g.URL()+"/2010-04-01/Accounts/AC9/Messages.json",
		"--username", "AC9", "--from", "+15005550006", "--secret-file", secret, "--default-country", "GB")
	if code != 0 || !strings.Contains(out, "saved the text message gateway") {
		t.Fatalf("sms set: %d %q %q", code, out, errOut)
	}
	code, out, _ = cli(t, "", "sms", "show", "--data", data)
	if code != 0 || strings.Contains(out, "cli-Secret-77") || !strings.Contains(out, "set (encrypted)") || !strings.Contains(out, "basic") {
		t.Errorf("sms show: %d\n%s", code, out)
	}
	if code, out, errOut := cli(t, "", "sms", "test", "--data", data, "--to", "07400 123461"); code != 0 || !strings.Contains(out, "sent a test message") {
		t.Fatalf("sms test: %d %q %q", code, out, errOut)
	}
	if r := g.Wait(t, 1); r.Password != "cli-Secret-77" || r.Form.Get("To") != "+447400123461" {
		t.Errorf("gateway got %q to %q", r.User, r.Form.Get("To"))
	}
	if code, _, errOut := cli(t, "", "sspr", "set", "--data", data, "--methods", "email,sms"); code != 0 {
		t.Errorf("sspr set --methods email,sms: %d %q", code, errOut)
	}
}
