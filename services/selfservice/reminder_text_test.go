package selfservice

import (
	"context"
	"strings"
	"testing"

	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/directory"
)

// TestTextReminder: a reminder is texted to the person's mobile number when
// text messages are a method and a gateway is set; not without a number,
// nor with text messages off; and it counts toward the number's limits.
func TestTextReminder(t *testing.T) {
	a := directory.User{ID: "id-a", DN: "cn=a", Login: "anna", Mobile: "+44 7400 123456"}
	b := directory.User{ID: "id-b", DN: "cn=b", Login: "ben"}
	fx, g, now := smsFixture(t, a, b)
	ctx := context.Background()
	to, err := fx.s.TextReminder(ctx, a, "Example: your password expires in 7 days.")
	if err != nil || to != "+44 •••• ••34 56" {
		t.Fatalf("text to anna: %q %v", to, err)
	}
	req := g.Wait(t, 1)
	if req.Form.Get("to") != "+447400123456" || req.Form.Get("text") != "Example: your password expires in 7 days." {
		t.Errorf("gateway got %v", req.Form)
	}
	if to, err := fx.s.TextReminder(ctx, b, "x"); err != nil || to != "" {
		t.Errorf("ben has no number: %q %v", to, err)
	}
	// A second text within the number's cooldown is not sent.
	if to, err := fx.s.TextReminder(ctx, a, "again"); err != nil || to != "" {
		t.Errorf("within the cooldown: %q %v", to, err)
	}
	_, meta, err := fx.s.Policy(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fx.s.SavePolicy(ctx, audit.CommandLine, meta.Version, "test", func(p *Policy) { p.Methods = Methods{Email: true} }); err != nil {
		t.Fatal(err)
	}
	now.Add(2 * SMSCooldown)
	if to, err := fx.s.TextReminder(ctx, a, "off"); err != nil || to != "" {
		t.Errorf("text messages off: %q %v", to, err)
	}
	if n := len(g.Requests()); n != 1 {
		t.Errorf("the gateway got %d texts, want 1", n)
	}
	for _, r := range g.Requests() {
		if strings.Contains(r.Body, "again") || strings.Contains(r.Body, "off") {
			t.Errorf("a text that should not have gone: %q", r.Body)
		}
	}
}
