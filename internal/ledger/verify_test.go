package ledger_test

import (
	"slices"
	"testing"

	"github.com/google/uuid"

	"github.com/paygate/paygate/internal/ledger"
)

// healthyLedger books a bit of everything: top-ups, a transfer, a captured
// hold, an active hold, a released hold and a reversal.
type healthyLedger struct {
	a, b, clearing ledger.Account
	transfer       ledger.PostedTransaction
}

func newHealthyLedger(t *testing.T, f *fixture) healthyLedger {
	t.Helper()
	h := healthyLedger{clearing: f.systemAccount(ledger.CodeClearingWithdrawals), a: f.wallet(1000), b: f.wallet(500)}
	var err error
	if h.transfer, err = f.post(ledger.KindTransfer, h.a.ID, h.b.ID, 300); err != nil {
		t.Fatal(err)
	}
	captured, err := f.placeHold(h.b.ID, 200)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.capture(captured.ID, h.clearing.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := f.placeHold(h.b.ID, 100); err != nil {
		t.Fatal(err)
	}
	released, err := f.placeHold(h.a.ID, 50)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.release(released.ID); err != nil {
		t.Fatal(err)
	}
	extra, err := f.post(ledger.KindTransfer, h.a.ID, h.b.ID, 10)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.reverse(extra.ID); err != nil {
		t.Fatal(err)
	}
	return h
}

func TestVerifyPassesOnAHealthyLedger(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	h := newHealthyLedger(t, f)
	r := f.verifyOK()
	// Accounts: funding, clearing, a, b. Transactions: 2 top-ups, transfer,
	// capture, transfer, reversal.
	if r.Accounts != 4 || r.Transactions != 6 || r.Entries != 12 || r.ActiveHolds != 1 {
		t.Fatalf("report counts = %+v", r)
	}
	f.wantBalances(h.a.ID, 700, 0)
	f.wantBalances(h.b.ID, 600, 100)
	f.wantBalances(h.clearing.ID, 200, 0)
	f.wantBalances(f.funding.ID, -1500, 0)
}

func TestVerifyReportsEachViolation(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		// corrupt breaks the healthy ledger with raw SQL and returns the
		// violation that Verify must report (kind and ids; figures when
		// want has them).
		corrupt func(f *fixture, h healthyLedger) ledger.Violation
	}{
		{"entry amount changed", func(f *fixture, h healthyLedger) ledger.Violation {
			f.exec(`ALTER TABLE ledger_entries DISABLE TRIGGER ALL`)
			f.exec(`UPDATE ledger_entries SET amount = amount - 1 WHERE transaction_id = $1 AND account_id = $2`, h.transfer.ID, h.b.ID)
			return ledger.Violation{Kind: ledger.ViolationUnbalanced, TransactionID: &h.transfer.ID, Got: "-1", Want: "0"}
		}},
		{"transaction without entries", func(f *fixture, h healthyLedger) ledger.Violation {
			f.exec(`ALTER TABLE ledger_transactions DISABLE TRIGGER ALL`)
			id := uuid.New()
			f.exec(`INSERT INTO ledger_transactions (id, kind, currency) VALUES ($1, 'ghost', 'IDR')`, id)
			return ledger.Violation{Kind: ledger.ViolationTooFewEntries, TransactionID: &id, Got: "0"}
		}},
		{"one-legged transaction", func(f *fixture, h healthyLedger) ledger.Violation {
			f.exec(`ALTER TABLE ledger_entries DISABLE TRIGGER ALL`)
			f.exec(`DELETE FROM ledger_entries WHERE transaction_id = $1 AND account_id = $2`, h.transfer.ID, h.b.ID)
			return ledger.Violation{Kind: ledger.ViolationTooFewEntries, TransactionID: &h.transfer.ID, Got: "1"}
		}},
		{"account balance changed", func(f *fixture, h healthyLedger) ledger.Violation {
			f.exec(`UPDATE ledger_accounts SET balance = balance + 5 WHERE id = $1`, h.clearing.ID)
			return ledger.Violation{Kind: ledger.ViolationBalanceMismatch, AccountID: &h.clearing.ID, Got: "205", Want: "200"}
		}},
		{"latest balance_after differs from balance", func(f *fixture, h healthyLedger) ledger.Violation {
			f.exec(`UPDATE ledger_accounts SET balance = balance + 5 WHERE id = $1`, h.clearing.ID)
			return ledger.Violation{Kind: ledger.ViolationLatestBalanceAfter, AccountID: &h.clearing.ID, Got: "205", Want: "200"}
		}},
		{"money not conserved", func(f *fixture, h healthyLedger) ledger.Violation {
			f.exec(`UPDATE ledger_accounts SET balance = balance + 5 WHERE id = $1`, h.clearing.ID)
			return ledger.Violation{Kind: ledger.ViolationMoneyNotConserved, Currency: currency, Got: "5", Want: "0"}
		}},
		{"balance_after chain broken", func(f *fixture, h healthyLedger) ledger.Violation {
			f.exec(`ALTER TABLE ledger_entries DISABLE TRIGGER ALL`)
			var id int64
			if err := f.pool.QueryRow(f.ctx, `UPDATE ledger_entries SET balance_after = balance_after + 1
				WHERE transaction_id = $1 AND account_id = $2 RETURNING id`, h.transfer.ID, h.a.ID).Scan(&id); err != nil {
				f.t.Fatal(err)
			}
			return ledger.Violation{Kind: ledger.ViolationBalanceAfterChain, AccountID: &h.a.ID, EntryID: id, Got: "701", Want: "700"}
		}},
		{"held without hold", func(f *fixture, h healthyLedger) ledger.Violation {
			f.exec(`UPDATE ledger_accounts SET held = held + 7 WHERE id = $1`, h.a.ID)
			return ledger.Violation{Kind: ledger.ViolationHeldMismatch, AccountID: &h.a.ID, Got: "7", Want: "0"}
		}},
		{"active hold released behind held's back", func(f *fixture, h healthyLedger) ledger.Violation {
			f.exec(`UPDATE ledger_holds SET status = 'released', settled_at = now() WHERE status = 'active'`)
			return ledger.Violation{Kind: ledger.ViolationHeldMismatch, AccountID: &h.b.ID, Got: "100", Want: "0"}
		}},
		{"negative wallet", func(f *fixture, h healthyLedger) ledger.Violation {
			f.exec(`ALTER TABLE ledger_accounts DROP CONSTRAINT ledger_accounts_non_negative, DROP CONSTRAINT ledger_accounts_available_non_negative`)
			f.exec(`UPDATE ledger_accounts SET balance = -3 WHERE id = $1`, h.a.ID)
			return ledger.Violation{Kind: ledger.ViolationNegativeBalance, AccountID: &h.a.ID, Got: "-3"}
		}},
		{"negative available", func(f *fixture, h healthyLedger) ledger.Violation {
			f.exec(`ALTER TABLE ledger_accounts DROP CONSTRAINT ledger_accounts_available_non_negative`)
			f.exec(`UPDATE ledger_accounts SET held = 701 WHERE id = $1`, h.a.ID)
			return ledger.Violation{Kind: ledger.ViolationNegativeAvailable, AccountID: &h.a.ID, Got: "-1"}
		}},
		{"entry on an account of another currency", func(f *fixture, h healthyLedger) ledger.Violation {
			f.exec(`ALTER TABLE ledger_accounts DISABLE TRIGGER ALL`)
			f.exec(`UPDATE ledger_accounts SET currency = 'USD' WHERE id = $1`, h.clearing.ID)
			return ledger.Violation{Kind: ledger.ViolationCurrencyMismatch, AccountID: &h.clearing.ID, Got: "USD", Want: "IDR"}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t)
			h := newHealthyLedger(t, f)
			f.verifyOK()
			want := c.corrupt(f, h)
			r, err := f.store.Verify(f.ctx, f.pool)
			if err != nil {
				t.Fatal(err)
			}
			if r.OK() {
				t.Fatal("Verify passed a corrupt ledger")
			}
			if !slices.ContainsFunc(r.Violations, func(v ledger.Violation) bool { return matches(v, want) }) {
				t.Fatalf("violations %v do not include %v", r.Violations, want)
			}
			t.Logf("violations: %v", r.Violations)
		})
	}
}

// matches reports whether v is want, comparing the fields want sets.
func matches(v, want ledger.Violation) bool {
	eqID := func(a, b *uuid.UUID) bool { return b == nil || (a != nil && *a == *b) }
	return v.Kind == want.Kind && eqID(v.TransactionID, want.TransactionID) && eqID(v.AccountID, want.AccountID) &&
		(want.EntryID == 0 || v.EntryID == want.EntryID) && (want.Currency == "" || v.Currency == want.Currency) &&
		(want.Got == "" || v.Got == want.Got) && (want.Want == "" || v.Want == want.Want)
}
