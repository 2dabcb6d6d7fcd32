// Package topup credits wallets from payment methods: POST /v1/topups
// books funding account → wallet in the ledger, records the top-up and
// enqueues paygate.topup.succeeded, all in one transaction under the
// caller's Idempotency-Key. Admins reverse a top-up with a compensating
// transaction; top-up records are never updated or deleted.
package topup

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

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

// Errors of the top-up domain.
var (
	ErrNotFound         = apperr.New(apperr.KindNotFound, "NOT_FOUND", "The top-up does not exist.")
	ErrAmountOutOfRange = movement.ErrAmountOutOfRange
	ErrAlreadyReversed  = movement.ErrAlreadyReversed
)

// Statuses of a top-up. A top-up succeeds when it is booked; it is
// reversed when an admin booked its compensating transaction.
const (
	StatusSucceeded = "succeeded"
	StatusReversed  = "reversed"
)

// TopUp is a top-up as the API shows it.
type TopUp struct {
	ID         uuid.UUID  `json:"id"`
	UserID     uuid.UUID  `json:"user_id"`
	Amount     int64      `json:"amount"`
	Currency   string     `json:"currency"`
	Method     string     `json:"method"`
	Reference  string     `json:"reference"`
	Status     string     `json:"status"`
	CreatedAt  time.Time  `json:"created_at"`
	ReversedAt *time.Time `json:"reversed_at"`
}

// Service books and reads top-ups.
type Service struct {
	db      *postgres.DB
	ledger  *ledger.Store
	users   *users.Store
	cfg     config.Money
	topic   string
	metrics *metrics

	// funding caches the ids of funding accounts, filled by
	// PrepareFundingAccounts from committed rows only: an id cached from a
	// transaction that later rolled back would name no account.
	funding sync.Map
}

// NewService returns the service; m may be nil.
func NewService(db *postgres.DB, l *ledger.Store, u *users.Store, cfg config.Money, topic string, m *metrics) *Service {
	return &Service{db: db, ledger: l, users: u, cfg: cfg, topic: topic, metrics: m}
}

// Request is a validated top-up request.
type Request struct {
	Amount    int64
	Method    string
	Reference string
}

// Validate checks the amount against the configured limits and the method
// against the 21 methods.
func (s *Service) Validate(amount int64, method, reference string) (Request, error) {
	m, ok := CanonicalMethod(method)
	var fields []apperr.FieldError
	if !ok {
		fields = append(fields, apperr.FieldError{Field: "method", Message: "must be one of the 21 top-up methods"})
	}
	if amount <= 0 {
		fields = append(fields, apperr.FieldError{Field: "amount", Message: "must be a positive integer in minor units"})
	}
	if len(reference) > 100 {
		fields = append(fields, apperr.FieldError{Field: "reference", Message: "must be at most 100 characters"})
	}
	if len(fields) > 0 {
		return Request{}, apperr.Validation("The request has invalid fields.", fields...)
	}
	if amount < s.cfg.TopupMin || amount > s.cfg.TopupMax {
		return Request{}, ErrAmountOutOfRange.With(fmt.Sprintf("A top-up must be between %d and %d %s.", s.cfg.TopupMin, s.cfg.TopupMax, s.cfg.Currency))
	}
	return Request{Amount: amount, Method: m, Reference: reference}, nil
}

// PrepareFundingAccounts creates the funding account of every method, in
// its own committed transaction, and caches their ids. It runs at start.
func (s *Service) PrepareFundingAccounts(ctx context.Context) error {
	ids := map[string]uuid.UUID{}
	err := s.db.InTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
		for _, m := range Methods {
			a, err := s.ledger.EnsureSystemAccount(ctx, tx, ledger.FundingCode(m), s.cfg.Currency)
			if err != nil {
				return err
			}
			ids[m] = a.ID
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("funding accounts: %w", err)
	}
	for m, id := range ids {
		s.funding.Store(m, id)
	}
	return nil
}

func (s *Service) fundingAccount(ctx context.Context, tx pgx.Tx, method string) (uuid.UUID, error) {
	if id, ok := s.funding.Load(method); ok {
		return id.(uuid.UUID), nil
	}
	// Not prepared (a test building the service by hand): look it up or
	// create it in tx, without caching.
	a, err := s.ledger.EnsureSystemAccount(ctx, tx, ledger.FundingCode(method), s.cfg.Currency)
	if err != nil {
		return uuid.Nil, err
	}
	return a.ID, nil
}

// Create books the top-up in tx: funding account −amount, wallet +amount;
// then the record and the paygate.topup.succeeded event.
func (s *Service) Create(ctx context.Context, tx pgx.Tx, caller authn.Principal, req Request) (TopUp, error) {
	u, err := s.users.LockActive(ctx, tx, caller.UserID)
	if err != nil {
		return TopUp{}, err
	}
	wallet, err := s.ledger.WalletOf(ctx, tx, u.ID)
	if err != nil {
		return TopUp{}, err
	}
	funding, err := s.fundingAccount(ctx, tx, req.Method)
	if err != nil {
		return TopUp{}, err
	}
	id := uuid.New()
	posted, err := s.ledger.Post(ctx, tx, ledger.Transaction{
		Kind: ledger.KindTopUp, Reference: id.String(), Currency: s.cfg.Currency,
		Metadata: map[string]any{"method": req.Method},
		Postings: []ledger.Posting{{AccountID: funding, Amount: -req.Amount}, {AccountID: wallet.ID, Amount: req.Amount}},
	})
	if err != nil {
		return TopUp{}, err
	}
	t := TopUp{ID: id, UserID: u.ID, Amount: req.Amount, Currency: s.cfg.Currency, Method: req.Method,
		Reference: req.Reference, Status: StatusSucceeded}
	if err := tx.QueryRow(ctx, `-- name: InsertTopUp
INSERT INTO topups (id, user_id, amount, currency, method, reference, ledger_transaction_id)
VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING created_at`,
		t.ID, t.UserID, t.Amount, t.Currency, t.Method, t.Reference, posted.ID).Scan(&t.CreatedAt); err != nil {
		return TopUp{}, fmt.Errorf("insert top-up: %w", err)
	}
	_, err = outbox.Enqueue(ctx, tx, outbox.Event{
		Topic: s.topic, Key: u.ID.String(), Type: events.TypeTopUpSucceeded, Subject: "topups/" + id.String(),
		Data: events.TopUpSucceeded{TopUpID: id, UserID: u.ID, Email: u.Email, Firstname: u.Firstname, AccountNumber: u.AccountNumber,
			Amount: t.Amount, Currency: t.Currency, Method: t.Method, Reference: t.Reference,
			BalanceAfter: movement.BalanceAfter(posted, wallet.ID), CreatedAt: t.CreatedAt},
	})
	return t, err
}

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

// Get returns a top-up the caller may see: their own, or any for admins.
// Someone else's answers ErrNotFound.
func (s *Service) Get(ctx context.Context, caller authn.Principal, id uuid.UUID) (TopUp, error) {
	t, err := scanTopUp(s.db.Pool.QueryRow(ctx, `-- name: GetTopUp
`+selectTopUp+` WHERE t.id = $1`, id))
	if err != nil {
		return TopUp{}, err
	}
	if !caller.CanAccessUser(t.UserID) {
		return TopUp{}, ErrNotFound
	}
	return t, nil
}

// List returns the caller's top-ups newest first; admins see everyone's
// unless they filter by user.
func (s *Service) List(ctx context.Context, caller authn.Principal, forUser *uuid.UUID, limit int, cursor string) (pagination.Page[TopUp], error) {
	return movement.ListQuery(ctx, s.db.Pool, `-- name: ListTopUps
`+selectTopUp+`
WHERE ($1::uuid IS NULL OR t.user_id = $1)
  AND ($2::timestamptz IS NULL OR (t.created_at, t.id) < ($2, $3))
ORDER BY t.created_at DESC, t.id DESC
LIMIT $4`, movement.Owner(caller, forUser), limit, cursor, scanTopUp, func(t TopUp) pagination.Position {
		return pagination.Position{CreatedAt: t.CreatedAt, ID: t.ID}
	})
}

// Reverse books the compensating transaction of a top-up (admins only):
// the wallet gives the amount back to the funding account. A second
// reversal is ErrAlreadyReversed; a wallet that spent the money since
// makes it ledger.ErrInsufficientFunds.
func (s *Service) Reverse(ctx context.Context, tx pgx.Tx, caller authn.Principal, id uuid.UUID, reason string) (TopUp, error) {
	if !caller.IsAdmin() {
		return TopUp{}, apperr.ErrForbidden
	}
	var t TopUp
	var ledgerTx uuid.UUID
	err := tx.QueryRow(ctx, `-- name: LockTopUpForReversal
SELECT id, user_id, amount, currency, method, reference, created_at, ledger_transaction_id
FROM topups WHERE id = $1 FOR SHARE`, id).Scan(&t.ID, &t.UserID, &t.Amount, &t.Currency, &t.Method, &t.Reference, &t.CreatedAt, &ledgerTx)
	if errors.Is(err, pgx.ErrNoRows) {
		return TopUp{}, ErrNotFound
	}
	if err != nil {
		return TopUp{}, err
	}
	posted, at, err := movement.Reversal(ctx, tx, s.ledger, ledgerTx, "topup-reversal:"+id.String(), `-- name: InsertTopUpReversal
INSERT INTO topup_reversals (topup_id, reversed_by, reason, ledger_transaction_id) VALUES ($1, $2, $3, $4)
RETURNING created_at`, id, caller.UserID, reason)
	if err != nil {
		return TopUp{}, err
	}
	t.Status, t.ReversedAt = StatusReversed, &at
	wallet, err := s.ledger.WalletOf(ctx, tx, t.UserID)
	if err != nil {
		return TopUp{}, err
	}
	_, err = outbox.Enqueue(ctx, tx, outbox.Event{
		Topic: s.topic, Key: t.UserID.String(), Type: events.TypeTopUpReversed, Subject: "topups/" + id.String(),
		Data: events.TopUpReversed{TopUpID: id, UserID: t.UserID, Amount: t.Amount, Currency: t.Currency,
			BalanceAfter: movement.BalanceAfter(posted, wallet.ID), Reason: reason, ReversedAt: at},
	})
	return t, err
}
