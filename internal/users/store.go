// Package users owns paygate's user records: profiles, roles, active
// status and account numbers, with the admin and self-service HTTP API
// under /v1/users. Credentials and sessions belong to internal/auth.
package users

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/paygate/paygate/internal/platform/apperr"
	"github.com/paygate/paygate/internal/platform/authn"
	"github.com/paygate/paygate/internal/platform/pagination"
	"github.com/paygate/paygate/internal/platform/postgres"
)

// User is a user record.
type User struct {
	ID            uuid.UUID  `json:"id"`
	Firstname     string     `json:"firstname"`
	Lastname      string     `json:"lastname"`
	Email         string     `json:"email"`
	AccountNumber string     `json:"account_number"`
	Role          authn.Role `json:"role"`
	Active        bool       `json:"active"`
	CreatedAt     time.Time  `json:"created_at"`
}

// Errors of the users domain.
var (
	ErrEmailTaken  = apperr.New(apperr.KindConflict, "EMAIL_TAKEN", "A user with this email already exists.")
	ErrNotFound    = apperr.New(apperr.KindNotFound, "NOT_FOUND", "The user does not exist.")
	ErrHoldsMoney  = apperr.New(apperr.KindConflict, "USER_HOLDS_MONEY", "The user still holds money; move it out before deactivating.")
	errNumberTaken = errors.New("account number collision")
)

// Store holds the SQL of the users table.
type Store struct{}

// NewStore returns the users store.
func NewStore() *Store { return &Store{} }

const userColumns = `id, firstname, lastname, email, account_number, role, active, created_at`

func scanUser(row pgx.Row) (User, error) {
	var u User
	var role string
	err := row.Scan(&u.ID, &u.Firstname, &u.Lastname, &u.Email, &u.AccountNumber, &role, &u.Active, &u.CreatedAt)
	u.Role = authn.Role(role)
	if errors.Is(err, pgx.ErrNoRows) {
		return User{}, ErrNotFound
	}
	return u, err
}

// NewUser is what Create needs; fields are already validated.
type NewUser struct {
	Firstname string
	Lastname  string
	Email     string
	Role      authn.Role
}

const insertUser = `-- name: InsertUser
INSERT INTO users (id, firstname, lastname, email, account_number, role)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (account_number) DO NOTHING
RETURNING ` + userColumns

// Create inserts a user with a fresh account number in tx. An account
// number collision (ON CONFLICT on that key only, so the transaction stays
// usable) draws a new number; a duplicate email is ErrEmailTaken.
func (s *Store) Create(ctx context.Context, tx pgx.Tx, nu NewUser) (User, error) {
	for range 8 {
		number, err := NewAccountNumber()
		if err != nil {
			return User{}, err
		}
		u, err := scanUser(tx.QueryRow(ctx, insertUser, uuid.New(), nu.Firstname, nu.Lastname, nu.Email, number, string(nu.Role)))
		switch {
		case errors.Is(err, ErrNotFound):
			continue // no row: the account number was taken
		case postgres.IsUniqueViolation(err, "users_email_key"):
			return User{}, ErrEmailTaken
		case err != nil:
			return User{}, fmt.Errorf("insert user: %w", err)
		}
		return u, nil
	}
	return User{}, errNumberTaken
}

// Get returns the user with id.
func (s *Store) Get(ctx context.Context, q postgres.Querier, id uuid.UUID) (User, error) {
	return scanUser(q.QueryRow(ctx, `-- name: GetUser
SELECT `+userColumns+` FROM users WHERE id = $1`, id))
}

// GetForUpdate returns the user with id, locking the row until tx ends.
func (s *Store) GetForUpdate(ctx context.Context, tx pgx.Tx, id uuid.UUID) (User, error) {
	return scanUser(tx.QueryRow(ctx, `-- name: GetUserForUpdate
SELECT `+userColumns+` FROM users WHERE id = $1 FOR UPDATE`, id))
}

// GetByEmail returns the user with the (normalised) email.
func (s *Store) GetByEmail(ctx context.Context, q postgres.Querier, email string) (User, error) {
	return scanUser(q.QueryRow(ctx, `-- name: GetUserByEmail
SELECT `+userColumns+` FROM users WHERE email = $1`, NormalizeEmail(email)))
}

// GetByAccountNumber returns the user owning the account number.
func (s *Store) GetByAccountNumber(ctx context.Context, q postgres.Querier, number string) (User, error) {
	return scanUser(q.QueryRow(ctx, `-- name: GetUserByAccountNumber
SELECT `+userColumns+` FROM users WHERE account_number = $1`, number))
}

// Filter narrows a user listing.
type Filter struct {
	Email string // exact match, normalised
	Query string // case-insensitive substring of first or last name
}

// Page is one page of users, newest first.
type Page = pagination.Page[User]

// List returns up to limit users matching f, newest first, after cursor.
// The cursor is the (created_at, id) of the last user of the previous page,
// so pages neither skip nor repeat users inserted meanwhile.
func (s *Store) List(ctx context.Context, q postgres.Querier, f Filter, limit int, cursor string) (Page, error) {
	pos, err := pagination.Decode(cursor)
	if err != nil {
		return Page{}, err
	}
	afterTime, afterID := pagination.After(pos)
	var email, query *string
	if f.Email != "" {
		e := NormalizeEmail(f.Email)
		email = &e
	}
	if f.Query != "" {
		like := "%" + escapeLike(strings.ToLower(f.Query)) + "%"
		query = &like
	}
	rows, err := q.Query(ctx, `-- name: ListUsers
SELECT `+userColumns+` FROM users
WHERE ($1::timestamptz IS NULL OR (created_at, id) < ($1, $2))
  AND ($3::text IS NULL OR email = $3)
  AND ($4::text IS NULL OR lower(firstname) LIKE $4 OR lower(lastname) LIKE $4 OR lower(firstname || ' ' || lastname) LIKE $4)
ORDER BY created_at DESC, id DESC
LIMIT $5`, afterTime, afterID, email, query, limit+1)
	if err != nil {
		return Page{}, fmt.Errorf("list users: %w", err)
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (User, error) { return scanUser(r) })
	if err != nil {
		return Page{}, fmt.Errorf("list users: %w", err)
	}
	return pagination.Cut(list, limit, func(u User) pagination.Position {
		return pagination.Position{CreatedAt: u.CreatedAt, ID: u.ID}
	}), nil
}

// Patch is a partial update; nil fields stay unchanged.
type Patch struct {
	Firstname *string
	Lastname  *string
	Email     *string
	Role      *authn.Role
	Active    *bool
}

// Update applies p to the user in tx and returns the result.
func (s *Store) Update(ctx context.Context, tx pgx.Tx, id uuid.UUID, p Patch) (User, error) {
	var role *string
	if p.Role != nil {
		r := string(*p.Role)
		role = &r
	}
	u, err := scanUser(tx.QueryRow(ctx, `-- name: UpdateUser
UPDATE users SET
  firstname = coalesce($2, firstname),
  lastname = coalesce($3, lastname),
  email = coalesce($4, email),
  role = coalesce($5, role),
  active = coalesce($6, active),
  deactivated_at = CASE WHEN $6 = false AND active THEN now() WHEN $6 = true THEN NULL ELSE deactivated_at END,
  updated_at = now()
WHERE id = $1
RETURNING `+userColumns, id, p.Firstname, p.Lastname, p.Email, role, p.Active))
	if postgres.IsUniqueViolation(err, "users_email_key") {
		return User{}, ErrEmailTaken
	}
	return u, err
}

// NormalizeEmail trims and lower-cases an email address.
func NormalizeEmail(e string) string { return strings.ToLower(strings.TrimSpace(e)) }

func escapeLike(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

// ErrInactive is returned when a money movement names a deactivated user.
var ErrInactive = apperr.New(apperr.KindBusinessRule, "USER_INACTIVE", "The user is not active.")

// LockActive returns the user, share-locking the row until tx ends, and
// fails with ErrInactive for a deactivated user. Money movements into a
// wallet take this lock: deactivation takes the row FOR UPDATE and checks
// the balance, so it cannot interleave with a movement and leave money in
// a deactivated account.
func (s *Store) LockActive(ctx context.Context, tx pgx.Tx, id uuid.UUID) (User, error) {
	u, err := scanUser(tx.QueryRow(ctx, `-- name: LockActiveUser
SELECT `+userColumns+` FROM users WHERE id = $1 FOR SHARE`, id))
	if err != nil {
		return User{}, err
	}
	if !u.Active {
		return User{}, ErrInactive
	}
	return u, nil
}

// LockMany share-locks the rows of the users with the given ids, like
// LockActive, in one round trip, and returns them by id, inactive ones
// too (the caller decides what an inactive one means); unknown ids are
// absent from the map. The rows are locked in id order (ORDER BY runs
// below the row locking), the order every multi-user lock follows.
func (s *Store) LockMany(ctx context.Context, tx pgx.Tx, ids []uuid.UUID) (map[uuid.UUID]User, error) {
	return collectByID(tx.Query(ctx, `-- name: LockUsers
SELECT `+userColumns+` FROM users WHERE id = ANY($1) ORDER BY id FOR SHARE`, ids))
}

// QueueLockNamed queues one statement that finds the users named by any
// of ids, account numbers or (normalised) emails and share-locks them as
// LockMany does (in id order), for a caller that sends it with other
// statements in one round trip, in the transaction the locks are for.
// Once it has run, into holds the users found, by id, inactive ones too.
func (s *Store) QueueLockNamed(b *pgx.Batch, ids []uuid.UUID, numbers, emails []string, into map[uuid.UUID]User) {
	norm := make([]string, len(emails))
	for i, e := range emails {
		norm[i] = NormalizeEmail(e)
	}
	b.Queue(`-- name: LockNamedUsers
SELECT `+userColumns+` FROM users WHERE id = ANY($1) OR account_number = ANY($2) OR email = ANY($3) ORDER BY id FOR SHARE`,
		ids, numbers, norm).Query(func(rows pgx.Rows) error {
		m, err := collectByID(rows, nil)
		maps.Copy(into, m)
		return err
	})
}

// GetMany returns the users with the given ids, by id; unknown ids are
// absent from the map.
func (s *Store) GetMany(ctx context.Context, q postgres.Querier, ids []uuid.UUID) (map[uuid.UUID]User, error) {
	return collectByID(q.Query(ctx, `-- name: GetUsers
SELECT `+userColumns+` FROM users WHERE id = ANY($1)`, ids))
}

// collectByID reads the users of a query's rows into a map by id.
func collectByID(rows pgx.Rows, err error) (map[uuid.UUID]User, error) {
	if err != nil {
		return nil, err
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (User, error) { return scanUser(r) })
	if err != nil {
		return nil, err
	}
	out := make(map[uuid.UUID]User, len(list))
	for _, u := range list {
		out[u.ID] = u
	}
	return out, nil
}
