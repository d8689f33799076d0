package main

import (
	"net/http"
	"strings"
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
	s.setupLink(t) // the start's own reads are over

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

// TestServeSetupLinkWaitsForPostgres: a database that stops answering right
// after the start (the portal listens already) does not end it; the setup
// link is created and printed once the database is back.
func TestServeSetupLinkWaitsForPostgres(t *testing.T) {
	env := testbed.Load(t)
	pg := env.PrivatePostgres(t)
	retry := setupLinkRetry
	setupLinkRetry = 200 * time.Millisecond
	beforeSetupLink = func() { pg.Stop(t) }
	t.Cleanup(func() { setupLinkRetry, beforeSetupLink = retry, func() {} })

	s := startServer(t, t.TempDir(), "--database", pg.URL)
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(s.out.String(), "could not create the setup link") {
		select {
		case code := <-s.done:
			t.Fatalf("serve exited with %d while PostgreSQL was down:\n%s", code, s.out.String())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no warning about the setup link within 30 s:\n%s", s.out.String())
		}
	}
	beforeSetupLink = func() {}
	pg.Start(t)
	link := s.setupLink(t)
	if !strings.Contains(link, "/setup?token=") {
		t.Fatalf("setup link: %q", link)
	}
}
