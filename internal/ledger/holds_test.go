package ledger_test

import (
	"context"
	"sync"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/paygate/paygate/internal/ledger"
)

func (f *fixture) placeHold(accountID uuid.UUID, amount int64) (ledger.Hold, error) {
	var h ledger.Hold
	err := f.inTx(func(tx pgx.Tx) (err error) {
		h, err = f.store.PlaceHold(f.ctx, tx, accountID, amount, "withdrawal-"+uuid.NewString())
		return err
	})
	return h, err
}

func (f *fixture) capture(holdID, to uuid.UUID) (ledger.PostedTransaction, error) {
	var pt ledger.PostedTransaction
	err := f.inTx(func(tx pgx.Tx) (err error) {
		pt, err = f.store.CaptureHold(f.ctx, tx, holdID, to, ledger.KindWithdrawal, "w-1")
		return err
	})
	return pt, err
}

func (f *fixture) release(holdID uuid.UUID) (ledger.Hold, error) {
	var h ledger.Hold
	err := f.inTx(func(tx pgx.Tx) (err error) {
		h, err = f.store.ReleaseHold(f.ctx, tx, holdID)
		return err
	})
	return h, err
}

func TestHoldsReserveCaptureOnceAndRelease(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	clearing := f.systemAccount(ledger.CodeClearingWithdrawals)
	a := f.wallet(1000)
	b := f.wallet(0)

	h1, err := f.placeHold(a.ID, 600)
	if err != nil {
		t.Fatal(err)
	}
	if h1.Status != ledger.HoldActive || h1.Amount != 600 || h1.SettledAt != nil {
		t.Fatalf("hold = %+v", h1)
	}
	f.wantBalances(a.ID, 1000, 600)

	// Held money can be neither held again nor spent.
	_, err = f.placeHold(a.ID, 401)
	wantErr(t, err, ledger.ErrInsufficientFunds)
	_, err = f.post(ledger.KindTransfer, a.ID, b.ID, 401)
	wantErr(t, err, ledger.ErrInsufficientFunds)
	_, err = f.placeHold(a.ID, 0)
	wantErr(t, err, ledger.ErrInvalidAmount)
	_, err = f.placeHold(uuid.New(), 1)
	wantErr(t, err, ledger.ErrAccountNotFound)
	f.wantBalances(a.ID, 1000, 600)
	if total, err := f.store.TotalHeld(f.ctx, f.pool, ""); err != nil || total != 600 {
		t.Fatalf("total held = %d, %v; want 600", total, err)
	}

	// Capture moves exactly the held amount to clearing, once.
	pt, err := f.capture(h1.ID, clearing.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(pt.Entries) != 2 || pt.Entries[0].Amount != -600 || pt.Entries[0].BalanceAfter != 400 || pt.Entries[1].AccountID != clearing.ID {
		t.Fatalf("capture entries = %+v", pt.Entries)
	}
	f.wantBalances(a.ID, 400, 0)
	f.wantBalances(clearing.ID, 600, 0)
	_, err = f.capture(h1.ID, clearing.ID)
	wantErr(t, err, ledger.ErrHoldNotActive)
	_, err = f.release(h1.ID)
	wantErr(t, err, ledger.ErrHoldNotActive)
	f.wantBalances(a.ID, 400, 0)
	f.wantBalances(clearing.ID, 600, 0)
	got, err := f.store.Hold(f.ctx, f.pool, h1.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != ledger.HoldCaptured || got.SettledAt == nil || got.CaptureTransactionID == nil || *got.CaptureTransactionID != pt.ID {
		t.Fatalf("captured hold = %+v", got)
	}

	// Release gives the money back to available, once.
	h2, err := f.placeHold(a.ID, 300)
	if err != nil {
		t.Fatal(err)
	}
	f.wantBalances(a.ID, 400, 300)
	rel, err := f.release(h2.ID)
	if err != nil {
		t.Fatal(err)
	}
	if rel.Status != ledger.HoldReleased || rel.SettledAt == nil || rel.CaptureTransactionID != nil {
		t.Fatalf("released hold = %+v", rel)
	}
	f.wantBalances(a.ID, 400, 0)
	_, err = f.release(h2.ID)
	wantErr(t, err, ledger.ErrHoldNotActive)
	_, err = f.capture(h2.ID, clearing.ID)
	wantErr(t, err, ledger.ErrHoldNotActive)
	_, err = f.release(uuid.New())
	wantErr(t, err, ledger.ErrHoldNotFound)
	if _, err := f.post(ledger.KindTransfer, a.ID, b.ID, 400); err != nil {
		t.Fatalf("spending released money: %v", err)
	}
	r := f.verifyOK()
	if r.ActiveHolds != 0 {
		t.Fatalf("report counts %d active holds, want 0", r.ActiveHolds)
	}
}

func TestHoldStatusTransitionsAreGuarded(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	clearing := f.systemAccount(ledger.CodeClearingWithdrawals)
	a := f.wallet(1000)
	active, err := f.placeHold(a.ID, 100)
	if err != nil {
		t.Fatal(err)
	}
	captured, err := f.placeHold(a.ID, 100)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.capture(captured.ID, clearing.ID); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		sql  string
		id   uuid.UUID
	}{
		{"captured back to active", `UPDATE ledger_holds SET status = 'active', settled_at = NULL, capture_transaction_id = NULL WHERE id = $1`, captured.ID},
		{"captured to released", `UPDATE ledger_holds SET status = 'released', capture_transaction_id = NULL WHERE id = $1`, captured.ID},
		{"amount changed", `UPDATE ledger_holds SET amount = 1 WHERE id = $1`, active.ID},
		{"released without settled_at", `UPDATE ledger_holds SET status = 'released' WHERE id = $1`, active.ID},
		{"account changed", `UPDATE ledger_holds SET account_id = gen_random_uuid() WHERE id = $1`, active.ID},
		{"deleted", `DELETE FROM ledger_holds WHERE id = $1`, active.ID},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := f.pool.Exec(f.ctx, c.sql, c.id)
			wantPgError(t, err, "23001")
		})
	}
	// The one allowed transition still works by hand.
	f.exec(`UPDATE ledger_holds SET status = 'released', settled_at = now() WHERE id = $1`, active.ID)
}

// TestConcurrentSettlementsOfOneHold races captures and releases of one
// hold: exactly one must win, and the money must move at most once.
func TestConcurrentSettlementsOfOneHold(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	clearing := f.systemAccount(ledger.CodeClearingWithdrawals)
	a := f.wallet(1000)
	h, err := f.placeHold(a.ID, 700)
	if err != nil {
		t.Fatal(err)
	}
	const n = 8
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			errs[i] = f.db.InTx(context.Background(), func(ctx context.Context, tx pgx.Tx) error {
				var err error
				if i%2 == 0 {
					_, err = f.store.CaptureHold(ctx, tx, h.ID, clearing.ID, ledger.KindWithdrawal, "race")
				} else {
					_, err = f.store.ReleaseHold(ctx, tx, h.ID)
				}
				return err
			})
		})
	}
	wg.Wait()
	won := -1
	for i, err := range errs {
		switch {
		case err == nil:
			if won >= 0 {
				t.Fatalf("settlements %d and %d both succeeded", won, i)
			}
			won = i
		default:
			wantErr(t, err, ledger.ErrHoldNotActive)
		}
	}
	if won < 0 {
		t.Fatal("no settlement succeeded")
	}
	if won%2 == 0 {
		f.wantBalances(a.ID, 300, 0)
		f.wantBalances(clearing.ID, 700, 0)
	} else {
		f.wantBalances(a.ID, 1000, 0)
		f.wantBalances(clearing.ID, 0, 0)
	}
	f.verifyOK()
}
