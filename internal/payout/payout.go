// Package payout pays withdrawals out: a consumer group reads
// paygate.withdrawal.requested and asks the payment provider to send the
// money to the bank account, with the withdrawal id as the provider's
// idempotency key. The withdrawal settles when the provider says the
// payout succeeded or failed: at once if the create already answers that,
// otherwise on the provider's callback or the poller's question. A crash
// between create and settle, a redelivered event or two processors racing
// for one event all create the same single payout at the provider.
package payout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

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
	"github.com/paygate/paygate/internal/provider"
	"github.com/paygate/paygate/internal/withdraw"
)

// Payouts is the part of the payment provider the processor needs.
type Payouts interface {
	Name() provider.Name
	CreatePayout(ctx context.Context, r provider.PayoutRequest) (provider.Payout, error)
}

// Settler is the part of the withdraw domain the processor needs.
type Settler interface {
	Details(ctx context.Context, id uuid.UUID) (withdraw.PayoutDetails, error)
	Settle(ctx context.Context, id uuid.UUID, out withdraw.Outcome) (withdraw.Withdrawal, error)
	RecordPayout(ctx context.Context, id uuid.UUID, prov provider.Name, p provider.Payout) (string, error)
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
	c, err := mp.Meter("paygate/payout").Int64Counter(MetricPayouts, metric.WithDescription("Payout creates by result: accepted (waiting for the provider), succeeded, failed (the provider answered at once), refused (the request was rejected) or error (outcome unknown, retried)."))
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
		return kafka.Poison(fmt.Errorf("payout: not a CloudEvent: %w", err))
	}
	if ev.Type() != events.TypeWithdrawalRequested {
		return nil
	}
	ctx, span := p.tracer.Start(ctx, "payout "+ev.Type(), trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(attribute.String("paygate.domain", "withdraw"), attribute.String("messaging.message.id", ev.ID())))
	defer span.End()

	var data events.Withdrawal
	if err := json.Unmarshal(ev.Data(), &data); err != nil || data.WithdrawalID == uuid.Nil {
		span.SetStatus(codes.Error, "malformed withdrawal event")
		return kafka.Poison(fmt.Errorf("payout: malformed %s event %s", ev.Type(), ev.ID()))
	}
	span.SetAttributes(attribute.String("paygate.withdrawal_id", data.WithdrawalID.String()))
	d, err := p.settler.Details(ctx, data.WithdrawalID)
	if errors.Is(err, withdraw.ErrNotFound) {
		// An event about a withdrawal this database does not hold (another
		// environment's, or a hand-made one): no attempt will find it.
		return p.fail(ctx, span, kafka.Reject(fmt.Errorf("payout: withdrawal %s does not exist", data.WithdrawalID)))
	}
	if err != nil {
		return p.fail(ctx, span, fmt.Errorf("payout: details of %s: %w", data.WithdrawalID, err))
	}
	if d.Status != withdraw.StatusPending {
		return nil // settled by an earlier delivery
	}
	po, err := p.pay(ctx, d)
	if errors.Is(err, provider.ErrRejected) {
		// The provider refused the request itself (an unknown bank, a bad
		// account): retrying cannot help, so the hold goes back now.
		_, err = p.settler.Settle(ctx, d.WithdrawalID, withdraw.Outcome{Succeeded: false, Source: withdraw.SourceCreate,
			ReasonCode: "REJECTED", Reason: "The payment provider refused the payout request."})
		return p.settled(ctx, span, d, "refused", err)
	}
	if err != nil {
		p.payments.Add(ctx, 1, metric.WithAttributes(attribute.String("result", "error")))
		return p.fail(ctx, span, err)
	}
	result, err := p.settler.RecordPayout(ctx, d.WithdrawalID, p.payouts.Name(), po)
	return p.settled(ctx, span, d, result, err)
}

// settled counts and logs what became of a payout; an error other than
// ErrAlreadySettled has the record delivered again.
func (p *Processor) settled(ctx context.Context, span trace.Span, d withdraw.PayoutDetails, result string, err error) error {
	if errors.Is(err, withdraw.ErrAlreadySettled) {
		return nil
	}
	if err != nil {
		return p.fail(ctx, span, fmt.Errorf("payout: record %s: %w", d.WithdrawalID, err))
	}
	p.payments.Add(ctx, 1, metric.WithAttributes(attribute.String("result", result)))
	logging.WithTrace(ctx, p.log).Info("payout made", zap.String("withdrawal_id", d.WithdrawalID.String()), zap.String("result", result))
	return nil
}

func (p *Processor) pay(ctx context.Context, d withdraw.PayoutDetails) (provider.Payout, error) {
	ctx, span := p.tracer.Start(ctx, "payout.create", trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("paygate.domain", "withdraw"), attribute.String("paygate.withdrawal_id", d.WithdrawalID.String()),
			attribute.String("paygate.bank_code", d.BankCode), attribute.String("paygate.provider", string(p.payouts.Name()))))
	defer span.End()
	po, err := p.payouts.CreatePayout(ctx, provider.PayoutRequest{Reference: d.WithdrawalID.String(), Amount: d.Amount,
		Currency: d.Currency, BankCode: d.BankCode, AccountNumber: d.BankAccountNumber, AccountHolderName: d.BankAccountName,
		Description: "paygate withdrawal " + d.WithdrawalID.String()})
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, "payout create failed")
		return provider.Payout{}, err
	}
	span.SetAttributes(attribute.String("paygate.payout_status", string(po.Status)))
	return po, nil
}

func (p *Processor) fail(ctx context.Context, span trace.Span, err error) error {
	span.RecordError(err)
	span.SetStatus(codes.Error, "payout not recorded")
	logging.WithTrace(ctx, p.log).Warn("payout will be retried", zap.Error(err))
	return err
}
