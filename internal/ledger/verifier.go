package ledger

import (
	"context"
	"fmt"
	"strconv"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/paygate/paygate/internal/platform/postgres"
)

// Violation kinds found by the Verifier beyond Store.Verify.
const (
	// ViolationOrphanHold: an active hold that no pending business record
	// (a withdrawal) accounts for.
	ViolationOrphanHold ViolationKind = "orphan_hold"
	// ViolationHoldMismatch: a pending business record whose hold is
	// missing, not active, or of another amount.
	ViolationHoldMismatch ViolationKind = "hold_mismatch"
)

// ExpectedHold is a hold a business record (a pending withdrawal) keeps
// active.
type ExpectedHold struct {
	HoldID uuid.UUID
	Amount int64
	// Owner names the record, e.g. "withdrawal:<id>".
	Owner string
}

// HoldOwner lists the holds its domain expects to be active. The withdraw
// domain implements it, so that verification checks holds against pending
// withdrawals without the ledger reading another domain's tables.
type HoldOwner interface {
	ExpectedHolds(ctx context.Context, q postgres.Querier) ([]ExpectedHold, error)
}

// Verifier runs Store.Verify and checks every active hold against the
// business records that own holds.
type Verifier struct {
	store  *Store
	owners []HoldOwner
}

// NewVerifier returns a verifier over the given hold owners.
func NewVerifier(s *Store, owners ...HoldOwner) *Verifier {
	return &Verifier{store: s, owners: owners}
}

// Verify checks every ledger invariant in one repeatable-read snapshot, so
// holds and pending records are compared as of the same instant.
func (v *Verifier) Verify(ctx context.Context, db TxBeginner) (Report, error) {
	var rep Report
	err := v.inSnapshot(ctx, db, func(tx pgx.Tx) error {
		var err error
		rep, err = v.verifyIn(ctx, tx)
		return err
	})
	return rep, err
}

// TxBeginner starts transactions; *pgxpool.Pool and *pgx.Conn satisfy it.
type TxBeginner interface {
	BeginTx(ctx context.Context, opts pgx.TxOptions) (pgx.Tx, error)
}

// inSnapshot runs fn in a read-only repeatable-read transaction, which it
// always rolls back: verification writes nothing.
func (v *Verifier) inSnapshot(ctx context.Context, db TxBeginner, fn func(pgx.Tx) error) error {
	tx, err := db.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return fmt.Errorf("ledger verify: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	return fn(tx)
}

// verifyIn checks every invariant as of tx's snapshot.
func (v *Verifier) verifyIn(ctx context.Context, tx pgx.Tx) (Report, error) {
	rep, err := v.store.Verify(ctx, tx)
	if err != nil {
		return Report{}, err
	}
	active, err := activeHolds(ctx, tx)
	if err != nil {
		return Report{}, err
	}
	for _, o := range v.owners {
		expected, err := o.ExpectedHolds(ctx, tx)
		if err != nil {
			return Report{}, fmt.Errorf("ledger verify: expected holds: %w", err)
		}
		for _, e := range expected {
			h, ok := active[e.HoldID]
			if !ok || h.Amount != e.Amount {
				id := e.HoldID
				got := "missing or not active"
				if ok {
					got = strconv.FormatInt(h.Amount, 10)
				}
				rep.Violations = append(rep.Violations, Violation{Kind: ViolationHoldMismatch, AccountID: nil,
					Got: got + " (hold " + id.String() + ")", Want: strconv.FormatInt(e.Amount, 10) + " for " + e.Owner})
				continue
			}
			delete(active, e.HoldID)
		}
	}
	for id, h := range active {
		acc := h.AccountID
		rep.Violations = append(rep.Violations, Violation{Kind: ViolationOrphanHold, AccountID: &acc,
			Got: strconv.FormatInt(h.Amount, 10) + " held by hold " + id.String(), Want: "a pending record owning it"})
	}
	return rep, nil
}

func activeHolds(ctx context.Context, q postgres.Querier) (map[uuid.UUID]Hold, error) {
	rows, err := q.Query(ctx, `-- name: ActiveHolds
SELECT id, account_id, amount FROM ledger_holds WHERE status = 'active'`)
	if err != nil {
		return nil, fmt.Errorf("ledger verify: holds: %w", err)
	}
	out := map[uuid.UUID]Hold{}
	var h Hold
	_, err = pgx.ForEachRow(rows, []any{&h.ID, &h.AccountID, &h.Amount}, func() error {
		out[h.ID] = Hold{ID: h.ID, AccountID: h.AccountID, Amount: h.Amount, Status: HoldActive}
		return nil
	})
	return out, err
}
