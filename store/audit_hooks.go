package store

import (
	"slices"
	"sync"
)

// auditHooks holds the OnAudit callbacks. Its zero value is ready to use, so
// Open needs no change to set it up.
type auditHooks struct {
	mu   sync.RWMutex
	next int
	fns  []auditHook // in registration order
}

type auditHook struct {
	id int
	fn func(AuditEvent)
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
	id := h.next
	h.next++
	h.fns = append(h.fns, auditHook{id: id, fn: fn})
	return func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.fns = slices.DeleteFunc(h.fns, func(x auditHook) bool { return x.id == id })
	}
}

func (h *auditHooks) fire(events []AuditEvent) {
	if len(events) == 0 {
		return
	}
	h.mu.RLock()
	fns := slices.Clone(h.fns)
	h.mu.RUnlock()
	for _, e := range events {
		for _, x := range fns {
			x.fn(e)
		}
	}
}
