// Package authn carries the authenticated caller through a request. The
// auth domain verifies tokens and installs the Principal; every other domain
// reads it here, so no domain needs to import auth to know who is calling.
package authn

import (
	"context"
	"net/http"

	"github.com/google/uuid"

	"github.com/paygate/paygate/internal/platform/apperr"
)

// Role is what a user may do.
type Role string

// The roles.
const (
	RoleUser  Role = "user"
	RoleAdmin Role = "admin"
)

// Valid reports whether r is a known role.
func (r Role) Valid() bool { return r == RoleUser || r == RoleAdmin }

// Principal is the authenticated caller.
type Principal struct {
	UserID    uuid.UUID
	Role      Role
	SessionID uuid.UUID
}

// IsAdmin reports whether the caller is an administrator.
func (p Principal) IsAdmin() bool { return p.Role == RoleAdmin }

// CanAccessUser reports whether the caller may see or act on the user with
// the given id: themselves, or anyone when admin.
func (p Principal) CanAccessUser(id uuid.UUID) bool { return p.IsAdmin() || p.UserID == id }

type ctxKey struct{}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, ctxKey{}, p)
}

// FromContext returns the caller, if the request was authenticated.
func FromContext(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(ctxKey{}).(Principal)
	return p, ok
}

// FromRequest returns the authenticated caller of r. It is the one way a
// handler gets its caller: a request that reached a handler without one
// (a route registered without the authenticator) answers
// apperr.ErrUnauthenticated instead of acting for a zero user.
func FromRequest(r *http.Request) (Principal, error) {
	p, ok := FromContext(r.Context())
	if !ok {
		return Principal{}, apperr.ErrUnauthenticated
	}
	return p, nil
}

// AdminFromRequest returns the caller of r when it is an administrator,
// and apperr.ErrForbidden for anyone else. Admin-only routes call it first,
// so that a non-admin learns nothing about the resource named.
func AdminFromRequest(r *http.Request) (Principal, error) {
	p, err := FromRequest(r)
	if err != nil {
		return Principal{}, err
	}
	if !p.IsAdmin() {
		return Principal{}, apperr.ErrForbidden
	}
	return p, nil
}

// Authenticator wraps handlers that require an authenticated caller. The
// auth domain implements it; handlers behind it can rely on FromContext.
type Authenticator interface {
	Require(next http.Handler) http.Handler
}
