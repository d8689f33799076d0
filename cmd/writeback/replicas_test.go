package main

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/writeback/writeback/cmd/internal/datadir"
	"github.com/writeback/writeback/services/replicas"
	"github.com/writeback/writeback/services/settings"
	"github.com/writeback/writeback/testbed"
)

const leadingLine = `msg="leading the background work"`

// Two `writeback serve` replicas on one PostgreSQL database: exactly one
// leads the background work; when it stops the other takes over (at its
// next heartbeat, since a clean stop releases the lease). On SQLite no
// lease is taken: the one process runs the work itself.
func TestServeReplicasLeadOnce(t *testing.T) {
	dbURL := testbed.NewPostgresDB(t)
	key := newKeyFile(t)
	a := startServer(t, t.TempDir(), "--database", dbURL, "--key-file", key)
	waitOutput(t, a, leadingLine)
	b := startServer(t, t.TempDir(), "--database", dbURL, "--key-file", key)
	waitOutput(t, b, `replica=`)
	time.Sleep(2 * time.Second) // b's first heartbeat found the lease taken
	if strings.Contains(b.out.String(), leadingLine) {
		t.Fatalf("both replicas lead the background work:\n%s", b.out.String())
	}
	a.stop(t)
	start := time.Now()
	deadline := start.Add(replicas.DefaultHeartbeat + 5*time.Second)
	for !strings.Contains(b.out.String(), leadingLine) {
		if time.Now().After(deadline) {
			t.Fatalf("the second replica did not take over within %s of the first stopping:\n%s", time.Since(start), b.out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("took over %s after the leader stopped", time.Since(start))
	b.stop(t)

	s := startServer(t, t.TempDir())
	time.Sleep(500 * time.Millisecond)
	if out := s.out.String(); strings.Contains(out, leadingLine) || strings.Contains(out, "replica=") {
		t.Errorf("serve on SQLite registered as a replica:\n%s", out)
	}
}

// The writeback health panel reads one status document, which only the
// leader's directory check writes: a replica that is not the leader shows
// the same status, and after the leader dies the new leader keeps it fresh.
func TestHealthStatusSameOnEveryReplica(t *testing.T) {
	env := testbed.Load(t)
	dbURL := testbed.NewPostgresDB(t)
	key := newKeyFile(t)
	pw := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pw, []byte(env.AD.BindPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := cli(t, "", "directory", "set", "--data", t.TempDir(), "--database", dbURL, "--key-file", key,
		"--type", "ad", "--url", env.AD.URL, "--ca-file", env.CAFile, "--bind-dn", env.AD.BindDN,
		"--bind-password-file", pw, "--base-dn", env.AD.PeopleDN); code != 0 {
		t.Fatalf("directory set: %s %s", out, errOut)
	}
	type replica struct {
		app    *app
		reg    *replicas.Registry
		cancel context.CancelFunc
		done   chan struct{}
	}
	start := func(id string) *replica {
		a, err := openApp(context.Background(), datadir.Location{Dir: t.TempDir(), DatabaseURL: dbURL, KeyFile: key}, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		reg := replicas.New(a.db, a.log, replicas.Options{ID: id, Heartbeat: 50 * time.Millisecond,
			DeadAfter: 500 * time.Millisecond, Lease: 500 * time.Millisecond})
		for _, job := range a.leaderWork(300*time.Millisecond, nil) {
			reg.Lead(job)
		}
		ctx, cancel := context.WithCancel(context.Background())
		r := &replica{app: a, reg: reg, cancel: cancel, done: make(chan struct{})}
		go func() { reg.Run(ctx); close(r.done) }()
		t.Cleanup(func() { cancel(); <-r.done; a.Close() })
		return r
	}
	r1, r2 := start("replica-1"), start("replica-2")
	var lead, follower *replica
	deadline := time.Now().Add(5 * time.Second)
	for lead == nil {
		switch {
		case r1.reg.Leader() && !r2.reg.Leader():
			lead, follower = r1, r2
		case r2.reg.Leader() && !r1.reg.Leader():
			lead, follower = r2, r1
		case time.Now().After(deadline):
			t.Fatal("no single leader")
		default:
			time.Sleep(10 * time.Millisecond)
		}
	}
	ctx := context.Background()
	// freshStatus waits for the result of a check of the directory (the
	// checklist ran: its first line is the connection) made after since,
	// as r reads it.
	freshStatus := func(r *replica, since time.Time, what string) settings.ServiceStatus {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			st, err := r.app.settings.Status(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if st.State != settings.StateNotConfigured && len(st.Details) > 0 && strings.HasPrefix(st.Details[0], "[OK] Reachable") &&
				st.CheckedAt.After(since) {
				return st
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: status %+v, want a checklist run after %s", what, st, since)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	began := time.Now()
	st := freshStatus(follower, began, "the follower's panel")
	if got, err := lead.app.settings.Status(ctx); err != nil || !got.CheckedAt.Equal(st.CheckedAt) && got.CheckedAt.Before(st.CheckedAt) {
		t.Errorf("the leader reads %+v (%v), the follower %+v", got, err, st)
	}
	// The leader dies: its process ends without releasing anything.
	lead.cancel()
	<-lead.done
	died := time.Now()
	freshStatus(follower, died.Add(600*time.Millisecond), "after the leader died")
	if !follower.reg.Leader() {
		t.Error("the status is fresh but the survivor is not the leader")
	}
}

// Two replicas on one PostgreSQL database limit an address together: with
// a limit of 5, posts alternating between them are refused from the sixth
// on, as on one replica; and a burst of concurrent posts over both lets
// exactly the limit through.
func TestRateLimitSharedByReplicas(t *testing.T) {
	// Right after a window starts the previous one (empty) weighs nothing
	// either way; stay clear of the minute's end so that
	// all posts share one.
	if s := time.Now().Second(); s > 45 {
		time.Sleep(time.Duration(61-s) * time.Second)
	}
	dbURL := testbed.NewPostgresDB(t)
	key := newKeyFile(t)
	args := []string{"--database", dbURL, "--key-file", key, "--rate-limit-public", "5", "--trusted-proxy", "127.0.0.1"}
	addrs := []string{serveWith(t, nil, args...), serveWith(t, nil, args...)}

	// One browser (one cookie jar: the replicas share the key, so either
	// accepts the other's cookies and CSRF token) posting to A, B, A, …
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}
	resp, err := c.Get("http://" + addrs[0] + "/reset")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := csrfMetaRE.FindStringSubmatch(string(body))
	if m == nil {
		t.Fatal("no CSRF token on /reset")
	}
	form := url.Values{"login": {"nobody"}, "csrf_token": {m[1]}}
	// Served posts answer 403 here (self-service is not set up): only 429
	// is the limit's.
	post := func(addr, client string) int {
		req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/reset", strings.NewReader(form.Encode()))
		req.Header.Set("X-Forwarded-For", client)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", "http://"+addr)
		resp, err := c.Do(req)
		if err != nil {
			t.Error(err)
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	var got []int
	for i := range 8 {
		got = append(got, post(addrs[i%2], "203.0.113.1"))
	}
	for i, st := range got {
		if want := i >= 5; (st == http.StatusTooManyRequests) != want {
			t.Fatalf("statuses %v over two replicas: want the first 5 served and the rest refused (429)", got)
		}
	}

	// Another address, 40 posts at once over both replicas: 5 get through.
	var wg sync.WaitGroup
	var mu sync.Mutex
	statuses := map[int]int{}
	for i := range 40 {
		wg.Go(func() {
			st := post(addrs[i%2], "203.0.113.2")
			mu.Lock()
			statuses[st]++
			mu.Unlock()
		})
	}
	wg.Wait()
	if statuses[http.StatusTooManyRequests] != 35 {
		t.Errorf("40 concurrent posts over two replicas with a limit of 5: statuses %v, want 35 refused (429)", statuses)
	}
}
