package users

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/paygate/paygate/internal/platform/apperr"
	"github.com/paygate/paygate/internal/platform/authn"
	"github.com/paygate/paygate/internal/platform/postgres"
)

// NewAccount is a user to create together with credentials.
type NewAccount struct {
	Firstname string
	Lastname  string
	Email     string
	Password  string
	Role      authn.Role
}

// AccountCreator creates a user with credentials and everything that comes
// with one (wallet, registration event) in one transaction. internal/auth
// implements it.
type AccountCreator interface {
	CreateAccount(ctx context.Context, na NewAccount) (User, error)
}

// SessionRevoker ends every session of a user inside tx. internal/auth
// implements it.
type SessionRevoker interface {
	RevokeUserSessions(ctx context.Context, tx pgx.Tx, userID uuid.UUID, reason string) error
}

// MoneyHolder tells whether a user still holds money. The ledger implements
// it; deactivation is refused while it answers true.
type MoneyHolder interface {
	HoldsMoney(ctx context.Context, tx pgx.Tx, userID uuid.UUID) (bool, error)
}

// Service applies the users domain's rules: who may see and change whom.
type Service struct {
	db      *postgres.DB
	store   *Store
	revoker SessionRevoker
	money   MoneyHolder
}

// NewService returns the service. money may be nil while no ledger exists.
func NewService(db *postgres.DB, store *Store, revoker SessionRevoker, money MoneyHolder) *Service {
	return &Service{db: db, store: store, revoker: revoker, money: money}
}

// Get returns the user with id if the caller may see it. Someone else's id
// answers ErrNotFound, exactly like an unknown id, so existence does not
// leak.
func (s *Service) Get(ctx context.Context, caller authn.Principal, id uuid.UUID) (User, error) {
	if !caller.CanAccessUser(id) {
		return User{}, ErrNotFound
	}
	return s.store.Get(ctx, s.db.Pool, id)
}

// List returns a page of users; administrators only.
func (s *Service) List(ctx context.Context, caller authn.Principal, f Filter, limit int, cursor string) (Page, error) {
	if !caller.IsAdmin() {
		return Page{}, apperr.ErrForbidden
	}
	return s.store.List(ctx, s.db.Pool, f, limit, cursor)
}

// Update applies a partial update. Only administrators may change role or
// active status; handlers refuse those fields from anyone else before this
// point, and the check here keeps the rule when called from elsewhere. A
// patch that deactivates the user and changes other fields is one
// transaction: if any part is refused (the email is taken, the user holds
// money), nothing changes.
func (s *Service) Update(ctx context.Context, caller authn.Principal, id uuid.UUID, p Patch) (User, error) {
	if !caller.CanAccessUser(id) {
		return User{}, ErrNotFound
	}
	if !caller.IsAdmin() && (p.Role != nil || p.Active != nil) {
		return User{}, apperr.ErrForbidden
	}
	var out User
	err := s.db.InTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
		if p.Active != nil && !*p.Active {
			// Deactivation has its own rules (money, sessions).
			if err := s.deactivate(ctx, tx, id); err != nil {
				return err
			}
		}
		before, err := s.store.GetForUpdate(ctx, tx, id)
		if err != nil {
			return err
		}
		if out, err = s.store.Update(ctx, tx, id, p); err != nil {
			return err
		}
		// A session carries its user's role (the per-request check reads
		// only the session), so a change of role ends the user's sessions,
		// in this transaction: the next request with an old token is
		// refused, and the user logs in again with the new role.
		if out.Role != before.Role {
			return s.revoker.RevokeUserSessions(ctx, tx, id, "role changed")
		}
		return nil
	})
	return out, err
}

// Deactivate marks the user inactive, keeping every record, and revokes
// their sessions in the same transaction; login is refused from then on.
// It is refused with ErrHoldsMoney while the user's wallet is not empty.
func (s *Service) Deactivate(ctx context.Context, caller authn.Principal, id uuid.UUID) error {
	if !caller.CanAccessUser(id) {
		return ErrNotFound
	}
	return s.db.InTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
		if err := s.deactivate(ctx, tx, id); err != nil {
			return err
		}
		inactive := false
		_, err := s.store.Update(ctx, tx, id, Patch{Active: &inactive})
		return err
	})
}

// deactivate checks in tx that the user may be deactivated and revokes
// their sessions; the caller then writes active = false in the same
// transaction. The user row is locked first, so a concurrent money
// movement into the wallet that checks the user's status serialises
// behind it. An inactive user passes (deactivating twice is no error).
func (s *Service) deactivate(ctx context.Context, tx pgx.Tx, id uuid.UUID) error {
	u, err := s.store.GetForUpdate(ctx, tx, id)
	if err != nil {
		return err
	}
	if !u.Active {
		return nil
	}
	if s.money != nil {
		holds, err := s.money.HoldsMoney(ctx, tx, id)
		if err != nil {
			return fmt.Errorf("check balance: %w", err)
		}
		if holds {
			return ErrHoldsMoney
		}
	}
	return s.revoker.RevokeUserSessions(ctx, tx, id, "user deactivated")
}
