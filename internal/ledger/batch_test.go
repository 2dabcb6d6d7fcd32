package ledger_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/paygate/paygate/internal/ledger"
)

// TestPlanLockedRefusesOnlyTheFailingTransaction books a batch in which the
// third transfer overdraws its wallet, one names no account and one is
// unbalanced: those three are refused and write nothing, the others are
// booked against the balances the earlier ones left (the fourth spends
// money the first brought), every balance_after chain holds, and the
// ledger verifies.
func TestPlanLockedRefusesOnlyTheFailingTransaction(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	a, b, c := f.wallet(1000), f.wallet(0), f.wallet(50)
	transfer := func(from, to uuid.UUID, amount int64) ledger.Transaction {
		return ledger.Transaction{Kind: ledger.KindTransfer, Reference: uuid.NewString(),
			Postings: []ledger.Posting{{AccountID: from, Amount: -amount}, {AccountID: to, Amount: amount}}}
	}
	ts := []ledger.Transaction{
		transfer(a.ID, b.ID, 600),     // a 400, b 600
		transfer(b.ID, c.ID, 100),     // b 500, c 150
		transfer(c.ID, a.ID, 151),     // refused: c holds 150
		transfer(b.ID, a.ID, 500),     // b 0, a 900: money the first brought
		transfer(a.ID, uuid.New(), 1), // refused: no such account
		{Kind: ledger.KindTransfer, Postings: []ledger.Posting{{AccountID: a.ID, Amount: -5}, {AccountID: b.ID, Amount: 4}}}, // unbalanced
		transfer(c.ID, b.ID, 150), // c 0, b 150
	}
	var posted []ledger.PostedTransaction
	var errs []error
	f.mustTx(func(tx pgx.Tx) (err error) {
		posted, errs, err = f.postMany(tx, owners(a, b, c), ts)
		return err
	})
	wantErr := []error{nil, nil, ledger.ErrInsufficientFunds, nil, ledger.ErrAccountNotFound, ledger.ErrUnbalanced, nil}
	for i, want := range wantErr {
		if (want == nil) != (errs[i] == nil) || (want != nil && !errors.Is(errs[i], want)) {
			t.Fatalf("transaction %d: err %v, want %v", i, errs[i], want)
		}
		if want == nil && (posted[i].ID == uuid.Nil || len(posted[i].Entries) != 2) {
			t.Fatalf("transaction %d not booked: %+v", i, posted[i])
		}
	}
	if got := posted[3].Entries[1].BalanceAfter; got != 900 {
		t.Fatalf("a's balance after the fourth: %d, want 900", got)
	}
	for acc, want := range map[uuid.UUID]int64{a.ID: 900, b.ID: 150, c.ID: 0} {
		if got := f.balances(acc).Balance; got != want {
			t.Errorf("balance of %s = %d, want %d", acc, got, want)
		}
	}
	var n int
	if err := f.pool.QueryRow(f.ctx, "SELECT count(*) FROM ledger_transactions WHERE kind = 'transfer'").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 4 {
		t.Fatalf("%d transfer transactions, want 4", n)
	}
	// What the plan reports is what the rows hold: the database's entry
	// ids and the transaction's timestamp on both kinds of row.
	for i, p := range posted {
		if errs[i] != nil {
			continue
		}
		var txAt time.Time
		if err := f.pool.QueryRow(f.ctx, "SELECT created_at FROM ledger_transactions WHERE id = $1", p.ID).Scan(&txAt); err != nil {
			t.Fatal(err)
		}
		if !txAt.Equal(p.CreatedAt) || p.CreatedAt.IsZero() {
			t.Fatalf("transaction %d: created_at %s in the ledger, %s reported", i, txAt, p.CreatedAt)
		}
		for _, e := range p.Entries {
			var acc uuid.UUID
			var at time.Time
			if err := f.pool.QueryRow(f.ctx, "SELECT account_id, created_at FROM ledger_entries WHERE id = $1 AND transaction_id = $2",
				e.ID, p.ID).Scan(&acc, &at); err != nil {
				t.Fatalf("transaction %d: entry %d: %v", i, e.ID, err)
			}
			if acc != e.AccountID || !at.Equal(p.CreatedAt) {
				t.Fatalf("transaction %d: entry %d is on %s at %s, reported on %s at %s", i, e.ID, acc, at, e.AccountID, p.CreatedAt)
			}
		}
	}
	f.verifyOK()
}

// TestABatchIsAllOrNothingWithItsTransaction books a batch and rolls
// its transaction back, as a crash before the commit would: nothing of
// any of its transactions is left, and the same batch then books whole.
func TestABatchIsAllOrNothingWithItsTransaction(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	a, b := f.wallet(100), f.wallet(100)
	ts := []ledger.Transaction{
		{Kind: ledger.KindTransfer, Postings: []ledger.Posting{{AccountID: a.ID, Amount: -10}, {AccountID: b.ID, Amount: 10}}},
		{Kind: ledger.KindTransfer, Postings: []ledger.Posting{{AccountID: b.ID, Amount: -30}, {AccountID: a.ID, Amount: 30}}},
	}
	crash := errors.New("crash before commit")
	err := f.inTx(func(tx pgx.Tx) error {
		if _, _, err := f.postMany(tx, owners(a, b), ts); err != nil {
			return err
		}
		return crash
	})
	if !errors.Is(err, crash) {
		t.Fatal(err)
	}
	if f.balances(a.ID).Balance != 100 || f.balances(b.ID).Balance != 100 {
		t.Fatalf("balances moved by a rolled-back batch: %d %d", f.balances(a.ID).Balance, f.balances(b.ID).Balance)
	}
	var n int
	if err := f.pool.QueryRow(f.ctx, "SELECT count(*) FROM ledger_transactions WHERE kind = 'transfer'").Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d transactions left by a rolled-back batch (%v)", n, err)
	}
	f.mustTx(func(tx pgx.Tx) error {
		_, errs, err := f.postMany(tx, owners(a, b), ts)
		if err == nil && (errs[0] != nil || errs[1] != nil) {
			err = errors.Join(errs...)
		}
		return err
	})
	if f.balances(a.ID).Balance != 120 || f.balances(b.ID).Balance != 80 {
		t.Fatalf("balances after the batch: %d %d", f.balances(a.ID).Balance, f.balances(b.ID).Balance)
	}
	f.verifyOK()
}

// postMany books ts in tx as the transfer batch does: the wallets of
// owners locked in one statement, the batch planned against them, and its
// writes sent in one more round trip.
func (f *fixture) postMany(tx pgx.Tx, owners []uuid.UUID, ts []ledger.Transaction) ([]ledger.PostedTransaction, []error, error) {
	b := &pgx.Batch{}
	locks := f.store.QueueLockWallets(b, owners)
	if err := tx.SendBatch(f.ctx, b).Close(); err != nil {
		return nil, nil, err
	}
	plan, errs, err := f.store.PlanLocked(locks, ts)
	if err != nil {
		return nil, nil, err
	}
	b = &pgx.Batch{}
	plan.Queue(b)
	if b.Len() > 0 {
		if err := tx.SendBatch(f.ctx, b).Close(); err != nil {
			return nil, nil, err
		}
	}
	return plan.Posted, errs, nil
}

// owners returns the owners of wallets.
func owners(wallets ...ledger.Account) []uuid.UUID {
	out := make([]uuid.UUID, len(wallets))
	for i, w := range wallets {
		out[i] = *w.OwnerUserID
	}
	return out
}

// TestWalletLocksArePlannedOnce: planning consumes the locked balances, so
// a second plan against the same locks, which would book against balances
// the first already spent, is refused.
func TestWalletLocksArePlannedOnce(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	a, b := f.wallet(100), f.wallet(0)
	ts := []ledger.Transaction{{Kind: ledger.KindTransfer, Postings: []ledger.Posting{{AccountID: a.ID, Amount: -100}, {AccountID: b.ID, Amount: 100}}}}
	err := f.inTx(func(tx pgx.Tx) error {
		batch := &pgx.Batch{}
		locks := f.store.QueueLockWallets(batch, owners(a, b))
		if err := tx.SendBatch(f.ctx, batch).Close(); err != nil {
			return err
		}
		if _, errs, err := f.store.PlanLocked(locks, ts); err != nil || errs[0] != nil {
			return errors.Join(err, errs[0])
		}
		if _, _, err := f.store.PlanLocked(locks, slices.Clone(ts)); err == nil {
			t.Error("a second plan against the same locks was accepted")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
