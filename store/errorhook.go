package store

import (
	"context"
	"database/sql"
	"errors"
	"sync/atomic"
)

// errorHook holds the OnError callback; its zero value calls nothing.
type errorHook struct {
	fn atomic.Pointer[func(error)]
}

// OnError makes the database call fn with every error a statement, a
// transaction's start or a commit returns (the portal's metrics count
// them). A cancelled or timed-out context and a unique constraint refusing
// a duplicate (which the store answers as a conflict) are not the
// database's failures and are not passed; nor is a row not found, which
// only Scan reports. fn must return quickly.
func (db *DB) OnError(fn func(error)) { db.sql.onErr.fn.Store(&fn) }

// note passes err to the callback, when there is one and err counts.
func (h *errorHook) note(err error) error {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) ||
		engineSQLite.isUnique(err) { // isUnique knows both engines' errors
		return err
	}
	if fn := h.fn.Load(); fn != nil {
		(*fn)(err)
	}
	return err
}

// noteRow passes on the error of a QueryRow (sql.ErrNoRows only appears at
// Scan and is not one).
func (h *errorHook) noteRow(r *sql.Row) *sql.Row {
	_ = h.note(r.Err())
	return r
}
