package topup

import (
	"context"
	"errors"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/paygate/paygate/internal/movement"
	"github.com/paygate/paygate/internal/platform/pagination"
	"github.com/paygate/paygate/internal/platform/postgres"
)

// Store holds the SQL of the topups and topup_reversals tables. Records
// are inserted, never updated or deleted.
type Store struct{}

const selectTopUp = `SELECT t.id, t.user_id, t.amount, t.currency, t.method, t.reference, t.created_at, r.created_at
FROM topups t LEFT JOIN topup_reversals r ON r.topup_id = t.id`

func scanTopUp(row pgx.Row) (TopUp, error) {
	var t TopUp
	err := row.Scan(&t.ID, &t.UserID, &t.Amount, &t.Currency, &t.Method, &t.Reference, &t.CreatedAt, &t.ReversedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return TopUp{}, ErrNotFound
	}
	t.Status = StatusSucceeded
	if t.ReversedAt != nil {
		t.Status = StatusReversed
	}
	return t, err
}

// Insert records a booked top-up and returns its creation time.
func (Store) Insert(ctx context.Context, tx pgx.Tx, t TopUp, ledgerTx uuid.UUID) (time.Time, error) {
	var at time.Time
	err := tx.QueryRow(ctx, `-- name: InsertTopUp
INSERT INTO topups (id, user_id, amount, currency, method, reference, ledger_transaction_id)
VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING created_at`,
		t.ID, t.UserID, t.Amount, t.Currency, t.Method, t.Reference, ledgerTx).Scan(&at)
	return movement.Inserted(at, err, nil, "top-up")
}

// Get returns the top-up id of owner (nil: of anyone); any other is
// ErrNotFound.
func (Store) Get(ctx context.Context, q postgres.Querier, id uuid.UUID, owner *uuid.UUID) (TopUp, error) {
	return scanTopUp(q.QueryRow(ctx, `-- name: GetTopUp
`+selectTopUp+` WHERE t.id = $1 AND ($2::uuid IS NULL OR t.user_id = $2)`, id, owner))
}

// List returns up to n top-ups of owner (nil: everyone's) after the
// position, newest first.
func (Store) List(ctx context.Context, q postgres.Querier, owner *uuid.UUID, after *pagination.Position, n int) ([]TopUp, error) {
	at, aid := pagination.After(after)
	rows, err := q.Query(ctx, `-- name: ListTopUps
`+selectTopUp+`
WHERE ($1::uuid IS NULL OR t.user_id = $1)
  AND ($2::timestamptz IS NULL OR (t.created_at, t.id) < ($2, $3))
ORDER BY t.created_at DESC, t.id DESC
LIMIT $4`, owner, at, aid, n)
	return postgres.Collect(rows, err, scanTopUp)
}

// LockForReversal returns the top-up id and its ledger transaction,
// share-locking the row (lock order: the business row first).
func (Store) LockForReversal(ctx context.Context, tx pgx.Tx, id uuid.UUID) (TopUp, uuid.UUID, error) {
	var t TopUp
	var ledgerTx uuid.UUID
	err := tx.QueryRow(ctx, `-- name: LockTopUpForReversal
SELECT id, user_id, amount, currency, method, reference, created_at, ledger_transaction_id
FROM topups WHERE id = $1 FOR SHARE`, id).Scan(&t.ID, &t.UserID, &t.Amount, &t.Currency, &t.Method, &t.Reference, &t.CreatedAt, &ledgerTx)
	if errors.Is(err, pgx.ErrNoRows) {
		return TopUp{}, uuid.Nil, ErrNotFound
	}
	return t, ledgerTx, err
}

// InsertReversal records the reversal of top-up id and returns its time;
// a second one (the primary key) is movement.ErrAlreadyReversed.
func (Store) InsertReversal(ctx context.Context, tx pgx.Tx, id, by uuid.UUID, reason string, ledgerTx uuid.UUID) (time.Time, error) {
	var at time.Time
	err := tx.QueryRow(ctx, `-- name: InsertTopUpReversal
INSERT INTO topup_reversals (topup_id, reversed_by, reason, ledger_transaction_id) VALUES ($1, $2, $3, $4)
RETURNING created_at`, id, by, reason, ledgerTx).Scan(&at)
	return movement.Inserted(at, err, movement.ErrAlreadyReversed, "top-up reversal")
}
