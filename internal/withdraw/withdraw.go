// Package withdraw pays money out of wallets. POST /v1/withdrawals places
// a ledger hold (available money drops at once), records the withdrawal as
// pending and enqueues paygate.withdrawal.requested, in one transaction
// under the caller's Idempotency-Key. Settle, called by the payout
// processor, turns it succeeded (the hold is captured into the clearing
// account) or failed (the hold is released), exactly once.
package withdraw

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/paygate/paygate/internal/events"
	"github.com/paygate/paygate/internal/ledger"
	"github.com/paygate/paygate/internal/movement"
	"github.com/paygate/paygate/internal/platform/apperr"
	"github.com/paygate/paygate/internal/platform/authn"
	"github.com/paygate/paygate/internal/platform/config"
	"github.com/paygate/paygate/internal/platform/outbox"
	"github.com/paygate/paygate/internal/platform/pagination"
	"github.com/paygate/paygate/internal/platform/postgres"
	"github.com/paygate/paygate/internal/users"
)

// Errors of the withdrawal domain.
var (
	ErrNotFound       = apperr.New(apperr.KindNotFound, "NOT_FOUND", "The withdrawal does not exist.")
	ErrAlreadySettled = apperr.New(apperr.KindConflict, "ALREADY_SETTLED", "The withdrawal was already settled.")
)

// Statuses of a withdrawal.
const (
	StatusPending   = "pending"
	StatusSucceeded = "succeeded"
	StatusFailed    = "failed"
)

// Withdrawal is a withdrawal as the API shows it. The bank account number
// is shown masked: only its last four digits.
type Withdrawal struct {
	ID                uuid.UUID  `json:"id"`
	UserID            uuid.UUID  `json:"user_id"`
	Amount            int64      `json:"amount"`
	Currency          string     `json:"currency"`
	Status            string     `json:"status"`
	BankCode          string     `json:"bank_code"`
	BankAccountNumber string     `json:"bank_account_number"`
	BankAccountName   string     `json:"bank_account_name"`
	FailureReason     string     `json:"failure_reason,omitempty"`
	CreatedAt         time.Time  `json:"created_at"`
	SettledAt         *time.Time `json:"settled_at"`

	holdID      uuid.UUID
	fullAccount string
}

// Mask returns an account number with all but its last four digits hidden.
func Mask(n string) string {
	if len(n) <= 4 {
		return n
	}
	return strings.Repeat("*", len(n)-4) + n[len(n)-4:]
}

// Service books, settles and reads withdrawals.
type Service struct {
	db      *postgres.DB
	ledger  *ledger.Store
	users   *users.Store
	cfg     config.Money
	topic   string
	metrics *metrics
}

// NewService returns the service; m may be nil.
func NewService(db *postgres.DB, l *ledger.Store, u *users.Store, cfg config.Money, topic string, m *metrics) *Service {
	return &Service{db: db, ledger: l, users: u, cfg: cfg, topic: topic, metrics: m}
}

// Request is a validated withdrawal request.
type Request struct {
	Amount            int64
	BankCode          string
	BankAccountNumber string
	BankAccountName   string
}

var (
	bankCodePattern    = regexp.MustCompile(`^[A-Z0-9]{2,11}$`)
	bankAccountPattern = regexp.MustCompile(`^[0-9]{5,20}$`)
)

// Validate checks the request and the configured limits.
func (s *Service) Validate(amount int64, bankCode, account, name string) (Request, error) {
	bankCode = strings.ToUpper(strings.TrimSpace(bankCode))
	account = strings.TrimSpace(account)
	name = strings.TrimSpace(name)
	var fields []apperr.FieldError
	if amount <= 0 {
		fields = append(fields, apperr.FieldError{Field: "amount", Message: "must be a positive integer in minor units"})
	}
	if !bankCodePattern.MatchString(bankCode) {
		fields = append(fields, apperr.FieldError{Field: "bank_code", Message: "must be 2 to 11 letters or digits"})
	}
	if !bankAccountPattern.MatchString(account) {
		fields = append(fields, apperr.FieldError{Field: "bank_account_number", Message: "must be 5 to 20 digits"})
	}
	if n := utf8.RuneCountInString(name); n < 1 || n > 100 {
		fields = append(fields, apperr.FieldError{Field: "bank_account_name", Message: "must be 1 to 100 characters"})
	}
	if len(fields) > 0 {
		return Request{}, apperr.Validation("The request has invalid fields.", fields...)
	}
	if amount < s.cfg.WithdrawMin || amount > s.cfg.WithdrawMax {
		return Request{}, movement.ErrAmountOutOfRange.With(fmt.Sprintf("A withdrawal must be between %d and %d %s.", s.cfg.WithdrawMin, s.cfg.WithdrawMax, s.cfg.Currency))
	}
	return Request{Amount: amount, BankCode: bankCode, BankAccountNumber: account, BankAccountName: name}, nil
}

// Create places the hold and records the pending withdrawal in tx.
func (s *Service) Create(ctx context.Context, tx pgx.Tx, caller authn.Principal, req Request) (Withdrawal, error) {
	u, err := s.users.LockActive(ctx, tx, caller.UserID)
	if err != nil {
		return Withdrawal{}, err
	}
	wallet, err := s.ledger.WalletOf(ctx, tx, u.ID)
	if err != nil {
		return Withdrawal{}, err
	}
	id := uuid.New()
	hold, err := s.ledger.PlaceHold(ctx, tx, wallet.ID, req.Amount, "withdrawal:"+id.String())
	if err != nil {
		return Withdrawal{}, err
	}
	w := Withdrawal{ID: id, UserID: u.ID, Amount: req.Amount, Currency: s.cfg.Currency, Status: StatusPending,
		BankCode: req.BankCode, BankAccountNumber: Mask(req.BankAccountNumber), BankAccountName: req.BankAccountName}
	if err := tx.QueryRow(ctx, `-- name: InsertWithdrawal
INSERT INTO withdrawals (id, user_id, amount, currency, bank_code, bank_account_number, bank_account_name, hold_id)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING created_at`,
		w.ID, w.UserID, w.Amount, w.Currency, w.BankCode, req.BankAccountNumber, w.BankAccountName, hold.ID).Scan(&w.CreatedAt); err != nil {
		return Withdrawal{}, fmt.Errorf("insert withdrawal: %w", err)
	}
	bal, err := s.ledger.Balance(ctx, tx, wallet.ID)
	if err != nil {
		return Withdrawal{}, err
	}
	_, err = outbox.Enqueue(ctx, tx, outbox.Event{
		Topic: s.topic, Key: u.ID.String(), Type: events.TypeWithdrawalRequested, Subject: "withdrawals/" + id.String(),
		Data: s.event(w, u, bal.Available, ""),
	})
	return w, err
}

func (s *Service) event(w Withdrawal, u users.User, available int64, reason string) events.Withdrawal {
	return events.Withdrawal{WithdrawalID: w.ID, UserID: u.ID, Email: u.Email, Firstname: u.Firstname, Amount: w.Amount,
		Currency: w.Currency, Status: w.Status, BankCode: w.BankCode, BankAccountLast4: last4(w.BankAccountNumber),
		BankAccountName: w.BankAccountName, AvailableAfter: available, FailureReason: reason, CreatedAt: w.CreatedAt,
		SettledAt: w.SettledAt}
}

func last4(masked string) string {
	if len(masked) <= 4 {
		return masked
	}
	return masked[len(masked)-4:]
}

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

// Get returns a withdrawal of the caller (any for admins); another's
// answers ErrNotFound.
func (s *Service) Get(ctx context.Context, caller authn.Principal, id uuid.UUID) (Withdrawal, error) {
	w, err := scanWithdrawal(s.db.Pool.QueryRow(ctx, `-- name: GetWithdrawal
`+selectWithdrawal+` WHERE w.id = $1`, id))
	if err != nil {
		return Withdrawal{}, err
	}
	if !caller.CanAccessUser(w.UserID) {
		return Withdrawal{}, ErrNotFound
	}
	return w, nil
}

// List returns the caller's withdrawals newest first; admins see all, or
// one user's with forUser.
func (s *Service) List(ctx context.Context, caller authn.Principal, forUser *uuid.UUID, limit int, cursor string) (pagination.Page[Withdrawal], error) {
	return movement.ListQuery(ctx, s.db.Pool, `-- name: ListWithdrawals
`+selectWithdrawal+`
WHERE ($1::uuid IS NULL OR w.user_id = $1)
  AND ($2::timestamptz IS NULL OR (w.created_at, w.id) < ($2, $3))
ORDER BY w.created_at DESC, w.id DESC
LIMIT $4`, movement.Owner(caller, forUser), limit, cursor, scanWithdrawal, func(w Withdrawal) pagination.Position {
		return pagination.Position{CreatedAt: w.CreatedAt, ID: w.ID}
	})
}

// Outcome is the payout provider's answer for a withdrawal.
type Outcome struct {
	Succeeded         bool
	Reason            string // why it failed, shown to the user
	ProviderReference string
}

// Settle records the outcome of a withdrawal exactly once, in one
// transaction: the capture (succeeded: wallet → clearing account) or the
// release (failed) of the hold, the settlement row and the
// paygate.withdrawal.succeeded or .failed event. A repeated or concurrent
// settle fails with ErrAlreadySettled and changes nothing.
//
// Lock order: the withdrawal row first (FOR UPDATE serialises settles of
// one withdrawal), then the ledger's hold and accounts.
func (s *Service) Settle(ctx context.Context, id uuid.UUID, out Outcome) (Withdrawal, error) {
	var w Withdrawal
	err := s.db.InTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
		// The lock is its own statement: under READ COMMITTED the next
		// statement takes a fresh snapshot, so it sees a settlement that a
		// concurrent settle committed while this one waited for the lock.
		var locked uuid.UUID
		if err := tx.QueryRow(ctx, `-- name: LockWithdrawalForSettle
SELECT id FROM withdrawals WHERE id = $1 FOR UPDATE`, id).Scan(&locked); errors.Is(err, pgx.ErrNoRows) {
			return ErrNotFound
		} else if err != nil {
			return err
		}
		var err error
		w, err = scanWithdrawal(tx.QueryRow(ctx, selectWithdrawal+` WHERE w.id = $1`, id))
		if err != nil {
			return err
		}
		if w.Status != StatusPending {
			return ErrAlreadySettled
		}
		var ledgerTx *uuid.UUID
		reason := ""
		if out.Succeeded {
			clearing, err := s.ledger.EnsureSystemAccount(ctx, tx, ledger.CodeClearingWithdrawals, w.Currency)
			if err != nil {
				return err
			}
			posted, err := s.ledger.CaptureHold(ctx, tx, w.holdID, clearing.ID, ledger.KindWithdrawal, "withdrawal:"+id.String())
			if err != nil {
				return err
			}
			ledgerTx = &posted.ID
			w.Status = StatusSucceeded
		} else {
			if _, err := s.ledger.ReleaseHold(ctx, tx, w.holdID); err != nil {
				return err
			}
			reason = out.Reason
			if reason == "" {
				reason = "The bank refused the payout."
			}
			w.Status, w.FailureReason = StatusFailed, reason
		}
		var at time.Time
		if err := tx.QueryRow(ctx, `-- name: InsertSettlement
INSERT INTO withdrawal_settlements (withdrawal_id, status, ledger_transaction_id, reason, provider_reference)
VALUES ($1, $2, $3, $4, $5) RETURNING settled_at`, id, w.Status, ledgerTx, reason, out.ProviderReference).Scan(&at); err != nil {
			if postgres.IsUniqueViolation(err, "") {
				return ErrAlreadySettled
			}
			return fmt.Errorf("insert settlement: %w", err)
		}
		w.SettledAt = &at
		u, err := s.users.Get(ctx, tx, w.UserID)
		if err != nil {
			return err
		}
		wallet, err := s.ledger.WalletOf(ctx, tx, w.UserID)
		if err != nil {
			return err
		}
		bal, err := s.ledger.Balance(ctx, tx, wallet.ID)
		if err != nil {
			return err
		}
		typ := events.TypeWithdrawalFailed
		if out.Succeeded {
			typ = events.TypeWithdrawalSucceeded
		}
		_, err = outbox.Enqueue(ctx, tx, outbox.Event{
			Topic: s.topic, Key: w.UserID.String(), Type: typ, Subject: "withdrawals/" + id.String(),
			Data: s.event(w, u, bal.Available, reason),
		})
		return err
	})
	if err != nil {
		return Withdrawal{}, err
	}
	s.metrics.settled(ctx, w.Status, w.Amount)
	return w, nil
}

// ExpectedHolds returns the hold of every withdrawal still waiting for
// its payout; it implements ledger.HoldOwner, so ledger verification
// checks that holds match pending withdrawals.
func (s *Service) ExpectedHolds(ctx context.Context, q postgres.Querier) ([]ledger.ExpectedHold, error) {
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

// PayoutDetails is what a payout provider needs to pay a withdrawal out,
// including the full bank account number, which events never carry.
type PayoutDetails struct {
	WithdrawalID      uuid.UUID
	Amount            int64
	Currency          string
	BankCode          string
	BankAccountNumber string
	BankAccountName   string
	Status            string
}

// Details returns the payout details of a withdrawal.
func (s *Service) Details(ctx context.Context, id uuid.UUID) (PayoutDetails, error) {
	w, err := scanWithdrawal(s.db.Pool.QueryRow(ctx, selectWithdrawal+` WHERE w.id = $1`, id))
	if err != nil {
		return PayoutDetails{}, err
	}
	return PayoutDetails{WithdrawalID: w.ID, Amount: w.Amount, Currency: w.Currency, BankCode: w.BankCode,
		BankAccountNumber: w.fullAccount, BankAccountName: w.BankAccountName, Status: w.Status}, nil
}
