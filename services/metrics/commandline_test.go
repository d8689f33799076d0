package metrics

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/store"
)

// record appends an audit event as `writeback user reset|unlock` (actor
// command line) or the helpdesk (an administrator) would.
func record(t *testing.T, db *store.DB, activity string, actor audit.Actor, result string) {
	t.Helper()
	if err := db.InTx(context.Background(), func(tx *store.Tx) error {
		_, err := audit.Record(context.Background(), tx, audit.Entry{Category: audit.CategoryUserManagement, Activity: activity,
			Actor: actor, Target: audit.Target{Type: "User", ID: "u1"}, Result: result})
		return err
	}); err != nil {
		t.Fatal(err)
	}
}

// TestCountCommandLine: the command line's resets and unlocks, recorded by
// other processes, are counted once each by the one reader; those from
// before it started and those of administrators (counted by the process
// that records them) are not.
func TestCountCommandLine(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	db, err := store.Open(ctx, filepath.Join(t.TempDir(), store.FileName))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	record(t, db, audit.ActivityResetByAdmin, audit.CommandLine, audit.Success) // before the start
	m := New(prometheus.NewRegistry())
	rounds := make(chan struct{})
	go func() {
		m.CountCommandLine(ctx, db, 20*time.Millisecond, slog.New(slog.DiscardHandler))
		close(rounds)
	}()
	time.Sleep(60 * time.Millisecond) // the first look has found where to start
	helpdesk := audit.Actor{Type: "admin", ID: "7", Name: "Helpdesk <hd@example.com>"}
	record(t, db, audit.ActivityResetByAdmin, audit.CommandLine, audit.Success)
	record(t, db, audit.ActivityResetByAdmin, audit.CommandLine, audit.Failure)
	record(t, db, audit.ActivityUnlockByAdmin, audit.CommandLine, audit.Success)
	record(t, db, audit.ActivityResetByAdmin, helpdesk, audit.Success)
	resets := m.operations.WithLabelValues("reset", ChannelCommandLine, audit.Success)
	deadline := time.Now().Add(5 * time.Second)
	for testutil.ToFloat64(resets) < 1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // more rounds: nothing counts twice
	for _, c := range []struct {
		op, ch, result string
		want           float64
	}{
		{"reset", ChannelCommandLine, audit.Success, 1},
		{"reset", ChannelCommandLine, audit.Failure, 1},
		{"unlock", ChannelCommandLine, audit.Success, 1},
		{"reset", ChannelHelpdesk, audit.Success, 0},
	} {
		if got := testutil.ToFloat64(m.operations.WithLabelValues(c.op, c.ch, c.result)); got != c.want {
			t.Errorf("%s %s %s: %v, want %v", c.op, c.ch, c.result, got, c.want)
		}
	}
	cancel()
	<-rounds
}
