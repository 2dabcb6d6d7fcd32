package transfer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/paygate/paygate/internal/movement"
	"github.com/paygate/paygate/internal/platform/pagination"
	"github.com/paygate/paygate/internal/platform/postgres"
)

// Store holds the SQL of the transfers and transfer_reversals tables.
// Records are inserted, never updated or deleted.
type Store struct{}

const selectTransfer = `SELECT t.id, t.from_user_id, t.to_user_id, t.from_account_number, t.to_account_number,
  t.amount, t.currency, t.note, t.created_at, r.created_at, t.ledger_transaction_id
FROM transfers t LEFT JOIN transfer_reversals r ON r.transfer_id = t.id`

func scanTransfer(row pgx.Row) (Transfer, error) {
	var t Transfer
	err := row.Scan(&t.ID, &t.fromUserID, &t.toUserID, &t.FromAccountNumber, &t.ToAccountNumber,
		&t.Amount, &t.Currency, &t.Note, &t.CreatedAt, &t.ReversedAt, &t.ledgerTx)
	if errors.Is(err, pgx.ErrNoRows) {
		return Transfer{}, ErrNotFound
	}
	t.Status = StatusSucceeded
	if t.ReversedAt != nil {
		t.Status = StatusReversed
	}
	return t, err
}

// Insert records a booked transfer and returns its creation time.
func (Store) Insert(ctx context.Context, tx pgx.Tx, t Transfer, ledgerTx uuid.UUID) (time.Time, error) {
	var at time.Time
	err := tx.QueryRow(ctx, `-- name: InsertTransfer
INSERT INTO transfers (id, from_user_id, to_user_id, from_account_number, to_account_number, amount, currency, note, ledger_transaction_id)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING created_at`,
		t.ID, t.fromUserID, t.toUserID, t.FromAccountNumber, t.ToAccountNumber, t.Amount, t.Currency, t.Note, ledgerTx).Scan(&at)
	return movement.Inserted(at, err, nil, "transfer")
}

// QueueInsertMany adds to b the statement that records booked transfers,
// each with its ledger transaction, created at at (the transaction's
// now(), as the ledger's rows are); nothing when ts is empty. b must be
// sent in the transaction that books them.
func (Store) QueueInsertMany(b *pgx.Batch, ts []Transfer, ledgerTxs []uuid.UUID, at time.Time) {
	if len(ts) == 0 {
		return
	}
	n := len(ts)
	ids, froms, tos := make([]uuid.UUID, n), make([]uuid.UUID, n), make([]uuid.UUID, n)
	fromNums, toNums, curs, notes := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	amounts := make([]int64, n)
	for i, t := range ts {
		ids[i], froms[i], tos[i] = t.ID, t.fromUserID, t.toUserID
		fromNums[i], toNums[i], curs[i], notes[i], amounts[i] = t.FromAccountNumber, t.ToAccountNumber, t.Currency, t.Note, t.Amount
	}
	b.Queue(`-- name: InsertTransfers
INSERT INTO transfers (id, from_user_id, to_user_id, from_account_number, to_account_number, amount, currency, note, ledger_transaction_id, created_at)
SELECT u.id, u.from_user, u.to_user, u.from_number, u.to_number, u.amount, u.currency, u.note, u.ledger_tx, $10
FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::bigint[], $7::text[], $8::text[], $9::uuid[])
  WITH ORDINALITY AS u(id, from_user, to_user, from_number, to_number, amount, currency, note, ledger_tx, n)
ORDER BY u.n`, ids, froms, tos, fromNums, toNums, amounts, curs, notes, ledgerTxs, at).Exec(func(ct pgconn.CommandTag) error {
		if ct.RowsAffected() != int64(n) {
			return fmt.Errorf("transfer: inserted %d of %d transfers", ct.RowsAffected(), n)
		}
		return nil
	})
}

// Get returns the transfer id that party (nil: anyone) sent or received;
// any other is ErrNotFound.
func (Store) Get(ctx context.Context, q postgres.Querier, id uuid.UUID, party *uuid.UUID) (Transfer, error) {
	return scanTransfer(q.QueryRow(ctx, `-- name: GetTransfer
`+selectTransfer+` WHERE t.id = $1 AND ($2::uuid IS NULL OR t.from_user_id = $2 OR t.to_user_id = $2)`, id, party))
}

// List returns up to n transfers that party (nil: anyone) sent or
// received, after the position, newest first.
func (Store) List(ctx context.Context, q postgres.Querier, party *uuid.UUID, after *pagination.Position, n int) ([]Transfer, error) {
	at, aid := pagination.After(after)
	rows, err := q.Query(ctx, `-- name: ListTransfers
`+selectTransfer+`
WHERE ($1::uuid IS NULL OR t.from_user_id = $1 OR t.to_user_id = $1)
  AND ($2::timestamptz IS NULL OR (t.created_at, t.id) < ($2, $3))
ORDER BY t.created_at DESC, t.id DESC
LIMIT $4`, party, at, aid, n)
	return postgres.Collect(rows, err, scanTransfer)
}

// InsertReversal records the reversal of transfer id and returns its
// time; a second one (the primary key) is movement.ErrAlreadyReversed.
func (Store) InsertReversal(ctx context.Context, tx pgx.Tx, id, by uuid.UUID, reason string, ledgerTx uuid.UUID) (time.Time, error) {
	var at time.Time
	err := tx.QueryRow(ctx, `-- name: InsertTransferReversal
INSERT INTO transfer_reversals (transfer_id, reversed_by, reason, ledger_transaction_id) VALUES ($1, $2, $3, $4)
RETURNING created_at`, id, by, reason, ledgerTx).Scan(&at)
	return movement.Inserted(at, err, movement.ErrAlreadyReversed, "transfer reversal")
}
