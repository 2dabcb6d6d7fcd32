package topup

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/paygate/paygate/internal/movement"
	"github.com/paygate/paygate/internal/platform/idempotency"
	"github.com/paygate/paygate/internal/platform/pagination"
	"github.com/paygate/paygate/internal/platform/postgres"
	"github.com/paygate/paygate/internal/provider"
)

// Store holds the SQL of the topups, topup_intents, topup_settlements and
// topup_reversals tables. Records are inserted, never updated: a
// top-up's end is a settlement row, its reversal a reversal row.
type Store struct{}

// selectTopUp reads a top-up with its settlement and reversal. A top-up
// without a settlement is pending, unless it is one booked before the
// payment rails, which carries its ledger transaction on the row and
// succeeded then.
const selectTopUp = `SELECT t.id, t.user_id, t.amount, t.currency, t.method, t.reference, t.provider,
  t.provider_payment_id, t.payment, t.expires_at, t.created_at, t.ledger_transaction_id IS NOT NULL,
  s.status, s.reason, s.reason_code, s.settled_at, r.created_at
FROM topups t
LEFT JOIN topup_settlements s ON s.topup_id = t.id
LEFT JOIN topup_reversals r ON r.topup_id = t.id`

func scanTopUp(row pgx.Row) (TopUp, error) {
	var t TopUp
	var payment []byte
	var legacy bool
	var status, reason, code *string
	err := row.Scan(&t.ID, &t.UserID, &t.Amount, &t.Currency, &t.Method, &t.Reference, &t.provider, &t.paymentID,
		&payment, &t.ExpiresAt, &t.CreatedAt, &legacy, &status, &reason, &code, &t.SettledAt, &t.ReversedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return TopUp{}, ErrNotFound
	}
	if err != nil {
		return TopUp{}, err
	}
	if len(payment) > 0 {
		t.Payment = new(provider.Instructions)
		if err := json.Unmarshal(payment, t.Payment); err != nil {
			return TopUp{}, err
		}
	}
	switch {
	case t.ReversedAt != nil:
		t.Status = StatusReversed
	case status != nil:
		t.Status = *status
		if t.Status != StatusSucceeded {
			t.FailureReason, t.FailureCode = *reason, *code
		}
	case legacy:
		t.Status, t.SettledAt = StatusSucceeded, &t.CreatedAt
	default:
		t.Status = StatusPending
	}
	return t, nil
}

// intent is the id and expiry an Idempotency-Key's top-up gets.
type intent struct {
	TopUpID   uuid.UUID
	ExpiresAt time.Time
}

// Intent returns the intent of the claim, recording one expiring at
// expires when there is none yet. It runs on q outside the request's
// transaction, so that the intent survives a rollback (a provider
// timeout) and the retry sends the provider the same create.
//
// Two requests with one key may insert at once: the later INSERT waits for
// the earlier and does nothing, and its SELECT, which reads the snapshot
// the statement began with, does not see the row the earlier committed
// either, so the statement returns no row. A new statement takes a new
// snapshot (READ COMMITTED) and finds it: the statement is run again.
func (Store) Intent(ctx context.Context, q postgres.Querier, c idempotency.Claim, expires time.Time) (intent, error) {
	in, err := upsertIntent(ctx, q, c, expires)
	for try := 0; errors.Is(err, pgx.ErrNoRows) && try < 3; try++ {
		in, err = upsertIntent(ctx, q, c, expires)
	}
	return in, err
}

func upsertIntent(ctx context.Context, q postgres.Querier, c idempotency.Claim, expires time.Time) (intent, error) {
	var in intent
	err := q.QueryRow(ctx, `-- name: UpsertTopUpIntent
WITH ins AS (
  INSERT INTO topup_intents (owner_id, idem_key, fingerprint, topup_id, expires_at)
  VALUES ($1, $2, $3, $4, $5)
  ON CONFLICT (owner_id, idem_key, fingerprint) DO NOTHING
  RETURNING topup_id, expires_at)
SELECT topup_id, expires_at FROM ins
UNION ALL
SELECT topup_id, expires_at FROM topup_intents WHERE owner_id = $1 AND idem_key = $2 AND fingerprint = $3
LIMIT 1`, c.Owner, c.Key, c.Fingerprint, uuid.New(), expires.UTC().Truncate(time.Second)).Scan(&in.TopUpID, &in.ExpiresAt)
	return in, err
}

// IntentExists reports whether an intent names the top-up id: paygate
// asked the provider for its payment, and its record may still be on its
// way to the database.
func (Store) IntentExists(ctx context.Context, q postgres.Querier, id uuid.UUID) (bool, error) {
	var ok bool
	err := q.QueryRow(ctx, `-- name: TopUpIntentExists
SELECT EXISTS (SELECT 1 FROM topup_intents WHERE topup_id = $1)`, id).Scan(&ok)
	return ok, err
}

// DeleteIntents forgets intents created before cutoff and returns how
// many.
func (Store) DeleteIntents(ctx context.Context, q postgres.Querier, cutoff time.Time) (int64, error) {
	tag, err := q.Exec(ctx, `-- name: DeleteTopUpIntents
DELETE FROM topup_intents WHERE created_at < $1`, cutoff)
	return tag.RowsAffected(), err
}

// Insert records a pending top-up and returns its creation time.
func (Store) Insert(ctx context.Context, tx pgx.Tx, t TopUp) (time.Time, error) {
	payment, err := marshalInstructions(t.Payment)
	if err != nil {
		return time.Time{}, err
	}
	var at time.Time
	err = tx.QueryRow(ctx, `-- name: InsertTopUp
INSERT INTO topups (id, user_id, amount, currency, method, reference, provider, provider_payment_id, payment, expires_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING created_at`,
		t.ID, t.UserID, t.Amount, t.Currency, t.Method, t.Reference, t.provider, t.paymentID, payment, t.ExpiresAt).Scan(&at)
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

// Pending returns up to n pending top-ups created before olderThan,
// oldest first.
func (Store) Pending(ctx context.Context, q postgres.Querier, olderThan time.Time, n int) ([]TopUp, error) {
	rows, err := q.Query(ctx, `-- name: PendingTopUps
`+selectTopUp+`
WHERE t.ledger_transaction_id IS NULL AND s.topup_id IS NULL AND t.created_at < $1
ORDER BY t.created_at
LIMIT $2`, olderThan, n)
	return postgres.Collect(rows, err, scanTopUp)
}

// LockForSettle locks the top-up row FOR UPDATE, which serialises
// everything that may end it, and then reads it.
//
// The lock is its own statement: under READ COMMITTED the next statement
// takes a fresh snapshot, so it sees a settlement that a concurrent
// callback committed while this one waited for the lock.
func (s Store) LockForSettle(ctx context.Context, tx pgx.Tx, id uuid.UUID) (TopUp, error) {
	var locked uuid.UUID
	if err := tx.QueryRow(ctx, `-- name: LockTopUpForSettle
SELECT id FROM topups WHERE id = $1 FOR UPDATE`, id).Scan(&locked); errors.Is(err, pgx.ErrNoRows) {
		return TopUp{}, ErrNotFound
	} else if err != nil {
		return TopUp{}, err
	}
	return s.Get(ctx, tx, id, nil)
}

// InsertSettlement records how top-up id ended and returns its time;
// ledgerTx is the credit of a succeeded one. The primary key makes a
// second settlement impossible.
func (Store) InsertSettlement(ctx context.Context, tx pgx.Tx, id uuid.UUID, st settlement, ledgerTx *uuid.UUID) (time.Time, error) {
	var at time.Time
	err := tx.QueryRow(ctx, `-- name: InsertTopUpSettlement
INSERT INTO topup_settlements (topup_id, status, ledger_transaction_id, reason, reason_code, paid_amount, paid_currency, source)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING settled_at`,
		id, st.status, ledgerTx, st.reason, st.reasonCode, st.paidAmount, st.paidCurrency, st.source).Scan(&at)
	return movement.Inserted(at, err, nil, "top-up settlement")
}

// LockForReversal returns the top-up id and the ledger transaction that
// credited it (nil when it credited nothing), share-locking the row (lock
// order: the business row first).
func (Store) LockForReversal(ctx context.Context, tx pgx.Tx, id uuid.UUID) (TopUp, *uuid.UUID, error) {
	var t TopUp
	var ledgerTx *uuid.UUID
	err := tx.QueryRow(ctx, `-- name: LockTopUpForReversal
SELECT t.id, t.user_id, t.amount, t.currency, t.method, t.reference, t.created_at,
  coalesce(t.ledger_transaction_id, s.ledger_transaction_id)
FROM topups t LEFT JOIN topup_settlements s ON s.topup_id = t.id
WHERE t.id = $1 FOR SHARE OF t`, id).Scan(&t.ID, &t.UserID, &t.Amount, &t.Currency, &t.Method, &t.Reference, &t.CreatedAt, &ledgerTx)
	if errors.Is(err, pgx.ErrNoRows) {
		return TopUp{}, nil, ErrNotFound
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
