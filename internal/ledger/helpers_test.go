package ledger_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/paygate/paygate/internal/ledger"
	"github.com/paygate/paygate/internal/platform/pgtest"
	"github.com/paygate/paygate/internal/platform/postgres"
)

const currency = "IDR"

type fixture struct {
	t       testing.TB
	ctx     context.Context
	pool    *pgxpool.Pool
	db      *postgres.DB
	store   *ledger.Store
	funding ledger.Account
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	return newFixtureURL(t, pgtest.NewDatabase(t))
}

func newFixtureURL(t testing.TB, url string) *fixture {
	t.Helper()
	pool := pgtest.NewPool(t, url)
	f := &fixture{t: t, ctx: context.Background(), pool: pool, db: postgres.NewDB(pool, 5, nil), store: ledger.New(currency)}
	f.funding = f.systemAccount(ledger.FundingCode("ovo"))
	return f
}

// inTx runs fn in a transaction through postgres.DB.InTx and returns its
// error (fn's or the commit's).
func (f *fixture) inTx(fn func(tx pgx.Tx) error) error {
	return f.db.InTx(f.ctx, func(ctx context.Context, tx pgx.Tx) error { return fn(tx) })
}

func (f *fixture) mustTx(fn func(tx pgx.Tx) error) {
	f.t.Helper()
	if err := f.inTx(fn); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) systemAccount(code string) ledger.Account {
	f.t.Helper()
	var a ledger.Account
	f.mustTx(func(tx pgx.Tx) (err error) {
		a, err = f.store.EnsureSystemAccount(f.ctx, tx, code, currency)
		return err
	})
	return a
}

// wallet opens a wallet for a new user and tops it up by amount from the
// funding account (no top-up when amount is 0).
func (f *fixture) wallet(amount int64) ledger.Account {
	f.t.Helper()
	var a ledger.Account
	f.mustTx(func(tx pgx.Tx) (err error) {
		a, err = f.store.OpenWallet(f.ctx, tx, uuid.New(), currency)
		return err
	})
	if amount > 0 {
		f.topUp(a.ID, amount)
	}
	return a
}

func (f *fixture) topUp(accountID uuid.UUID, amount int64) ledger.PostedTransaction {
	f.t.Helper()
	pt, err := f.post(ledger.KindTopUp, f.funding.ID, accountID, amount)
	if err != nil {
		f.t.Fatalf("top up %d: %v", amount, err)
	}
	return pt
}

// post moves amount from one account to another in its own transaction.
func (f *fixture) post(kind string, from, to uuid.UUID, amount int64) (ledger.PostedTransaction, error) {
	var pt ledger.PostedTransaction
	err := f.inTx(func(tx pgx.Tx) (err error) {
		pt, err = f.store.Post(f.ctx, tx, ledger.Transaction{
			Kind: kind, Reference: uuid.NewString(),
			Postings: []ledger.Posting{{AccountID: from, Amount: -amount}, {AccountID: to, Amount: amount}},
		})
		return err
	})
	return pt, err
}

func (f *fixture) balances(id uuid.UUID) ledger.Balances {
	f.t.Helper()
	b, err := f.store.Balance(f.ctx, f.pool, id)
	if err != nil {
		f.t.Fatal(err)
	}
	return b
}

func (f *fixture) wantBalances(id uuid.UUID, balance, held int64) {
	f.t.Helper()
	b := f.balances(id)
	if b.Balance != balance || b.Held != held || b.Available != balance-held {
		f.t.Fatalf("account %s: balance %d held %d available %d, want %d/%d/%d",
			id, b.Balance, b.Held, b.Available, balance, held, balance-held)
	}
}

func (f *fixture) verifyOK() ledger.Report {
	f.t.Helper()
	r, err := f.store.Verify(f.ctx, f.pool)
	if err != nil {
		f.t.Fatal(err)
	}
	if !r.OK() {
		f.t.Fatalf("ledger inconsistent: %v", r.Violations)
	}
	return r
}

func (f *fixture) exec(sql string, args ...any) {
	f.t.Helper()
	if _, err := f.pool.Exec(f.ctx, sql, args...); err != nil {
		f.t.Fatalf("%s: %v", sql, err)
	}
}

func (f *fixture) count(sql string, args ...any) int64 {
	f.t.Helper()
	var n int64
	if err := f.pool.QueryRow(f.ctx, sql, args...).Scan(&n); err != nil {
		f.t.Fatalf("%s: %v", sql, err)
	}
	return n
}

func wantErr(t testing.TB, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("error = %v, want %v", err, target)
	}
}

// wantPgError asserts err carries a PostgreSQL error with SQLSTATE code
// and, when constraints are given, one of those constraint names.
func wantPgError(t testing.TB, err error, code string, constraints ...string) {
	t.Helper()
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		t.Fatalf("error = %v, want PostgreSQL error %s", err, code)
	}
	if pe.Code != code || (len(constraints) > 0 && !slices.Contains(constraints, pe.ConstraintName)) {
		t.Fatalf("PostgreSQL error %s (%s) %q, want %s %v", pe.Code, pe.ConstraintName, pe.Message, code, constraints)
	}
}
