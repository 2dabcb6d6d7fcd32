// Package payout pays withdrawals out: a consumer group reads
// paygate.withdrawal.requested, asks a Payouts provider to send the money
// to the bank account, and settles the withdrawal through the withdraw
// domain exactly once. The provider that ships is BankSimulator; a real
// bank adapter implements the same interface.
package payout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/IBM/sarama"
	"github.com/google/uuid"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/paygate/paygate/internal/events"
	"github.com/paygate/paygate/internal/platform/kafka"
	"github.com/paygate/paygate/internal/platform/logging"
	"github.com/paygate/paygate/internal/withdraw"
)

// Request is one payout to make.
type Request struct {
	// WithdrawalID is also the idempotency reference a real bank adapter
	// sends, so that a payout retried after a crash is not paid twice.
	WithdrawalID      uuid.UUID
	Amount            int64
	Currency          string
	BankCode          string
	BankAccountNumber string
	BankAccountName   string
}

// Result is the bank's final answer.
type Result struct {
	Succeeded bool
	Reason    string // why the bank refused, shown to the user
	Reference string // the bank's reference
}

// Payouts sends money to bank accounts. An error means the outcome is not
// known yet (timeout, bank unavailable) and the payout will be tried again;
// a refusal is a Result with Succeeded false.
type Payouts interface {
	Pay(ctx context.Context, r Request) (Result, error)
}

// BankSimulator is a stand-in bank for development and tests: it answers
// after a configurable latency and refuses a configurable share of
// payouts, so failed withdrawals and released holds can be seen. It moves
// no real money.
type BankSimulator struct {
	Latency     time.Duration
	FailureRate float64
}

// Pay simulates a payout.
func (b BankSimulator) Pay(ctx context.Context, r Request) (Result, error) {
	select {
	case <-ctx.Done():
		return Result{}, ctx.Err()
	case <-time.After(b.Latency):
	}
	if rand.Float64() < b.FailureRate {
		return Result{Succeeded: false, Reason: "The bank refused the transfer (simulated).", Reference: "sim-" + r.WithdrawalID.String()}, nil
	}
	return Result{Succeeded: true, Reference: "sim-" + r.WithdrawalID.String()}, nil
}

// Settler is the part of the withdraw domain the processor needs.
type Settler interface {
	Details(ctx context.Context, id uuid.UUID) (withdraw.PayoutDetails, error)
	Settle(ctx context.Context, id uuid.UUID, out withdraw.Outcome) (withdraw.Withdrawal, error)
}

// Metric names of the payout processor.
const MetricPayouts = "paygate.payout.payouts"

// Processor handles withdrawal events.
type Processor struct {
	payouts  Payouts
	settler  Settler
	tracer   trace.Tracer
	prop     propagation.TextMapPropagator
	log      *zap.Logger
	payments metric.Int64Counter
}

// NewProcessor returns a processor.
func NewProcessor(p Payouts, s Settler, tp trace.TracerProvider, prop propagation.TextMapPropagator, mp metric.MeterProvider, log *zap.Logger) (*Processor, error) {
	c, err := mp.Meter("paygate/payout").Int64Counter(MetricPayouts, metric.WithDescription("Payout attempts by result (succeeded, refused, error)."))
	if err != nil {
		return nil, err
	}
	return &Processor{payouts: p, settler: s, tracer: tp.Tracer("paygate/payout"), prop: prop, log: log, payments: c}, nil
}

// Handle processes one record of the withdrawal topic. Records of other
// types are skipped. It returns an error only when the outcome could not
// be recorded yet, so that the record is delivered again.
func (p *Processor) Handle(ctx context.Context, msg *sarama.ConsumerMessage) error {
	ctx = kafka.ExtractContext(ctx, p.prop, msg)
	ev, err := kafka.FromConsumerMessage(msg)
	if err != nil {
		p.log.Error("payout: skipping a record that is not a CloudEvent", zap.Error(err), zap.Int64("offset", msg.Offset))
		return nil
	}
	if ev.Type() != events.TypeWithdrawalRequested {
		return nil
	}
	ctx, span := p.tracer.Start(ctx, "payout "+ev.Type(), trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(attribute.String("paygate.domain", "withdraw"), attribute.String("messaging.message.id", ev.ID())))
	defer span.End()
	log := logging.WithTrace(ctx, p.log)

	var data events.Withdrawal
	if err := json.Unmarshal(ev.Data(), &data); err != nil || data.WithdrawalID == uuid.Nil {
		log.Error("payout: skipping a malformed withdrawal event", zap.String("event_id", ev.ID()))
		return nil
	}
	span.SetAttributes(attribute.String("paygate.withdrawal_id", data.WithdrawalID.String()))
	d, err := p.settler.Details(ctx, data.WithdrawalID)
	if err != nil {
		return p.fail(ctx, span, fmt.Errorf("payout: details of %s: %w", data.WithdrawalID, err))
	}
	if d.Status != withdraw.StatusPending {
		return nil // settled by an earlier delivery
	}
	res, err := p.pay(ctx, d)
	if err != nil {
		p.payments.Add(ctx, 1, metric.WithAttributes(attribute.String("result", "error")))
		return p.fail(ctx, span, err)
	}
	_, err = p.settler.Settle(ctx, d.WithdrawalID, withdraw.Outcome{Succeeded: res.Succeeded, Reason: res.Reason, ProviderReference: res.Reference})
	if errors.Is(err, withdraw.ErrAlreadySettled) {
		return nil
	}
	if err != nil {
		return p.fail(ctx, span, fmt.Errorf("payout: settle %s: %w", d.WithdrawalID, err))
	}
	result := "succeeded"
	if !res.Succeeded {
		result = "refused"
	}
	p.payments.Add(ctx, 1, metric.WithAttributes(attribute.String("result", result)))
	log.Info("payout settled", zap.String("withdrawal_id", d.WithdrawalID.String()), zap.String("result", result))
	return nil
}

func (p *Processor) pay(ctx context.Context, d withdraw.PayoutDetails) (Result, error) {
	ctx, span := p.tracer.Start(ctx, "payout.pay", trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("paygate.domain", "withdraw"), attribute.String("paygate.withdrawal_id", d.WithdrawalID.String()),
			attribute.String("paygate.bank_code", d.BankCode)))
	defer span.End()
	res, err := p.payouts.Pay(ctx, Request{WithdrawalID: d.WithdrawalID, Amount: d.Amount, Currency: d.Currency,
		BankCode: d.BankCode, BankAccountNumber: d.BankAccountNumber, BankAccountName: d.BankAccountName})
	if err != nil {
		span.SetStatus(codes.Error, "payout failed")
	}
	span.SetAttributes(attribute.Bool("paygate.payout_succeeded", res.Succeeded))
	return res, err
}

func (p *Processor) fail(ctx context.Context, span trace.Span, err error) error {
	span.RecordError(err)
	span.SetStatus(codes.Error, "payout not recorded")
	logging.WithTrace(ctx, p.log).Warn("payout will be retried", zap.Error(err))
	return err
}
