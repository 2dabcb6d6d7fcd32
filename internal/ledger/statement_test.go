package ledger_test

import (
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/paygate/paygate/internal/ledger"
)

func TestStatementPaginatesNewestFirstWithoutGapsOrDuplicates(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	a := f.wallet(0)
	b := f.wallet(0)
	// 23 entries on a: 12 top-ups of i*10 and 11 transfers to b of i.
	var want []int64 // amounts, oldest first
	for i := 1; i <= 12; i++ {
		f.topUp(a.ID, int64(i*10))
		want = append(want, int64(i*10))
		if i <= 11 {
			if _, err := f.post(ledger.KindTransfer, a.ID, b.ID, int64(i)); err != nil {
				t.Fatal(err)
			}
			want = append(want, -int64(i))
		}
	}
	var got []ledger.Entry
	var cursor ledger.Cursor
	pages := 0
	for {
		page, next, err := f.store.Statement(f.ctx, f.pool, a.ID, 5, cursor)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		if len(page) == 0 || len(page) > 5 {
			t.Fatalf("page %d has %d entries", pages, len(page))
		}
		got = append(got, page...)
		if pages == 2 {
			// Entries booked while paging appear on no later page.
			f.topUp(a.ID, 1)
		}
		if next == "" {
			break
		}
		cursor = next
	}
	if pages != 5 || len(got) != len(want) {
		t.Fatalf("%d pages, %d entries; want 5 pages, %d entries", pages, len(got), len(want))
	}
	// Newest first: got[i] is want[len-1-i]; ids strictly decrease; each
	// balance_after is the next older one's plus this amount.
	for i, e := range got {
		if e.Amount != want[len(want)-1-i] || e.AccountID != a.ID {
			t.Fatalf("entry %d = %+v, want amount %d", i, e, want[len(want)-1-i])
		}
		if i > 0 && e.ID >= got[i-1].ID {
			t.Fatalf("entry %d id %d not below %d", i, e.ID, got[i-1].ID)
		}
		var older int64
		if i+1 < len(got) {
			older = got[i+1].BalanceAfter
		}
		if e.BalanceAfter != older+e.Amount {
			t.Fatalf("entry %d balance_after %d, want %d + %d", i, e.BalanceAfter, older, e.Amount)
		}
		wantKind := ledger.KindTopUp
		if e.Amount < 0 {
			wantKind = ledger.KindTransfer
		}
		if e.TransactionKind != wantKind || e.Reference == "" {
			t.Fatalf("entry %d kind %q reference %q", i, e.TransactionKind, e.Reference)
		}
	}
	if got[0].BalanceAfter != 780-66 {
		t.Fatalf("newest balance_after %d, want 714", got[0].BalanceAfter)
	}
	// The first page now starts with the entry booked while paging.
	first, _, err := f.store.Statement(f.ctx, f.pool, a.ID, 1, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(first) != 1 || first[0].Amount != 1 || first[0].BalanceAfter != 715 {
		t.Fatalf("newest entry = %+v", first)
	}

	_, _, err = f.store.Statement(f.ctx, f.pool, a.ID, 5, "not a cursor!")
	wantErr(t, err, ledger.ErrInvalidCursor)
	_, _, err = f.store.Statement(f.ctx, f.pool, uuid.New(), 5, "")
	wantErr(t, err, ledger.ErrAccountNotFound)
	empty := f.wallet(0)
	page, next, err := f.store.Statement(f.ctx, f.pool, empty.ID, 5, "")
	if err != nil || len(page) != 0 || next != "" {
		t.Fatalf("empty statement = %v, %q, %v", page, next, err)
	}
}

func TestListWalletsPaginates(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.systemAccount(ledger.CodeClearingWithdrawals)
	want := map[uuid.UUID]bool{}
	for range 7 {
		want[f.wallet(0).ID] = true
	}
	seen := map[uuid.UUID]bool{}
	var cursor ledger.Cursor
	for pages := 1; ; pages++ {
		var page []ledger.Account
		var next ledger.Cursor
		f.mustTx(func(tx pgx.Tx) (err error) {
			page, next, err = f.store.ListWallets(f.ctx, tx, 3, cursor)
			return err
		})
		for _, w := range page {
			if w.Kind != ledger.AccountWallet || !want[w.ID] || seen[w.ID] {
				t.Fatalf("page %d: unexpected or repeated wallet %+v", pages, w)
			}
			seen[w.ID] = true
		}
		if next == "" {
			if pages != 3 {
				t.Fatalf("%d pages, want 3", pages)
			}
			break
		}
		cursor = next
	}
	if len(seen) != len(want) {
		t.Fatalf("listed %d wallets, want %d", len(seen), len(want))
	}
	_, _, err := f.store.ListWallets(f.ctx, f.pool, 3, "%%%")
	wantErr(t, err, ledger.ErrInvalidCursor)
}

func TestEntryPublicIDIsStableAndDistinctPerEntry(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	a := f.wallet(100)
	b := f.wallet(0)
	pt, err := f.post(ledger.KindTransfer, a.ID, b.ID, 40)
	if err != nil {
		t.Fatal(err)
	}
	if len(pt.Entries) != 2 {
		t.Fatalf("transfer has %d entries", len(pt.Entries))
	}
	debit := ledger.EntryPublicID(pt.ID, pt.Entries[0].AccountID)
	credit := ledger.EntryPublicID(pt.ID, pt.Entries[1].AccountID)
	if debit == credit {
		t.Fatalf("both entries of a transfer got id %s", debit)
	}
	if debit.Version() != 5 || debit == uuid.Nil {
		t.Fatalf("entry id %s is not a name-based UUID", debit)
	}
	// Read back through the statement, the ids are the same ones.
	for _, acc := range []struct {
		id   uuid.UUID
		want uuid.UUID
	}{{a.ID, debit}, {b.ID, credit}} {
		page, _, err := f.store.Statement(f.ctx, f.pool, acc.id, 1, "")
		if err != nil || len(page) != 1 {
			t.Fatalf("statement of %s: %v, %v", acc.id, page, err)
		}
		if got := ledger.EntryPublicID(page[0].TransactionID, page[0].AccountID); got != acc.want {
			t.Fatalf("entry id read back %s, want %s", got, acc.want)
		}
	}
	if ledger.EntryPublicID(uuid.New(), a.ID) == debit {
		t.Fatal("another transaction's entry got the same id")
	}
}

func TestWalletsOfReadsEveryWalletOrFails(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	a, b := f.wallet(0), f.wallet(0)
	got, err := f.store.WalletsOf(f.ctx, f.pool, []uuid.UUID{*a.OwnerUserID, *b.OwnerUserID})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[*a.OwnerUserID].ID != a.ID || got[*b.OwnerUserID].ID != b.ID {
		t.Fatalf("wallets = %+v", got)
	}
	_, err = f.store.WalletsOf(f.ctx, f.pool, []uuid.UUID{*a.OwnerUserID, uuid.New()})
	wantErr(t, err, ledger.ErrAccountNotFound)
}
