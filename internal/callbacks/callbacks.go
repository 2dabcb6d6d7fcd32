// Package callbacks receives the payment provider's callbacks:
// POST /v1/callbacks/{provider}/payments and …/payouts. A callback is
// authenticated by the provider's own scheme only (no user token); one
// that does not verify gets 401, is logged and counted, and the secret is
// never logged. A verified callback is stored verbatim in an append-only
// inbox before it is processed, then applied once: duplicates (the same
// provider event id) answer 200 and change nothing, late and reordered
// ones never move a terminal state backwards (the top-up and withdrawal
// domains guarantee that), and one about an unknown reference is kept,
// counted and listed for admins (GET /v1/admin/callbacks).
package callbacks

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.uber.org/zap"

	"github.com/paygate/paygate/internal/platform/postgres"
	"github.com/paygate/paygate/internal/provider"
	"github.com/paygate/paygate/internal/topup"
	"github.com/paygate/paygate/internal/withdraw"
)

// Outcomes of a callback, the values of the outcome label and of the
// inbox's provider_callback_events.outcome.
const (
	OutcomeApplied   = "applied"   // a top-up or withdrawal changed state
	OutcomeUnchanged = "unchanged" // already in that state, or still pending
	OutcomeDuplicate = "duplicate" // the same notification again: nothing done
	OutcomeUnmatched = "unmatched" // no top-up or withdrawal has the reference
	OutcomeMismatch  = "mismatch"  // paid another amount or currency: failed, nothing credited
	OutcomeLate      = "late"      // paid after paygate closed the top-up
	OutcomeRejected  = "rejected"  // did not authenticate: 401
	OutcomeMalformed = "malformed" // authenticated, but not a callback paygate understands
	OutcomeInFlight  = "in_flight" // about a top-up still being recorded: the provider retries
	OutcomeError     = "error"     // not processed (a database fault): the provider retries
	OutcomeBusy      = "busy"      // refused unread: too many callbacks in process; the provider retries
)

// Outcomes lists the outcome label's values.
var Outcomes = []string{OutcomeApplied, OutcomeUnchanged, OutcomeDuplicate, OutcomeUnmatched, OutcomeMismatch,
	OutcomeLate, OutcomeRejected, OutcomeMalformed, OutcomeInFlight, OutcomeError, OutcomeBusy}

// AttentionOutcomes are the outcomes an admin must look at.
var AttentionOutcomes = []string{OutcomeUnmatched, OutcomeMismatch, OutcomeLate, OutcomeMalformed}

// Kinds of callbacks.
const (
	KindPayment = "payment"
	KindPayout  = "payout"
)

// MetricCallbacks counts callbacks by provider, kind and outcome
// (Prometheus adds _total).
const MetricCallbacks = "paygate.callback.received"

// Payments is what the inbox needs of the top-up domain.
type Payments interface {
	ApplyPayment(ctx context.Context, tx pgx.Tx, p provider.Payment, source string) (string, topup.TopUp, error)
	Settled(ctx context.Context, result string, t topup.TopUp)
}

// Payouts is what the inbox needs of the withdrawal domain.
type Payouts interface {
	ApplyPayout(ctx context.Context, tx pgx.Tx, p provider.Payout, source string) (string, withdraw.Withdrawal, error)
	Settled(ctx context.Context, w withdraw.Withdrawal)
}

// Inbox stores and applies verified callbacks.
type Inbox struct {
	db       *postgres.DB
	store    Store
	payments Payments
	payouts  Payouts
	counter  metric.Int64Counter
	log      *zap.Logger
}

// NewInbox returns the inbox.
func NewInbox(db *postgres.DB, p Payments, w Payouts, mp metric.MeterProvider, log *zap.Logger) (*Inbox, error) {
	c, err := mp.Meter("paygate/callbacks").Int64Counter(MetricCallbacks,
		metric.WithDescription("Provider callbacks received, by provider, kind (payment, payout) and outcome."))
	if err != nil {
		return nil, err
	}
	return &Inbox{db: db, payments: p, payouts: w, counter: c, log: log}, nil
}

// count counts one callback.
func (in *Inbox) count(ctx context.Context, prov provider.Name, kind, outcome string) {
	in.counter.Add(ctx, 1, metric.WithAttributes(attribute.String("provider", string(prov)),
		attribute.String("kind", kind), attribute.String("outcome", outcome)))
}

// Received is a verified callback.
type Received struct {
	Provider provider.Name
	Kind     string // KindPayment or KindPayout, from the event (not the path)
	Event    provider.Event
	Body     []byte
}

// reference is the paygate id the callback is about.
func (r Received) reference() string {
	switch {
	case r.Event.Payment != nil:
		return r.Event.Payment.Reference
	case r.Event.Payout != nil:
		return r.Event.Payout.Reference
	}
	return ""
}

// Process stores the callback in the inbox (committed on its own, before
// anything else happens) and applies it once, in one transaction with the
// record of its outcome. It returns the outcome; an error means nothing
// was applied and the provider should deliver again.
//
// Deduplication: the transaction takes an advisory lock on the
// notification's id, so two deliveries of one notification arriving
// together are applied one after the other, and the second finds the
// first's outcome row and is a duplicate.
func (in *Inbox) Process(ctx context.Context, r Received) (string, error) {
	callbackID, err := in.store.Insert(ctx, in.db.Pool, r)
	if err != nil {
		return OutcomeError, fmt.Errorf("callbacks: store: %w", err)
	}
	var outcome, detail string
	var after func(context.Context)
	err = in.db.InTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
		outcome, detail, after = "", "", nil
		dup, err := in.store.LockEvent(ctx, tx, r.Provider, r.Event.ID)
		if err != nil || dup {
			outcome = OutcomeDuplicate
			return err
		}
		if outcome, detail, after, err = in.apply(ctx, tx, r); err != nil {
			return err
		}
		return in.store.InsertEvent(ctx, tx, r, callbackID, outcome, detail)
	})
	if errors.Is(err, topup.ErrPaymentInFlight) {
		return OutcomeInFlight, err
	}
	if err != nil {
		return OutcomeError, fmt.Errorf("callbacks: apply %s: %w", r.Event.ID, err)
	}
	if after != nil {
		after(ctx)
	}
	return outcome, nil
}

// apply hands the event to its domain and maps the result to an outcome.
func (in *Inbox) apply(ctx context.Context, tx pgx.Tx, r Received) (string, string, func(context.Context), error) {
	switch {
	case r.Event.Payment != nil:
		result, t, err := in.payments.ApplyPayment(ctx, tx, *r.Event.Payment, topup.SourceCallback)
		if errors.Is(err, topup.ErrUnknownPayment) {
			return OutcomeUnmatched, "no top-up has reference " + r.Event.Payment.Reference, nil, nil
		}
		if err != nil {
			return "", "", nil, err
		}
		after := func(ctx context.Context) { in.payments.Settled(ctx, result, t) }
		switch result {
		case topup.ResultSucceeded, topup.ResultFailed, topup.ResultExpired:
			return OutcomeApplied, "top-up " + result, after, nil
		case topup.ResultMismatch:
			return OutcomeMismatch, t.FailureReason, after, nil
		case topup.ResultLate:
			return OutcomeLate, fmt.Sprintf("paid %d %s after the top-up ended %s", r.Event.Payment.PaidAmount,
				r.Event.Payment.PaidCurrency, t.Status), nil, nil
		}
		return OutcomeUnchanged, "top-up is " + t.Status, nil, nil
	case r.Event.Payout != nil:
		result, w, err := in.payouts.ApplyPayout(ctx, tx, *r.Event.Payout, withdraw.SourceCallback)
		if errors.Is(err, withdraw.ErrUnknownPayout) {
			return OutcomeUnmatched, "no withdrawal has reference " + r.Event.Payout.Reference, nil, nil
		}
		if err != nil {
			return "", "", nil, err
		}
		if result == withdraw.ResultSucceeded || result == withdraw.ResultFailed {
			return OutcomeApplied, "withdrawal " + result, func(ctx context.Context) { in.payouts.Settled(ctx, w) }, nil
		}
		return OutcomeUnchanged, "withdrawal unchanged", nil, nil
	}
	return OutcomeMalformed, "neither a payment nor a payout", nil, nil
}

// Malformed stores a callback that authenticated but could not be parsed,
// so that an admin can see it; its id is the hash of its body, so the
// provider's retries of it are duplicates.
func (in *Inbox) Malformed(ctx context.Context, prov provider.Name, kind string, body []byte, parseErr error) error {
	sum := sha256.Sum256(body)
	r := Received{Provider: prov, Kind: kind, Body: body, Event: provider.Event{ID: "unparsed:" + hex.EncodeToString(sum[:16])}}
	id, err := in.store.Insert(ctx, in.db.Pool, r)
	if err != nil {
		return err
	}
	return in.db.InTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
		dup, err := in.store.LockEvent(ctx, tx, prov, r.Event.ID)
		if err != nil || dup {
			return err
		}
		return in.store.InsertEvent(ctx, tx, r, id, OutcomeMalformed, parseErr.Error())
	})
}

// Entry is a processed notification as the admin list shows it.
type Entry struct {
	Provider    string    `json:"provider"`
	EventID     string    `json:"event_id"`
	Kind        string    `json:"kind"`
	Reference   string    `json:"reference"`
	Outcome     string    `json:"outcome"`
	Detail      string    `json:"detail"`
	Deliveries  int       `json:"deliveries"`
	Body        string    `json:"body"`
	ReceivedAt  time.Time `json:"received_at"`
	ProcessedAt time.Time `json:"processed_at"`

	seq int64
}
