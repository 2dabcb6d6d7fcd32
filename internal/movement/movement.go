// Package movement holds what the money movement domains (topup,
// transfer, withdraw) share: their HTTP surface (create under an
// Idempotency-Key, list, get, reverse), running a validated request under
// its key, the amount limits, the bounded result label and the counters of
// their metrics, and reading a wallet's balance off a posted ledger
// transaction. The flows themselves, and all their SQL, stay in each
// domain.
package movement

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.uber.org/fx"

	"github.com/paygate/paygate/internal/ledger"
	"github.com/paygate/paygate/internal/platform/apperr"
	"github.com/paygate/paygate/internal/platform/authn"
	"github.com/paygate/paygate/internal/platform/config"
	"github.com/paygate/paygate/internal/platform/idempotency"
	"github.com/paygate/paygate/internal/platform/postgres"
	"github.com/paygate/paygate/internal/users"
)

// Results are the bounded values of the "result" metric label.
var Results = []string{"success", "insufficient_funds", "rejected", "error"}

// Result maps an attempt's error to its metric label: success,
// insufficient_funds, rejected (any other client error) or error.
func Result(err error) string {
	switch {
	case err == nil:
		return "success"
	case errors.Is(err, ledger.ErrInsufficientFunds):
		return "insufficient_funds"
	default:
		var ae *apperr.Error
		if errors.As(err, &ae) && ae.Kind != apperr.KindInternal && ae.Kind != apperr.KindUnavailable {
			return "rejected"
		}
		return "error"
	}
}

// BalanceAfter returns the balance of account right after the posted
// transaction, from its entry.
func BalanceAfter(p ledger.PostedTransaction, account uuid.UUID) int64 {
	for _, e := range p.Entries {
		if e.AccountID == account {
			return e.BalanceAfter
		}
	}
	return 0
}

// ErrAmountOutOfRange is returned for an amount outside a movement's
// configured limits.
var ErrAmountOutOfRange = apperr.New(apperr.KindBusinessRule, "AMOUNT_OUT_OF_RANGE", "The amount is outside the allowed range.")

// ErrAlreadyReversed is returned when reversing a movement twice. It is
// ledger.ErrAlreadyReversed, worded for the movement.
var ErrAlreadyReversed = ledger.ErrAlreadyReversed.With("The movement was already reversed.")

// AmountField returns the field error of an amount that is not a positive
// number of minor units, or nil.
func AmountField(amount int64) *apperr.FieldError {
	if amount > 0 {
		return nil
	}
	return &apperr.FieldError{Field: "amount", Message: "must be a positive integer in minor units"}
}

// Invalid returns the validation error of the fields that are not nil, or
// nil when all are.
func Invalid(fields ...*apperr.FieldError) error {
	var out []apperr.FieldError
	for _, f := range fields {
		if f != nil {
			out = append(out, *f)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return apperr.Validation("The request has invalid fields.", out...)
}

// Limit is the configured range of one kind of movement.
type Limit struct {
	Noun     string // "top-up", "transfer", "withdrawal"
	Min, Max int64
	Currency string
}

// Check returns ErrAmountOutOfRange, saying the range, for an amount
// outside it.
func (l Limit) Check(amount int64) error {
	if amount < l.Min || amount > l.Max {
		return ErrAmountOutOfRange.With(fmt.Sprintf("A %s must be between %d and %d %s.", l.Noun, l.Min, l.Max, l.Currency))
	}
	return nil
}

// Owner returns the user whose movements a listing shows: the caller, or
// for an administrator whoever forUser names (nil: everyone).
func Owner(caller authn.Principal, forUser *uuid.UUID) *uuid.UUID {
	if caller.IsAdmin() {
		return forUser
	}
	return &caller.UserID
}

// Visible returns the user whose movement a caller may read: nil (any)
// for an administrator, else the caller.
func Visible(caller authn.Principal) *uuid.UUID { return Owner(caller, nil) }

// Create validates a request and, when it is valid, books it under the
// claim, once: a refusal by validate stores nothing. record is told the
// outcome of every attempt that ran, not of replays: the validated request
// (nil when validation refused it) and its result label.
func Create[Req, T any](ctx context.Context, keys *idempotency.Store, c idempotency.Claim,
	validate func() (Req, error),
	book func(ctx context.Context, tx pgx.Tx, req Req) (T, error),
	record func(req *Req, result string),
) (idempotency.Response, error) {
	req, err := validate()
	if err != nil {
		record(nil, "rejected")
		return idempotency.Response{}, err
	}
	var outcome error
	res, err := keys.Run(ctx, c, func(ctx context.Context, tx pgx.Tx) (any, error) {
		t, err := book(ctx, tx, req)
		outcome = err
		return t, err
	})
	if err != nil {
		return idempotency.Response{}, err
	}
	if !res.Replayed {
		record(&req, Result(outcome))
	}
	return res, nil
}

// LedgerReverser books the compensating transaction of a ledger
// transaction.
type LedgerReverser interface {
	Reverse(ctx context.Context, tx pgx.Tx, originalTxID uuid.UUID, kind, reference string) (ledger.PostedTransaction, error)
}

// Reverse books the compensating ledger transaction of a movement's
// ledger transaction; a second reversal is ErrAlreadyReversed.
func Reverse(ctx context.Context, tx pgx.Tx, l LedgerReverser, ledgerTx uuid.UUID, reference string) (ledger.PostedTransaction, error) {
	posted, err := l.Reverse(ctx, tx, ledgerTx, ledger.KindReversal, reference)
	if errors.Is(err, ledger.ErrAlreadyReversed) {
		return ledger.PostedTransaction{}, ErrAlreadyReversed
	}
	return posted, err
}

// Counters are a movement domain's pair of counters: how many, and how
// much money in minor units.
type Counters struct {
	count, amount metric.Int64Counter
}

// NewCounters makes the counters named name and amountName of meter m.
func NewCounters(m metric.Meter, name, desc, amountName, amountDesc string) (*Counters, error) {
	c, err := m.Int64Counter(name, metric.WithDescription(desc))
	if err != nil {
		return nil, err
	}
	a, err := m.Int64Counter(amountName, metric.WithUnit("{minor_unit}"), metric.WithDescription(amountDesc))
	if err != nil {
		return nil, err
	}
	return &Counters{count: c, amount: a}, nil
}

// Record counts one outcome labelled attrs and, when amount is not 0, adds
// it to the amount counter labelled amountAttrs. A nil *Counters records
// nothing, for services built without metrics.
func (c *Counters) Record(ctx context.Context, attrs []attribute.KeyValue, amount int64, amountAttrs ...attribute.KeyValue) {
	if c == nil {
		return
	}
	c.count.Add(ctx, 1, metric.WithAttributes(attrs...))
	if amount != 0 {
		c.amount.Add(ctx, amount, metric.WithAttributes(amountAttrs...))
	}
}

// Params are what every movement service is built from; each domain's fx
// module injects them and adds its own topic and metrics.
type Params struct {
	fx.In

	DB            *postgres.DB
	Keys          *idempotency.Store
	Ledger        *ledger.Store
	Users         *users.Store
	Money         config.Money
	Kafka         config.Kafka
	Provider      config.Provider
	MeterProvider metric.MeterProvider
}

// Inserted returns the outcome of inserting a movement's record, which
// returned its creation time at. A record that may exist only once per
// movement (a reversal, a settlement: their primary key is the movement's
// id) passes duplicate, which a unique violation answers; nil maps none.
func Inserted(at time.Time, err error, duplicate error, what string) (time.Time, error) {
	if duplicate != nil && postgres.IsUniqueViolation(err, "") {
		return time.Time{}, duplicate
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("insert %s: %w", what, err)
	}
	return at, nil
}
