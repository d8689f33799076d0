package writeback

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/directory"
	"github.com/writeback/writeback/services/errs"
	"github.com/writeback/writeback/services/i18n"
	"github.com/writeback/writeback/services/settings"
	"github.com/writeback/writeback/store"
)

// Health monitor tuning.
const (
	// outageRetry is how soon the monitor checks again while the last check
	// failed, so that the panel also shows the recovery soon.
	outageRetry = 30 * time.Second
	// minCheckGap keeps an outage, which every request runs into, from
	// making the monitor check without pause.
	minCheckGap = 5 * time.Second
	// outageNoteEvery limits how often failed operations rewrite the status.
	outageNoteEvery = 5 * time.Second
)

// health is the status monitor's state.
type health struct {
	kick chan struct{} // an operation found the directory unusable: check soon
	// retry and gap are outageRetry and minCheckGap (shorter in tests).
	retry, gap time.Duration

	mu    sync.Mutex
	noted time.Time // when an operation last recorded an outage
}

func newHealth() health {
	return health{kick: make(chan struct{}, 1), retry: outageRetry, gap: minCheckGap}
}

// NoteFailure tells the status panel that a real operation outside this
// package (a self-service step) met a failure of the directory on the
// portal's side, such as the service account being refused. Errors that are
// not directory errors are ignored: they say nothing of the connection.
func (s *Service) NoteFailure(err error) {
	var oe *directory.OpError
	if errors.As(err, &oe) {
		s.noteOutage(err)
	}
}

// kickMonitor makes the monitor run its check soon (at most one request
// waits: more add nothing).
func (s *Service) kickMonitor() {
	select {
	case s.health.kick <- struct{}{}:
	default:
	}
}

// noteOutage is the directory client's OnOutage function: a real operation
// (a helpdesk lookup, a self-service reset, …) could not use the directory,
// so the status says so at once, and the monitor runs its full check soon.
func (s *Service) noteOutage(err error) {
	s.kickMonitor()
	s.health.mu.Lock()
	if time.Since(s.health.noted) < outageNoteEvery {
		s.health.mu.Unlock()
		return
	}
	s.health.noted = time.Now()
	s.health.mu.Unlock()

	op := "directory operation"
	var oe *directory.OpError
	if errors.As(err, &oe) && oe.Op != "" {
		op = oe.Op
	}
	st := settings.ServiceStatus{State: settings.StateError, Message: errs.MessageOf(err), CheckedAt: s.now().UTC(),
		Details: []string{fmt.Sprintf("Noticed when a %s failed; a full check follows.", op)}}
	// Not the request's context: the status must be written even when the
	// request that ran into the outage is over.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.settings.SetStatus(ctx, st); err != nil {
		s.log.Error("record writeback service status", "err", err)
	}
}

// Test runs the connection checklist on the stored connection, records the
// result as the writeback service status, and audits that a test was run.
func (s *Service) Test(ctx context.Context, actor audit.Actor, login string) (directory.Checklist, error) {
	cl, _, err := s.Client(ctx)
	if err != nil {
		if errors.Is(err, ErrNotConfigured) {
			_ = s.settings.SetStatus(ctx, settings.ServiceStatus{State: settings.StateNotConfigured, Message: i18n.Key("No directory connection has been set up yet."), CheckedAt: s.now().UTC()})
		}
		return directory.Checklist{}, err
	}
	list := cl.Test(ctx, strings.TrimSpace(login))
	s.recordStatus(ctx, list)
	result, reason := audit.Success, ""
	if !list.OK {
		result, reason = audit.Failure, firstFailure(list)
	}
	err = s.db.InTx(ctx, func(tx *store.Tx) error {
		_, err := audit.Record(ctx, tx, audit.Entry{Category: audit.CategoryDirectoryManagement, Activity: audit.ActivityTestDirectory,
			Actor: actor, Target: audit.Target{Type: "Directory", ID: "on-premises"}, Result: result, Reason: reason,
			Details: map[string]any{"checks": checkLines(list, true)}})
		return err
	})
	return list, err
}

// RefreshStatus runs the checklist and records it as the service status,
// without an audit row (it is the background health reading).
func (s *Service) RefreshStatus(ctx context.Context) { s.refresh(ctx) }

// refresh is RefreshStatus, returning the reading.
func (s *Service) refresh(ctx context.Context) Health {
	cl, _, err := s.Client(ctx)
	if errors.Is(err, ErrNotConfigured) {
		st := settings.ServiceStatus{State: settings.StateNotConfigured, Message: i18n.Key("No directory connection has been set up yet."), CheckedAt: s.now().UTC()}
		_ = s.settings.SetStatus(ctx, st)
		s.recorder().DirectoryServers(nil)
		return Health{State: st.State, Message: st.Message, CheckedAt: st.CheckedAt}
	}
	if err != nil {
		st := settings.ServiceStatus{State: settings.StateError, Message: errs.MessageOf(err), CheckedAt: s.now().UTC()}
		_ = s.settings.SetStatus(ctx, st)
		h := Health{State: st.State, Message: st.Message, CheckedAt: st.CheckedAt}
		if cause := errors.Unwrap(err); cause != nil {
			h.Lines = []string{"diagnostic: " + cause.Error()}
		}
		return h
	}
	list := cl.Test(ctx, "")
	st := s.recordStatus(ctx, list)
	return Health{State: st.State, Message: st.Message, CheckedAt: st.CheckedAt, Lines: checkLines(list, true)}
}

// Monitor keeps the writeback service status fresh until ctx ends, without
// an administrator pressing anything: it runs the checklist every interval;
// soon after a real operation found the directory unusable; and every
// outageRetry (when shorter than interval) while the last check failed, so
// the panel shows the recovery too.
func (s *Service) Monitor(ctx context.Context, interval time.Duration) {
	for {
		started := time.Now()
		wait := interval
		h := s.refresh(ctx)
		if h.State == settings.StateError {
			wait = min(interval, s.health.retry)
		}
		if f := s.healthHook(); f != nil && ctx.Err() == nil {
			f(ctx, h)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		case <-s.health.kick:
			t.Stop()
			if gap := s.health.gap - time.Since(started); gap > 0 {
				select {
				case <-ctx.Done():
					return
				case <-time.After(gap):
				}
			}
		}
	}
}

func (s *Service) recordStatus(ctx context.Context, list directory.Checklist) settings.ServiceStatus {
	st := settings.ServiceStatus{State: settings.StateConnected, Message: i18n.Key("Every check passed."), CheckedAt: s.now().UTC(), Details: checkLines(list, false)}
	if !list.OK {
		st.State, st.Message = settings.StateError, firstFailure(list)
	}
	if err := s.settings.SetStatus(ctx, st); err != nil && ctx.Err() == nil {
		s.log.Error("record writeback service status", "err", err)
	}
	up := map[string]bool{}
	for _, c := range list.Items {
		if c.Server != "" {
			up[c.Server] = c.OK
		}
	}
	s.recorder().DirectoryServers(up)
	return st
}

func firstFailure(l directory.Checklist) string {
	i := slices.IndexFunc(l.Items, func(c directory.Check) bool { return !c.OK })
	if i < 0 {
		return i18n.Key("Checks did not complete.")
	}
	return l.Items[i].Name + ": " + l.Items[i].Detail
}

// checkLines writes the checklist as lines; with diagnostics (for the audit
// log only: the status panel is a page) a failed line also carries the raw
// error behind it.
func checkLines(l directory.Checklist, diagnostics bool) []string {
	out := make([]string, 0, len(l.Items))
	for _, c := range l.Items {
		mark := "OK"
		if !c.OK {
			mark = "FAILED"
		}
		line := fmt.Sprintf("[%s] %s: %s", mark, c.Name, c.Detail)
		if diagnostics && c.Diagnostic != "" {
			line += " (diagnostic: " + c.Diagnostic + ")"
		}
		out = append(out, line)
	}
	return out
}
