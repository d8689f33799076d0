// Package errs defines the one error type the portal uses to carry a kind, a
// message that is safe to show to people, and a hidden cause for operators.
package errs

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/writeback/writeback/services/i18n"
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

	// format and args are Message before its values were put in (the
	// catalogue's key), and texts the same for Fields, so that the reader's
	// language can be used when it is shown; Message and Fields stay
	// English for logs, audit rows and the API.
	format string
	args   []any
	texts  map[string]Text
}

// Text is a message that takes values: its English format (the
// catalogue's key) and the values.
type Text struct {
	Format string
	Args   []any
}

// Textf is a Text.
func Textf(format string, args ...any) Text { return Text{Format: format, Args: args} }

// In is the text in the reader's language (ctx), its values too (see
// localArgs).
func (t Text) In(ctx context.Context) string {
	return i18n.T(ctx, t.Format, localArgs(ctx, t.Args)...)
}

// String is the text in English.
func (t Text) String() string {
	if len(t.Args) == 0 {
		return t.Format
	}
	return fmt.Sprintf(t.Format, englishArgs(t.Args)...)
}

// localArgs are a message's values for a reader (ctx): a Text in their
// language, a time written their language's way; others as they are.
func localArgs(ctx context.Context, args []any) []any {
	return mapArgs(args, func(a any) (any, bool) {
		switch v := a.(type) {
		case Text:
			return v.In(ctx), true
		case time.Time:
			return i18n.DateTime(ctx, v), true
		}
		return nil, false
	})
}

// englishArgs are localArgs in English, for Message and Fields.
func englishArgs(args []any) []any {
	return mapArgs(args, func(a any) (any, bool) {
		if v, ok := a.(time.Time); ok {
			return i18n.DateTimeIn(i18n.English, v), true
		}
		return nil, false
	})
}

// mapArgs is args with f's replacements, copied only when one is made.
func mapArgs(args []any, f func(any) (any, bool)) []any {
	out, copied := args, false
	for i, a := range args {
		if v, ok := f(a); ok {
			if !copied {
				out, copied = append([]any(nil), args...), true
			}
			out[i] = v
		}
	}
	return out
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

// Ef builds an *Error whose safe message takes values: format is the
// catalogue's key.
func Ef(kind Kind, cause error, format string, args ...any) *Error {
	return &Error{Kind: kind, Message: fmt.Sprintf(format, englishArgs(args)...), Cause: cause, format: format, args: args}
}

// Invalidf builds an Invalid error with a formatted safe message.
func Invalidf(format string, args ...any) *Error {
	return Ef(Invalid, nil, format, args...)
}

// MsgFieldsInvalid is the message of an error that names fields.
var MsgFieldsInvalid = i18n.Key("Some values need your attention.")

// FieldErrors builds an Invalid error that names each field with a problem.
func FieldErrors(fields map[string]string) *Error {
	return &Error{Kind: Invalid, Message: MsgFieldsInvalid, Fields: fields}
}

// FieldTexts is FieldErrors for messages that take values.
func FieldTexts(fields map[string]Text) *Error {
	e := &Error{Kind: Invalid, Message: MsgFieldsInvalid, Fields: make(map[string]string, len(fields)), texts: fields}
	for k, t := range fields {
		e.Fields[k] = t.String()
	}
	return e
}

// KindOf returns the kind of err, or Internal when it carries none.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return Internal
}

// MsgOurSide is the message of an error that carries none.
var MsgOurSide = i18n.Key("Something went wrong on our side. Please try again; if it keeps happening, contact your administrator.")

// MessageOf returns the safe message of err in English, or a generic one.
func MessageOf(err error) string {
	var e *Error
	if errors.As(err, &e) && e.Message != "" {
		return e.Message
	}
	return MsgOurSide
}

// MessageIn is MessageOf in the reader's language (ctx).
func MessageIn(ctx context.Context, err error) string {
	var e *Error
	if errors.As(err, &e) && e.Message != "" {
		if e.format != "" {
			return i18n.T(ctx, e.format, localArgs(ctx, e.args)...)
		}
		return i18n.T(ctx, e.Message)
	}
	return i18n.T(ctx, MsgOurSide)
}

// FieldsIn is FieldsOf in the reader's language (ctx).
func FieldsIn(ctx context.Context, err error) map[string]string {
	var e *Error
	if !errors.As(err, &e) || len(e.Fields) == 0 {
		return nil
	}
	out := make(map[string]string, len(e.Fields))
	for k, m := range e.Fields {
		if t, ok := e.texts[k]; ok {
			out[k] = t.In(ctx)
		} else {
			out[k] = i18n.T(ctx, m)
		}
	}
	return out
}

// TextOf is the safe message of err as a Text (its format and values), so
// that it can become a field's message in the reader's language
// (FieldTexts); MessageOf's generic message when err carries none.
func TextOf(err error) Text {
	var e *Error
	if errors.As(err, &e) && e.Message != "" {
		if e.format != "" {
			return Text{Format: e.format, Args: e.args}
		}
		return Text{Format: e.Message}
	}
	return Text{Format: MsgOurSide}
}

// TextsOf is FieldsOf as Texts (formats and values), so that the field
// problems of several checks can be merged into one FieldTexts and still be
// shown in the reader's language.
func TextsOf(err error) map[string]Text {
	var e *Error
	if !errors.As(err, &e) || len(e.Fields) == 0 {
		return nil
	}
	out := make(map[string]Text, len(e.Fields))
	for k, m := range e.Fields {
		if t, ok := e.texts[k]; ok {
			out[k] = t
		} else {
			out[k] = Text{Format: m}
		}
	}
	return out
}

// FieldsOf returns the per-field messages of err, if any.
func FieldsOf(err error) map[string]string {
	var e *Error
	if errors.As(err, &e) {
		return e.Fields
	}
	return nil
}
