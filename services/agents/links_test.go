package agents_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/writeback/writeback/services/agents"
	"github.com/writeback/writeback/services/agentwire"
	"github.com/writeback/writeback/store"
	"github.com/writeback/writeback/testbed"
)

// TestConnectionsPerReplica: an agent keeps one connection to each replica
// of the portal. Each replica records its own; the agent stays connected
// while any replica holds one, the list names the replicas it reaches, and
// a running replica no agent reaches is reported.
func TestConnectionsPerReplica(t *testing.T) {
	for _, engine := range []string{"sqlite", "postgres"} {
		t.Run(engine, func(t *testing.T) {
			ctx := context.Background()
			dir, url := t.TempDir(), ""
			if engine == "postgres" {
				url = testbed.NewPostgresDB(t)
			}
			clock := &fixture{now: time.Now().UTC()}
			replica := func(id string) (*store.DB, *agents.Service) {
				db, err := store.OpenDatabase(ctx, url, dir)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { db.Close() })
				if _, err := db.Migrate(ctx); err != nil {
					t.Fatal(err)
				}
				svc := agents.New(db, slog.New(slog.NewTextHandler(io.Discard, nil)))
				svc.SetClock(clock.clock)
				svc.SetReplica(id)
				// Registered as the replicas registry registers them.
				if _, err := db.Heartbeat(ctx, id, "web-"+id, time.Minute); err != nil {
					t.Fatal(err)
				}
				return db, svc
			}
			_, a := replica("a")
			dbB, b := replica("b")
			if _, err := dbB.Heartbeat(ctx, "c", "web-c", time.Minute); err != nil { // running, no agent reaches it
				t.Fatal(err)
			}
			f := &fixture{svc: a}
			resp, _ := f.enroll(t, "Paris")
			id := resp.AgentID
			st := agentwire.Status{Version: "1.0.1", Host: "srv-dc1", Configured: true, PasswordWriteback: true}
			if err := a.Connected(ctx, id, st, "198.51.100.9"); err != nil {
				t.Fatal(err)
			}
			clock.advance(time.Second)
			if err := b.Connected(ctx, id, st, "198.51.100.10"); err != nil {
				t.Fatal(err)
			}

			in := f.info(t, "Paris")
			if in.State != agents.Connected || len(in.Connections) != 2 {
				t.Fatalf("connected to a and b: %+v", in)
			}
			ca, cb := in.Connections[0], in.Connections[1]
			if ca.Replica != "a" || ca.Host != "web-a" || ca.RemoteAddr != "198.51.100.9" ||
				cb.Replica != "b" || cb.Host != "web-b" || cb.RemoteAddr != "198.51.100.10" || !cb.ConnectedSince.After(ca.ConnectedSince) {
				t.Errorf("connections %+v", in.Connections)
			}
			cover, err := b.Coverage(ctx, mustList(t, b))
			if err != nil {
				t.Fatal(err)
			}
			if len(cover) != 3 || cover[0].Agents+cover[1].Agents != 2 || in.Reached(cover) != 2 {
				t.Fatalf("coverage %+v, reached %d", cover, in.Reached(cover))
			}
			for _, c := range cover {
				if (c.Replica == "c") != (c.Agents == 0) {
					t.Errorf("coverage of %s: %+v", c.Replica, c)
				}
			}

			// B's connection closes: the agent is still connected, through A.
			if err := b.Disconnected(ctx, id, "closed"); err != nil {
				t.Fatal(err)
			}
			in = f.info(t, "Paris")
			if in.State != agents.Connected || len(in.Connections) != 1 || in.Connections[0].Replica != "a" {
				t.Fatalf("after B's connection closed: %+v", in)
			}
			// A heartbeat on A keeps it; then A's closes too.
			if err := a.Heartbeat(ctx, id, st); err != nil {
				t.Fatal(err)
			}
			if err := a.Disconnected(ctx, id, "closed"); err != nil {
				t.Fatal(err)
			}
			if in := f.info(t, "Paris"); in.State != agents.Disconnected || len(in.Connections) != 0 {
				t.Fatalf("after both closed: %+v", in)
			}

			// A replica that died without closing: its connection stops
			// counting once its heartbeats are older than DeadAfter, and the
			// next connection anywhere removes it.
			if err := a.Connected(ctx, id, st, "198.51.100.9"); err != nil {
				t.Fatal(err)
			}
			clock.advance(agentwire.DeadAfter + time.Second)
			if err := b.Connected(ctx, id, st, "198.51.100.10"); err != nil {
				t.Fatal(err)
			}
			in = f.info(t, "Paris")
			if in.State != agents.Connected || len(in.Connections) != 1 || in.Connections[0].Replica != "b" {
				t.Fatalf("after A died: %+v", in)
			}
			if err := b.Disconnected(ctx, id, "closed"); err != nil {
				t.Fatal(err)
			}
			if in := f.info(t, "Paris"); in.State != agents.Disconnected {
				t.Fatalf("B closed after A died without closing: %+v", in)
			}

			// A revoked agent holds no connection anywhere.
			if err := a.Connected(ctx, id, st, "198.51.100.9"); err != nil {
				t.Fatal(err)
			}
			if _, err := a.Revoke(ctx, ada, "Paris"); err != nil {
				t.Fatal(err)
			}
			if cover, _ := b.Coverage(ctx, mustList(t, b)); cover[0].Agents+cover[1].Agents+cover[2].Agents != 0 {
				t.Errorf("coverage after revoke: %+v", cover)
			}
		})
	}
}

func mustList(t *testing.T, svc *agents.Service) []agents.Info {
	t.Helper()
	list, err := svc.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return list
}
