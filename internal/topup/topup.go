// Package topup credits wallets from payment methods: POST /v1/topups
// books funding account → wallet in the ledger, records the top-up and
// enqueues paygate.topup.succeeded, all in one transaction under the
// caller's Idempotency-Key. Admins reverse a top-up with a compensating
// transaction; top-up records are never updated or deleted.
package topup

import (
	"context"
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
	"github.com/paygate/paygate/internal/platform/idempotency"
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

// Ledger is what top-ups need of the ledger.
type Ledger interface {
	movement.LedgerReverser
	EnsureSystemAccount(ctx context.Context, tx pgx.Tx, code, currency string) (ledger.Account, error)
	WalletOf(ctx context.Context, q postgres.Querier, userID uuid.UUID) (ledger.Account, error)
	Post(ctx context.Context, tx pgx.Tx, t ledger.Transaction) (ledger.PostedTransaction, error)
}

// Users is what top-ups need of the users domain: the payer, share-locked
// against a concurrent deactivation.
type Users interface {
	LockActive(ctx context.Context, tx pgx.Tx, id uuid.UUID) (users.User, error)
}

// Service books and reads top-ups.
type Service struct {
	db      *postgres.DB
	keys    *idempotency.Store
	ledger  Ledger
	users   Users
	store   Store
	cfg     config.Money
	limit   movement.Limit
	topic   string
	metrics *metrics
	// funding caches the ids of funding accounts, filled by
	// PrepareFundingAccounts from committed rows only: an id cached from a
	// transaction that later rolled back would name no account.
	funding sync.Map
}

// NewService returns the service; m may be nil.
func NewService(db *postgres.DB, keys *idempotency.Store, l Ledger, u Users, cfg config.Money, topic string, m *metrics) *Service {
	return &Service{db: db, keys: keys, ledger: l, users: u, cfg: cfg, topic: topic, metrics: m,
		limit: movement.Limit{Noun: "top-up", Min: cfg.TopupMin, Max: cfg.TopupMax, Currency: cfg.Currency}}
}

// CreateRequest is the body of POST /v1/topups.
type CreateRequest struct {
	Amount    int64  `json:"amount"`
	Method    string `json:"method"`
	Reference string `json:"reference"`
}

// Request is a validated top-up request.
type Request struct {
	Amount    int64
	Method    string
	Reference string
}

// Validate checks the amount against the configured limits and the method
// against the 21 methods.
func (s *Service) Validate(in CreateRequest) (Request, error) {
	m, ok := CanonicalMethod(in.Method)
	var method, reference *apperr.FieldError
	if !ok {
		method = &apperr.FieldError{Field: "method", Message: "must be one of the 21 top-up methods"}
	}
	if len(in.Reference) > 100 {
		reference = &apperr.FieldError{Field: "reference", Message: "must be at most 100 characters"}
	}
	if err := movement.Invalid(method, movement.AmountField(in.Amount), reference); err != nil {
		return Request{}, err
	}
	if err := s.limit.Check(in.Amount); err != nil {
		return Request{}, err
	}
	return Request{Amount: in.Amount, Method: m, Reference: in.Reference}, nil
}

// Create validates in and books the top-up under the claim, once.
func (s *Service) Create(ctx context.Context, c idempotency.Claim, caller authn.Principal, in CreateRequest) (idempotency.Response, error) {
	return movement.Create(ctx, s.keys, c,
		func() (Request, error) { return s.Validate(in) },
		func(ctx context.Context, tx pgx.Tx, req Request) (TopUp, error) { return s.book(ctx, tx, caller, req) },
		func(req *Request, result string) {
			method, ok := CanonicalMethod(in.Method)
			if !ok {
				method = "unknown" // keeps the label bounded
			}
			var amount int64
			if req != nil && result == "success" {
				amount = req.Amount
			}
			s.metrics.record(ctx, method, result, amount)
		})
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

// book books the top-up in tx: funding account −amount, wallet +amount;
// then the record and the paygate.topup.succeeded event.
func (s *Service) book(ctx context.Context, tx pgx.Tx, caller authn.Principal, req Request) (TopUp, error) {
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
	if t.CreatedAt, err = s.store.Insert(ctx, tx, t, posted.ID); err != nil {
		return TopUp{}, err
	}
	_, err = outbox.Enqueue(ctx, tx, outbox.Event{
		Topic: s.topic, Key: u.ID.String(), Type: events.TypeTopUpSucceeded, Subject: "topups/" + id.String(),
		Data: events.TopUpSucceeded{TopUpID: id, UserID: u.ID, Email: u.Email, Firstname: u.Firstname, AccountNumber: u.AccountNumber,
			Amount: t.Amount, Currency: t.Currency, Method: t.Method, Reference: t.Reference,
			BalanceAfter: movement.BalanceAfter(posted, wallet.ID), CreatedAt: t.CreatedAt},
	})
	return t, err
}

// Get returns a top-up the caller may see: their own, or any for admins.
// Someone else's answers ErrNotFound.
func (s *Service) Get(ctx context.Context, caller authn.Principal, id uuid.UUID) (TopUp, error) {
	return s.store.Get(ctx, s.db.Pool, id, movement.Visible(caller))
}

// List returns the caller's top-ups newest first; admins see everyone's
// unless they filter by user.
func (s *Service) List(ctx context.Context, caller authn.Principal, forUser *uuid.UUID, limit int, cursor string) (pagination.Page[TopUp], error) {
	owner := movement.Owner(caller, forUser)
	return pagination.List(cursor, limit, func(after *pagination.Position, n int) ([]TopUp, error) {
		return s.store.List(ctx, s.db.Pool, owner, after, n)
	}, TopUp.position)
}

func (t TopUp) position() pagination.Position {
	return pagination.Position{CreatedAt: t.CreatedAt, ID: t.ID}
}

// Reverse books the compensating transaction of a top-up under the claim
// (the caller is an administrator; the route checked): the wallet gives
// the amount back to the funding account. A second reversal is
// ErrAlreadyReversed; a wallet that spent the money since makes it
// ledger.ErrInsufficientFunds.
func (s *Service) Reverse(ctx context.Context, c idempotency.Claim, caller authn.Principal, id uuid.UUID, reason string) (idempotency.Response, error) {
	return s.keys.Run(ctx, c, func(ctx context.Context, tx pgx.Tx) (any, error) {
		return s.reverse(ctx, tx, caller, id, reason)
	})
}

func (s *Service) reverse(ctx context.Context, tx pgx.Tx, caller authn.Principal, id uuid.UUID, reason string) (TopUp, error) {
	t, ledgerTx, err := s.store.LockForReversal(ctx, tx, id)
	if err != nil {
		return TopUp{}, err
	}
	posted, err := movement.Reverse(ctx, tx, s.ledger, ledgerTx, "topup-reversal:"+id.String())
	if err != nil {
		return TopUp{}, err
	}
	at, err := s.store.InsertReversal(ctx, tx, id, caller.UserID, reason, posted.ID)
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
