package reconcile_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/paygate/paygate/internal/platform/apperr"
	"github.com/paygate/paygate/internal/platform/postgres"
	"github.com/paygate/paygate/internal/provider"
	"github.com/paygate/paygate/internal/reconcile"
)

// fakeProvider lists its transactions by settlement time, as the sandbox
// does for payments (a payout is listed by its creation, which tests of
// the real thing cover).
type fakeProvider []provider.SettledTransaction

func (f fakeProvider) ListSettled(_ context.Context, from, to time.Time) ([]provider.SettledTransaction, error) {
	var out []provider.SettledTransaction
	for _, tx := range f {
		if !tx.SettledAt.Before(from) && tx.SettledAt.Before(to) {
			out = append(out, tx)
		}
	}
	return out, nil
}

// fakeBooks is one domain's books: both TopUps and Withdrawals.
type fakeBooks []provider.Booking

func (f fakeBooks) booked(from, to time.Time) []provider.Booking {
	var out []provider.Booking
	for _, b := range f {
		if b.Booked && !b.SettledAt.Before(from) && b.SettledAt.Before(to) {
			out = append(out, b)
		}
	}
	return out
}

func (f fakeBooks) Credited(_ context.Context, _ postgres.Querier, from, to time.Time) ([]provider.Booking, error) {
	return f.booked(from, to), nil
}

func (f fakeBooks) PaidOut(_ context.Context, _ postgres.Querier, from, to time.Time) ([]provider.Booking, error) {
	return f.booked(from, to), nil
}

func (f fakeBooks) States(_ context.Context, _ postgres.Querier, ids []uuid.UUID) ([]provider.Booking, error) {
	var out []provider.Booking
	for _, b := range f {
		if slices.ContainsFunc(ids, func(id uuid.UUID) bool { return id.String() == b.Reference }) {
			out = append(out, b)
		}
	}
	return out, nil
}

var day = time.Date(2025, 1, 31, 0, 0, 0, 0, time.UTC)

func at(d time.Duration) time.Time { return day.Add(d) }

func ptr(t time.Time) *time.Time { return &t }

// booking is a settled record of paygate's, created ten minutes before it
// settled.
func booking(kind provider.TransactionKind, ref, status string, amount int64, settled time.Time) provider.Booking {
	return provider.Booking{Kind: kind, Reference: ref, Provider: string(provider.Sandbox), Status: status,
		Booked: status == "succeeded" || status == "reversed", Amount: amount, Currency: "IDR",
		CreatedAt: settled.Add(-10 * time.Minute), SettledAt: ptr(settled)}
}

func settled(kind provider.TransactionKind, ref string, amount int64, when time.Time) provider.SettledTransaction {
	return provider.SettledTransaction{ID: "txn-" + ref[:8], Kind: kind, Reference: ref, Amount: amount, Currency: "IDR", SettledAt: when}
}

const (
	pay = provider.TransactionPayment
	out = provider.TransactionPayout
)

func kindsOf(rep reconcile.Report) map[string]reconcile.Kind {
	got := map[string]reconcile.Kind{}
	for _, m := range rep.Mismatches {
		got[m.Reference] = m.Kind
	}
	return got
}

// TestWindowEdgeIsNoMismatch: a top-up credited at 23:59:59 that the
// provider dates 00:00:01, and a withdrawal settled just before midnight
// whose payout the provider dates just after, are mismatches in neither
// day; a real mismatch at the same edge is reported in exactly one day.
func TestWindowEdgeIsNoMismatch(t *testing.T) {
	t.Parallel()
	topupID, wdID, lost := uuid.NewString(), uuid.NewString(), uuid.NewString()
	topups := fakeBooks{
		booking(pay, topupID, "succeeded", 100000, at(-time.Second)),
		booking(pay, lost, "succeeded", 50000, at(-500*time.Millisecond)),
	}
	withdrawals := fakeBooks{booking(out, wdID, "succeeded", 70000, at(-200*time.Millisecond))}
	prov := fakeProvider{settled(pay, topupID, 100000, at(time.Second)), settled(out, wdID, 70000, at(300*time.Millisecond))}
	r := reconcile.New(provider.Sandbox, prov, topups, withdrawals, nil)
	ctx := context.Background()

	before, err := r.Run(ctx, at(-24*time.Hour), day)
	if err != nil {
		t.Fatal(err)
	}
	after, err := r.Run(ctx, day, at(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if got := kindsOf(before); len(got) != 1 || got[lost] != reconcile.CreditedNotPaid {
		t.Errorf("the day before: %+v", before.Mismatches)
	}
	if !after.OK() {
		t.Errorf("the day after: %+v", after.Mismatches)
	}
	if before.Checked != (reconcile.Checked{Payments: 2, Payouts: 1}) || after.Checked != (reconcile.Checked{Payments: 1, Payouts: 1}) {
		t.Errorf("checked %+v and %+v", before.Checked, after.Checked)
	}
}

// TestEveryKindIsFound feeds the reconciler one item of every kind of
// mismatch, the variants of each, and items that match, and checks that
// it reports exactly the mismatches.
func TestEveryKindIsFound(t *testing.T) {
	t.Parallel()
	ref := func() string { return uuid.NewString() }
	var (
		okTop, okTopReversed, okOut = ref(), ref(), ref()
		pending, failed, expired    = ref(), ref(), ref()
		unknown, twice              = ref(), ref()
		notPaid, amount, currency   = ref(), ref(), ref()
		outPending, outFailed       = ref(), ref()
		outAmount, outNotPaid       = ref(), ref()
		otherProvider               = ref()
		elsewhere                   = ref() // credited long before, paid now
	)
	h := func(n int) time.Time { return at(time.Duration(n) * time.Hour) }
	failedBooking := booking(pay, failed, "failed", 120000, h(3))
	failedBooking.ReasonCode = "AMOUNT_MISMATCH"
	other := booking(pay, otherProvider, "succeeded", 80000, h(4))
	other.Provider = string(provider.Xendit)
	early := booking(pay, elsewhere, "succeeded", 90000, at(-3*time.Hour))
	topups := fakeBooks{
		booking(pay, okTop, "succeeded", 100000, h(1)),
		booking(pay, okTopReversed, "reversed", 100000, h(1)),
		{Kind: pay, Reference: pending, Status: "pending", Amount: 100000, Currency: "IDR", CreatedAt: h(1)},
		failedBooking,
		booking(pay, expired, "expired", 100000, h(2)),
		booking(pay, twice, "succeeded", 100000, h(2)),
		booking(pay, notPaid, "succeeded", 130000, h(5)),
		booking(pay, amount, "succeeded", 140000, h(6)),
		booking(pay, currency, "succeeded", 140000, h(6)),
		other,
		early,
	}
	withdrawals := fakeBooks{
		booking(out, okOut, "succeeded", 60000, h(7)),
		{Kind: out, Reference: outPending, Status: "pending", Amount: 70000, Currency: "IDR", CreatedAt: h(7)},
		booking(out, outFailed, "failed", 75000, h(7)),
		booking(out, outAmount, "succeeded", 80000, h(8)),
		booking(out, outNotPaid, "succeeded", 85000, h(9)),
	}
	curTx := settled(pay, currency, 140000, h(6))
	curTx.Currency = "USD"
	prov := fakeProvider{
		settled(pay, okTop, 100000, h(1)),
		settled(pay, okTopReversed, 100000, h(1)),
		settled(pay, pending, 100000, h(2)),
		settled(pay, failed, 110000, h(3)),
		settled(pay, expired, 100000, h(3)),
		settled(pay, unknown, 100000, h(3)),
		{ID: "txn-not-a-uuid", Kind: pay, Reference: "not-a-uuid", Amount: 5, Currency: "IDR", SettledAt: h(3)},
		settled(pay, twice, 100000, h(2)),
		settled(pay, twice, 100000, h(4)),
		settled(pay, amount, 145000, h(6)),
		curTx,
		settled(pay, elsewhere, 90000, h(1)),
		settled(out, okOut, 60000, h(7)),
		settled(out, outPending, 70000, h(8)),
		settled(out, outFailed, 75000, h(8)),
		settled(out, outAmount, 79000, h(8)),
	}
	r := reconcile.New(provider.Sandbox, prov, topups, withdrawals, nil)
	rep, err := r.Run(context.Background(), day, at(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]reconcile.Kind{
		pending: reconcile.PaidNotCredited, failed: reconcile.PaidNotCredited, expired: reconcile.PaidNotCredited,
		unknown: reconcile.PaidNotCredited, "not-a-uuid": reconcile.PaidNotCredited, twice: reconcile.PaidNotCredited,
		notPaid: reconcile.CreditedNotPaid, amount: reconcile.AmountDiffers, currency: reconcile.AmountDiffers,
		outPending: reconcile.PaidOutNotSettled, outFailed: reconcile.PaidOutNotSettled,
		outAmount: reconcile.AmountDiffers, outNotPaid: reconcile.SettledNotPaidOut,
	}
	got := kindsOf(rep)
	if len(rep.Mismatches) != len(want) {
		t.Errorf("%d mismatches, want %d", len(rep.Mismatches), len(want))
	}
	for r, k := range want {
		if got[r] != k {
			t.Errorf("%s: %q, want %q", r, got[r], k)
		}
	}
	for _, m := range rep.Mismatches {
		switch m.Reference {
		case failed:
			if m.ProviderAmount != 110000 || m.PaygateAmount != 0 || !strings.Contains(m.Detail, "failed (AMOUNT_MISMATCH)") {
				t.Errorf("failed top-up: %+v", m)
			}
		case twice:
			if !m.At.Equal(h(4)) || !strings.Contains(m.Detail, "again") {
				t.Errorf("the second payment: %+v", m)
			}
		case currency:
			if m.Currency != "USD" || !strings.Contains(m.Detail, "140000 IDR") {
				t.Errorf("currency: %+v", m)
			}
		case notPaid:
			if m.ProviderID != "" || m.ProviderAmount != 0 || m.PaygateAmount != 130000 || !m.At.Equal(h(5)) {
				t.Errorf("credited, not paid: %+v", m)
			}
		case outAmount:
			if m.ProviderAmount != 79000 || m.PaygateAmount != 80000 || m.ProviderID == "" {
				t.Errorf("payout amount: %+v", m)
			}
		}
	}
	if !slices.IsSortedFunc(rep.Mismatches, func(a, b reconcile.Mismatch) int { return a.At.Compare(b.At) }) {
		t.Error("mismatches are not oldest first")
	}
	// okTop, okTopReversed, pending, failed, expired, unknown, not-a-uuid,
	// twice, notPaid, amount, currency, elsewhere (paid in the period,
	// credited before it); otherProvider is another provider's.
	if rep.Checked != (reconcile.Checked{Payments: 12, Payouts: 5}) {
		t.Errorf("checked %+v", rep.Checked)
	}
	if rep.Count(reconcile.PaidNotCredited) != 6 || rep.Provider != "sandbox" || !rep.From.Equal(day) {
		t.Errorf("report %+v", rep)
	}
}

func TestRunRefusesABadPeriod(t *testing.T) {
	t.Parallel()
	r := reconcile.New(provider.Sandbox, fakeProvider{}, fakeBooks{}, fakeBooks{}, nil)
	for _, p := range [][2]time.Time{{day, day}, {day, at(-time.Hour)}, {day, at(reconcile.MaxWindow + time.Second)}} {
		if _, err := r.Run(context.Background(), p[0], p[1]); !errors.Is(err, reconcile.ErrBadWindow) {
			t.Errorf("%v: %v, want ErrBadWindow", p, err)
		}
	}
}

func TestWindow(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 2, 1, 12, 0, 0, 0, time.FixedZone("WIB", 7*3600))
	from, to, err := reconcile.Window("", "", now)
	if err != nil || !to.Equal(now) || to.Location() != time.UTC || to.Sub(from) != 24*time.Hour {
		t.Errorf("defaults: %v %v %v", from, to, err)
	}
	from, to, err = reconcile.Window("2025-01-30T00:00:00+07:00", "2025-01-31T00:00:00Z", now)
	if err != nil || from != time.Date(2025, 1, 29, 17, 0, 0, 0, time.UTC) || to != day {
		t.Errorf("given: %v %v %v", from, to, err)
	}
	for _, c := range []struct{ from, to, field string }{
		{"yesterday", "", "from"},
		{"", "2025-13-01T00:00:00Z", "to"},
		{"2025-01-31T00:00:00Z", "2025-01-31T00:00:00Z", "to"},
		{"2025-01-01T00:00:00Z", "2025-02-01T00:00:01Z", "to"},
	} {
		_, _, err := reconcile.Window(c.from, c.to, now)
		var ae *apperr.Error
		if !errors.As(err, &ae) || !errors.Is(err, apperr.ErrValidation) || len(ae.Fields) != 1 || ae.Fields[0].Field != c.field {
			t.Errorf("from %q to %q: %v", c.from, c.to, err)
		}
	}
}
