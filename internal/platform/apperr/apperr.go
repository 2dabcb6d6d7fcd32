// Package apperr defines the typed error every domain returns for failures
// a client can act on. An *Error carries a Kind (what class of failure) and
// a stable upper-snake Code (which failure); the HTTP layer maps kinds to
// status codes in exactly one place, httpserver.WriteError.
package apperr

import (
	"errors"
	"time"
)

// Kind classifies an error for transport mapping.
type Kind int

// The kinds, one per class of client-visible outcome.
const (
	KindInternal         Kind = iota // a fault of ours; details never leave the process
	KindValidation                   // malformed or invalid input (400)
	KindUnauthenticated              // no or bad credentials (401)
	KindForbidden                    // authenticated but not allowed (403)
	KindNotFound                     // missing, or someone else's (404)
	KindConflict                     // state conflict such as a duplicate (409)
	KindTooLarge                     // request body over the limit (413)
	KindUnsupportedMedia             // wrong content type (415)
	KindBusinessRule                 // well-formed but refused by a rule (422)
	KindRateLimited                  // too many attempts (429)
	KindUnavailable                  // a dependency is down (503)
	KindMethodNotAllowed             // the route exists but not for this method (405)
)

// FieldError names one invalid input field.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// Error is a client-visible failure.
type Error struct {
	Kind   Kind
	Code   string // stable, upper snake case, e.g. INSUFFICIENT_FUNDS
	Detail string // human-readable, safe to show to the caller
	Fields []FieldError
	// RetryAfter, when positive, is sent as the Retry-After header.
	RetryAfter time.Duration
	// Err is the underlying cause; it is logged, never sent to clients.
	Err error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Code + ": " + e.Detail + ": " + e.Err.Error()
	}
	return e.Code + ": " + e.Detail
}

func (e *Error) Unwrap() error { return e.Err }

// Is reports whether target is an *Error with the same kind and code, so that
// sentinel *Error values work with errors.Is even when copied with details.
func (e *Error) Is(target error) bool {
	var t *Error
	if !errors.As(target, &t) {
		return false
	}
	return t.Kind == e.Kind && t.Code == e.Code
}

// New returns an *Error of the given kind and code.
func New(kind Kind, code, detail string) *Error {
	return &Error{Kind: kind, Code: code, Detail: detail}
}

// Validation returns a KindValidation error with per-field messages.
func Validation(detail string, fields ...FieldError) *Error {
	return &Error{Kind: KindValidation, Code: "VALIDATION_FAILED", Detail: detail, Fields: fields}
}

// With returns a copy of e with another detail, keeping kind and code.
func (e *Error) With(detail string) *Error {
	c := *e
	c.Detail = detail
	return &c
}

// Wrap returns a copy of e carrying cause as its underlying error.
func (e *Error) Wrap(cause error) *Error {
	c := *e
	c.Err = cause
	return &c
}

// Common errors shared by every domain.
var (
	ErrUnauthenticated  = New(KindUnauthenticated, "UNAUTHENTICATED", "Authentication is required.")
	ErrForbidden        = New(KindForbidden, "FORBIDDEN", "You are not allowed to do this.")
	ErrNotFound         = New(KindNotFound, "NOT_FOUND", "The resource does not exist.")
	ErrTooLarge         = New(KindTooLarge, "PAYLOAD_TOO_LARGE", "The request body is too large.")
	ErrUnsupportedType  = New(KindUnsupportedMedia, "UNSUPPORTED_MEDIA_TYPE", "Send the body as application/json.")
	ErrMalformedJSON    = New(KindValidation, "MALFORMED_JSON", "The request body is not valid JSON.")
	ErrMethodNotAllowed = New(KindMethodNotAllowed, "METHOD_NOT_ALLOWED", "The route does not accept this method.")
	ErrInternal         = New(KindInternal, "INTERNAL", "An internal error occurred.")
	ErrUnavailable      = New(KindUnavailable, "UNAVAILABLE", "The service is temporarily unavailable.")
)
