// Package errs defines the one error type the portal uses to carry a kind, a
// message that is safe to show to people, and a hidden cause for operators.
package errs

import (
	"errors"
	"fmt"
)

// Kind classifies an error for the purpose of answering a request.
type Kind int

// The kinds of error. Exactly one function in handlers maps them to HTTP statuses.
const (
	Internal Kind = iota
	Invalid
	NotFound
	Forbidden
	Conflict
	Policy
	Unavailable
	Unauthorized
	TooMany
)

func (k Kind) String() string {
	switch k {
	case Invalid:
		return "invalid"
	case NotFound:
		return "not found"
	case Forbidden:
		return "forbidden"
	case Conflict:
		return "conflict"
	case Policy:
		return "policy"
	case Unavailable:
		return "unavailable"
	case Unauthorized:
		return "unauthorized"
	case TooMany:
		return "too many"
	default:
		return "internal"
	}
}

// Error is an error with a kind, a message safe to show, optional per-field
// messages, and a cause that is only ever logged.
type Error struct {
	Kind    Kind
	Message string            // safe to show to the person who made the request
	Fields  map[string]string // field name → safe message, for forms
	Cause   error             // hidden: logged, never rendered
}

func (e *Error) Error() string {
	if e.Cause != nil {
		return fmt.Sprintf("%s: %s: %v", e.Kind, e.Message, e.Cause)
	}
	return fmt.Sprintf("%s: %s", e.Kind, e.Message)
}

func (e *Error) Unwrap() error { return e.Cause }

// E builds an *Error.
func E(kind Kind, msg string, cause error) *Error {
	return &Error{Kind: kind, Message: msg, Cause: cause}
}

// Invalidf builds an Invalid error with a formatted safe message.
func Invalidf(format string, args ...any) *Error {
	return &Error{Kind: Invalid, Message: fmt.Sprintf(format, args...)}
}

// FieldErrors builds an Invalid error that names each field with a problem.
func FieldErrors(fields map[string]string) *Error {
	return &Error{Kind: Invalid, Message: "Some values need your attention.", Fields: fields}
}

// KindOf returns the kind of err, or Internal when it carries none.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return Internal
}

// MessageOf returns the safe message of err, or a generic one.
func MessageOf(err error) string {
	var e *Error
	if errors.As(err, &e) && e.Message != "" {
		return e.Message
	}
	return "Something went wrong on our side. Please try again; if it keeps happening, contact your administrator."
}

// FieldsOf returns the per-field messages of err, if any.
func FieldsOf(err error) map[string]string {
	var e *Error
	if errors.As(err, &e) {
		return e.Fields
	}
	return nil
}
