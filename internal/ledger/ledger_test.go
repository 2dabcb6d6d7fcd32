package ledger_test

import (
	"context"
	"math"
	"sync"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/paygate/paygate/internal/ledger"
	"github.com/paygate/paygate/internal/platform/postgres"
)

func TestOpenWalletIsIdempotentAndRaceSafe(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	user := uuid.New()
	const n = 8
	ids := make([]uuid.UUID, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			errs[i] = f.inTx(func(tx pgx.Tx) error {
				a, err := f.store.OpenWallet(f.ctx, tx, user, currency)
				ids[i] = a.ID
				return err
			})
		})
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("open %d: %v", i, errs[i])
		}
		if ids[i] != ids[0] {
			t.Fatalf("open %d returned wallet %s, open 0 returned %s", i, ids[i], ids[0])
		}
	}
	if got := f.count(`SELECT count(*) FROM ledger_accounts WHERE owner_user_id = $1`, user); got != 1 {
		t.Fatalf("%d wallets for one user, want 1", got)
	}
	w, err := f.store.WalletOf(f.ctx, f.pool, user)
	if err != nil {
		t.Fatal(err)
	}
	if w.ID != ids[0] || w.Kind != ledger.AccountWallet || w.AllowNegative || w.Currency != currency || *w.OwnerUserID != user {
		t.Fatalf("wallet = %+v", w)
	}
	err = f.inTx(func(tx pgx.Tx) error {
		_, err := f.store.OpenWallet(f.ctx, tx, user, "USD")
		return err
	})
	wantErr(t, err, ledger.ErrCurrencyMismatch)
	_, err = f.store.WalletOf(f.ctx, f.pool, uuid.New())
	wantErr(t, err, ledger.ErrAccountNotFound)
}

func TestEnsureSystemAccountIsRaceSafe(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	const n = 8
	ids := make([]uuid.UUID, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			errs[i] = f.inTx(func(tx pgx.Tx) error {
				a, err := f.store.EnsureSystemAccount(f.ctx, tx, ledger.CodeClearingWithdrawals, "")
				ids[i] = a.ID
				return err
			})
		})
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil || ids[i] != ids[0] {
			t.Fatalf("ensure %d: %s, %v (first %s)", i, ids[i], errs[i], ids[0])
		}
	}
	a, err := f.store.Account(f.ctx, f.pool, ids[0])
	if err != nil {
		t.Fatal(err)
	}
	if a.Kind != ledger.AccountSystem || !a.AllowNegative || a.Code != ledger.CodeClearingWithdrawals || a.OwnerUserID != nil {
		t.Fatalf("system account = %+v", a)
	}
}

func TestPostTransferMovesMoneyAndRecordsEntries(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	a := f.wallet(1000)
	b := f.wallet(0)
	pt, err := f.post(ledger.KindTransfer, a.ID, b.ID, 300)
	if err != nil {
		t.Fatal(err)
	}
	f.wantBalances(a.ID, 700, 0)
	f.wantBalances(b.ID, 300, 0)
	f.wantBalances(f.funding.ID, -1000, 0)
	if len(pt.Entries) != 2 || pt.Entries[0].AccountID != a.ID || pt.Entries[0].Amount != -300 || pt.Entries[0].BalanceAfter != 700 ||
		pt.Entries[1].AccountID != b.ID || pt.Entries[1].Amount != 300 || pt.Entries[1].BalanceAfter != 300 {
		t.Fatalf("entries = %+v", pt.Entries)
	}
	got, err := f.store.Transaction(f.ctx, f.pool, pt.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Kind != ledger.KindTransfer || got.Reference != pt.Reference || got.Currency != currency || got.Reverses != nil || len(got.Entries) != 2 {
		t.Fatalf("transaction = %+v", got)
	}
	for i := range got.Entries {
		if got.Entries[i].ID != pt.Entries[i].ID || got.Entries[i].BalanceAfter != pt.Entries[i].BalanceAfter {
			t.Fatalf("stored entry %d = %+v, posted %+v", i, got.Entries[i], pt.Entries[i])
		}
	}
	_, err = f.store.Transaction(f.ctx, f.pool, uuid.New())
	wantErr(t, err, ledger.ErrTransactionNotFound)
	f.verifyOK()
}

func TestPostRejectsInvalidTransactions(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	a := f.wallet(1000)
	b := f.wallet(0)
	var usd ledger.Account
	f.mustTx(func(tx pgx.Tx) (err error) {
		usd, err = f.store.OpenWallet(f.ctx, tx, uuid.New(), "USD")
		return err
	})
	entriesBefore := f.count(`SELECT count(*) FROM ledger_entries`)
	cases := []struct {
		name string
		t    ledger.Transaction
		want error
	}{
		{"unbalanced", ledger.Transaction{Kind: "transfer", Postings: []ledger.Posting{{a.ID, -100}, {b.ID, 99}}}, ledger.ErrUnbalanced},
		{"one posting", ledger.Transaction{Kind: "transfer", Postings: []ledger.Posting{{a.ID, 0}}}, ledger.ErrInvalidTransaction},
		{"no kind", ledger.Transaction{Postings: []ledger.Posting{{a.ID, -1}, {b.ID, 1}}}, ledger.ErrInvalidTransaction},
		{"zero amount", ledger.Transaction{Kind: "transfer", Postings: []ledger.Posting{{a.ID, 0}, {b.ID, 0}}}, ledger.ErrInvalidAmount},
		{"same account twice", ledger.Transaction{Kind: "transfer", Postings: []ledger.Posting{{a.ID, -1}, {a.ID, 1}}}, ledger.ErrInvalidTransaction},
		{"unknown account", ledger.Transaction{Kind: "transfer", Postings: []ledger.Posting{{a.ID, -1}, {uuid.New(), 1}}}, ledger.ErrAccountNotFound},
		{"other currency", ledger.Transaction{Kind: "transfer", Postings: []ledger.Posting{{a.ID, -1}, {usd.ID, 1}}}, ledger.ErrCurrencyMismatch},
		{"bad currency", ledger.Transaction{Kind: "transfer", Currency: "idr", Postings: []ledger.Posting{{a.ID, -1}, {b.ID, 1}}}, ledger.ErrInvalidCurrency},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := f.inTx(func(tx pgx.Tx) error {
				_, err := f.store.Post(f.ctx, tx, c.t)
				return err
			})
			wantErr(t, err, c.want)
		})
	}
	if got := f.count(`SELECT count(*) FROM ledger_entries`); got != entriesBefore {
		t.Fatalf("%d entries after refused postings, want %d", got, entriesBefore)
	}
	f.wantBalances(a.ID, 1000, 0)
	f.wantBalances(b.ID, 0, 0)
	f.verifyOK()
}

func TestDeferredTriggerRejectsUnbalancedCommit(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	a := f.wallet(1000)
	b := f.wallet(0)
	// commit inserts a transaction with the given entries by hand,
	// bypassing Post, and returns the commit's error; or an entry's, when
	// refused on insert (an account of another currency).
	commit := func(t *testing.T, cur string, entries ...ledger.Posting) error {
		t.Helper()
		tx, err := f.pool.Begin(f.ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(f.ctx)
		id := uuid.New()
		if _, err := tx.Exec(f.ctx, `INSERT INTO ledger_transactions (id, kind, currency) VALUES ($1, 'manual', $2)`, id, cur); err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			// Each statement that keeps to the currency succeeds: the sum
			// is checked at COMMIT.
			if _, err := tx.Exec(f.ctx, `INSERT INTO ledger_entries (transaction_id, account_id, amount, balance_after) VALUES ($1, $2, $3, 0)`,
				id, e.AccountID, e.Amount); err != nil {
				return err
			}
		}
		return tx.Commit(f.ctx)
	}
	t.Run("one entry", func(t *testing.T) {
		wantPgError(t, commit(t, currency, ledger.Posting{AccountID: b.ID, Amount: 100}), "23514", "ledger_transactions_balanced")
	})
	t.Run("entries not summing to zero", func(t *testing.T) {
		wantPgError(t, commit(t, currency, ledger.Posting{AccountID: a.ID, Amount: -100}, ledger.Posting{AccountID: b.ID, Amount: 101}),
			"23514", "ledger_transactions_balanced")
	})
	t.Run("no entries", func(t *testing.T) {
		wantPgError(t, commit(t, currency), "23514", "ledger_transactions_balanced")
	})
	t.Run("other currency", func(t *testing.T) {
		wantPgError(t, commit(t, "USD", ledger.Posting{AccountID: a.ID, Amount: -1}, ledger.Posting{AccountID: b.ID, Amount: 1}),
			"23514", "ledger_transactions_one_currency")
	})
	t.Run("balanced commits", func(t *testing.T) {
		if err := commit(t, currency, ledger.Posting{AccountID: a.ID, Amount: -5}, ledger.Posting{AccountID: b.ID, Amount: 5}); err != nil {
			t.Fatalf("balanced manual transaction refused: %v", err)
		}
	})
	if got := f.count(`SELECT count(*) FROM ledger_transactions WHERE kind = 'manual'`); got != 1 {
		t.Fatalf("%d manual transactions committed, want only the balanced one", got)
	}
}

func TestEntriesAndTransactionsAreImmutable(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	a := f.wallet(1000)
	pt := f.topUp(a.ID, 50)
	id := []any{pt.ID}
	for _, c := range []struct {
		sql  string
		args []any
	}{
		{`UPDATE ledger_entries SET amount = amount + 1 WHERE transaction_id = $1`, id},
		{`UPDATE ledger_entries SET balance_after = 0 WHERE transaction_id = $1`, id},
		{`DELETE FROM ledger_entries WHERE transaction_id = $1`, id},
		{`UPDATE ledger_transactions SET reference = 'x' WHERE id = $1`, id},
		{`DELETE FROM ledger_transactions WHERE id = $1`, id},
		{`TRUNCATE ledger_entries CASCADE`, nil},
		{`TRUNCATE ledger_transactions CASCADE`, nil},
		{`DELETE FROM ledger_accounts WHERE id = $1`, []any{f.funding.ID}},
		{`UPDATE ledger_accounts SET currency = 'USD' WHERE id = $1`, []any{a.ID}},
	} {
		t.Run(c.sql, func(t *testing.T) {
			_, err := f.pool.Exec(f.ctx, c.sql, c.args...)
			wantPgError(t, err, "23001")
		})
	}
	if got := f.count(`SELECT count(*) FROM ledger_entries WHERE transaction_id = $1`, pt.ID); got != 2 {
		t.Fatalf("%d entries left, want 2", got)
	}
	f.verifyOK()
}

func TestAmountOverflowIsRefused(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	a := f.wallet(math.MaxInt64 - 10)
	b := f.wallet(0)
	// The wallet's balance would pass MaxInt64.
	_, err := f.post(ledger.KindTopUp, f.funding.ID, a.ID, 11)
	wantErr(t, err, ledger.ErrAmountOverflow)
	// The funding account is at -(MaxInt64-10): 11 more fit exactly (its
	// balance becomes MinInt64), 1 more does not.
	if _, err := f.post(ledger.KindTopUp, f.funding.ID, b.ID, 11); err != nil {
		t.Fatalf("top-up to MinInt64: %v", err)
	}
	f.wantBalances(f.funding.ID, math.MinInt64, 0)
	_, err = f.post(ledger.KindTopUp, f.funding.ID, b.ID, 1)
	wantErr(t, err, ledger.ErrAmountOverflow)
	// The postings themselves overflow: two credits of MaxInt64.
	c := f.wallet(0)
	err = f.inTx(func(tx pgx.Tx) error {
		_, err := f.store.Post(f.ctx, tx, ledger.Transaction{Kind: "x", Postings: []ledger.Posting{
			{b.ID, math.MaxInt64}, {c.ID, math.MaxInt64}, {a.ID, -1},
		}})
		return err
	})
	wantErr(t, err, ledger.ErrAmountOverflow)
	// Partial sums that wrap around to zero are caught regardless of order.
	err = f.inTx(func(tx pgx.Tx) error {
		_, err := f.store.Post(f.ctx, tx, ledger.Transaction{Kind: "x", Postings: []ledger.Posting{
			{b.ID, math.MaxInt64}, {c.ID, 1}, {a.ID, math.MinInt64},
		}})
		return err
	})
	wantErr(t, err, ledger.ErrAmountOverflow)
	f.wantBalances(a.ID, math.MaxInt64-10, 0)
	f.wantBalances(b.ID, 11, 0)
	f.verifyOK()
}

func TestWalletCannotGoNegative(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	a := f.wallet(100)
	b := f.wallet(0)
	_, err := f.post(ledger.KindTransfer, a.ID, b.ID, 101)
	wantErr(t, err, ledger.ErrInsufficientFunds)
	f.wantBalances(a.ID, 100, 0)
	f.wantBalances(b.ID, 0, 0)
	if _, err := f.post(ledger.KindTransfer, a.ID, b.ID, 100); err != nil {
		t.Fatalf("spending the whole balance: %v", err)
	}
	f.wantBalances(a.ID, 0, 0)

	// The CHECK constraints are the last line of defence against SQL that
	// bypasses the Go code.
	// A negative balance breaks both constraints (held >= 0); PostgreSQL
	// names whichever it checks first.
	_, err = f.pool.Exec(f.ctx, `UPDATE ledger_accounts SET balance = -1 WHERE id = $1`, a.ID)
	wantPgError(t, err, "23514", "ledger_accounts_non_negative", "ledger_accounts_available_non_negative")
	_, err = f.pool.Exec(f.ctx, `UPDATE ledger_accounts SET held = 1 WHERE id = $1`, a.ID)
	wantPgError(t, err, "23514", "ledger_accounts_available_non_negative")
	_, err = f.pool.Exec(f.ctx, `UPDATE ledger_accounts SET held = -1 WHERE id = $1`, f.funding.ID)
	wantPgError(t, err, "23514", "ledger_accounts_held_check")
	f.verifyOK()
}

// TestCheckViolationMapsToInsufficientFunds sabotages the balance update
// with a trigger, so that the app-level check passes but the CHECK
// constraint fires, and expects Post to report INSUFFICIENT_FUNDS.
func TestCheckViolationMapsToInsufficientFunds(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	a := f.wallet(100)
	b := f.wallet(0)
	f.exec(`CREATE FUNCTION sabotage() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN IF NEW.kind = 'wallet' AND NEW.balance < OLD.balance THEN NEW.balance := -1; END IF; RETURN NEW; END $$`)
	f.exec(`CREATE TRIGGER sabotage BEFORE UPDATE ON ledger_accounts FOR EACH ROW EXECUTE FUNCTION sabotage()`)
	_, err := f.post(ledger.KindTransfer, a.ID, b.ID, 10)
	wantErr(t, err, ledger.ErrInsufficientFunds)
	wantPgError(t, err, "23514", "ledger_accounts_non_negative", "ledger_accounts_available_non_negative")
	f.wantBalances(a.ID, 100, 0)
}

// TestSerializationFailureIsNotSwallowed books under REPEATABLE READ on an
// account changed after the transaction's snapshot: PostgreSQL answers
// 40001, which must reach InTx so that it retries (and then succeeds).
func TestSerializationFailureIsNotSwallowed(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	a := f.wallet(100)
	b := f.wallet(0)
	attempts := 0
	var firstErr error
	err := f.db.InTxWith(f.ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead}, func(ctx context.Context, tx pgx.Tx) error {
		attempts++
		if _, err := f.store.Balance(ctx, tx, a.ID); err != nil { // takes the snapshot
			return err
		}
		if attempts == 1 {
			f.topUp(a.ID, 5) // commits after the snapshot
		}
		_, err := f.store.Post(ctx, tx, ledger.Transaction{Kind: ledger.KindTransfer,
			Postings: []ledger.Posting{{a.ID, -10}, {b.ID, 10}}})
		if attempts == 1 {
			firstErr = err
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if attempts != 2 || !postgres.Retryable(firstErr) {
		t.Fatalf("attempts = %d, first error %v: want a retried serialization failure", attempts, firstErr)
	}
	f.wantBalances(a.ID, 95, 0)
	f.verifyOK()
}
