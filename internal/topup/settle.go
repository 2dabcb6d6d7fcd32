package topup

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/paygate/paygate/internal/events"
	"github.com/paygate/paygate/internal/ledger"
	"github.com/paygate/paygate/internal/movement"
	"github.com/paygate/paygate/internal/platform/outbox"
	"github.com/paygate/paygate/internal/provider"
)

// Results of applying the provider's word about a payment.
const (
	ResultSucceeded = "succeeded" // the wallet was credited
	ResultFailed    = "failed"    // the top-up ended failed
	ResultExpired   = "expired"   // the top-up ended expired
	ResultMismatch  = "mismatch"  // paid another amount or currency: failed, nothing credited
	ResultUnchanged = "unchanged" // still pending, or already ended the same way
	// ResultLate is a payment confirmed for a top-up paygate had already
	// closed (expired or failed): nothing is credited automatically; the
	// money is at the provider, and reconciliation and the admin list
	// show it for a refund or a manual credit.
	ResultLate = "late"
)

// failureReason is the customer's text for a failed payment: the
// provider's, or a plain one when it gave none.
func failureReason(p provider.Payment) string {
	if p.FailureReason != "" {
		return p.FailureReason
	}
	return "The payment provider refused the payment."
}

// settlement is what ends a pending top-up.
type settlement struct {
	status       string
	reason       string
	reasonCode   string
	paidAmount   *int64
	paidCurrency *string
	source       string
}

// ApplyPayment applies the provider's word about a payment (a verified
// callback, or the poller's answer) in tx, and returns what it did (a
// Result…) with the top-up as it now stands. A pending top-up moves once:
// to succeeded, crediting the wallet only when the paid amount and
// currency equal the requested ones; to failed, with a reason (a
// mismatch is failed with AMOUNT_MISMATCH and credits nothing); or to
// expired. A top-up that already ended never moves again. A reference
// that names no top-up is ErrUnknownPayment. The caller counts the
// settlement with Settled once tx committed.
//
// Lock order: the top-up row first (FOR UPDATE serialises the callback,
// the poller and a concurrent duplicate), then the ledger's accounts.
func (s *Service) ApplyPayment(ctx context.Context, tx pgx.Tx, p provider.Payment, source string) (string, TopUp, error) {
	id, err := uuid.Parse(p.Reference)
	if err != nil {
		return "", TopUp{}, ErrUnknownPayment
	}
	t, err := s.store.LockForSettle(ctx, tx, id)
	if errors.Is(err, ErrNotFound) {
		// paygate asks the provider for a payment before it records the
		// top-up (see Create), so a callback can overtake the record by a
		// few milliseconds. Its intent says the record is on its way: the
		// callback is answered as not processed, and the provider delivers
		// it again.
		if inFlight, ierr := s.store.IntentExists(ctx, tx, id); ierr != nil {
			return "", TopUp{}, ierr
		} else if inFlight {
			return "", TopUp{}, ErrPaymentInFlight
		}
		return "", TopUp{}, ErrUnknownPayment
	}
	if err != nil {
		return "", TopUp{}, err
	}
	if t.Status != StatusPending {
		if p.Status == provider.PaymentSucceeded && (t.Status == StatusExpired || t.Status == StatusFailed) {
			return ResultLate, t, nil
		}
		return ResultUnchanged, t, nil
	}
	switch p.Status {
	case provider.PaymentSucceeded:
		if p.PaidAmount != t.Amount || p.PaidCurrency != t.Currency {
			paid, cur := p.PaidAmount, p.PaidCurrency
			t, err = s.close(ctx, tx, t, settlement{status: StatusFailed, reasonCode: ReasonAmountMismatch, source: source,
				paidAmount: &paid, paidCurrency: &cur,
				reason: fmt.Sprintf("The payment of %d %s does not match the requested %d %s; nothing was credited.", paid, cur, t.Amount, t.Currency)})
			return ResultMismatch, t, err
		}
		t, err = s.credit(ctx, tx, t, source)
		return ResultSucceeded, t, err
	case provider.PaymentFailed:
		t, err = s.close(ctx, tx, t, settlement{status: StatusFailed, reasonCode: p.FailureCode, reason: failureReason(p), source: source})
		return ResultFailed, t, err
	case provider.PaymentExpired:
		if source == SourceCallback {
			// An expiry webhook can overtake the capture of a payment made
			// at the last moment (the provider warns of exactly this race):
			// before closing, ask the provider where the payment stands,
			// and apply that instead when it was paid after all.
			now, err := s.payments.GetPayment(ctx, t.paymentID)
			if err != nil {
				return "", TopUp{}, fmt.Errorf("topup: confirm the expiry of %s: %w", t.ID, err)
			}
			if now.Status == provider.PaymentSucceeded {
				now.Reference = p.Reference
				return s.ApplyPayment(ctx, tx, now, SourcePoll)
			}
		}
		t, err = s.close(ctx, tx, t, settlement{status: StatusExpired, reasonCode: ReasonExpired, reason: "The payment was not made in time.", source: source})
		return ResultExpired, t, err
	default:
		return ResultUnchanged, t, nil
	}
}

// credit books a confirmed payment: the provider's clearing account
// −amount, the wallet +amount; then the settlement and
// paygate.topup.succeeded.
func (s *Service) credit(ctx context.Context, tx pgx.Tx, t TopUp, source string) (TopUp, error) {
	u, err := s.users.Get(ctx, tx, t.UserID)
	if err != nil {
		return TopUp{}, err
	}
	wallet, err := s.ledger.WalletOf(ctx, tx, t.UserID)
	if err != nil {
		return TopUp{}, err
	}
	clearing, err := s.ledger.EnsureSystemAccount(ctx, tx, ledger.ClearingCode(t.provider), t.Currency)
	if err != nil {
		return TopUp{}, err
	}
	posted, err := s.ledger.Post(ctx, tx, ledger.Transaction{
		Kind: ledger.KindTopUp, Reference: t.ID.String(), Currency: t.Currency,
		Metadata: map[string]any{"method": t.Method, "provider": t.provider, "payment_id": t.paymentID},
		Postings: []ledger.Posting{{AccountID: clearing.ID, Amount: -t.Amount}, {AccountID: wallet.ID, Amount: t.Amount}},
	})
	if err != nil {
		return TopUp{}, err
	}
	paid, cur := t.Amount, t.Currency
	at, err := s.store.InsertSettlement(ctx, tx, t.ID, settlement{status: StatusSucceeded, source: source,
		paidAmount: &paid, paidCurrency: &cur}, &posted.ID)
	if err != nil {
		return TopUp{}, err
	}
	t.Status, t.SettledAt = StatusSucceeded, &at
	_, err = outbox.Enqueue(ctx, tx, outbox.Event{
		Topic: s.topic, Key: t.UserID.String(), Type: events.TypeTopUpSucceeded, Subject: "topups/" + t.ID.String(),
		Data: events.TopUpSucceeded{TopUpID: t.ID, UserID: t.UserID, Email: u.Email, Firstname: u.Firstname, AccountNumber: u.AccountNumber,
			Amount: t.Amount, Currency: t.Currency, Method: t.Method, Reference: t.Reference,
			BalanceAfter: movement.BalanceAfter(posted, wallet.ID), CreatedAt: t.CreatedAt},
	})
	return t, err
}

// close ends a pending top-up without credit, with its event.
func (s *Service) close(ctx context.Context, tx pgx.Tx, t TopUp, st settlement) (TopUp, error) {
	u, err := s.users.Get(ctx, tx, t.UserID)
	if err != nil {
		return TopUp{}, err
	}
	at, err := s.store.InsertSettlement(ctx, tx, t.ID, st, nil)
	if err != nil {
		return TopUp{}, err
	}
	t.Status, t.SettledAt, t.FailureReason, t.FailureCode = st.status, &at, st.reason, st.reasonCode
	typ := events.TypeTopUpFailed
	if st.status == StatusExpired {
		typ = events.TypeTopUpExpired
	}
	_, err = outbox.Enqueue(ctx, tx, outbox.Event{
		Topic: s.topic, Key: t.UserID.String(), Type: typ, Subject: "topups/" + t.ID.String(),
		Data: events.TopUpClosed{TopUpID: t.ID, UserID: t.UserID, Email: u.Email, Firstname: u.Firstname, Amount: t.Amount,
			Currency: t.Currency, Method: t.Method, Status: st.status, Reason: st.reason, ClosedAt: at},
	})
	return t, err
}

// Settled counts what ApplyPayment did, after its transaction committed.
func (s *Service) Settled(ctx context.Context, result string, t TopUp) {
	s.metrics.settled(ctx, t.Method, result, t.Amount)
}

// PollPayments asks the provider about up to batch top-ups that have been
// pending longer than after, and applies the answers as a callback would.
// A top-up the provider still calls pending grace after its expiry is
// expired by paygate itself: its payment instructions are no longer shown
// as payable, and a payment that still arrives is a late one (see
// ResultLate). It returns how many top-ups ended.
func (s *Service) PollPayments(ctx context.Context, after, grace time.Duration, batch int) (int, error) {
	now := time.Now()
	pending, err := s.store.Pending(ctx, s.db.Pool, now.Add(-after), batch)
	if err != nil {
		return 0, err
	}
	ended := 0
	var errs []error
	for _, t := range pending {
		p, err := s.payments.GetPayment(ctx, t.paymentID)
		if err != nil && !errors.Is(err, provider.ErrNotFound) {
			errs = append(errs, fmt.Errorf("payment %s: %w", t.paymentID, err))
			continue
		}
		source := SourcePoll
		if err != nil || !p.Status.Terminal() {
			if t.ExpiresAt == nil || now.Before(t.ExpiresAt.Add(grace)) {
				continue
			}
			p, source = provider.Payment{Reference: t.ID.String(), Status: provider.PaymentExpired}, SourceExpiry
		}
		var result string
		var ended1 TopUp
		err = s.db.InTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
			var err error
			result, ended1, err = s.ApplyPayment(ctx, tx, p, source)
			return err
		})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if result != ResultUnchanged && result != ResultLate {
			s.Settled(ctx, result, ended1)
			ended++
		}
	}
	return ended, errors.Join(errs...)
}
