package topup

import (
	"context"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/paygate/paygate/internal/platform/postgres"
	"github.com/paygate/paygate/internal/provider"
)

// Credited returns the top-ups credited through the provider whose
// settlement falls in [from, to), oldest first: reconciliation's list of
// what paygate booked on the provider's word. A top-up reversed since
// was credited all the same and is listed. Top-ups booked before the
// payment rails carry their ledger transaction on the row and have no
// settlement: they never went through a provider and are not listed.
func (Store) Credited(ctx context.Context, q postgres.Querier, from, to time.Time) ([]provider.Booking, error) {
	rows, err := q.Query(ctx, `-- name: CreditedTopUps
`+selectTopUp+`
WHERE s.status = 'succeeded' AND t.ledger_transaction_id IS NULL AND s.settled_at >= $1 AND s.settled_at < $2
ORDER BY s.settled_at, t.id`, from, to)
	return postgres.Collect(rows, err, scanBooking)
}

// States returns the top-ups of ids, whatever their state; ids that name
// no top-up are absent. Reconciliation looks up what became of the
// top-up of every payment the provider settled: it may have been credited
// outside the period compared, or be pending, failed or expired.
func (Store) States(ctx context.Context, q postgres.Querier, ids []uuid.UUID) ([]provider.Booking, error) {
	rows, err := q.Query(ctx, `-- name: TopUpStates
`+selectTopUp+` WHERE t.id = ANY($1)`, ids)
	return postgres.Collect(rows, err, scanBooking)
}

// scanBooking reads a top-up of selectTopUp as a provider.Booking.
func scanBooking(row pgx.Row) (provider.Booking, error) {
	t, err := scanTopUp(row)
	if err != nil {
		return provider.Booking{}, err
	}
	return provider.Booking{Kind: provider.TransactionPayment, Reference: t.ID.String(), Provider: t.provider,
		Status: t.Status, Booked: t.Status == StatusSucceeded || t.Status == StatusReversed,
		Amount: t.Amount, Currency: t.Currency, ReasonCode: t.FailureCode, CreatedAt: t.CreatedAt, SettledAt: t.SettledAt}, nil
}
