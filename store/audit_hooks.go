package store

import "sync"

// auditHooks holds the OnAudit callbacks. Its zero value is ready to use, so
// Open needs no change to set it up.
type auditHooks struct {
	mu   sync.RWMutex
	next int
	fns  map[int]func(AuditEvent)
}

// OnAudit registers fn to be called with every audit event once the
// transaction that appended it has committed, in append order, on the
// goroutine that committed. Events of a rolled-back transaction are never
// passed. fn must return quickly and must not block (a forwarder queues the
// event and returns); it must not call InTx. The returned function removes fn.
func (db *DB) OnAudit(fn func(AuditEvent)) (remove func()) {
	h := &db.hooks
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.fns == nil {
		h.fns = map[int]func(AuditEvent){}
	}
	id := h.next
	h.next++
	h.fns[id] = fn
	return func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		delete(h.fns, id)
	}
}

func (h *auditHooks) fire(events []AuditEvent) {
	if len(events) == 0 {
		return
	}
	h.mu.RLock()
	fns := make([]func(AuditEvent), 0, len(h.fns))
	for _, fn := range h.fns {
		fns = append(fns, fn)
	}
	h.mu.RUnlock()
	for _, e := range events {
		for _, fn := range fns {
			fn(e)
		}
	}
}
