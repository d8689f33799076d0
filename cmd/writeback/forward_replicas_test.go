package main

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/writeback/writeback/testbed"
)

// forwardedIDs returns the IDs of the audit events a server wrote on
// standard output (--audit-stdout), in the order written.
func forwardedIDs(t *testing.T, out string) []int64 {
	t.Helper()
	var ids []int64
	for _, line := range strings.Split(out, "\n") {
		if !strings.HasPrefix(line, `{"id":`) {
			continue
		}
		var e struct {
			ID int64 `json:"id"`
		}
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("not a JSON line: %q", line)
		}
		ids = append(ids, e.ID)
	}
	return ids
}

// TestServeForwardsOnceAcrossReplicas: two `writeback serve --audit-stdout` replicas on one PostgreSQL database,
// events recorded by both and by a command: between the two standard outputs every event appears exactly once, in
// order. The old forwarder sent only what its own process committed, so the command's event reached no SIEM.
func TestServeForwardsOnceAcrossReplicas(t *testing.T) {
	dbURL := testbed.NewPostgresDB(t)
	data := t.TempDir()
	cli(t, "a long admin password\n", "admin", "create", "--data", data, "--database", dbURL, "--email", "ada@example.com", "--name", "Ada", "--role", "global-admin")
	a := startServer(t, data, "--database", dbURL, "--audit-stdout")
	b := startServer(t, data, "--database", dbURL, "--audit-stdout")
	for range 3 {
		failedSignIn(t, a.addr)
		failedSignIn(t, b.addr)
	}
	cli(t, "another long password\n", "admin", "create", "--data", data, "--database", dbURL, "--email", "grace@example.com", "--name", "Grace", "--role", "helpdesk-admin")
	failedSignIn(t, b.addr)
	// 3+3+1 sign-ins and Grace's creation: 8 events after the first start.
	deadline := time.Now().Add(20 * time.Second)
	for len(forwardedIDs(t, a.out.String()))+len(forwardedIDs(t, b.out.String())) < 8 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // a repeat would show up meanwhile
	ia, ib := forwardedIDs(t, a.out.String()), forwardedIDs(t, b.out.String())
	all := append(slices.Clone(ia), ib...)
	slices.Sort(all)
	if len(all) != 8 || len(slices.Compact(slices.Clone(all))) != 8 || all[7]-all[0] != 7 {
		t.Fatalf("forwarded %v by one replica and %v by the other; want 8 consecutive events, each once", ia, ib)
	}
	for _, ids := range [][]int64{ia, ib} {
		if !slices.IsSorted(ids) {
			t.Errorf("out of order: %v", ids)
		}
	}
	if n := strings.Count(a.out.String()+b.out.String(), `"activity":"Add administrator"`); n != 1 {
		t.Errorf("the command's event forwarded %d times, want once", n)
	}
}
