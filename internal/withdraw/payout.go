package withdraw

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/paygate/paygate/internal/platform/apperr"
	"github.com/paygate/paygate/internal/provider"
)

// ErrUnknownPayout is a provider's payout whose reference names no
// withdrawal of paygate's.
var ErrUnknownPayout = apperr.New(apperr.KindNotFound, "UNKNOWN_PAYOUT", "No withdrawal has this payout's reference.")

// Results of applying a provider's word about a payout.
const (
	ResultAccepted  = "accepted"  // the provider took it; no outcome yet
	ResultSucceeded = "succeeded" // the withdrawal settled as paid
	ResultFailed    = "failed"    // the withdrawal settled as failed; the hold is back
	ResultUnchanged = "unchanged" // already settled: nothing moved
)

// failureReason is the customer's text for a failed payout: the
// provider's, or a plain one when it gave none.
func failureReason(p provider.Payout) string {
	if p.FailureReason != "" {
		return p.FailureReason
	}
	return "The bank refused the payout."
}

// outcomeOf is the settlement a terminal payout calls for.
func outcomeOf(p provider.Payout, source string) Outcome {
	if p.Status == provider.PayoutSucceeded {
		return Outcome{Succeeded: true, ProviderReference: p.ID, Source: source}
	}
	return Outcome{Succeeded: false, ProviderReference: p.ID, Source: source, ReasonCode: p.FailureCode,
		Reason: failureReason(p)}
}

// RecordPayout records the payout the provider answered a create with,
// and settles the withdrawal in the same transaction when the answer is
// already final. It returns ResultAccepted, ResultSucceeded or
// ResultFailed; a withdrawal settled meanwhile (a callback that came
// first) is ErrAlreadySettled.
func (s *Service) RecordPayout(ctx context.Context, id uuid.UUID, prov provider.Name, p provider.Payout) (string, error) {
	var w Withdrawal
	result := ResultAccepted
	err := s.db.InTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
		if err := s.store.InsertPayout(ctx, tx, id, string(prov), p.ID); err != nil {
			return err
		}
		if !p.Status.Terminal() {
			return nil
		}
		var err error
		w, err = s.settle(ctx, tx, id, outcomeOf(p, SourceCreate))
		result = w.Status
		return err
	})
	if err != nil {
		return "", err
	}
	if result != ResultAccepted {
		s.metrics.settled(ctx, w.Status, w.Amount)
	}
	return result, nil
}

// ApplyPayout applies the provider's word about a payout (a callback, or
// the poller's answer) in tx: a final status settles the withdrawal, once;
// anything about a settled withdrawal, or a payout still in flight, is
// ResultUnchanged; a reference that names no withdrawal is
// ErrUnknownPayout. The caller counts the settlement with Settled once tx
// committed.
func (s *Service) ApplyPayout(ctx context.Context, tx pgx.Tx, p provider.Payout, source string) (string, Withdrawal, error) {
	id, err := uuid.Parse(p.Reference)
	if err != nil {
		return "", Withdrawal{}, ErrUnknownPayout
	}
	if !p.Status.Terminal() {
		if _, err := s.store.Get(ctx, tx, id, nil); errors.Is(err, ErrNotFound) {
			return "", Withdrawal{}, ErrUnknownPayout
		} else if err != nil {
			return "", Withdrawal{}, err
		}
		if p.ID != "" {
			if err := s.store.InsertPayout(ctx, tx, id, string(s.provider), p.ID); err != nil {
				return "", Withdrawal{}, err
			}
		}
		return ResultUnchanged, Withdrawal{}, nil
	}
	w, err := s.settle(ctx, tx, id, outcomeOf(p, source))
	switch {
	case errors.Is(err, ErrNotFound):
		return "", Withdrawal{}, ErrUnknownPayout
	case errors.Is(err, ErrAlreadySettled):
		return ResultUnchanged, Withdrawal{}, nil
	case err != nil:
		return "", Withdrawal{}, err
	}
	return w.Status, w, nil
}

// Settled counts a settlement that ApplyPayout made, after its
// transaction committed.
func (s *Service) Settled(ctx context.Context, w Withdrawal) {
	s.metrics.settled(ctx, w.Status, w.Amount)
}

// PayoutStatus is the part of the provider the poller asks.
type PayoutStatus interface {
	GetPayout(ctx context.Context, id string) (provider.Payout, error)
}

// PollPayouts asks the provider about up to batch withdrawals that have
// waited longer than after for their payout, and applies the answers as a
// callback would. A withdrawal whose payout was never recorded (the
// processor has not got to it, or crashed before recording) is left to
// the processor, which creates or finds it under its idempotency key. It
// returns how many settled.
func (s *Service) PollPayouts(ctx context.Context, p PayoutStatus, after time.Duration, batch int) (int, error) {
	pending, err := s.store.PendingPayouts(ctx, s.db.Pool, time.Now().Add(-after), batch)
	if err != nil {
		return 0, err
	}
	settled := 0
	var errs []error
	for _, pp := range pending {
		if pp.PayoutID == "" {
			continue
		}
		po, err := p.GetPayout(ctx, pp.PayoutID)
		if err != nil {
			errs = append(errs, fmt.Errorf("payout %s: %w", pp.PayoutID, err))
			continue
		}
		if !po.Status.Terminal() {
			continue
		}
		var w Withdrawal
		var result string
		err = s.db.InTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
			var err error
			result, w, err = s.ApplyPayout(ctx, tx, po, SourcePoll)
			return err
		})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if result == ResultSucceeded || result == ResultFailed {
			s.Settled(ctx, w)
			settled++
		}
	}
	return settled, errors.Join(errs...)
}
