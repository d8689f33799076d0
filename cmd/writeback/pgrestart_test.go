package main

import (
	"net/http"
	"testing"
	"time"

	"github.com/writeback/writeback/testbed"
)

// TestServeSurvivesPostgresRestart: while PostgreSQL is down the portal
// keeps running, /healthz stays 200 and /readyz answers 503 (so a load
// balancer takes the replica out); once it is back the portal reconnects
// by itself and is ready and serving again.
func TestServeSurvivesPostgresRestart(t *testing.T) {
	env := testbed.Load(t)
	pg := env.PrivatePostgres(t)
	s := startServer(t, t.TempDir(), "--database", pg.URL)
	status := func(path string) int {
		client := &http.Client{Timeout: 10 * time.Second}
		resp, err := client.Get("http://" + s.addr + path)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 30 s; serve's output:\n%s", what, s.out.String())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	waitFor("ready", func() bool { return status("/readyz") == 200 })

	pg.Stop(t)
	waitFor("not ready while PostgreSQL is down", func() bool { return status("/readyz") == 503 })
	if got := status("/healthz"); got != 200 {
		t.Fatalf("/healthz while PostgreSQL is down: %d, want 200 (live)", got)
	}
	select {
	case code := <-s.done:
		t.Fatalf("serve exited with %d while PostgreSQL was down:\n%s", code, s.out.String())
	case <-time.After(2 * time.Second): // a heartbeat and a monitor round fail meanwhile
	}

	pg.Start(t)
	waitFor("ready again after PostgreSQL is back", func() bool { return status("/readyz") == 200 })
	waitFor("pages served again", func() bool { return status("/reset") == 200 })
}
