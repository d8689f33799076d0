package agenthub_test

import (
	"context"
	"testing"

	"github.com/writeback/writeback/services/directory"
)

// BenchmarkResetThroughHub is the hub's and the connector's own cost per
// reset (seal, frame, open, guards, result), over the in-memory connection,
// with a directory that answers at once.
func BenchmarkResetThroughHub(b *testing.B) {
	h := newHarness(b)
	a := h.agent("a1", agentOpts{writesPerMinute: 1 << 30})
	a.dir.resetLogin = func(ctx context.Context, login, pw string, opt directory.ResetOptions) (directory.User, directory.Result, error) {
		return directory.User{Login: login}, directory.Result{Server: "ldaps://dc1"}, nil
	}
	h.connected(a)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, _, err := h.hub.ResetLogin(ctx, "ann", "Winter-2026!x", directory.ResetOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}
