package movement

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.uber.org/fx"

	"github.com/paygate/paygate/internal/platform/config"
	"github.com/paygate/paygate/internal/users"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/paygate/paygate/internal/ledger"
	"github.com/paygate/paygate/internal/platform/authn"
	"github.com/paygate/paygate/internal/platform/pagination"
	"github.com/paygate/paygate/internal/platform/postgres"
)

// Owner returns the user whose movements a listing shows: the caller, or
// for an administrator whoever forUser names (nil: everyone).
func Owner(caller authn.Principal, forUser *uuid.UUID) *uuid.UUID {
	if caller.IsAdmin() {
		return forUser
	}
	return &caller.UserID
}

// ListQuery runs a keyset-paginated listing, newest first. query takes the
// owner ($1, NULL for everyone), the cursor position ($2 created_at, $3 id,
// NULL on the first page) and the row limit ($4); it must order by
// (created_at, id) descending. scan reads one row; pos gives an item's
// position.
func ListQuery[T any](ctx context.Context, q postgres.Querier, query string, owner *uuid.UUID, limit int, cursor string,
	scan func(pgx.Row) (T, error), pos func(T) pagination.Position,
) (pagination.Page[T], error) {
	p, err := pagination.Decode(cursor)
	if err != nil {
		return pagination.Page[T]{}, err
	}
	at, aid := pagination.After(p)
	rows, err := q.Query(ctx, query, owner, at, aid, limit+1)
	if err != nil {
		return pagination.Page[T]{}, fmt.Errorf("list: %w", err)
	}
	items, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (T, error) { return scan(r) })
	if err != nil {
		return pagination.Page[T]{}, fmt.Errorf("list: %w", err)
	}
	return pagination.Cut(items, limit, pos), nil
}

// Reversal books the compensating ledger transaction of a movement and
// records it with insert, which takes the reversal's ledger transaction id
// as its first argument after args and returns its created_at. A second
// reversal, found by the ledger (reverses is unique) or by the record's
// primary key, is ErrAlreadyReversed.
func Reversal(ctx context.Context, tx pgx.Tx, l *ledger.Store, ledgerTx uuid.UUID, reference string,
	insert string, args ...any,
) (ledger.PostedTransaction, time.Time, error) {
	posted, err := l.Reverse(ctx, tx, ledgerTx, ledger.KindReversal, reference)
	if errors.Is(err, ledger.ErrAlreadyReversed) {
		return ledger.PostedTransaction{}, time.Time{}, ErrAlreadyReversed
	}
	if err != nil {
		return ledger.PostedTransaction{}, time.Time{}, err
	}
	var at time.Time
	err = tx.QueryRow(ctx, insert, append(args, posted.ID)...).Scan(&at)
	if postgres.IsUniqueViolation(err, "") {
		return ledger.PostedTransaction{}, time.Time{}, ErrAlreadyReversed
	}
	if err != nil {
		return ledger.PostedTransaction{}, time.Time{}, fmt.Errorf("insert reversal: %w", err)
	}
	return posted, at, nil
}

// Deps are what every movement service is built from; each domain's fx
// module injects them and adds its own topic and metrics.
type Deps struct {
	fx.In

	DB            *postgres.DB
	Ledger        *ledger.Store
	Users         *users.Store
	Money         config.Money
	Kafka         config.Kafka
	MeterProvider metric.MeterProvider
}
