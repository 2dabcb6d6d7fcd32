package ledger_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/paygate/paygate/internal/ledger"
)

func (f *fixture) reverse(id uuid.UUID) (ledger.PostedTransaction, error) {
	var pt ledger.PostedTransaction
	err := f.inTx(func(tx pgx.Tx) (err error) {
		pt, err = f.store.Reverse(f.ctx, tx, id, ledger.KindReversal, "refund-"+id.String())
		return err
	})
	return pt, err
}

func TestReverseOnce(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	a := f.wallet(1000)
	b := f.wallet(0)
	orig, err := f.post(ledger.KindTransfer, a.ID, b.ID, 250)
	if err != nil {
		t.Fatal(err)
	}
	rev, err := f.reverse(orig.ID)
	if err != nil {
		t.Fatal(err)
	}
	if rev.Reverses == nil || *rev.Reverses != orig.ID || rev.Kind != ledger.KindReversal || len(rev.Entries) != 2 {
		t.Fatalf("reversal = %+v", rev)
	}
	for i, e := range rev.Entries {
		if e.AccountID != orig.Entries[i].AccountID || e.Amount != -orig.Entries[i].Amount {
			t.Fatalf("reversal entry %d = %+v, original %+v", i, e, orig.Entries[i])
		}
	}
	f.wantBalances(a.ID, 1000, 0)
	f.wantBalances(b.ID, 0, 0)

	_, err = f.reverse(orig.ID)
	wantErr(t, err, ledger.ErrAlreadyReversed)
	_, err = f.reverse(rev.ID)
	wantErr(t, err, ledger.ErrNotReversible)
	_, err = f.reverse(uuid.New())
	wantErr(t, err, ledger.ErrTransactionNotFound)

	// Post with Reverses set is refused the same way.
	err = f.inTx(func(tx pgx.Tx) error {
		_, err := f.store.Post(f.ctx, tx, ledger.Transaction{Kind: ledger.KindReversal, Reverses: &orig.ID,
			Postings: []ledger.Posting{{a.ID, -1}, {b.ID, 1}}})
		return err
	})
	wantErr(t, err, ledger.ErrAlreadyReversed)
	f.wantBalances(a.ID, 1000, 0)
	f.verifyOK()
}

func TestReversalThatWouldOverdrawIsRefused(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	a := f.wallet(0)
	b := f.wallet(0)
	topUp := f.topUp(a.ID, 100)
	if _, err := f.post(ledger.KindTransfer, a.ID, b.ID, 80); err != nil {
		t.Fatal(err)
	}
	// The topped-up money was spent: taking it back would leave -80.
	_, err := f.reverse(topUp.ID)
	wantErr(t, err, ledger.ErrInsufficientFunds)
	f.wantBalances(a.ID, 20, 0)
	if n := f.count(`SELECT count(*) FROM ledger_transactions WHERE reverses = $1`, topUp.ID); n != 0 {
		t.Fatalf("%d reversals booked, want 0", n)
	}
	f.verifyOK()
}

// TestConcurrentReversalsBookOne holds one reversal uncommitted while a
// second starts: the second waits on the account locks and, once the first
// commits, must answer ALREADY_REVERSED (not INSUFFICIENT_FUNDS, though b
// no longer has the money).
func TestConcurrentReversalsBookOne(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	a := f.wallet(1000)
	b := f.wallet(0)
	orig, err := f.post(ledger.KindTransfer, a.ID, b.ID, 250)
	if err != nil {
		t.Fatal(err)
	}
	tx1, err := f.pool.Begin(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx1.Rollback(f.ctx)
	if _, err := f.store.Reverse(f.ctx, tx1, orig.ID, ledger.KindReversal, "first"); err != nil {
		t.Fatal(err)
	}
	second := make(chan error, 1)
	go func() {
		second <- f.db.InTx(context.Background(), func(ctx context.Context, tx pgx.Tx) error {
			_, err := f.store.Reverse(ctx, tx, orig.ID, ledger.KindReversal, "second")
			return err
		})
	}()
	f.waitForLockWait(t)
	if err := tx1.Commit(f.ctx); err != nil {
		t.Fatal(err)
	}
	wantErr(t, <-second, ledger.ErrAlreadyReversed)
	if n := f.count(`SELECT count(*) FROM ledger_transactions WHERE reverses = $1`, orig.ID); n != 1 {
		t.Fatalf("%d reversals booked, want 1", n)
	}
	f.wantBalances(a.ID, 1000, 0)
	f.verifyOK()
}

// waitForLockWait waits until some session of the test database waits for
// a lock.
func (f *fixture) waitForLockWait(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for f.count(`SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no session ever waited for a lock")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestUniqueReversesDecidesRaces reverses one transaction twice through
// disjoint accounts, so that the account locks do not serialise the two:
// the second cannot see the first, uncommitted reversal, waits on the
// UNIQUE index instead and, once the first commits, must fail with
// ALREADY_REVERSED mapped from the unique violation.
func TestUniqueReversesDecidesRaces(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	a := f.wallet(1000)
	b := f.wallet(0)
	c := f.wallet(1000)
	d := f.wallet(0)
	orig, err := f.post(ledger.KindTransfer, a.ID, b.ID, 250)
	if err != nil {
		t.Fatal(err)
	}
	tx1, err := f.pool.Begin(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx1.Rollback(f.ctx)
	if _, err := f.store.Reverse(f.ctx, tx1, orig.ID, ledger.KindReversal, "first"); err != nil {
		t.Fatal(err)
	}
	second := make(chan error, 1)
	go func() {
		second <- f.db.InTx(context.Background(), func(ctx context.Context, tx pgx.Tx) error {
			_, err := f.store.Post(ctx, tx, ledger.Transaction{Kind: ledger.KindReversal, Reverses: &orig.ID,
				Postings: []ledger.Posting{{c.ID, -1}, {d.ID, 1}}})
			return err
		})
	}()
	f.waitForLockWait(t)
	if err := tx1.Commit(f.ctx); err != nil {
		t.Fatal(err)
	}
	err = <-second
	wantErr(t, err, ledger.ErrAlreadyReversed)
	wantPgError(t, err, "23505", "ledger_transactions_reverses_key")
	f.wantBalances(c.ID, 1000, 0)
	f.verifyOK()
}
