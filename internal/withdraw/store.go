package withdraw

import (
	"context"
	"errors"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/paygate/paygate/internal/ledger"
	"github.com/paygate/paygate/internal/movement"
	"github.com/paygate/paygate/internal/platform/pagination"
	"github.com/paygate/paygate/internal/platform/postgres"
)

// Store holds the SQL of the withdrawals and withdrawal_settlements
// tables. Records are inserted, never updated or deleted: a settlement is
// a row of its own.
type Store struct{}

const selectWithdrawal = `SELECT w.id, w.user_id, w.amount, w.currency, w.bank_code, w.bank_account_number,
  w.bank_account_name, w.hold_id, w.created_at, s.status, s.reason, s.settled_at
FROM withdrawals w LEFT JOIN withdrawal_settlements s ON s.withdrawal_id = w.id`

func scanWithdrawal(row pgx.Row) (Withdrawal, error) {
	var w Withdrawal
	var status, reason *string
	err := row.Scan(&w.ID, &w.UserID, &w.Amount, &w.Currency, &w.BankCode, &w.fullAccount, &w.BankAccountName,
		&w.holdID, &w.CreatedAt, &status, &reason, &w.SettledAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return Withdrawal{}, ErrNotFound
	}
	w.BankAccountNumber = Mask(w.fullAccount)
	w.Status = StatusPending
	if status != nil {
		w.Status = *status
	}
	if reason != nil {
		w.FailureReason = *reason
	}
	return w, err
}

// Insert records a pending withdrawal with the full bank account number
// and its hold, and returns its creation time.
func (Store) Insert(ctx context.Context, tx pgx.Tx, w Withdrawal, account string, hold uuid.UUID) (time.Time, error) {
	var at time.Time
	err := tx.QueryRow(ctx, `-- name: InsertWithdrawal
INSERT INTO withdrawals (id, user_id, amount, currency, bank_code, bank_account_number, bank_account_name, hold_id)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING created_at`,
		w.ID, w.UserID, w.Amount, w.Currency, w.BankCode, account, w.BankAccountName, hold).Scan(&at)
	return movement.Inserted(at, err, nil, "withdrawal")
}

// Get returns the withdrawal id of owner (nil: of anyone); any other is
// ErrNotFound.
func (Store) Get(ctx context.Context, q postgres.Querier, id uuid.UUID, owner *uuid.UUID) (Withdrawal, error) {
	return scanWithdrawal(q.QueryRow(ctx, `-- name: GetWithdrawal
`+selectWithdrawal+` WHERE w.id = $1 AND ($2::uuid IS NULL OR w.user_id = $2)`, id, owner))
}

// List returns up to n withdrawals of owner (nil: everyone's) after the
// position, newest first.
func (Store) List(ctx context.Context, q postgres.Querier, owner *uuid.UUID, after *pagination.Position, n int) ([]Withdrawal, error) {
	at, aid := pagination.After(after)
	rows, err := q.Query(ctx, `-- name: ListWithdrawals
`+selectWithdrawal+`
WHERE ($1::uuid IS NULL OR w.user_id = $1)
  AND ($2::timestamptz IS NULL OR (w.created_at, w.id) < ($2, $3))
ORDER BY w.created_at DESC, w.id DESC
LIMIT $4`, owner, at, aid, n)
	return postgres.Collect(rows, err, scanWithdrawal)
}

// LockForSettle locks the withdrawal row FOR UPDATE, which serialises
// settles of one withdrawal, and then reads it.
//
// The lock is its own statement: under READ COMMITTED the next statement
// takes a fresh snapshot, so it sees a settlement that a concurrent settle
// committed while this one waited for the lock.
func (s Store) LockForSettle(ctx context.Context, tx pgx.Tx, id uuid.UUID) (Withdrawal, error) {
	var locked uuid.UUID
	if err := tx.QueryRow(ctx, `-- name: LockWithdrawalForSettle
SELECT id FROM withdrawals WHERE id = $1 FOR UPDATE`, id).Scan(&locked); errors.Is(err, pgx.ErrNoRows) {
		return Withdrawal{}, ErrNotFound
	} else if err != nil {
		return Withdrawal{}, err
	}
	return s.Get(ctx, tx, id, nil)
}

// settlementRow is a withdrawal_settlements row.
type settlementRow struct {
	status      string
	ledgerTx    *uuid.UUID
	reason      string
	reasonCode  string
	providerRef string
	source      string
}

// InsertSettlement records the outcome of withdrawal id and returns its
// time; a second one (the primary key) is ErrAlreadySettled.
func (Store) InsertSettlement(ctx context.Context, tx pgx.Tx, id uuid.UUID, r settlementRow) (time.Time, error) {
	var at time.Time
	err := tx.QueryRow(ctx, `-- name: InsertSettlement
INSERT INTO withdrawal_settlements (withdrawal_id, status, ledger_transaction_id, reason, reason_code, provider_reference, source)
VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING settled_at`,
		id, r.status, r.ledgerTx, r.reason, r.reasonCode, r.providerRef, r.source).Scan(&at)
	return movement.Inserted(at, err, ErrAlreadySettled, "settlement")
}

// ExpectedHolds returns the hold of every withdrawal still waiting for
// its payout; it implements ledger.HoldOwner, so ledger verification
// checks that holds match pending withdrawals without the ledger reading
// this domain's tables.
func (Store) ExpectedHolds(ctx context.Context, q postgres.Querier) ([]ledger.ExpectedHold, error) {
	rows, err := q.Query(ctx, `-- name: PendingWithdrawalHolds
SELECT w.id, w.amount, w.hold_id FROM withdrawals w
WHERE NOT EXISTS (SELECT 1 FROM withdrawal_settlements s WHERE s.withdrawal_id = w.id)`)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (ledger.ExpectedHold, error) {
		var id uuid.UUID
		var e ledger.ExpectedHold
		err := r.Scan(&id, &e.Amount, &e.HoldID)
		e.Owner = "withdrawal:" + id.String()
		return e, err
	})
}

// InsertPayout records the payout the provider accepted for withdrawal
// id; a second record of it (a redelivery, a racing processor) changes
// nothing.
func (Store) InsertPayout(ctx context.Context, tx pgx.Tx, id uuid.UUID, prov, payoutID string) error {
	_, err := tx.Exec(ctx, `-- name: InsertWithdrawalPayout
INSERT INTO withdrawal_payouts (withdrawal_id, provider, payout_id) VALUES ($1, $2, $3)
ON CONFLICT (withdrawal_id) DO NOTHING`, id, prov, payoutID)
	return err
}

// PendingPayout is a withdrawal waiting for its payout's outcome.
type PendingPayout struct {
	WithdrawalID uuid.UUID
	PayoutID     string // empty when no payout was recorded yet
	CreatedAt    time.Time
}

// PendingPayouts returns up to n withdrawals created before olderThan
// that are not settled, oldest first.
func (Store) PendingPayouts(ctx context.Context, q postgres.Querier, olderThan time.Time, n int) ([]PendingPayout, error) {
	rows, err := q.Query(ctx, `-- name: PendingPayouts
SELECT w.id, coalesce(p.payout_id, ''), w.created_at FROM withdrawals w
LEFT JOIN withdrawal_payouts p ON p.withdrawal_id = w.id
WHERE w.created_at < $1
  AND NOT EXISTS (SELECT 1 FROM withdrawal_settlements s WHERE s.withdrawal_id = w.id)
ORDER BY w.created_at
LIMIT $2`, olderThan, n)
	return postgres.Collect(rows, err, func(r pgx.Row) (PendingPayout, error) {
		var p PendingPayout
		return p, r.Scan(&p.WithdrawalID, &p.PayoutID, &p.CreatedAt)
	})
}
