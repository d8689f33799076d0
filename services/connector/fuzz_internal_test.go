package connector

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/writeback/writeback/services/agentwire"
	"github.com/writeback/writeback/services/directory"
)

// nopDir answers every operation with zero values and counts the writes
// that carry a password.
type nopDir struct {
	directory.Directory
	passwords int
}

func (d *nopDir) Find(context.Context, string) (directory.User, directory.Result, error) {
	return directory.User{}, directory.Result{}, nil
}
func (d *nopDir) Get(context.Context, string) (directory.User, directory.Result, error) {
	return directory.User{}, directory.Result{}, nil
}
func (d *nopDir) Search(context.Context, string, int) ([]directory.User, error)  { return nil, nil }
func (d *nopDir) MemberOf(context.Context, directory.User, string) (bool, error) { return false, nil }
func (d *nopDir) Policy(context.Context, directory.User) (directory.Policy, error) {
	return directory.Policy{}, nil
}
func (d *nopDir) ResetUser(_ context.Context, _ directory.User, pw string, _ directory.ResetOptions) (directory.User, directory.Result, error) {
	d.note(pw)
	return directory.User{}, directory.Result{}, nil
}
func (d *nopDir) ResetLogin(_ context.Context, _, pw string, _ directory.ResetOptions) (directory.User, directory.Result, error) {
	d.note(pw)
	return directory.User{}, directory.Result{}, nil
}
func (d *nopDir) Unlock(context.Context, directory.User) (directory.Result, error) {
	return directory.Result{}, nil
}
func (d *nopDir) UnlockLogin(context.Context, string) (directory.User, directory.Result, error) {
	return directory.User{}, directory.Result{}, nil
}
func (d *nopDir) ChangeLogin(_ context.Context, _, old, pw string, _ directory.Admit) (directory.Candidate, directory.Result, error) {
	d.note(old + pw)
	return directory.Candidate{}, directory.Result{}, nil
}
func (d *nopDir) AuthenticateLogin(_ context.Context, _, pw string, _ directory.Admit) (directory.Candidate, directory.Result, error) {
	d.note(pw)
	return directory.Candidate{}, directory.Result{}, nil
}
func (d *nopDir) Test(context.Context, string) directory.Checklist { return directory.Checklist{} }

func (d *nopDir) note(pw string) {
	if pw != "" {
		d.passwords++
	}
}

// FuzzJob: whatever a portal sends as a job, the agent answers without
// panicking, and no password reaches the directory unless it was sealed
// on this agent's session (the fuzzer cannot forge a seal).
func FuzzJob(f *testing.F) {
	now := time.Now()
	for _, j := range []agentwire.Job{
		{Op: agentwire.OpResetLogin, Login: "ann", Deadline: now.Add(time.Minute).UnixMilli()},
		{Op: agentwire.OpResetUser, User: &directory.User{DN: "uid=ann,ou=people,dc=writeback,dc=test"}, Deadline: now.Add(time.Minute).UnixMilli()},
		{Op: agentwire.OpChangeLogin, Login: "ann", Deadline: now.Add(time.Minute).UnixMilli(), Sealed: map[string][]byte{"password": []byte("x")}},
		{Op: agentwire.OpMemberOf, Deadline: now.Add(time.Minute).UnixMilli()},
		{Op: agentwire.OpPolicy, Deadline: now.Add(time.Minute).UnixMilli()},
	} {
		b, _ := json.Marshal(j)
		f.Add(b)
	}
	f.Add([]byte(`{"op":"reset_login","login":"ann","deadline":9999999999999,"password":"x"}`))
	f.Add([]byte(`null`))
	ident, err := agentwire.NewIdentity()
	if err != nil {
		f.Fatal(err)
	}
	n1, n2 := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)
	_, enc, err := agentwire.NewPortalSession(ident.Public(), "id", n1, n2)
	if err != nil {
		f.Fatal(err)
	}
	sess, err := ident.OpenSession("id", n1, n2, enc)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		d := &nopDir{}
		a := New(Config{AgentID: "id", Identity: ident,
			Directory: func(context.Context) (directory.Directory, []string, error) {
				return d, []string{"ou=people,dc=writeback,dc=test"}, nil
			},
			Status: func(context.Context) agentwire.Status {
				return agentwire.Status{PasswordWriteback: true, Configured: true}
			}})
		s := &session{a: a, c: nil, sess: sess, running: map[string]chan agentwire.Envelope{"j": make(chan agentwire.Envelope, 1)}}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		res := s.job(ctx, agentwire.Envelope{Type: agentwire.TypeJob, ID: "j", Body: body}, time.Now())
		if d.passwords != 0 {
			t.Fatalf("a password reached the directory without a seal: %s (result %+v)", body, res.Error)
		}
	})
}
