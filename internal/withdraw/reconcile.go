package withdraw

import (
	"context"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/paygate/paygate/internal/platform/postgres"
	"github.com/paygate/paygate/internal/provider"
)

// selectBooking reads a withdrawal with its settlement and the provider
// of its recorded payout, for reconciliation.
const selectBooking = `SELECT w.id, w.amount, w.currency, w.created_at, s.status, s.reason_code, s.settled_at,
  coalesce(p.provider, '')
FROM withdrawals w
LEFT JOIN withdrawal_settlements s ON s.withdrawal_id = w.id
LEFT JOIN withdrawal_payouts p ON p.withdrawal_id = w.id`

func scanBooking(row pgx.Row) (provider.Booking, error) {
	var id uuid.UUID
	var status, code *string
	b := provider.Booking{Kind: provider.TransactionPayout, Status: StatusPending}
	if err := row.Scan(&id, &b.Amount, &b.Currency, &b.CreatedAt, &status, &code, &b.SettledAt, &b.Provider); err != nil {
		return provider.Booking{}, err
	}
	b.Reference = id.String()
	if status != nil {
		b.Status, b.ReasonCode = *status, *code
	}
	b.Booked = b.Status == StatusSucceeded
	return b, nil
}

// PaidOut returns the withdrawals that settled as succeeded (their hold
// captured: paygate counts the money as paid out) in [from, to), oldest
// first: reconciliation's list of what paygate booked as paid out. A
// withdrawal settled by hand, without a payout, is listed too: it is
// exactly what reconciliation must notice when the provider paid nothing.
func (Store) PaidOut(ctx context.Context, q postgres.Querier, from, to time.Time) ([]provider.Booking, error) {
	rows, err := q.Query(ctx, `-- name: PaidOutWithdrawals
`+selectBooking+`
WHERE s.status = 'succeeded' AND s.settled_at >= $1 AND s.settled_at < $2
ORDER BY s.settled_at, w.id`, from, to)
	return postgres.Collect(rows, err, scanBooking)
}

// States returns the withdrawals of ids, whatever their state; ids that
// name no withdrawal are absent. Reconciliation looks up what became of
// the withdrawal of every payout the provider settled.
func (Store) States(ctx context.Context, q postgres.Querier, ids []uuid.UUID) ([]provider.Booking, error) {
	rows, err := q.Query(ctx, `-- name: WithdrawalStates
`+selectBooking+` WHERE w.id = ANY($1)`, ids)
	return postgres.Collect(rows, err, scanBooking)
}
