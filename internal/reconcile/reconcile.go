// Package reconcile compares the payment provider's settled transactions
// with paygate's books and reports every mismatch: a payment the provider
// settled that paygate did not credit, a credit the provider has no
// payment for, amounts that differ, a payout the provider made that
// paygate did not settle, and a withdrawal paygate settled as paid out
// that the provider never paid. It reads no other domain's tables: the
// provider lists its side (provider.Client.ListSettled), and the top-up
// and withdraw domains list theirs as provider.Booking records.
//
// Reconciliation runs on demand (`paygate reconcile`, GET
// /v1/admin/reconciliation) and on a schedule that feeds the
// paygate.reconcile.unreconciled gauge and its alert.
package reconcile

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/paygate/paygate/internal/platform/postgres"
	"github.com/paygate/paygate/internal/provider"
)

// Kind is a kind of mismatch.
type Kind string

// The kinds of mismatch.
const (
	// PaidNotCredited is a payment the provider settled for a top-up that
	// paygate did not credit: pending (its callback lost), failed (paid
	// another amount), expired (paid late), unknown, or paid twice.
	PaidNotCredited Kind = "paid_not_credited"
	// CreditedNotPaid is a top-up paygate credited through the provider
	// for which the provider settled no payment.
	CreditedNotPaid Kind = "credited_not_paid"
	// AmountDiffers is a top-up or withdrawal both sides settled, for
	// another amount or currency.
	AmountDiffers Kind = "amount_differs"
	// PaidOutNotSettled is a payout the provider made for a withdrawal
	// that paygate has not settled as paid out (pending, failed, unknown,
	// or paid twice).
	PaidOutNotSettled Kind = "paid_out_not_settled"
	// SettledNotPaidOut is a withdrawal paygate settled as paid out for
	// which the provider made no payout.
	SettledNotPaidOut Kind = "settled_not_paid_out"
)

// Kinds are every kind, in the order reports list them.
var Kinds = []Kind{PaidNotCredited, CreditedNotPaid, AmountDiffers, PaidOutNotSettled, SettledNotPaidOut}

// KindNames returns the kinds as strings (the values of the metric's kind
// label).
func KindNames() []string {
	out := make([]string, len(Kinds))
	for i, k := range Kinds {
		out[i] = string(k)
	}
	return out
}

// Mismatch is one disagreement between the provider and paygate.
type Mismatch struct {
	Kind Kind `json:"kind"`
	// Reference is the top-up or withdrawal id, as the provider echoes it.
	Reference string `json:"reference"`
	// ProviderID is the provider's transaction id; empty when the
	// provider has no transaction.
	ProviderID string `json:"provider_id"`
	// ProviderAmount is what the provider settled (0 when nothing);
	// PaygateAmount what paygate's ledger moved (0 when nothing).
	ProviderAmount int64 `json:"provider_amount"`
	PaygateAmount  int64 `json:"paygate_amount"`
	// Currency is the provider's currency, else paygate's; Detail names
	// both when they differ.
	Currency string `json:"currency"`
	Detail   string `json:"detail"`
	// At is when the item was settled: by the provider, or by paygate
	// when the provider has nothing.
	At time.Time `json:"at"`
}

// Checked counts the items a report compared: payments (the provider's
// settled payments and paygate's credited top-ups) and payouts (the
// provider's payouts and paygate's paid-out withdrawals), each reference
// once.
type Checked struct {
	Payments int `json:"payments"`
	Payouts  int `json:"payouts"`
}

// Report is the outcome of reconciling one period.
type Report struct {
	From       time.Time  `json:"from"`
	To         time.Time  `json:"to"`
	Provider   string     `json:"provider"`
	Checked    Checked    `json:"checked"`
	Mismatches []Mismatch `json:"mismatches"`
}

// OK reports whether the period reconciled without a mismatch.
func (r Report) OK() bool { return len(r.Mismatches) == 0 }

// Count returns how many mismatches of kind the report has.
func (r Report) Count(kind Kind) int {
	n := 0
	for _, m := range r.Mismatches {
		if m.Kind == kind {
			n++
		}
	}
	return n
}

// Settled is the part of the provider reconciliation reads: what it
// settled.
type Settled interface {
	ListSettled(ctx context.Context, from, to time.Time) ([]provider.SettledTransaction, error)
}

// TopUps is the top-up domain's side: the top-ups it credited through
// the provider in a period, and the state of any top-ups by id.
type TopUps interface {
	Credited(ctx context.Context, q postgres.Querier, from, to time.Time) ([]provider.Booking, error)
	States(ctx context.Context, q postgres.Querier, ids []uuid.UUID) ([]provider.Booking, error)
}

// Withdrawals is the withdraw domain's side: the withdrawals it settled
// as paid out in a period, and the state of any withdrawals by id.
type Withdrawals interface {
	PaidOut(ctx context.Context, q postgres.Querier, from, to time.Time) ([]provider.Booking, error)
	States(ctx context.Context, q postgres.Querier, ids []uuid.UUID) ([]provider.Booking, error)
}

// Bounds of the period compared.
const (
	// Margin is how much later than paygate's settlement the provider may
	// date the same transaction (clocks, the provider's own bookkeeping):
	// the provider's transactions are listed up to Margin after the
	// period, so that a credit at 23:59:59 the provider dates 00:00:01 is
	// found, not reported as credited but not paid.
	Margin = time.Hour
	// Lookback is how long before the period the provider's transactions
	// are listed from. The provider lists transactions by when it created
	// them, and a payout settles some time after it was created: a payout
	// settled in the period is seen when it was created at most Lookback
	// before the period began.
	Lookback = 24 * time.Hour
	// MaxWindow bounds the period of one reconciliation.
	MaxWindow = 31 * 24 * time.Hour
)

// ErrBadWindow is a period that is empty, reversed or longer than
// MaxWindow.
var ErrBadWindow = errors.New("reconcile: the period must end after it starts and last at most 31 days")

// Reconciler compares the provider's settled transactions with paygate's
// books.
type Reconciler struct {
	name        provider.Name
	settled     Settled
	topups      TopUps
	withdrawals Withdrawals
	db          postgres.Querier
}

// New returns the reconciler of the provider name, whose settled
// transactions s lists, against the books t and w keep in db.
func New(name provider.Name, s Settled, t TopUps, w Withdrawals, db postgres.Querier) *Reconciler {
	return &Reconciler{name: name, settled: s, topups: t, withdrawals: w, db: db}
}

// Provider names the provider reconciled.
func (r *Reconciler) Provider() provider.Name { return r.name }

// Run reconciles the period [from, to) and reports the mismatches of
// items settled in it, oldest first.
//
// Each item is reported in the one period its own time falls in: a
// provider transaction by when the provider settled it, paygate's
// booking by when paygate settled it when the provider has nothing. A
// provider transaction of the period is compared with its top-up or
// withdrawal whenever paygate settled that, looked up by id; paygate's
// bookings of the period are compared with the provider's transactions of
// the period widened by Lookback before and Margin after (further still
// back to the creation of the oldest booking, since its payment cannot
// predate it). So an item settled on both sides astride the period's end
// is reported in neither period, and each real mismatch in exactly one.
func (r *Reconciler) Run(ctx context.Context, from, to time.Time) (Report, error) {
	from, to = from.UTC(), to.UTC()
	if !from.Before(to) || to.Sub(from) > MaxWindow {
		return Report{}, ErrBadWindow
	}
	rep := Report{From: from, To: to, Provider: string(r.name), Mismatches: []Mismatch{}}
	credited, err := r.topups.Credited(ctx, r.db, from, to)
	if err != nil {
		return Report{}, fmt.Errorf("reconcile: credited top-ups: %w", err)
	}
	paidOut, err := r.withdrawals.PaidOut(ctx, r.db, from, to)
	if err != nil {
		return Report{}, fmt.Errorf("reconcile: paid-out withdrawals: %w", err)
	}
	// A booking of another provider (the deployment switched providers)
	// is that provider's to reconcile.
	ours := func(b provider.Booking) bool { return b.Provider == "" || b.Provider == string(r.name) }
	credited, paidOut = slices.DeleteFunc(credited, negate(ours)), slices.DeleteFunc(paidOut, negate(ours))

	since := from.Add(-Lookback)
	for _, b := range slices.Concat(credited, paidOut) {
		since = minTime(since, b.CreatedAt.Add(-Margin))
	}
	txs, err := r.settled.ListSettled(ctx, since, to.Add(Margin))
	if err != nil {
		return Report{}, fmt.Errorf("reconcile: the provider's settled transactions: %w", err)
	}
	slices.SortStableFunc(txs, func(a, b provider.SettledTransaction) int { return a.SettledAt.Compare(b.SettledAt) })

	sides := []*side{
		{kind: provider.TransactionPayment, books: r.topups, booked: credited, checked: &rep.Checked.Payments},
		{kind: provider.TransactionPayout, books: r.withdrawals, booked: paidOut, checked: &rep.Checked.Payouts},
	}
	for _, s := range sides {
		ms, err := s.reconcile(ctx, r.db, txs, from, to)
		if err != nil {
			return Report{}, err
		}
		rep.Mismatches = append(rep.Mismatches, ms...)
	}
	slices.SortStableFunc(rep.Mismatches, func(a, b Mismatch) int {
		if c := a.At.Compare(b.At); c != 0 {
			return c
		}
		if c := strings.Compare(string(a.Kind), string(b.Kind)); c != 0 {
			return c
		}
		return strings.Compare(a.Reference, b.Reference)
	})
	return rep, nil
}

// books is what both domains offer: the state of their records by id.
type books interface {
	States(ctx context.Context, q postgres.Querier, ids []uuid.UUID) ([]provider.Booking, error)
}

// side is one kind of transaction: payments against top-ups, or payouts
// against withdrawals.
type side struct {
	kind    provider.TransactionKind
	books   books
	booked  []provider.Booking // paygate's bookings of the period
	checked *int
}

// reconcile compares the side's transactions of txs (sorted by settlement
// time) with its bookings.
func (s *side) reconcile(ctx context.Context, q postgres.Querier, txs []provider.SettledTransaction, from, to time.Time) ([]Mismatch, error) {
	in := func(t time.Time) bool { return !t.Before(from) && t.Before(to) }
	byRef := map[string]provider.Booking{}
	for _, b := range s.booked {
		byRef[b.Reference] = b
	}
	// The provider's transactions of this side, and the references whose
	// bookings must be looked up: those of the period paygate did not
	// settle in the period.
	var mine []provider.SettledTransaction
	var lookup []uuid.UUID
	for _, tx := range txs {
		if tx.Kind != s.kind {
			continue
		}
		mine = append(mine, tx)
		if _, ok := byRef[tx.Reference]; ok || !in(tx.SettledAt) {
			continue
		}
		if id, err := uuid.Parse(tx.Reference); err == nil && id.String() == tx.Reference {
			lookup = append(lookup, id)
		}
	}
	if len(lookup) > 0 {
		found, err := s.books.States(ctx, q, lookup)
		if err != nil {
			return nil, fmt.Errorf("reconcile: %s states: %w", s.kind, err)
		}
		for _, b := range found {
			byRef[b.Reference] = b
		}
	}

	var out []Mismatch
	checked := map[string]bool{}
	settled := map[string]bool{} // references the provider settled, in txs
	for _, tx := range mine {
		first := !settled[tx.Reference]
		settled[tx.Reference] = true
		if !in(tx.SettledAt) {
			continue
		}
		checked[tx.Reference] = true
		b, known := byRef[tx.Reference]
		if m, bad := s.compare(tx, b, known, first); bad {
			out = append(out, m)
		}
	}
	for _, b := range s.booked {
		checked[b.Reference] = true
		if settled[b.Reference] || b.SettledAt == nil {
			continue
		}
		m := Mismatch{Kind: CreditedNotPaid, Reference: b.Reference, PaygateAmount: b.Amount, Currency: b.Currency,
			At: b.SettledAt.UTC(), Detail: fmt.Sprintf("paygate credited %s; the provider settled no payment for the top-up", money(b.Amount, b.Currency))}
		if s.kind == provider.TransactionPayout {
			m.Kind = SettledNotPaidOut
			m.Detail = fmt.Sprintf("paygate settled the withdrawal of %s as paid out; the provider made no payout for it", money(b.Amount, b.Currency))
		}
		out = append(out, m)
	}
	*s.checked = len(checked)
	return out, nil
}

// compare classifies the provider's transaction tx of the period against
// its booking b (known false when paygate has no record of the
// reference); first is false for a second transaction of one reference.
func (s *side) compare(tx provider.SettledTransaction, b provider.Booking, known, first bool) (Mismatch, bool) {
	m := Mismatch{Reference: tx.Reference, ProviderID: tx.ID, ProviderAmount: tx.Amount, Currency: tx.Currency, At: tx.SettledAt.UTC()}
	paid := money(tx.Amount, tx.Currency)
	noun, notBooked := "top-up", PaidNotCredited
	if s.kind == provider.TransactionPayout {
		noun, notBooked = "withdrawal", PaidOutNotSettled
	}
	switch {
	case !known:
		m.Kind, m.Detail = notBooked, fmt.Sprintf("the provider settled %s; no %s of paygate's has this reference", paid, noun)
	case !b.Booked:
		state := b.Status
		if b.ReasonCode != "" {
			state += " (" + b.ReasonCode + ")"
		}
		m.Kind, m.Detail = notBooked, fmt.Sprintf("the provider settled %s; the %s of %s is %s in paygate", paid, noun, money(b.Amount, b.Currency), state)
	case !first:
		m.Kind, m.PaygateAmount = notBooked, 0
		m.Detail = fmt.Sprintf("the provider settled %s again for the %s, which paygate books once", paid, noun)
	case tx.Amount != b.Amount || tx.Currency != b.Currency:
		m.Kind, m.PaygateAmount = AmountDiffers, b.Amount
		verb := "credited"
		if s.kind == provider.TransactionPayout {
			verb = "paid out"
		}
		m.Detail = fmt.Sprintf("the provider settled %s; paygate %s %s", paid, verb, money(b.Amount, b.Currency))
	default:
		return Mismatch{}, false
	}
	return m, true
}

func money(amount int64, currency string) string { return fmt.Sprintf("%d %s", amount, currency) }

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func negate[T any](f func(T) bool) func(T) bool { return func(v T) bool { return !f(v) } }
