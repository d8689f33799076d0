package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// Group commit on PostgreSQL. Every write transaction takes the store's
// write lock (writeLockKey) and holds it until its commit, so the
// replicas' writes run one after another and the rate of writes is the
// number of round trips each holds the lock for: begin, lock, the chain's
// head, the insert, commit. InTx calls that arrive while one process is
// already waiting for the lock or holding it therefore join one batch: one
// PostgreSQL transaction, one lock, one commit, with each fn inside a
// savepoint of its own.
//
// What a caller sees is what InTx promises on its own:
//   - a fn that fails (an error, a panic, a statement that failed and left
//     the transaction aborted, its context ended) is rolled back to its
//     savepoint: nothing it wrote remains, and its error (or panic) goes to
//     its caller only;
//   - the fns run one at a time, in the order they queued, each seeing what
//     the ones before it wrote (the same transaction, under the same lock);
//   - OnAudit callbacks and the caches learn of a fn's writes only once the
//     batch committed, in that order, before its InTx returns;
//   - a failed commit is returned to every fn of the batch.
//
// Within a batch the chain's head is known from the previous fn's last
// appended event, so an append is one INSERT, and the savepoint that opens
// a fn goes in the same round trip as its first append (txState).
type txGroup struct {
	mu      sync.Mutex
	queue   []*txReq // waiting to be taken into a batch, in arrival order
	leading bool     // a caller is running a batch (or about to)
}

// maxBatch bounds the fns of one batch: every savepoint that writes is a
// subtransaction, and past 64 of them in one transaction PostgreSQL's
// snapshots slow down for every session of the server.
const maxBatch = 32

type txReq struct {
	ctx     context.Context
	fn      func(*Tx) error
	taken   bool          // in a batch (guarded by txGroup.mu)
	promote chan struct{} // this caller runs the next batch
	done    chan txResult
}

type txResult struct {
	err      error
	panicked bool
	panicVal any
}

// inTxGroup is InTx on PostgreSQL.
func (db *DB) inTxGroup(ctx context.Context, fn func(*Tx) error) error {
	r := &txReq{ctx: ctx, fn: fn, promote: make(chan struct{}, 1), done: make(chan txResult, 1)}
	g := &db.group
	g.mu.Lock()
	g.queue = append(g.queue, r)
	lead := !g.leading
	g.leading = true
	g.mu.Unlock()
	if !lead {
		select {
		case res := <-r.done:
			return res.unwrap()
		case <-r.promote:
		case <-ctx.Done():
			if g.withdraw(r) {
				return fmt.Errorf("store: begin: %w", ctx.Err())
			}
			// Taken into a batch, or promoted to run one: either way the
			// outcome is on its way.
			select {
			case res := <-r.done:
				return res.unwrap()
			case <-r.promote:
			}
		}
	}
	db.runBatch(r)
	g.handOver()
	return (<-r.done).unwrap()
}

func (res txResult) unwrap() error {
	if res.panicked {
		panic(res.panicVal)
	}
	return res.err
}

// withdraw removes r from the queue unless a batch took it or it was
// promoted; it reports whether it did.
func (g *txGroup) withdraw(r *txReq) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if r.taken || len(r.promote) > 0 {
		return false
	}
	g.removeLocked(r)
	return true
}

// remove takes r out of the queue.
func (g *txGroup) remove(r *txReq) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.removeLocked(r)
}

func (g *txGroup) removeLocked(r *txReq) {
	g.queue = slices.DeleteFunc(g.queue, func(q *txReq) bool { return q == r })
}

// take removes up to maxBatch requests from the front of the queue.
func (g *txGroup) take() []*txReq {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := min(len(g.queue), maxBatch)
	reqs := make([]*txReq, n)
	copy(reqs, g.queue)
	g.queue = append(g.queue[:0], g.queue[n:]...)
	for _, r := range reqs {
		r.taken = true
	}
	return reqs
}

// handOver makes the first waiting caller run the next batch, or ends the
// leadership when nobody waits.
func (g *txGroup) handOver() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.queue) == 0 {
		g.leading = false
		return
	}
	g.queue[0].promote <- struct{}{}
}

// batch is one PostgreSQL transaction running several callers' fns.
type batch struct {
	db      *DB
	conn    *sql.Conn
	tx      sqlTx
	state   *txState
	open    bool
	head    chainHead // as the committed-to-be fns left it
	pending []*Tx     // fns done, waiting for the commit
	reqs    []*txReq  // their requests
	sp      int       // savepoints made
}

// chainHead is the newest event of the audit chain within a batch's
// transaction, when known.
type chainHead struct {
	known bool
	id    int64
	hash  string
}

// runBatch runs the batch leader's request and whatever else waits, in one
// transaction where it can. The leader's own request is the first of the
// queue, so it is always in it (or failed before it began).
func (db *DB) runBatch(leader *txReq) {
	b := &batch{db: db}
	defer b.closeConn()
	// The lock: waiting for it ends with the leader's context, as one
	// InTx's wait does; nothing has run yet.
	if err := b.begin(leader.ctx); err != nil {
		db.group.remove(leader)
		leader.done <- txResult{err: err}
		return
	}
	// Taken after the lock: what queued while it was held by another
	// replica joins.
	for _, r := range db.group.take() {
		if !b.open {
			if err := b.begin(r.ctx); err != nil {
				r.done <- txResult{err: err}
				continue
			}
		}
		b.runOne(r)
	}
	b.commit()
}

// begin opens the transaction and takes the write lock; its statements run
// without any one caller's cancellation (the transaction is everyone's),
// but for the wait for the lock, which ends with ctx.
func (b *batch) begin(ctx context.Context) error {
	if b.conn == nil {
		c, err := b.db.sql.DB.Conn(ctx)
		if err != nil {
			return fmt.Errorf("store: begin: %w", err)
		}
		b.conn = c
	}
	stx, err := b.conn.BeginTx(context.WithoutCancel(ctx), nil)
	if err != nil {
		b.closeConn()
		return fmt.Errorf("store: begin: %w", err)
	}
	if _, err := stx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, writeLockKey); err != nil {
		_ = stx.Rollback()
		b.closeConn() // a cancelled wait may have broken the connection
		return fmt.Errorf("store: begin: take the write lock: %w", err)
	}
	b.state = &txState{}
	b.tx = sqlTx{Tx: stx, engine: b.db.engine, onErr: b.db.sql.onErr, state: b.state}
	b.open, b.head = true, chainHead{}
	return nil
}

func (b *batch) closeConn() {
	if b.conn != nil {
		_ = b.conn.Close()
		b.conn = nil
	}
}

// runOne runs r's fn in the open transaction, in a savepoint of its own
// unless it is the transaction's first (then a failure rolls back the
// transaction, and the next fn begins another).
func (b *batch) runOne(r *txReq) {
	if err := r.ctx.Err(); err != nil {
		r.done <- txResult{err: fmt.Errorf("store: begin: %w", err)}
		return
	}
	sp := ""
	if len(b.pending) > 0 {
		b.sp++
		sp = "wb" + strconv.Itoa(b.sp)
	}
	b.state.savepoint, b.state.err = sp, nil
	head := b.head
	tx := &Tx{tx: b.tx, conn: b.conn, db: b.db, head: &head}
	res := call(r.fn, tx)
	if !res.panicked && res.err == nil {
		switch {
		case b.state.err != nil:
			res.err = fmt.Errorf("store: %w", b.state.err)
		case r.ctx.Err() != nil:
			res.err = fmt.Errorf("store: commit: %w", r.ctx.Err())
		case b.aborted():
			res.err = errors.New("store: commit: a statement of the transaction failed and it was rolled back")
		}
	}
	if res.panicked || res.err != nil {
		b.undo(sp)
		r.done <- res
		return
	}
	b.head = head
	b.pending = append(b.pending, tx)
	b.reqs = append(b.reqs, r)
}

// call runs fn, turning a panic into a result: it is raised again on the
// caller's goroutine, not on the batch leader's.
func call(fn func(*Tx) error, tx *Tx) (res txResult) {
	defer func() {
		if v := recover(); v != nil {
			res = txResult{panicked: true, panicVal: v}
		}
	}()
	return txResult{err: fn(tx)}
}

// aborted reports whether a statement failed and left the transaction
// unable to continue (a fn that ignored the error).
func (b *batch) aborted() bool {
	st := byte('E')
	_ = b.conn.Raw(func(dc any) error {
		if c, ok := dc.(*stdlib.Conn); ok {
			st = c.Conn().PgConn().TxStatus()
		}
		return nil
	})
	return st == 'E'
}

// undo rolls back the fn that just failed: to its savepoint, or the whole
// transaction when it was the first. When even that fails, the batch is
// lost: everyone waiting for the commit gets the error.
func (b *batch) undo(sp string) {
	switch {
	case sp == "":
		_ = b.tx.Rollback()
		b.open = false
	case b.state.savepoint == sp:
		b.state.savepoint = "" // never made: the fn sent nothing
	default:
		if _, err := b.tx.Tx.ExecContext(context.Background(), `ROLLBACK TO SAVEPOINT `+sp); err != nil {
			b.fail(fmt.Errorf("store: commit: roll back one transaction of the batch: %w", err))
		}
	}
}

// fail rolls back the transaction and returns err to every fn waiting for
// its commit.
func (b *batch) fail(err error) {
	_ = b.tx.Rollback()
	b.open = false
	for _, r := range b.reqs {
		r.done <- txResult{err: err}
	}
	b.pending, b.reqs = nil, nil
	b.closeConn()
}

// commit commits what the fns did, then tells the caches and the OnAudit
// callbacks, fn by fn, and returns each its result.
func (b *batch) commit() {
	if !b.open {
		return
	}
	b.open = false
	if len(b.pending) == 0 {
		_ = b.tx.Rollback()
		return
	}
	err := b.tx.Commit()
	for i, tx := range b.pending {
		if tx.sessions {
			// Also after a failed commit: whether it took is not known.
			b.db.sessions.changed()
		}
		if err != nil {
			b.reqs[i].done <- txResult{err: fmt.Errorf("store: commit: %w", err)}
			continue
		}
		b.reqs[i].done <- b.committed(tx)
	}
	b.pending, b.reqs = nil, nil
}

// committed tells the caches and the OnAudit callbacks of what tx wrote. A
// callback's panic goes to tx's caller, as it would without a batch.
func (b *batch) committed(tx *Tx) (res txResult) {
	defer func() {
		if v := recover(); v != nil {
			res = txResult{panicked: true, panicVal: v}
		}
	}()
	b.db.committed(tx.saved)
	b.db.hooks.fire(tx.appended)
	return txResult{}
}

// txState is what the statements of a batch's transaction share: they run
// without their caller's cancellation (pgx drops a connection whose query
// is cancelled, which would lose everyone's work), and the savepoint of the
// fn now running is made just before its first statement, or with its
// first append in one round trip.
type txState struct {
	savepoint string // to make before the next statement
	err       error  // making it failed
}

// prepare readies ctx for a statement of a batch: without cancellation,
// after the fn's savepoint.
func (s *txState) prepare(ctx context.Context, tx *sql.Tx) context.Context {
	if s == nil {
		return ctx
	}
	ctx = context.WithoutCancel(ctx)
	if sp := s.savepoint; sp != "" {
		s.savepoint = ""
		if _, err := tx.ExecContext(ctx, `SAVEPOINT `+sp); err != nil && s.err == nil {
			s.err = fmt.Errorf("savepoint: %w", err)
		}
	}
	return ctx
}

// pgx runs fn on the transaction's pgx connection (PostgreSQL only): for
// COPY.
func (tx *Tx) pgx(ctx context.Context, fn func(*pgx.Conn) error) error {
	if tx.conn == nil {
		return errors.New("store: no PostgreSQL connection")
	}
	tx.tx.state.prepare(ctx, tx.tx.Tx)
	return tx.conn.Raw(func(dc any) error {
		c, ok := dc.(*stdlib.Conn)
		if !ok {
			return fmt.Errorf("store: %T is not a pgx connection", dc)
		}
		return fn(c.Conn())
	})
}
