package ledger

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/paygate/paygate/internal/platform/postgres"
)

func isForeignKeyViolation(err error, name string) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23503" && (name == "" || pe.ConstraintName == name)
}

const holdColumns = `id, account_id, amount, status, reference, created_at, settled_at, capture_transaction_id`

func scanHold(row pgx.Row, extra ...any) (Hold, error) {
	var h Hold
	var status string
	dest := append([]any{&h.ID, &h.AccountID, &h.Amount, &status, &h.Reference, &h.CreatedAt, &h.SettledAt, &h.CaptureTransactionID}, extra...)
	err := row.Scan(dest...)
	h.Status = HoldStatus(status)
	return h, err
}

// PlaceHold reserves amount (minor units, positive) of the account's
// available money: it locks the account, requires available (balance −
// held) ≥ amount unless the account may go negative, else
// ErrInsufficientFunds, and raises held by amount. The money stays in the
// account until CaptureHold moves it or ReleaseHold frees it.
func (s *Store) PlaceHold(ctx context.Context, tx pgx.Tx, accountID uuid.UUID, amount int64, reference string) (Hold, error) {
	if amount <= 0 {
		return Hold{}, ErrInvalidAmount.Wrap(fmt.Errorf("hold amount %d", amount))
	}
	accounts, err := lockAccounts(ctx, tx, []uuid.UUID{accountID})
	if err != nil {
		return Hold{}, err
	}
	a := accounts[accountID]
	nh, ok := add64(a.held, amount)
	if !ok {
		return Hold{}, ErrAmountOverflow.Wrap(fmt.Errorf("held %d of account %s plus %d overflows", a.held, a.id, amount))
	}
	if !a.allowNegative && a.balance < nh {
		return Hold{}, ErrInsufficientFunds.Wrap(fmt.Errorf("account %s: balance %d, held %d, hold %d", a.id, a.balance, a.held, amount))
	}
	id, err := uuid.NewV7()
	if err != nil {
		return Hold{}, fmt.Errorf("ledger: new hold id: %w", err)
	}
	b := &pgx.Batch{}
	b.Queue(`-- name: RaiseHeld
UPDATE ledger_accounts SET held = $2 WHERE id = $1`, accountID, nh)
	b.Queue(`-- name: InsertHold
INSERT INTO ledger_holds (id, account_id, amount, status, reference)
		VALUES ($1, $2, $3, 'active', $4)
		RETURNING `+holdColumns, id, accountID, amount, reference)
	br := tx.SendBatch(ctx, b)
	defer br.Close()
	if _, err := br.Exec(); err != nil {
		if postgres.IsCheckViolation(err, "ledger_accounts_available_non_negative") {
			return Hold{}, ErrInsufficientFunds.Wrap(err)
		}
		return Hold{}, fmt.Errorf("ledger: raise held: %w", err)
	}
	h, err := scanHold(br.QueryRow())
	if err != nil {
		return Hold{}, fmt.Errorf("ledger: insert hold: %w", err)
	}
	if err := br.Close(); err != nil {
		return Hold{}, fmt.Errorf("ledger: place hold: %w", err)
	}
	return h, nil
}

// lockActiveHold locks the hold row (rule 2 of the lock order: before any
// account) and returns it with its account's currency. A settled hold is
// ErrHoldNotActive: after waiting for a concurrent capture or release, the
// locking read sees its committed outcome, so a hold settles exactly once.
func lockActiveHold(ctx context.Context, tx pgx.Tx, holdID uuid.UUID) (Hold, string, error) {
	var currency string
	h, err := scanHold(tx.QueryRow(ctx, `-- name: LockHold
		SELECT h.id, h.account_id, h.amount, h.status, h.reference, h.created_at, h.settled_at, h.capture_transaction_id, a.currency
		FROM ledger_holds h JOIN ledger_accounts a ON a.id = h.account_id
		WHERE h.id = $1
		FOR UPDATE OF h`, holdID), &currency)
	if errors.Is(err, pgx.ErrNoRows) {
		return Hold{}, "", ErrHoldNotFound.Wrap(fmt.Errorf("hold %s", holdID))
	}
	if err != nil {
		return Hold{}, "", fmt.Errorf("ledger: lock hold: %w", err)
	}
	if h.Status != HoldActive {
		return Hold{}, "", ErrHoldNotActive.Wrap(fmt.Errorf("hold %s is %s", h.ID, h.Status))
	}
	return h, currency, nil
}

// CaptureHold moves a hold's money: it locks the hold, then (in id order)
// its account and toAccountID, lowers held by the hold's amount and posts a
// transaction of kind and reference debiting the held account and
// crediting toAccountID (typically a clearing account) by the amount, and
// marks the hold captured. A hold is captured at most once; a settled hold
// is ErrHoldNotActive. The transaction's metadata names the hold.
func (s *Store) CaptureHold(ctx context.Context, tx pgx.Tx, holdID, toAccountID uuid.UUID, kind, reference string) (PostedTransaction, error) {
	h, currency, err := lockActiveHold(ctx, tx, holdID)
	if err != nil {
		return PostedTransaction{}, err
	}
	pt, err := s.post(ctx, tx, Transaction{
		Kind: kind, Reference: reference, Currency: currency,
		Metadata: map[string]any{"hold_id": h.ID.String()},
		Postings: []Posting{{AccountID: h.AccountID, Amount: -h.Amount}, {AccountID: toAccountID, Amount: h.Amount}},
	}, map[uuid.UUID]int64{h.AccountID: h.Amount})
	if err != nil {
		return PostedTransaction{}, err
	}
	if _, err := tx.Exec(ctx, `-- name: MarkHoldCaptured
UPDATE ledger_holds SET status = 'captured', settled_at = now(), capture_transaction_id = $2 WHERE id = $1`,
		h.ID, pt.ID); err != nil {
		return PostedTransaction{}, fmt.Errorf("ledger: mark hold captured: %w", err)
	}
	return pt, nil
}

// ReleaseHold frees a hold's money: it locks the hold, lowers its account's
// held by the amount (restoring available) and marks the hold released. A
// settled hold is ErrHoldNotActive.
func (s *Store) ReleaseHold(ctx context.Context, tx pgx.Tx, holdID uuid.UUID) (Hold, error) {
	h, _, err := lockActiveHold(ctx, tx, holdID)
	if err != nil {
		return Hold{}, err
	}
	b := &pgx.Batch{}
	// The UPDATE locks the account row after the hold row: lock order kept.
	b.Queue(`-- name: LowerHeld
UPDATE ledger_accounts SET held = held - $2 WHERE id = $1`, h.AccountID, h.Amount)
	b.Queue(`-- name: ReleaseHold
UPDATE ledger_holds SET status = 'released', settled_at = now() WHERE id = $1 RETURNING `+holdColumns, h.ID)
	br := tx.SendBatch(ctx, b)
	defer br.Close()
	if _, err := br.Exec(); err != nil {
		return Hold{}, fmt.Errorf("ledger: lower held: %w", err)
	}
	released, err := scanHold(br.QueryRow())
	if err != nil {
		return Hold{}, fmt.Errorf("ledger: mark hold released: %w", err)
	}
	if err := br.Close(); err != nil {
		return Hold{}, fmt.Errorf("ledger: release hold: %w", err)
	}
	return released, nil
}
