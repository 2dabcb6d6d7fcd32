// Package apperr defines the typed error every domain returns for failures
// a client can act on. An *Error carries a Kind (what class of failure) and
// a stable upper-snake Code (which failure); the HTTP layer maps kinds to
// status codes in exactly one place, httpserver.WriteError.
package apperr

import (
	"errors"
	"sync"
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

	// origin is the sentinel this error was made from (itself for a
	// sentinel): errors.Is compares origins, so a copy made by With or
	// Wrap still matches its sentinel and nothing else.
	origin *Error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Code + ": " + e.Detail + ": " + e.Err.Error()
	}
	return e.Code + ": " + e.Detail
}

func (e *Error) Unwrap() error { return e.Err }

// Is reports whether target is the same error value as e: the sentinel e
// was made from, or a copy of it. Identity is exact: two sentinels of
// different domains never match, even when they share a kind and a code
// (users.ErrNotFound is not topup.ErrNotFound), so errors.Is never
// confuses a missing top-up with a missing user.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.root() == e.root()
}

// root returns the sentinel e was made from.
func (e *Error) root() *Error {
	if e.origin != nil {
		return e.origin
	}
	return e
}

// New returns a new sentinel *Error of the given kind and code. Each call
// makes a distinct value: declare one per meaning, once, and vary its text
// with With.
func New(kind Kind, code, detail string) *Error {
	return &Error{Kind: kind, Code: code, Detail: detail}
}

// ErrValidation is the sentinel of every input validation failure;
// Validation returns copies of it with per-field messages.
var ErrValidation = New(KindValidation, "VALIDATION_FAILED", "The request has invalid fields.")

// Validation returns a copy of ErrValidation with per-field messages.
func Validation(detail string, fields ...FieldError) *Error {
	c := ErrValidation.With(detail)
	c.Fields = fields
	return c
}

// With returns a copy of e with another detail; it stays e for errors.Is.
func (e *Error) With(detail string) *Error {
	c := *e
	c.Detail = detail
	c.origin = e.root()
	return &c
}

// Wrap returns a copy of e carrying cause as its underlying error; it stays
// e for errors.Is.
func (e *Error) Wrap(cause error) *Error {
	c := *e
	c.Err = cause
	c.origin = e.root()
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

// translators recognise failures of infrastructure packages that a client
// can act on; see RegisterTranslator.
var (
	translatorsMu sync.RWMutex
	translators   []func(error) error
)

// RegisterTranslator adds f, which returns an *Error for the errors of its
// package that a client can act on (a database that cannot be reached:
// retry later) and nil for the others. A package registers from its init,
// so that such an error becomes the right answer wherever it surfaces,
// without every caller wrapping it (apperr cannot know those packages'
// errors, and they cannot be imported by the HTTP layer).
func RegisterTranslator(f func(error) error) {
	translatorsMu.Lock()
	defer translatorsMu.Unlock()
	translators = append(translators, f)
}

// Translate returns err when its chain holds an *Error; otherwise the
// first registered translation of it, if any; otherwise err.
func Translate(err error) error {
	var ae *Error
	if err == nil || errors.As(err, &ae) {
		return err
	}
	translatorsMu.RLock()
	defer translatorsMu.RUnlock()
	for _, f := range translators {
		if t := f(err); t != nil {
			return t
		}
	}
	return err
}
