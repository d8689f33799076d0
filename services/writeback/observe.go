package writeback

import (
	"context"
	"time"

	"github.com/writeback/writeback/services/directory"
	"github.com/writeback/writeback/services/settings"
)

// Recorder is what the service tells the portal's metrics: the time of
// each directory write (reset, unlock, change) with the mode it went
// through (ModeDirect or ModeAgents), and, per health reading, whether
// each configured server was reached. The default records nothing.
type Recorder interface {
	DirectoryWrite(operation, mode string, d time.Duration)
	DirectoryServers(up map[string]bool)
}

type noRecorder struct{}

func (noRecorder) DirectoryWrite(string, string, time.Duration) {}
func (noRecorder) DirectoryServers(map[string]bool)             {}

// UseRecorder makes the service report to r.
func (s *Service) UseRecorder(r Recorder) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rec = r
}

func (s *Service) recorder() Recorder {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rec == nil {
		return noRecorder{}
	}
	return s.rec
}

// Health is one reading of the status monitor (Monitor): the status it
// recorded, and for the checklist's failed lines the raw diagnostic too,
// which only administrators see.
type Health struct {
	State     settings.ServiceState
	Message   string
	CheckedAt time.Time
	// Lines are the checklist's lines, a failed one with its diagnostic.
	Lines []string
}

// OnHealth makes Monitor call f after each of its readings, on Monitor's
// goroutine (so on the replica that runs it: the leader). Checks an
// administrator runs (Test) and outages noticed by requests do not call it.
func (s *Service) OnHealth(f func(context.Context, Health)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onHealth = f
}

func (s *Service) healthHook() func(context.Context, Health) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.onHealth
}

// timedWrites is a directory whose writes report their time to a Recorder.
type timedWrites struct {
	directory.Directory
	rec  Recorder
	mode string
}

func (t timedWrites) since(op string, start time.Time) {
	t.rec.DirectoryWrite(op, t.mode, time.Since(start))
}

func (t timedWrites) ResetUser(ctx context.Context, u directory.User, pw string, opt directory.ResetOptions) (directory.User, directory.Result, error) {
	defer t.since("reset", time.Now())
	return t.Directory.ResetUser(ctx, u, pw, opt)
}

func (t timedWrites) ResetLogin(ctx context.Context, login, pw string, opt directory.ResetOptions) (directory.User, directory.Result, error) {
	defer t.since("reset", time.Now())
	return t.Directory.ResetLogin(ctx, login, pw, opt)
}

func (t timedWrites) Unlock(ctx context.Context, u directory.User) (directory.Result, error) {
	defer t.since("unlock", time.Now())
	return t.Directory.Unlock(ctx, u)
}

func (t timedWrites) UnlockLogin(ctx context.Context, login string) (directory.User, directory.Result, error) {
	defer t.since("unlock", time.Now())
	return t.Directory.UnlockLogin(ctx, login)
}

func (t timedWrites) ChangeLogin(ctx context.Context, login, oldPw, newPw string, admit directory.Admit) (directory.Candidate, directory.Result, error) {
	defer t.since("change", time.Now())
	return t.Directory.ChangeLogin(ctx, login, oldPw, newPw, admit)
}
