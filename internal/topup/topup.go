// Package topup takes money into wallets through the payment provider.
// POST /v1/topups (under an Idempotency-Key) asks the provider for a
// payment and records the top-up as pending with the provider's payment
// instructions, enqueueing paygate.topup.pending; nothing is credited
// yet. The wallet is credited when the provider confirms the payment (a
// verified callback, or the poller's question): once, only for the exact
// amount and currency, in one transaction with the settlement row and
// paygate.topup.succeeded. A top-up otherwise ends failed or expired.
// Admins reverse a succeeded top-up with a compensating transaction;
// top-up records are never updated or deleted.
package topup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
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
	"github.com/paygate/paygate/internal/provider"
	"github.com/paygate/paygate/internal/users"
)

// Errors of the top-up domain.
var (
	ErrNotFound         = apperr.New(apperr.KindNotFound, "NOT_FOUND", "The top-up does not exist.")
	ErrAmountOutOfRange = movement.ErrAmountOutOfRange
	ErrAlreadyReversed  = movement.ErrAlreadyReversed
	// ErrNotReversible is a reversal of a top-up that credited nothing.
	ErrNotReversible = apperr.New(apperr.KindBusinessRule, "TOPUP_NOT_SUCCEEDED", "Only a succeeded top-up can be reversed.")
	// ErrProviderUnavailable means the provider did not answer the create:
	// nothing is stored under the Idempotency-Key, and a retry with the
	// same key sends the provider the same create under the same
	// idempotency key, so the customer is never asked to pay twice.
	ErrProviderUnavailable = apperr.New(apperr.KindUnavailable, "PROVIDER_UNAVAILABLE", "The payment provider did not answer; retry with the same Idempotency-Key.")
	// ErrProviderRejected means the provider refused to collect the
	// payment (e.g. the channel is disabled).
	ErrProviderRejected = apperr.New(apperr.KindBusinessRule, "PROVIDER_REJECTED", "The payment provider refused the payment for this method.")
	// ErrUnknownPayment is a provider's payment whose reference names no
	// top-up of paygate's.
	ErrUnknownPayment = apperr.New(apperr.KindNotFound, "UNKNOWN_PAYMENT", "No top-up has this payment's reference.")
	// ErrPaymentInFlight is a payment whose top-up paygate asked for but
	// has not recorded yet: try again shortly.
	ErrPaymentInFlight = apperr.New(apperr.KindUnavailable, "PAYMENT_IN_FLIGHT", "The top-up of this payment is still being recorded.")
)

// Statuses of a top-up. A top-up is pending until the provider settles
// it: succeeded (the wallet is credited), failed or expired. Reversed is
// a succeeded top-up an admin compensated.
const (
	StatusPending   = "pending"
	StatusSucceeded = "succeeded"
	StatusFailed    = "failed"
	StatusExpired   = "expired"
	StatusReversed  = "reversed"
)

// Reason codes of a top-up that ended without credit.
const (
	ReasonAmountMismatch = "AMOUNT_MISMATCH"
	ReasonExpired        = "EXPIRED"
)

// Sources of a settlement: what told paygate.
const (
	SourceCallback = "callback"
	SourcePoll     = "poll"
	SourceExpiry   = "expiry"
)

// TopUp is a top-up as the API shows it.
type TopUp struct {
	ID        uuid.UUID `json:"id"`
	UserID    uuid.UUID `json:"user_id"`
	Amount    int64     `json:"amount"`
	Currency  string    `json:"currency"`
	Method    string    `json:"method"`
	Reference string    `json:"reference"`
	Status    string    `json:"status"`
	// Payment tells the customer how to pay; nil for top-ups booked
	// before the payment rails.
	Payment       *provider.Instructions `json:"payment"`
	ExpiresAt     *time.Time             `json:"expires_at"`
	FailureReason string                 `json:"failure_reason,omitempty"`
	FailureCode   string                 `json:"failure_code,omitempty"`
	CreatedAt     time.Time              `json:"created_at"`
	SettledAt     *time.Time             `json:"settled_at"`
	ReversedAt    *time.Time             `json:"reversed_at"`

	provider  string
	paymentID string
}

// Ledger is what top-ups need of the ledger.
type Ledger interface {
	movement.LedgerReverser
	EnsureSystemAccount(ctx context.Context, tx pgx.Tx, code, currency string) (ledger.Account, error)
	WalletOf(ctx context.Context, q postgres.Querier, userID uuid.UUID) (ledger.Account, error)
	Post(ctx context.Context, tx pgx.Tx, t ledger.Transaction) (ledger.PostedTransaction, error)
}

// Users is what top-ups need of the users domain: the payer, share-locked
// against a concurrent deactivation when a top-up opens, and read when it
// is credited (a customer who paid is credited even if deactivated since).
type Users interface {
	LockActive(ctx context.Context, tx pgx.Tx, id uuid.UUID) (users.User, error)
	Get(ctx context.Context, q postgres.Querier, id uuid.UUID) (users.User, error)
}

// Payments is the part of the payment provider top-ups need.
type Payments interface {
	Name() provider.Name
	CreatePayment(ctx context.Context, r provider.PaymentRequest) (provider.Payment, error)
	GetPayment(ctx context.Context, id string) (provider.Payment, error)
}

// Service books and reads top-ups.
type Service struct {
	db       *postgres.DB
	keys     *idempotency.Store
	ledger   Ledger
	users    Users
	payments Payments
	store    Store
	cfg      config.Money
	expiry   time.Duration
	limit    movement.Limit
	topic    string
	metrics  *metrics
}

// NewService returns the service, collecting payments through p, each
// open for expiry; m may be nil.
func NewService(db *postgres.DB, keys *idempotency.Store, l Ledger, u Users, p Payments, cfg config.Money, expiry time.Duration, topic string, m *metrics) *Service {
	return &Service{db: db, keys: keys, ledger: l, users: u, payments: p, cfg: cfg, expiry: expiry, topic: topic, metrics: m,
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

// Create validates in and, once per Idempotency-Key, asks the provider
// for the payment and records the top-up as pending.
//
// The provider is called before the key's transaction, never inside it:
// a slow provider then holds no database connection and no lock. That is
// safe because the call is idempotent at the provider: the top-up's id
// (the provider's reference and idempotency key) and expiry are pinned
// per key in an intent committed first, so a retry, a concurrent
// duplicate or a crash between the call and the record all send the very
// same create and get the same payment back. A request whose key already
// completed is replayed before anything else, so a replay needs no
// provider.
func (s *Service) Create(ctx context.Context, c idempotency.Claim, caller authn.Principal, in CreateRequest) (idempotency.Response, error) {
	method, ok := CanonicalMethod(in.Method)
	if !ok {
		method = "unknown" // keeps the label bounded
	}
	if res, found, err := s.keys.Lookup(ctx, c.Owner, c.Key, c.Fingerprint); err != nil || found {
		return res, err
	}
	req, err := s.Validate(in)
	if err != nil {
		s.metrics.record(ctx, method, movement.Result(err), 0)
		return idempotency.Response{}, err
	}
	p, intent, err := s.requestPayment(ctx, c, caller, req)
	if err != nil {
		s.metrics.record(ctx, method, movement.Result(err), 0)
		return idempotency.Response{}, err
	}
	return movement.Create(ctx, s.keys, c,
		func() (Request, error) { return req, nil },
		func(ctx context.Context, tx pgx.Tx, req Request) (TopUp, error) {
			return s.open(ctx, tx, caller, req, p, intent)
		},
		func(_ *Request, result string) { s.metrics.record(ctx, method, result, 0) })
}

// requestPayment asks the provider for the payment of the key's top-up.
func (s *Service) requestPayment(ctx context.Context, c idempotency.Claim, caller authn.Principal, req Request) (provider.Payment, intent, error) {
	// Checked again under a lock when the top-up is recorded; checked here
	// so that no payment is requested for someone who may not top up.
	u, err := s.users.Get(ctx, s.db.Pool, caller.UserID)
	if err != nil {
		return provider.Payment{}, intent{}, err
	}
	if !u.Active {
		return provider.Payment{}, intent{}, users.ErrInactive
	}
	in, err := s.store.Intent(ctx, s.db.Pool, c, time.Now().Add(s.expiry))
	if err != nil {
		return provider.Payment{}, intent{}, err
	}
	p, err := s.payments.CreatePayment(ctx, provider.PaymentRequest{Reference: in.TopUpID.String(), Amount: req.Amount,
		Currency: s.cfg.Currency, Method: req.Method, ExpiresAt: in.ExpiresAt,
		CustomerName: u.Firstname + " " + u.Lastname})
	switch {
	case errors.Is(err, provider.ErrRejected):
		return provider.Payment{}, intent{}, ErrProviderRejected
	case err != nil:
		return provider.Payment{}, intent{}, fmt.Errorf("%w: %w", ErrProviderUnavailable, err)
	case p.Amount != req.Amount || p.Currency != s.cfg.Currency || p.Reference != in.TopUpID.String():
		// The provider answered with another payment than the one asked
		// for: never show its instructions to the customer.
		return provider.Payment{}, intent{}, fmt.Errorf("topup: the provider answered payment %s (%s) of %d %s for %s, %d %s",
			p.ID, p.Reference, p.Amount, p.Currency, in.TopUpID, req.Amount, s.cfg.Currency)
	}
	return p, in, nil
}

// open records the top-up as pending with the provider's payment p, in tx
// (which holds the Idempotency-Key), and enqueues paygate.topup.pending.
func (s *Service) open(ctx context.Context, tx pgx.Tx, caller authn.Principal, req Request, p provider.Payment, in intent) (TopUp, error) {
	u, err := s.users.LockActive(ctx, tx, caller.UserID)
	if err != nil {
		return TopUp{}, err
	}
	expires := in.ExpiresAt
	if !p.ExpiresAt.IsZero() {
		expires = p.ExpiresAt
	}
	t := TopUp{ID: in.TopUpID, UserID: u.ID, Amount: req.Amount, Currency: s.cfg.Currency, Method: req.Method,
		Reference: req.Reference, Status: StatusPending, Payment: &p.Instructions, ExpiresAt: &expires,
		provider: string(s.payments.Name()), paymentID: p.ID}
	if t.CreatedAt, err = s.store.Insert(ctx, tx, t); err != nil {
		return TopUp{}, err
	}
	_, err = outbox.Enqueue(ctx, tx, outbox.Event{
		Topic: s.topic, Key: u.ID.String(), Type: events.TypeTopUpPending, Subject: "topups/" + t.ID.String(),
		Data: events.TopUpPending{TopUpID: t.ID, UserID: u.ID, Email: u.Email, Firstname: u.Firstname, Amount: t.Amount,
			Currency: t.Currency, Method: t.Method, Reference: t.Reference, Provider: t.provider,
			Payment: eventInstructions(p.Instructions), ExpiresAt: expires, CreatedAt: t.CreatedAt},
	})
	return t, err
}

func eventInstructions(i provider.Instructions) events.PaymentInstructions {
	return events.PaymentInstructions{Family: string(i.Family), Channel: i.Channel, BankCode: i.BankCode,
		VirtualAccountNumber: i.VirtualAccountNumber, CheckoutURL: i.CheckoutURL, DeeplinkURL: i.DeeplinkURL,
		Retailer: i.Retailer, PaymentCode: i.PaymentCode}
}

func marshalInstructions(i *provider.Instructions) ([]byte, error) {
	if i == nil {
		return nil, nil
	}
	return json.Marshal(i)
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
	if ledgerTx == nil {
		return TopUp{}, ErrNotReversible
	}
	posted, err := movement.Reverse(ctx, tx, s.ledger, *ledgerTx, "topup-reversal:"+id.String())
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
