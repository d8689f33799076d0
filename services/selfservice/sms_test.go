package selfservice

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/directory"
	"github.com/writeback/writeback/services/errs"
	"github.com/writeback/writeback/services/sms"
	"github.com/writeback/writeback/services/sms/smstest"
)

// smsFixture is a fixture with text messages as the method and a gateway
// on loopback, on a clock the test moves.
func smsFixture(t *testing.T, users ...directory.User) (*fixture, *smstest.Gateway, *testClock) {
	t.Helper()
	fx := newFixture(t, Methods{SMS: true}, users...)
	g := smstest.Start(t)
	cfg := sms.Config{Method: "POST", URL: g.URL() + "/send", Encoding: sms.BodyForm, Body: "to={{to}}&text={{message}}", Auth: sms.AuthNone}
	if _, err := fx.s.SaveSMS(context.Background(), audit.CommandLine, 0, SMSInput{Config: cfg}); err != nil {
		t.Fatal(err)
	}
	now := &testClock{t: time.Now()}
	fx.s.SetClock(now.Now)
	return fx, g, now
}

// testClock is a clock the test moves while the service's background sends
// read it.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func (fx *fixture) chooseSMS(login, ip string) error {
	fx.t.Helper()
	from := audit.Actor{Type: "anonymous", ClientIP: ip}
	id, err := fx.s.Start(context.Background(), KindReset, login, "b-"+login, from)
	if err != nil {
		fx.t.Fatal(err)
	}
	return fx.s.Choose(context.Background(), id, "b-"+login, MethodSMS, from)
}

// TestTextMessageNumberLimits: two accounts sharing one number cannot make
// the portal text it more than the number's limits allow (a minute apart,
// 5 an hour), and neither is told (the answer stays the same as for any
// name); one client address gets at most SMSPerClient codes an hour.
func TestTextMessageNumberLimits(t *testing.T) {
	a := directory.User{ID: "id-a", DN: "cn=a", Login: "anna", Mobile: "+44 7400 123456"}
	b := directory.User{ID: "id-b", DN: "cn=b", Login: "ben", Mobile: "07400123456"} // the same number, written nationally
	fx, g, now := smsFixture(t, a, b)
	_, meta, _ := fx.s.SMSSettings(context.Background())
	m, _, _ := fx.s.SMSSettings(context.Background())
	m.DefaultRegion = "GB"
	if _, err := fx.s.SaveSMS(context.Background(), audit.CommandLine, meta.Version, SMSInput{Config: m.Config, DefaultRegion: "GB"}); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		login string
		after time.Duration
		sent  int // requests the gateway has afterwards
	}{
		{"anna", 0, 1},
		{"ben", 0, 1}, // the number's cooldown: not texted, not told
		{"ben", 61 * time.Second, 2},
		{"anna", 61 * time.Second, 3},
		{"ben", 61 * time.Second, 4},
		{"anna", 61 * time.Second, 5},
		{"ben", 61 * time.Second, 5}, // 5 in the hour: not texted
	}
	for i, st := range steps {
		now.Add(st.after)
		if err := fx.chooseSMS(st.login, "192.0.2.7"); err != nil {
			t.Fatalf("step %d (%s): %v", i, st.login, err)
		}
		fx.s.Wait()
		if n := len(g.Requests()); n != st.sent {
			t.Fatalf("step %d (%s): the gateway has %d requests, want %d", i, st.login, n, st.sent)
		}
	}
	for _, r := range g.Requests() {
		if r.Form.Get("to") != "+447400123456" {
			t.Errorf("texted %q", r.Form.Get("to"))
		}
	}
	found := false
	for _, e := range fx.audit(audit.ActivitySelfServiceProgress) {
		found = found || strings.Contains(e.Details, "reached its limit of text messages")
	}
	if !found {
		t.Error("no audit row says the number reached its limit")
	}
	// One client address: SMSPerClient asks an hour, whatever the names.
	for i := range SMSPerClient {
		if err := fx.chooseSMS("ghost"+string(rune('a'+i)), "198.51.100.9"); err != nil {
			t.Fatalf("ask %d from one address: %v", i, err)
		}
	}
	if err := fx.chooseSMS("ghost-last", "198.51.100.9"); errs.KindOf(err) != errs.TooMany {
		t.Errorf("ask %d from one address: %v, want too many", SMSPerClient+1, err)
	}
}

// TestTextMessageCodeRules: a new code voids the old one, and a code is
// single use.
func TestTextMessageCodeRules(t *testing.T) {
	a := directory.User{ID: "id-a", DN: "cn=a", Login: "anna", Mobile: "+447400123456"}
	fx, g, now := smsFixture(t, a)
	ctx := context.Background()
	from := audit.Actor{Type: "anonymous", ClientIP: "192.0.2.1"}
	id := fx.start(KindReset, "anna", "b")
	fx.choose(id, "b", MethodSMS)
	first := smstest.Code(g.Wait(t, 1).Form.Get("text"))
	now.Add(61 * time.Second)
	fx.choose(id, "b", MethodSMS)
	second := smstest.Code(g.Wait(t, 2).Form.Get("text"))
	if err := fx.s.Verify(ctx, id, "b", MethodSMS, first, nil, from); errs.KindOf(err) != errs.Unauthorized {
		t.Errorf("the voided first code: %v", err)
	}
	if err := fx.s.Verify(ctx, id, "b", MethodSMS, second, nil, from); err != nil {
		t.Fatalf("the second code: %v", err)
	}
	if v := fx.view(id, "b"); v.Step != StepPassword || v.MaskedPhone != "+44 •••• ••34 56" {
		t.Errorf("after verifying: step %q, phone %q", v.Step, v.MaskedPhone)
	}
}

// TestUnlockByTextMessage: /unlock takes a text message code as well, and
// the account is unlocked once it is verified.
func TestUnlockByTextMessage(t *testing.T) {
	a := alice
	a.Mobile = "+447400123463"
	fx, g, _ := smsFixture(t, a)
	unlocked := 0
	fx.dir.unlock = func(directory.User) (directory.Result, error) { unlocked++; return directory.Result{}, nil }
	id := fx.start(KindUnlock, "alice", "b")
	if v := fx.view(id, "b"); !slices.Contains(v.Methods, MethodSMS) {
		t.Fatalf("methods offered: %v", v.Methods)
	}
	fx.choose(id, "b", MethodSMS)
	if v := fx.view(id, "b"); v.Step != StepSMS || v.MaskedPhone != "" {
		t.Errorf("before verifying: step %q, number shown %q", v.Step, v.MaskedPhone)
	}
	code := smstest.Code(g.Wait(t, 1).Form.Get("text"))
	if err := fx.s.Verify(context.Background(), id, "b", MethodSMS, code, nil, audit.Actor{}); err != nil {
		t.Fatal(err)
	}
	if v := fx.view(id, "b"); v.Step != StepDone || unlocked != 1 {
		t.Errorf("after verifying: step %q, %d unlocks", v.Step, unlocked)
	}
}

// TestNoGatewayNoText: with text messages a method but no gateway, asking
// for a code says so in plain words, to a real account and an unknown name
// alike.
func TestNoGatewayNoText(t *testing.T) {
	a := alice
	a.Mobile = "+447400123464"
	fx := newFixture(t, Methods{SMS: true, Email: true}, a)
	// An unknown name offers text messages only in some names' decoys
	// (offer.go): take one that does.
	stranger := "nobody"
	for i := 0; !slices.Contains(fx.offerOf(stranger), MethodSMS); i++ {
		if i == 40 {
			t.Fatal("no decoy offers text messages")
		}
		stranger = "nobody" + strconv.Itoa(i)
	}
	for _, login := range []string{"alice", stranger} {
		id := fx.start(KindReset, login, "b-"+login)
		err := fx.s.Choose(context.Background(), id, "b-"+login, MethodSMS, audit.Actor{})
		if errs.MessageOf(err) != MsgSMSUnavailable || errs.KindOf(err) != errs.Unavailable {
			t.Errorf("%s: %v", login, err)
		}
	}
}
