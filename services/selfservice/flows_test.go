package selfservice

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/writeback/writeback/services/admins"
	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/directory"
	"github.com/writeback/writeback/services/errs"
	"github.com/writeback/writeback/services/settings"
	"github.com/writeback/writeback/store"
)

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

const appSecret = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"

// TestGuessesAcrossFlowsCountedOneByOne is issue 8 item 1: flows opened in
// advance for one account, then many concurrent wrong guesses across them
// (e-mail codes, authenticator codes and security answers) — no more than
// five are ever evaluated, and every flow is blocked afterwards, even for
// the right answer.
func TestGuessesAcrossFlowsCountedOneByOne(t *testing.T) {
	fx := newFixture(t, Methods{Email: true, App: true, Questions: true}, alice)
	fx.registerApp(alice, appSecret)
	fx.registerQuestions(alice, "Paris", "Rex", "Volvo")
	var evaluated atomic.Int32
	fx.s.evaluating = func(string) { evaluated.Add(1) }

	type open struct{ id, browser, method string }
	var flows []open
	for i, m := range []string{MethodEmail, MethodApp, MethodQuestions, MethodEmail, MethodApp, MethodQuestions} {
		b := fmt.Sprintf("browser-%d", i)
		id := fx.start(KindReset, "alice", b)
		fx.choose(id, b, m)
		flows = append(flows, open{id, b, m})
	}
	wrongApp := "000000"
	if ok, _ := totp.ValidateCustom(wrongApp, appSecret, time.Now(), totp.ValidateOpts{Period: 30, Digits: 6}); ok {
		wrongApp = "000001"
	}
	const guesses = 60
	var wg sync.WaitGroup
	ready := make(chan struct{})
	var mu sync.Mutex
	answers := map[string]int{}
	for i := 0; i < guesses; i++ {
		wg.Add(1)
		go func(fl open) {
			defer wg.Done()
			<-ready
			code := map[string]string{MethodEmail: "00000000", MethodApp: wrongApp}[fl.method]
			err := fx.s.Verify(context.Background(), fl.id, fl.browser, fl.method, code, []string{"x", "y", "z"}, audit.Actor{})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case errors.Is(err, errBlocked):
				answers["blocked"]++
			case errors.Is(err, errBusy):
				answers["busy"]++
			case errs.KindOf(err) == errs.Unauthorized:
				answers["wrong"]++
			default:
				t.Errorf("guess answered %v", err)
			}
		}(flows[i%len(flows)])
	}
	close(ready)
	wg.Wait()
	if n := evaluated.Load(); n != FailuresToBlock {
		t.Errorf("%d wrong guesses evaluated, want exactly %d (answers %v)", n, FailuresToBlock, answers)
	}
	if answers["wrong"] > FailuresToBlock-1 || answers["blocked"] == 0 {
		t.Errorf("answers %v", answers)
	}
	failed := 0
	for _, r := range fx.audit(audit.ActivitySelfServiceProgress) {
		if strings.HasPrefix(r.Reason, "verification failed") {
			failed++
		}
	}
	if failed != FailuresToBlock {
		t.Errorf("%d failed verifications audited, want %d", failed, FailuresToBlock)
	}
	if rows := fx.audit(audit.ActivityBlockedSelfService); len(rows) != 1 {
		t.Errorf("%d block rows, want 1", len(rows))
	}
	// Every flow, opened before the block, is blocked now — at every step,
	// and even for the right answer.
	right, _ := totp.GenerateCode(appSecret, time.Now())
	for _, fl := range flows {
		if v := fx.view(fl.id, fl.browser); v.Step != StepBlocked {
			t.Errorf("flow %s shows %s, want blocked", fl.method, v.Step)
		}
		if err := fx.s.Verify(context.Background(), fl.id, fl.browser, MethodApp, right, nil, audit.Actor{}); !errors.Is(err, errBlocked) {
			t.Errorf("right answer on a blocked flow: %v", err)
		}
		if err := fx.s.Choose(context.Background(), fl.id, fl.browser, MethodEmail, audit.Actor{}); !errors.Is(err, errBlocked) {
			t.Errorf("choose on a blocked flow: %v", err)
		}
	}
	if n := evaluated.Load(); n != FailuresToBlock {
		t.Errorf("blocked flows evaluated guesses: %d", n)
	}
	// The failures that led to the block are kept.
	var kept int
	if err := fx.db.SQL().QueryRow(`SELECT count(*) FROM sspr_failures WHERE user_id = ? AND pending = 0`, alice.ID).Scan(&kept); err != nil {
		t.Fatal(err)
	}
	if kept != FailuresToBlock {
		t.Errorf("%d failures kept after the block, want %d", kept, FailuresToBlock)
	}
	// A flow opened now starts blocked.
	b := "browser-late"
	id := fx.start(KindReset, "alice", b)
	if v := fx.view(id, b); v.Step != StepBlocked {
		t.Errorf("new flow shows %s", v.Step)
	}
}

// TestRightGuessReleasesItsReservation: a right answer does not count, and
// a wrong one after it still does.
func TestRightGuessReleasesItsReservation(t *testing.T) {
	fx := newFixture(t, Methods{App: true, Questions: true}, alice)
	fx.registerApp(alice, appSecret)
	qs := fx.registerQuestions(alice, "Paris", "Rex", "Volvo")
	now := time.Now()
	fx.s.SetClock(func() time.Time { return now })
	ctx := context.Background()
	id := fx.start(KindReset, "alice", "b")
	fx.choose(id, "b", MethodQuestions)
	// Questions are asked in sorted order.
	given := map[string]string{qs[0]: " paris", qs[1]: "REX", qs[2]: "volvo!"}
	var answers []string
	for _, q := range fx.view(id, "b").Questions {
		answers = append(answers, given[q])
	}
	if len(answers) != 3 {
		t.Fatalf("questions asked: %v", fx.view(id, "b").Questions)
	}
	if err := fx.s.Verify(ctx, id, "b", MethodQuestions, "", []string{"wrong", "wrong", "wrong"}, audit.Actor{}); errs.KindOf(err) != errs.Unauthorized {
		t.Fatalf("wrong answers: %v", err)
	}
	if err := fx.s.Verify(ctx, id, "b", MethodQuestions, "", answers, audit.Actor{}); err != nil {
		t.Fatalf("right answers: %v", err)
	}
	var settled, pending int
	fx.db.SQL().QueryRow(`SELECT coalesce(sum(pending = 0), 0), coalesce(sum(pending = 1), 0) FROM sspr_failures`).Scan(&settled, &pending)
	if settled != 1 || pending != 0 {
		t.Errorf("failures: %d settled, %d pending; want 1 and 0", settled, pending)
	}
	if v := fx.view(id, "b"); v.Step != StepPassword {
		t.Errorf("step %s after the right answers", v.Step)
	}
}

// A busy hasher is not a wrong answer: the guess was never evaluated, so it
// must not count toward the block, and its reservation is given back.
func TestBusyHasherIsNoWrongAnswer(t *testing.T) {
	fx := newFixture(t, Methods{Questions: true}, alice)
	fx.registerQuestions(alice, "Paris", "Rex", "Volvo")
	fx.s.verifyHash = func(string, string) (bool, error) { return false, admins.ErrBusy }
	ctx := context.Background()
	id := fx.start(KindReset, "alice", "b")
	fx.choose(id, "b", MethodQuestions)
	for range FailuresToBlock + 1 {
		if err := fx.s.Verify(ctx, id, "b", MethodQuestions, "", []string{"a", "b", "c"}, audit.Actor{}); !errors.Is(err, admins.ErrBusy) {
			t.Fatalf("verify with a busy hasher: %v, want admins.ErrBusy", err)
		}
	}
	var n int
	if err := fx.db.SQL().QueryRow(`SELECT count(*) FROM sspr_failures`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("failures recorded for busy answers: %d (%v)", n, err)
	}
	if v := fx.view(id, "b"); v.Step != StepQuestions {
		t.Fatalf("step %s after busy answers, want the questions again", v.Step)
	}
}

// TestRegistrationCodeCannotVerifyReset is issue 8 item 8: the
// authenticator code that confirmed the app at registration is used up.
func TestRegistrationCodeCannotVerifyReset(t *testing.T) {
	fx := newFixture(t, Methods{App: true}, alice)
	now := time.Now()
	fx.s.SetClock(func() time.Time { return now })
	ctx := context.Background()
	reg := store.Flow{ID: randomID(), Kind: KindRegister, BrowserHash: BrowserHash("r"), Login: alice.Login, UserID: alice.ID, UserDN: alice.DN,
		Eligible: true, CorrelationID: "c", CreatedMS: now.UnixMilli(), ExpiresMS: now.Add(FlowTTL).UnixMilli()}
	if err := fx.db.InTx(ctx, func(tx *store.Tx) error { return tx.InsertFlow(ctx, reg) }); err != nil {
		t.Fatal(err)
	}
	if err := fx.s.BeginApp(ctx, reg.ID, "r"); err != nil {
		t.Fatal(err)
	}
	r, err := fx.s.Registration(ctx, reg.ID, "r")
	if err != nil || r.AppSecret == "" {
		t.Fatalf("registration: %+v %v", r, err)
	}
	// A code of the previous step is accepted at registration, as at a reset.
	x, _ := totp.GenerateCode(r.AppSecret, now.Add(-30*time.Second))
	if err := fx.s.ConfirmApp(ctx, reg.ID, "r", x, audit.Actor{}); err != nil {
		t.Fatalf("confirm app: %v", err)
	}
	id := fx.start(KindReset, "alice", "b")
	fx.choose(id, "b", MethodApp)
	if err := fx.s.Verify(ctx, id, "b", MethodApp, x, nil, audit.Actor{}); errs.KindOf(err) != errs.Unauthorized {
		t.Errorf("the registration code verified a reset: %v", err)
	}
	// The current step's code was never used: it verifies.
	y, _ := totp.GenerateCode(r.AppSecret, now)
	if err := fx.s.Verify(ctx, id, "b", MethodApp, y, nil, audit.Actor{}); err != nil {
		t.Errorf("a fresh code: %v", err)
	}
}

// TestUnlockOutcomes is issue 8 item 5 for /unlock: a failed unlock is never
// shown as done and can be tried again; an account that was not locked is
// told so after it verified; the person sees only MsgOurSide while the audit
// row keeps the diagnostic.
func TestUnlockOutcomes(t *testing.T) {
	refused := errs.E(errs.Forbidden, "The portal's service account lacks the right to do this in the directory.",
		&directory.OpError{Op: "unlock", Code: directory.CodeNotPermitted, LDAPResult: 50, Server: "ldaps://dc1.example.test",
			Diagnostic: "00002098: SecErr: DSID-03150F94, problem 4003 (INSUFF_ACCESS_RIGHTS), data 0"})
	ctx := context.Background()

	t.Run("failed then retried", func(t *testing.T) {
		fx := newFixture(t, Methods{App: true}, alice)
		fx.registerApp(alice, appSecret)
		fail := true
		fx.dir.unlock = func(directory.User) (directory.Result, error) {
			if fail {
				return directory.Result{Server: "ldaps://dc1.example.test"}, refused
			}
			return directory.Result{Server: "ldaps://dc1.example.test"}, nil
		}
		id := fx.start(KindUnlock, "alice", "b")
		fx.choose(id, "b", MethodApp)
		code, _ := totp.GenerateCode(appSecret, time.Now())
		err := fx.s.Verify(ctx, id, "b", MethodApp, code, nil, audit.Actor{})
		if errs.MessageOf(err) != MsgOurSide || errs.KindOf(err) != errs.Unavailable {
			t.Fatalf("failed unlock answered %q (%v)", errs.MessageOf(err), err)
		}
		if v := fx.view(id, "b"); v.Step != StepUnlock {
			t.Errorf("after a failed unlock the step is %s, want %s", v.Step, StepUnlock)
		}
		rows := fx.audit(audit.ActivityUnlockSelfService)
		if len(rows) != 1 || rows[0].Result != "failure" || !strings.Contains(rows[0].Details, "INSUFF_ACCESS_RIGHTS") ||
			!strings.Contains(rows[0].Details, "dc1.example.test") || rows[0].TargetName != "Alice Example (alice)" {
			t.Errorf("audit of the failed unlock: %+v", rows)
		}
		// The administrators' status panel hears of it at once (the
		// directory client reports no missing right by itself).
		if st, err := settings.New(fx.db).Status(ctx); err != nil || st.State != settings.StateError ||
			st.Message != errs.MessageOf(refused) || !strings.Contains(strings.Join(st.Details, " "), "unlock") {
			t.Errorf("status panel after the failed unlock: %+v (%v)", st, err)
		}
		fail = false
		if err := fx.s.Unlock(ctx, id, "b", audit.Actor{}); err != nil {
			t.Fatalf("retry: %v", err)
		}
		if v := fx.view(id, "b"); v.Step != StepDone || v.NotLocked {
			t.Errorf("after the retry: %+v", v)
		}
		if n := fx.dir.count("unlock"); n != 2 {
			t.Errorf("%d unlocks written", n)
		}
		if rows := fx.audit(audit.ActivityUnlockSelfService); len(rows) != 2 || rows[0].Result != "success" {
			t.Errorf("audit after the retry: %+v", rows)
		}
	})

	t.Run("not locked", func(t *testing.T) {
		bob := alice
		bob.ID, bob.DN, bob.Login, bob.Email, bob.Locked = "S-1-bob", "CN=Bob,OU=People", "bob", "bob@example.com", false
		fx := newFixture(t, Methods{App: true}, bob)
		fx.registerApp(bob, appSecret)
		id := fx.start(KindUnlock, "bob", "b")
		if v := fx.view(id, "b"); v.NotLocked {
			t.Fatal("says 'not locked' before any verification")
		}
		fx.choose(id, "b", MethodApp)
		code, _ := totp.GenerateCode(appSecret, time.Now())
		if err := fx.s.Verify(ctx, id, "b", MethodApp, code, nil, audit.Actor{}); err != nil {
			t.Fatal(err)
		}
		if v := fx.view(id, "b"); v.Step != StepDone || !v.NotLocked {
			t.Errorf("view %+v, want done and not locked", v)
		}
		if n := fx.dir.count("unlock"); n != 0 {
			t.Errorf("%d unlocks written for an account that was not locked", n)
		}
	})
}

// TestFailuresOnOurSide: a directory that cannot be reached, a service
// account the directory refuses and a policy refusal each leave an audit row
// with the raw diagnostic; the person sees MsgOurSide (or the rule), never
// administrator text.
func TestFailuresOnOurSide(t *testing.T) {
	ctx := context.Background()
	unreachable := errs.E(errs.Unavailable, "The directory is not reachable right now. Please try again in a few minutes.",
		&directory.OpError{Op: "find", Code: directory.CodeUnavailable, LDAPResult: 200, Server: "ldaps://dc1.example.test", Err: errors.New("dial tcp 192.0.2.9:636: i/o timeout")})
	serviceAccount := errs.E(errs.Unavailable, "The directory refused the portal's service account (wrong DN or password). A Global Administrator must check it under Directory connection.",
		&directory.OpError{Op: "bind", Code: directory.CodeServiceAccount, LDAPResult: 49, Server: "ldaps://dc1.example.test",
			Diagnostic: "80090308: LdapErr: DSID-0C090439, comment: AcceptSecurityContext error, data 52e, v4563"})
	policy := errs.E(errs.Policy, "The new password is too short: at least 7 characters.",
		&directory.OpError{Op: "reset", Code: directory.CodePolicy, LDAPResult: 19, Rule: "length", Diagnostic: "0000052D: Constraint violation - check_password_restrictions: the password is too short."})

	t.Run("directory unreachable at start", func(t *testing.T) {
		fx := newFixture(t, Methods{App: true}, alice)
		fx.dir.lookup = func(string) (directory.User, error) { return directory.User{}, unreachable }
		_, err := fx.s.Start(ctx, KindReset, "alice", "b", audit.Actor{})
		if errs.MessageOf(err) != MsgOurSide {
			t.Errorf("start answered %q", errs.MessageOf(err))
		}
		rows := fx.audit(audit.ActivitySelfServiceProgress)
		if len(rows) != 1 || rows[0].Result != "failure" || !strings.Contains(rows[0].Details, "i/o timeout") || !strings.Contains(rows[0].Details, `"ldap_result":200`) {
			t.Errorf("audit: %+v", rows)
		}
	})
	for _, tc := range []struct {
		name    string
		err     error
		want    string // message shown
		field   string // or the field it is shown at
		details string // in the audit row
	}{
		{"service account refused", serviceAccount, MsgOurSide, "", "data 52e"},
		{"unreachable", unreachable, MsgOurSide, "", "i/o timeout"},
		{"policy refusal", policy, "", "password", "0000052D"},
	} {
		t.Run("reset: "+tc.name, func(t *testing.T) {
			fx := newFixture(t, Methods{App: true}, alice)
			fx.registerApp(alice, appSecret)
			fx.dir.reset = func(directory.User, string) (directory.Result, error) { return directory.Result{}, tc.err }
			id := fx.start(KindReset, "alice", "b")
			fx.choose(id, "b", MethodApp)
			code, _ := totp.GenerateCode(appSecret, time.Now())
			if err := fx.s.Verify(ctx, id, "b", MethodApp, code, nil, audit.Actor{}); err != nil {
				t.Fatal(err)
			}
			err := fx.s.SetPassword(ctx, id, "b", "Passw0rd!x", "Passw0rd!x", audit.Actor{})
			shown := errs.MessageOf(err)
			if tc.field != "" {
				shown = errs.FieldsOf(err)[tc.field]
				if shown != errs.MessageOf(tc.err) {
					t.Errorf("policy refusal shown as %q", shown)
				}
			} else if shown != tc.want {
				t.Errorf("shown %q, want %q", shown, tc.want)
			}
			if strings.Contains(shown, "service account") || strings.Contains(shown, "Administrator") {
				t.Errorf("administrator text shown: %q", shown)
			}
			rows := fx.audit(audit.ActivityResetSelfService)
			if len(rows) != 1 || rows[0].Result != "failure" || !strings.Contains(rows[0].Details, tc.details) {
				t.Errorf("audit: %+v", rows)
			}
			if v := fx.view(id, "b"); v.Step != StepPassword {
				t.Errorf("after the failure the step is %s: the person cannot try again", v.Step)
			}
		})
	}
}

// TestEmployeeError maps each kind of error to what a person may see.
func TestEmployeeError(t *testing.T) {
	opErr := func(kind errs.Kind, code directory.Code, msg string) error {
		return errs.E(kind, msg, &directory.OpError{Op: "reset", Code: code})
	}
	for _, tc := range []struct {
		name string
		err  error
		same bool   // passes unchanged; otherwise want
		want string // "" for MsgOurSide
	}{
		{"field errors", errs.FieldErrors(map[string]string{"login": "Enter your user name."}), true, ""},
		{"flow gone", ErrFlowGone, true, ""},
		{"blocked", errBlocked, true, ""},
		{"too many codes", ErrTooManyCodes, true, ""},
		{"wrong answer", errs.E(errs.Unauthorized, "That code is not right.", nil), true, ""},
		{"self-service off", errs.E(errs.Forbidden, "Self-service password reset is not turned on for your organisation.", nil), true, ""},
		{"policy", opErr(errs.Policy, directory.CodePolicy, "The new password is too short: at least 7 characters."), true, ""},
		{"no mail server", ErrNoMail, false, ""},
		{"service account", opErr(errs.Unavailable, directory.CodeServiceAccount, "The directory refused the portal's service account."), false, ""},
		{"no right", opErr(errs.Forbidden, directory.CodeNotPermitted, "The portal's service account lacks the right to do this in the directory."), false, ""},
		{"insecure", opErr(errs.Forbidden, directory.CodeInsecure, "Passwords are only written over LDAPS or StartTLS."), false, ""},
		{"directory internal", opErr(errs.Internal, directory.CodeInternal, "The directory refused the request."), false, ""},
		{"store", fmt.Errorf("store: begin: %w", errors.New("disk I/O error")), false, ""},
		// Through writeback agents: none connected, or none answered in time.
		{"no agent", errs.E(errs.Unavailable, "Writeback unavailable: no agent connected.", directory.ErrNotReached), false, directory.MsgNotReached},
		{"agent timeout", errs.E(errs.Unavailable, directory.MsgNotReached,
			&directory.OpError{Op: "reset", Code: directory.CodeUnavailable, Server: "agent a1", Err: fmt.Errorf("agent a1 did not answer (%w)", directory.ErrNotReached)}), false, directory.MsgNotReached},
		// A direct connection that failed may have written: no promise.
		{"directory unreachable", opErr(errs.Unavailable, directory.CodeUnavailable, "The directory did not answer in time."), false, ""},
	} {
		want := tc.want
		if want == "" {
			want = MsgOurSide
		}
		got := EmployeeError(tc.err)
		switch {
		case tc.same && got != tc.err:
			t.Errorf("%s: changed to %v", tc.name, got)
		case !tc.same && (errs.MessageOf(got) != want || errs.KindOf(got) != errs.Unavailable || !errors.Is(got, tc.err)):
			t.Errorf("%s: %q (%v)", tc.name, errs.MessageOf(got), got)
		}
	}
	if EmployeeError(nil) != nil {
		t.Error("nil became an error")
	}
}

// TestStartRefusesWhatIsNoLogin is issue 8 item 7: a typed name with a
// control character is a field error; nothing reaches the directory and no
// flow is opened.
func TestStartRefusesWhatIsNoLogin(t *testing.T) {
	fx := newFixture(t, Methods{App: true}, alice)
	for _, login := range []string{"alice\x00junk", "alice\n", "ali\u200bce", "", "   ", strings.Repeat("a", 257), "\xff"} {
		_, err := fx.s.Start(context.Background(), KindReset, login, "b", audit.Actor{})
		if errs.FieldsOf(err)["login"] == "" {
			t.Errorf("%q: %v, want a field error", login, err)
		}
	}
	if n := fx.dir.count("lookup"); n != 0 {
		t.Errorf("%d lookups reached the directory", n)
	}
	var flows int
	fx.db.SQL().QueryRow(`SELECT count(*) FROM sspr_flows`).Scan(&flows)
	if flows != 0 {
		t.Errorf("%d flows opened", flows)
	}
}

// TestAuditNamesTheResolvedAccount is issue 8 item 7: rows about an account
// that matched name the account, not what was typed; only when nothing
// matched is the typed text recorded. Failures count against the account
// whichever of its names was typed.
func TestAuditNamesTheResolvedAccount(t *testing.T) {
	fx := newFixture(t, Methods{App: true}, alice)
	fx.registerApp(alice, appSecret)
	ctx := context.Background()
	for i, typed := range []string{"ALICE@example.com", "alice"} {
		b := fmt.Sprint("b", i)
		id := fx.start(KindReset, typed, b)
		fx.choose(id, b, MethodApp)
		fx.s.Verify(ctx, id, b, MethodApp, "000000", nil, audit.Actor{})
	}
	fx.start(KindReset, "nobody@example.com", "b9")
	var keys []string
	rows, _ := fx.db.SQL().Query(`SELECT DISTINCT user_id FROM sspr_failures`)
	for rows.Next() {
		var k string
		rows.Scan(&k)
		keys = append(keys, k)
	}
	rows.Close()
	if len(keys) != 1 || keys[0] != alice.ID {
		t.Errorf("failures counted against %v, want only %s", keys, alice.ID)
	}
	for _, r := range fx.audit("") {
		if r.Category != audit.CategoryUserManagement {
			continue
		}
		if strings.Contains(r.ActorName+r.TargetName+r.Details, "ALICE@example.com") {
			t.Errorf("row %q carries the typed text: actor %q target %q", r.Activity, r.ActorName, r.TargetName)
		}
		if r.TargetID == alice.ID && r.TargetName != "Alice Example (alice)" {
			t.Errorf("row %q names %q", r.Activity, r.TargetName)
		}
		if r.TargetID == "" && r.TargetName != "nobody@example.com" {
			t.Errorf("unmatched row names %q", r.TargetName)
		}
	}
}

// TestTriesLeftReadsRight is issue 8 item 14's "1 more try".
func TestTriesLeftReadsRight(t *testing.T) {
	for n, want := range map[int]string{4: "That code is not right. You have 4 more tries with it.", 1: "That code is not right. You have 1 more try with it.", 0: "That code is not right. That was the last try with it: send a new one."} {
		if got := wrongCode(n).String(); got != want {
			t.Errorf("wrongCode(%d) = %q, want %q", n, got, want)
		}
	}
}

// TestStepsReadTheAccountOnce: a step re-reads the person's directory entry
// once, however many things it needs from it — the password page (where
// codes go, and the password policy), and a reset or unlock (the write, and
// where the notice goes).
func TestStepsReadTheAccountOnce(t *testing.T) {
	ctx := context.Background()
	for _, kind := range []string{KindReset, KindUnlock} {
		t.Run(kind, func(t *testing.T) {
			fx := newFixture(t, Methods{App: true}, alice)
			fx.registerApp(alice, appSecret)
			id := fx.start(kind, "alice", "b")
			fx.choose(id, "b", MethodApp)
			gets := fx.dir.count("get")
			code, _ := totp.GenerateCode(appSecret, time.Now())
			if err := fx.s.Verify(ctx, id, "b", MethodApp, code, nil, audit.Actor{}); err != nil {
				t.Fatal(err)
			}
			if kind == KindUnlock {
				if n := fx.dir.count("get") - gets; n != 1 || fx.dir.count("unlock") != 1 {
					t.Errorf("the unlock read the account %d times, want 1", n)
				}
				return
			}
			gets = fx.dir.count("get")
			v := fx.view(id, "b")
			if v.Step != StepPassword || !v.HasPolicy || len(v.Masked) != 1 {
				t.Fatalf("password page: %+v", v)
			}
			if n := fx.dir.count("get") - gets; n != 1 {
				t.Errorf("the password page read the account %d times, want 1", n)
			}
			gets = fx.dir.count("get")
			if err := fx.s.SetPassword(ctx, id, "b", "Passw0rd!x", "Passw0rd!x", audit.Actor{}); err != nil {
				t.Fatal(err)
			}
			if n := fx.dir.count("get") - gets; n != 1 || fx.dir.count("reset") != 1 {
				t.Errorf("the reset read the account %d times, want 1", n)
			}
		})
	}
}

// TestSetPasswordAnotherAccountAtTheDN: when the flow's DN now holds
// another account (deleted and re-created under the same name), the
// password step writes nothing and the flow is gone.
func TestSetPasswordAnotherAccountAtTheDN(t *testing.T) {
	ctx := context.Background()
	fx := newFixture(t, Methods{App: true}, alice)
	fx.registerApp(alice, appSecret)
	id := fx.start(KindReset, "alice", "b")
	fx.choose(id, "b", MethodApp)
	code, _ := totp.GenerateCode(appSecret, time.Now())
	if err := fx.s.Verify(ctx, id, "b", MethodApp, code, nil, audit.Actor{}); err != nil {
		t.Fatal(err)
	}
	other := alice
	other.ID = "S-1-5-21-someone-else"
	fx.dir.get = func(string) (directory.User, error) { return other, nil }
	err := fx.s.SetPassword(ctx, id, "b", "Passw0rd!x", "Passw0rd!x", audit.Actor{})
	if !errors.Is(err, ErrFlowGone) || fx.dir.count("reset") != 0 {
		t.Fatalf("SetPassword: %v, %d writes", err, fx.dir.count("reset"))
	}
	rows := fx.audit(audit.ActivityResetSelfService)
	if len(rows) != 1 || rows[0].Result != "failure" || !strings.Contains(rows[0].Details, "re-read the account") {
		t.Errorf("audit: %+v", rows)
	}
}
