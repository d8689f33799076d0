package main

import (
	"errors"
	"log/slog"
	"testing"
)

// TestTrackerCountsConnections: with a connection to each portal replica,
// the agent stays connected until the last one ends; a duplicate refused by
// a replica (ended without error, never welcomed) changes nothing.
func TestTrackerCountsConnections(t *testing.T) {
	tr := newTracker(t.TempDir(), slog.New(slog.DiscardHandler))
	type want struct {
		state string
		conns int
	}
	check := func(step string, w want) {
		t.Helper()
		st, ok := readStatus(tr.dir)
		if !ok || st.State != w.state || st.Connections != w.conns || (w.state == stateConnected) == st.ConnectedSince.IsZero() {
			t.Fatalf("%s: status %+v, want %+v", step, st, w)
		}
	}
	check("start", want{stateConnecting, 0})
	tr.connected()
	check("first welcome", want{stateConnected, 1})
	tr.connected()
	check("second replica", want{stateConnected, 2})
	tr.ended(false, nil)
	check("a duplicate refused", want{stateConnected, 2})
	tr.ended(true, errors.New("connection reset by peer"))
	check("one replica gone", want{stateConnected, 1})
	tr.failed(errors.New("dial tcp: connection refused"))
	check("a failed dial", want{stateConnected, 1})
	tr.ended(true, errors.New("connection reset by peer"))
	check("the last one gone", want{stateDisconnected, 0})
	if st, _ := readStatus(tr.dir); st.LastError == "" {
		t.Fatal("no last error recorded")
	}
}
