package selfservice

import (
	"context"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/directory"
	"github.com/writeback/writeback/services/errs"
	"github.com/writeback/writeback/services/passkeys"
	"github.com/writeback/writeback/store"
)

// offerOf starts a reset for login and returns the methods its choice lists.
func (fx *fixture) offerOf(login string) []string {
	fx.t.Helper()
	b := "b-" + login
	return fx.view(fx.start(KindReset, login, b), b).Methods
}

// TestChoiceListsOnlyRegisteredMethods: the choice lists what the account
// can use — e-mail from its directory address, the app once registered —
// and a method it cannot use is refused as one not on the page.
func TestChoiceListsOnlyRegisteredMethods(t *testing.T) {
	fx := newFixture(t, Methods{Email: true, App: true, Questions: true}, alice)
	if got := fx.offerOf("alice"); !slices.Equal(got, []string{MethodEmail}) {
		t.Errorf("before registering: %v, want only e-mail", got)
	}
	fx.registerApp(alice, "JBSWY3DPEHPK3PXP")
	b := "b2"
	id := fx.start(KindReset, "alice", b)
	if got := fx.view(id, b).Methods; !slices.Equal(got, []string{MethodEmail, MethodApp}) {
		t.Errorf("with the app: %v", got)
	}
	err := fx.s.Choose(context.Background(), id, b, MethodQuestions, audit.Actor{})
	if errs.KindOf(err) != errs.Invalid || errs.MessageOf(err) != "Choose one of the methods on the page." {
		t.Errorf("choosing unregistered questions: %v", err)
	}
	// A method the policy no longer allows leaves the choice of a flow
	// already open.
	if _, err := fx.s.SavePolicy(context.Background(), audit.CommandLine, 1, "test", func(p *Policy) { p.Methods.App = false }); err != nil {
		t.Fatal(err)
	}
	if got := fx.view(id, b).Methods; !slices.Equal(got, []string{MethodEmail}) {
		t.Errorf("after the app was disallowed: %v", got)
	}
}

// TestDecoyChoiceTellsNothing: a flow that can never verify lists a
// plausible choice — e-mail, at least as many methods as a reset needs,
// in display order — that is the same every time for the same name (in any
// case), the same under every name of an ineligible account, and differs
// between names, as real people's do; choosing a method off its list gets
// the answer a real account gets.
func TestDecoyChoiceTellsNothing(t *testing.T) {
	protected := directory.User{ID: "S-1-5-21-adm", DN: "CN=Adm,OU=People,DC=example,DC=test", Login: "adm", Email: "adm@example.com",
		Protected: true, ProtectedReason: "member of Domain Admins"}
	all := Methods{Email: true, App: true, Questions: true}
	for _, required := range []int{1, 2} {
		fx := newFixture(t, all, alice, protected)
		if _, err := fx.s.SavePolicy(context.Background(), audit.CommandLine, 1, "test", func(p *Policy) { p.Required = required }); err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		for i := range 24 {
			name := "nobody" + strings.Repeat("x", i)
			got := fx.offerOf(name)
			if !slices.Contains(got, MethodEmail) || len(got) < required || !slices.IsSortedFunc(got, func(a, b string) int {
				return slices.Index(all.List(), a) - slices.Index(all.List(), b)
			}) {
				t.Errorf("required %d: %s offers %v", required, name, got)
			}
			if again := fx.offerOf(strings.ToUpper(name)); !slices.Equal(again, got) {
				t.Errorf("required %d: %s offers %v, then %v", required, name, got, again)
			}
			seen[strings.Join(got, ",")] = true
		}
		if len(seen) < 2 {
			t.Errorf("required %d: every unknown name offers the same %v", required, seen)
		}
		if a, b := fx.offerOf("adm"), fx.offerOf("adm@example.com"); !slices.Equal(a, b) {
			t.Errorf("the protected account offers %v under its login and %v under its address", a, b)
		}
	}
	// Choosing off the list: the same refusal as for a real account.
	fx := newFixture(t, all, alice)
	for i := 0; ; i++ {
		if i == 40 {
			t.Fatal("no name's decoy leaves out the app")
		}
		name := "stranger" + strings.Repeat("y", i)
		b := "b-" + name
		id := fx.start(KindReset, name, b)
		if slices.Contains(fx.view(id, b).Methods, MethodApp) {
			continue
		}
		err := fx.s.Choose(context.Background(), id, b, MethodApp, audit.Actor{})
		if errs.KindOf(err) != errs.Invalid || errs.MessageOf(err) != "Choose one of the methods on the page." {
			t.Errorf("choosing off the decoy list: %v", err)
		}
		break
	}
}

// TestPasskeyOfferedOnlyWhenUsable: the passkey method is offered to an
// account with a registered passkey when the policy allows it and the
// portal has a relying party; without one (a base URL on an IP address) it
// is never offered, to anyone.
func TestPasskeyOfferedOnlyWhenUsable(t *testing.T) {
	fx := newFixture(t, Methods{Email: true, Passkey: true}, alice)
	if err := fx.db.InTx(context.Background(), func(tx *store.Tx) error {
		return tx.AddPasskey(context.Background(), store.Passkey{CredentialID: "Y3JlZA", UserID: alice.ID, Name: "Phone", Secret: "sealed",
			CreatedMS: time.Now().UnixMilli()})
	}); err != nil {
		t.Fatal(err)
	}
	if got := fx.offerOf("alice"); !slices.Equal(got, []string{MethodEmail}) {
		t.Errorf("passkeys off: %v", got)
	}
	for i := range 16 {
		if got := fx.offerOf("nobody" + strings.Repeat("z", i)); slices.Contains(got, MethodPasskey) {
			t.Errorf("passkeys off: a decoy offers %v", got)
		}
	}
	pk, err := passkeys.New("https://reset.example.com", "Writeback")
	if err != nil {
		t.Fatal(err)
	}
	fx.s.UsePasskeys(pk)
	if got := fx.offerOf("alice"); !slices.Equal(got, []string{MethodEmail, MethodPasskey}) {
		t.Errorf("passkeys on: %v", got)
	}
	// Choosing it shows a request that names no credential.
	b := "bp"
	id := fx.start(KindReset, "alice", b)
	fx.choose(id, b, MethodPasskey)
	v := fx.view(id, b)
	if v.Step != StepPasskey || !strings.Contains(v.PasskeyOptions, `"challenge"`) || strings.Contains(v.PasskeyOptions, "allowCredentials") {
		t.Errorf("passkey step %q: %s", v.Step, v.PasskeyOptions)
	}
	// A name that matches none, whose decoy offers a passkey, gets the same
	// request but for its challenge.
	challengeRE := regexp.MustCompile(`"challenge":"[^"]*"`)
	for i := 0; ; i++ {
		if i == 40 {
			t.Fatal("no decoy offers a passkey")
		}
		name, nb := "nobody"+strings.Repeat("p", i), "bn"
		nid := fx.start(KindReset, name, nb)
		if !slices.Contains(fx.view(nid, nb).Methods, MethodPasskey) {
			continue
		}
		fx.choose(nid, nb, MethodPasskey)
		if got := fx.view(nid, nb).PasskeyOptions; challengeRE.ReplaceAllString(got, "") != challengeRE.ReplaceAllString(v.PasskeyOptions, "") {
			t.Errorf("a stranger's passkey request %s differs from alice's %s", got, v.PasskeyOptions)
		}
		break
	}
	// No credential sent (no JavaScript): said so, and nothing counted.
	if err := fx.s.Verify(context.Background(), id, b, MethodPasskey, "", nil, audit.Actor{}); err != ErrPasskeyNeedsScript {
		t.Errorf("empty passkey answer: %v", err)
	}
	// A response that is no assertion is a wrong answer, counted.
	err = fx.s.Verify(context.Background(), id, b, MethodPasskey, `{"id":"x"}`, nil, audit.Actor{})
	if errs.KindOf(err) != errs.Unauthorized || !strings.Contains(errs.MessageOf(err), "passkey was not accepted") {
		t.Errorf("garbage assertion: %v", err)
	}
	var n int
	if err := fx.db.InTx(context.Background(), func(tx *store.Tx) error {
		var err error
		n, _, err = tx.Failures(context.Background(), alice.ID, 0)
		return err
	}); err != nil || n != 1 {
		t.Errorf("%d failures counted (%v)", n, err)
	}
	if v2 := fx.view(id, b); v2.PasskeyOptions == v.PasskeyOptions {
		t.Error("the passkey request was not renewed after a try")
	}
}
