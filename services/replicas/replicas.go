// Package replicas keeps a portal process's place among the replicas that
// share one PostgreSQL database: a heartbeat that registers it and counts
// the live ones (for the agents, which keep a connection to each), and a
// lease that makes one replica at a time the leader, which alone runs the
// background work that must run once (retention pruning, the daily chain
// check, the directory health check). When the leader stops, another takes
// the lease: at once after a clean stop (it releases it), within the lease
// time (plus a heartbeat) after a crash.
//
// The leader is a lease row with an expiry, renewed on every heartbeat,
// rather than a session-level advisory lock: a lock lives as long as the
// leader's database connection, which after a power loss or a network
// partition the server may keep for as long as TCP keepalive takes (hours
// by default), while a lease ends when its time does, however the leader
// died; it pins no pooled connection; and it survives a PostgreSQL restart
// without a leader that does not notice it lost its lock. The work is
// idempotent, so the moment a paused leader overlaps its successor (at
// most one heartbeat) does no harm.
package replicas

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of Options.
const (
	DefaultHeartbeat = 5 * time.Second
	DefaultDeadAfter = 20 * time.Second
	DefaultLease     = 20 * time.Second
)

// leaseName is the lease of the background work.
const leaseName = "background"

// Store is what the registry needs of the database (store.DB).
type Store interface {
	Heartbeat(ctx context.Context, id, host string, deadAfter time.Duration) (int, error)
	Deregister(ctx context.Context, id string) error
	AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error)
	ReleaseLease(ctx context.Context, name, holder string) error
}

// Options tune a Registry; zero values take the defaults.
type Options struct {
	ID        string        // this replica's ID; default random
	Host      string        // default os.Hostname
	Heartbeat time.Duration // how often it beats and renews the lease
	DeadAfter time.Duration // a replica not seen for this long is not counted
	Lease     time.Duration // how long a lease lasts without renewal
}

// Registry is one replica's membership. It is agenthub.Peers.
type Registry struct {
	db   Store
	log  *slog.Logger
	opts Options

	live   atomic.Int64
	leader atomic.Bool
	jobs   []func(context.Context)
}

// New makes the registry of this process; Run starts it.
func New(db Store, log *slog.Logger, opts Options) *Registry {
	if opts.ID == "" {
		b := make([]byte, 8)
		rand.Read(b)
		opts.ID = hex.EncodeToString(b)
	}
	if opts.Host == "" {
		opts.Host, _ = os.Hostname()
		if len(opts.Host) > 255 {
			opts.Host = opts.Host[:255]
		}
	}
	if opts.Heartbeat <= 0 {
		opts.Heartbeat = DefaultHeartbeat
	}
	if opts.DeadAfter <= 0 {
		opts.DeadAfter = DefaultDeadAfter
	}
	if opts.Lease <= 0 {
		opts.Lease = DefaultLease
	}
	r := &Registry{db: db, log: log, opts: opts}
	r.live.Store(1)
	return r
}

// Self is this replica's ID.
func (r *Registry) Self() string { return r.opts.ID }

// Live is how many replicas run (this one included), as of the last
// heartbeat: from memory, for callers on hot paths.
func (r *Registry) Live() int { return int(max(1, r.live.Load())) }

// Leader reports whether this replica runs the background work now.
func (r *Registry) Leader() bool { return r.leader.Load() }

// Lead registers work that runs only while this replica is the leader:
// started with a context that ends when it stops being the leader (or
// Run's context ends), and awaited before it can lead again. Call before
// Run.
func (r *Registry) Lead(job func(ctx context.Context)) { r.jobs = append(r.jobs, job) }

// Run beats until ctx ends, then stops the leader's work, releases the
// lease and deregisters, so that the others take over at once.
func (r *Registry) Run(ctx context.Context) {
	var (
		stopJobs context.CancelFunc
		jobsDone chan struct{} // closed when the last leadership's work returned
		renewed  time.Time     // when a renewal last succeeded
		failing  bool          // the last write failed (logged once)
	)
	stepDown := func(why string) {
		if stopJobs == nil {
			return
		}
		stopJobs()
		stopJobs = nil
		r.leader.Store(false)
		r.log.Info("no longer the leader", "replica", r.opts.ID, "why", why)
	}
	t := time.NewTicker(r.opts.Heartbeat)
	defer t.Stop()
	for {
		live, err := r.db.Heartbeat(ctx, r.opts.ID, r.opts.Host, r.opts.DeadAfter)
		if err == nil {
			r.live.Store(int64(live))
		}
		// Lead again only once the last leadership's work has returned.
		idle := jobsDone == nil
		if !idle {
			select {
			case <-jobsDone:
				idle = true
			default:
			}
		}
		var held bool
		if err == nil && (stopJobs != nil || idle) {
			started := time.Now()
			held, err = r.db.AcquireLease(ctx, leaseName, r.opts.ID, r.opts.Lease)
			switch {
			case err != nil:
			case held && stopJobs == nil:
				renewed = started
				lctx, cancel := context.WithCancel(ctx)
				stopJobs, jobsDone = cancel, make(chan struct{})
				r.leader.Store(true)
				r.log.Info("leading the background work", "replica", r.opts.ID)
				var wg sync.WaitGroup
				for _, job := range r.jobs {
					wg.Go(func() { job(lctx) })
				}
				go func(done chan struct{}) { wg.Wait(); close(done) }(jobsDone)
			case held:
				renewed = started
			default:
				stepDown("another replica holds the lease")
			}
		}
		if err != nil && ctx.Err() == nil {
			if !failing {
				r.log.Warn("replica heartbeat failed", "replica", r.opts.ID, "err", err)
			}
			failing = true
			// The lease ends by itself: stop leading before it does.
			if stopJobs != nil && time.Since(renewed) >= r.opts.Lease-r.opts.Heartbeat {
				stepDown("the lease could not be renewed")
			}
		} else if err == nil {
			failing = false
		}
		select {
		case <-ctx.Done():
			stepDown("stopping")
			if jobsDone != nil {
				<-jobsDone
			}
			// A clean stop: the others take over at their next heartbeat.
			end, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			defer cancel()
			if err := r.db.ReleaseLease(end, leaseName, r.opts.ID); err != nil {
				r.log.Warn("release the leader lease", "err", err)
			}
			if err := r.db.Deregister(end, r.opts.ID); err != nil {
				r.log.Warn("deregister replica", "err", err)
			}
			return
		case <-t.C:
		}
	}
}
